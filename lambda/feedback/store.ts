/** Feedback records in the feedback table, one per rated request and user. */
import { PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { FEEDBACK_TABLE_KEY } from '../shared/contracts';
import { DuplicateFeedbackError } from './errors';

/** One stored score. The key is `requestId` and `userId`, see {@link FEEDBACK_TABLE_KEY}. */
export interface FeedbackRecord {
  /** Request id of the rated response. */
  readonly requestId: string;
  /** Verified id of the user who sent the score. */
  readonly userId: string;
  readonly agent: string;
  readonly sessionId: string;
  readonly score: number;
  readonly comment?: string;
  /** ISO 8601 time at which the endpoint stored the score. */
  readonly createdAt: string;
}

/** Writes feedback records; a second record for the same request and user is rejected. */
export class FeedbackStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  /**
   * Stores `record` unless the user already rated the request. The
   * condition makes the check and the write one atomic step, so two
   * concurrent submissions store one record and the other gets 409.
   */
  async put(record: FeedbackRecord, requestId: string): Promise<void> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...record },
          ConditionExpression: 'attribute_not_exists(#partitionKey)',
          ExpressionAttributeNames: { '#partitionKey': FEEDBACK_TABLE_KEY.partitionKey },
        }),
      );
    } catch (error) {
      if (error instanceof Error && error.name === 'ConditionalCheckFailedException') {
        throw new DuplicateFeedbackError(
          `User ${record.userId} already rated request ${record.requestId}; a score cannot be changed once sent.`,
          requestId,
          { cause: error },
        );
      }
      throw error;
    }
  }
}
