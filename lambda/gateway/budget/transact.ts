import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { TransactWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';

/** One item of a TransactWriteItems call, in the document client's shape. */
export type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']
>[number];

/** Information passed to the retry hook before a transaction is sent again. */
export interface TransactionRetry {
  readonly operation: string;
  readonly requestId: string;
  /** Attempt that just failed, starting at 1. */
  readonly attempt: number;
  readonly delayMs: number;
}

/** Settings of {@link transactWithRetry}. */
export interface TransactionRetryOptions {
  readonly maxAttempts: number;
  /** Upper bound of the first backoff, doubled on each retry up to `maxDelayMs`. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly onRetry?: (retry: TransactionRetry) => void;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
}

/** A condition that failed, with the item as it was when the check ran, if DynamoDB returned it. */
export interface FailedCondition {
  readonly index: number;
  readonly item?: Record<string, unknown>;
}

/** Result of a transaction: empty when it was written, else the conditions that failed. */
export interface TransactionResult {
  readonly failed: readonly FailedCondition[];
}

/** The transaction kept conflicting with others until its attempts ran out. */
export class TransactionContentionError extends Error {
  override readonly name = 'TransactionContentionError';
}

/** Cancellation reason codes that a later attempt can overcome. */
const RETRYABLE_CODES = new Set(['None', 'TransactionConflict', 'ThrottlingError']);

interface CancellationReason {
  readonly Code?: string;
  readonly Item?: Record<string, AttributeValue>;
}

function cancellationReasons(error: unknown): CancellationReason[] | undefined {
  if (!(error instanceof Error) || error.name !== 'TransactionCanceledException') {
    return undefined;
  }
  return (error as { CancellationReasons?: CancellationReason[] }).CancellationReasons ?? [];
}

function toItem(item: Record<string, AttributeValue> | undefined): Record<string, unknown> | undefined {
  return item === undefined ? undefined : unmarshall(item);
}

/**
 * Sends one TransactWriteItems call and returns the conditions that failed.
 * A cancellation caused only by conflicts with concurrent transactions on
 * the same items is retried after a random backoff ("full jitter"), up to
 * `maxAttempts` in all, so that concurrent writers take turns rather than
 * retry in step. Other errors, such as network failures, are raised.
 */
export async function transactWithRetry(
  client: DynamoDBDocumentClient,
  items: readonly TransactItem[],
  context: { operation: string; requestId: string },
  options: TransactionRetryOptions,
): Promise<TransactionResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.send(new TransactWriteCommand({ TransactItems: [...items] }));
      return { failed: [] };
    } catch (error) {
      const reasons = cancellationReasons(error);
      if (reasons === undefined) {
        throw error;
      }
      const failed: FailedCondition[] = [];
      reasons.forEach((reason, index) => {
        if (reason.Code === 'ConditionalCheckFailed') {
          failed.push({ index, item: toItem(reason.Item) });
        }
      });
      if (failed.length > 0) {
        return { failed };
      }
      // A cancellation for another reason, such as a validation error, would fail again.
      const retryable = reasons.every((reason) => RETRYABLE_CODES.has(reason.Code ?? 'None'));
      if (!retryable) {
        throw error;
      }
      if (attempt >= options.maxAttempts) {
        const codes = reasons.map((reason) => reason.Code ?? 'None').join(', ');
        throw new TransactionContentionError(
          `The ${context.operation} transaction of request ${context.requestId} was cancelled ` +
            `${attempt} times by concurrent writes (reasons: ${codes}).`,
          { cause: error },
        );
      }
      const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
      const delayMs = Math.round(options.random() * ceiling);
      options.onRetry?.({ ...context, attempt, delayMs });
      await options.sleep(delayMs);
    }
  }
}
