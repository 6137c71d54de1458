/**
 * Conversation memory in the AgentMemory table. The table's key schema is
 * fixed by the construct: partition key `pk`, sort key `sk` (both strings)
 * and the TTL attribute `expiresAt` in epoch seconds.
 */
import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  PutCommand,
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

/**
 * A summary of the earlier turns of a session, written by a model when the
 * history outgrew the agent's input budget. It is untrusted text, because
 * it restates what users and tools wrote.
 */
export interface SessionSummary {
  readonly text: string;
  /** Sequence number of the first turn the summary does not cover; it covers every turn before it. */
  readonly keptFromSeq: number;
  /** Request id of the task that wrote the summary. */
  readonly requestId: string;
}

/** Options of {@link SessionMemory.load}. */
export interface LoadOptions {
  /**
   * Also read the session's latest summary, which costs a second query.
   * @default false
   */
  readonly summary?: boolean;
}

/** The live turns of a session and the sequence number the next turn takes. */
export interface LoadedSession {
  readonly messages: ConverseMessage[];
  /** Sequence number of each turn of `messages`, in the same order. */
  readonly seqs: number[];
  readonly nextSeq: number;
  /**
   * Id of the approval that the last turn waits for: the turn is an
   * assistant turn whose high-impact toolUse has no result yet.
   */
  readonly pendingApprovalId?: string;
  /** The live summary that covers the most turns, when `summary` was requested and one exists. */
  readonly summary?: SessionSummary;
}

/** Options of {@link SessionMemory.append}. */
export interface AppendOptions {
  /** Marks the last appended turn as waiting for this approval. */
  readonly pendingApprovalId?: string;
}

/** Stores and loads the turns and summaries of a session. */
export interface SessionMemory {
  load(key: SessionKey, options?: LoadOptions): Promise<LoadedSession>;
  append(
    key: SessionKey,
    firstSeq: number,
    messages: ConverseMessage[],
    requestId: string,
    options?: AppendOptions,
  ): Promise<void>;
  /**
   * Stores a summary unless one that keeps turns from the same sequence
   * number exists. Returns false when it existed, so the summary of a range
   * of turns is written once.
   */
  saveSummary(key: SessionKey, summary: SessionSummary): Promise<boolean>;
}

/** Session ids the worker accepts; they never contain the key separator `#`. */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** DynamoDB allows at most 100 actions in one transaction. */
const MAX_TRANSACTION_ITEMS = 100;
const SK_PREFIX = 'turn#';
const SUMMARY_SK_PREFIX = 'summary#';
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

/** Builds the sort key of a summary that keeps the turns from `keptFromSeq` on. */
export function summarySortKey(keptFromSeq: number): string {
  return `${SUMMARY_SK_PREFIX}${String(keptFromSeq).padStart(10, '0')}`;
}

/** {@link SessionMemory} backed by the AgentMemory table. */
export class DynamoSessionMemory implements SessionMemory {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly ttlDays: number,
    private readonly nowSeconds: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  async load(key: SessionKey, options: LoadOptions = {}): Promise<LoadedSession> {
    const now = this.nowSeconds();
    const messages: ConverseMessage[] = [];
    const seqs: number[] = [];
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
        const seq = Number(String(item.sk).slice(SK_PREFIX.length));
        lastSeq = Math.max(lastSeq, seq);
        if (typeof item.expiresAt !== 'number' || item.expiresAt <= now) continue;
        messages.push({ role: item.role, content: JSON.parse(item.content) });
        seqs.push(seq);
        pendingApprovalId = typeof item.approvalId === 'string' ? item.approvalId : undefined;
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);

    const summary = options.summary ? await this.latestSummary(key, now) : undefined;
    return {
      messages,
      seqs,
      nextSeq: lastSeq + 1,
      ...(pendingApprovalId === undefined ? {} : { pendingApprovalId }),
      ...(summary === undefined ? {} : { summary }),
    };
  }

  /** Reads the live summary with the highest `keptFromSeq`, newest first, skipping expired ones. */
  private async latestSummary(key: SessionKey, now: number): Promise<SessionSummary | undefined> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page: QueryCommandOutput = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': partitionKey(key), ':prefix': SUMMARY_SK_PREFIX },
          ScanIndexForward: false,
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      const live = (page.Items ?? []).find(
        (item) => typeof item.expiresAt === 'number' && item.expiresAt > now && typeof item.text === 'string',
      );
      if (live !== undefined) {
        return { text: live.text, keptFromSeq: Number(live.keptFromSeq), requestId: String(live.requestId) };
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return undefined;
  }

  async saveSummary(key: SessionKey, summary: SessionSummary): Promise<boolean> {
    const now = this.nowSeconds();
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: partitionKey(key),
            sk: summarySortKey(summary.keptFromSeq),
            expiresAt: now + this.ttlDays * SECONDS_PER_DAY,
            text: summary.text,
            keptFromSeq: summary.keptFromSeq,
            requestId: summary.requestId,
            createdAt: new Date(now * 1000).toISOString(),
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
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
