/**
 * Conversation memory in the AgentMemory table. The table's key schema is
 * fixed by the construct: partition key `pk`, sort key `sk` (both strings)
 * and the TTL attribute `expiresAt` in epoch seconds.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  QueryCommand,
  QueryCommandOutput,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConverseMessage } from '../shared/contracts';
import { SessionConflictError } from './errors';

/** Identifies one conversation of one user with one agent. */
export interface SessionKey {
  readonly agent: string;
  readonly userId: string;
  readonly sessionId: string;
}

/** The live turns of a session and the sequence number the next turn takes. */
export interface LoadedSession {
  readonly messages: ConverseMessage[];
  readonly nextSeq: number;
  /**
   * Id of the approval that the last turn waits for: the turn is an
   * assistant turn whose high-impact toolUse has no result yet.
   */
  readonly pendingApprovalId?: string;
}

/** Options of {@link SessionMemory.append}. */
export interface AppendOptions {
  /** Marks the last appended turn as waiting for this approval. */
  readonly pendingApprovalId?: string;
}

/** Stores and loads the turns of a session. */
export interface SessionMemory {
  load(key: SessionKey): Promise<LoadedSession>;
  append(
    key: SessionKey,
    firstSeq: number,
    messages: ConverseMessage[],
    requestId: string,
    options?: AppendOptions,
  ): Promise<void>;
}

/** Session ids the worker accepts; they never contain the key separator `#`. */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** DynamoDB allows at most 100 actions in one transaction. */
const MAX_TRANSACTION_ITEMS = 100;
const SK_PREFIX = 'turn#';
const SECONDS_PER_DAY = 86_400;

/**
 * Builds the partition key. The user id sits inside the key, so a query for
 * one user's session can never return another user's turns. Agent names and
 * session ids contain no `#`, so a `#` inside a user id cannot make two
 * different sessions share a key.
 */
export function partitionKey(key: SessionKey): string {
  return `${key.agent}#${key.userId}#${key.sessionId}`;
}

/** Builds the sort key; zero padding makes string order equal turn order. */
export function sortKey(seq: number): string {
  return `${SK_PREFIX}${String(seq).padStart(10, '0')}`;
}

/** {@link SessionMemory} backed by the AgentMemory table. */
export class DynamoSessionMemory implements SessionMemory {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly ttlDays: number,
    private readonly nowSeconds: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  async load(key: SessionKey): Promise<LoadedSession> {
    const now = this.nowSeconds();
    const messages: ConverseMessage[] = [];
    let lastSeq = -1;
    let pendingApprovalId: string | undefined;
    let startKey: Record<string, unknown> | undefined;

    // Expired items are read too: DynamoDB deletes them only some time after
    // they expire, so they are skipped here, but their sequence numbers still
    // count, or a new turn would collide with an expired one.
    do {
      const page: QueryCommandOutput = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': partitionKey(key), ':prefix': SK_PREFIX },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const item of page.Items ?? []) {
        lastSeq = Math.max(lastSeq, Number(String(item.sk).slice(SK_PREFIX.length)));
        if (typeof item.expiresAt !== 'number' || item.expiresAt <= now) continue;
        messages.push({ role: item.role, content: JSON.parse(item.content) });
        pendingApprovalId = typeof item.approvalId === 'string' ? item.approvalId : undefined;
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);

    return pendingApprovalId === undefined
      ? { messages, nextSeq: lastSeq + 1 }
      : { messages, nextSeq: lastSeq + 1, pendingApprovalId };
  }

  /**
   * Writes `messages` as turns `firstSeq`, `firstSeq + 1`, ... Each put is
   * conditional on the turn not existing yet, so when two requests of one
   * session run at once, the later one fails instead of interleaving turns.
   */
  async append(
    key: SessionKey,
    firstSeq: number,
    messages: ConverseMessage[],
    requestId: string,
    options: AppendOptions = {},
  ): Promise<void> {
    const now = this.nowSeconds();
    const expiresAt = now + this.ttlDays * SECONDS_PER_DAY;
    const items = messages.map((message, index) => ({
      pk: partitionKey(key),
      sk: sortKey(firstSeq + index),
      expiresAt,
      role: message.role,
      // Stored as JSON text so that tool input and output round-trip exactly,
      // whatever numbers or empty values they contain.
      // NOTE: a turn larger than DynamoDB's 400 KB item limit fails the write;
      // tool results are not truncated before they are stored.
      content: JSON.stringify(message.content),
      requestId,
      createdAt: new Date(now * 1000).toISOString(),
      ...(index === messages.length - 1 && options.pendingApprovalId !== undefined
        ? { approvalId: options.pendingApprovalId }
        : {}),
    }));

    for (let i = 0; i < items.length; i += MAX_TRANSACTION_ITEMS) {
      const chunk = items.slice(i, i + MAX_TRANSACTION_ITEMS);
      try {
        await this.client.send(
          new TransactWriteCommand({
            TransactItems: chunk.map((item) => ({
              Put: {
                TableName: this.tableName,
                Item: item,
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            })),
          }),
        );
      } catch (error) {
        if (isConditionFailure(error)) {
          throw new SessionConflictError(
            `Session ${key.sessionId} was changed by another request while request ` +
              `${requestId} ran, so its turns were not saved. Send the message again.`,
            requestId,
            { cause: error },
          );
        }
        throw error;
      }
    }
  }
}

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof TransactionCanceledException &&
    (error.CancellationReasons ?? []).some((reason) => reason.Code === 'ConditionalCheckFailed')
  );
}
