/**
 * Approval requests of high-impact tool calls in the ApprovalGate table.
 * Every change of state is one conditional write, so that concurrent
 * deciders, workers and the expiry sweep agree on one outcome:
 *
 * ```
 * pending ──approve──▶ approved ──consume──▶ executed
 *    │ └───deny────▶ denied
 *    └───deadline──▶ expired
 * ```
 *
 * A request is bound to the SHA-256 of the canonical JSON of its call (tool,
 * arguments, agent, user and session), and only a call with the same hash
 * can consume its approval, once.
 */
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
  type QueryCommandOutput,
  type ScanCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import type { AuditDecision, AuditRecord } from './audit';
import { canonicalSha256 } from './canonical';
import { APPROVALS_TABLE_KEY } from './contracts';

/** State of an approval request. */
export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'executed';

/** Decision a person makes on a pending request. */
export type ApprovalDecision = 'approved' | 'denied';

/** Days an item stays in the table after its deadline, for `show` and the resume of an approved call. */
export const APPROVAL_RETENTION_DAYS = 7;

const SECONDS_PER_DAY = 86_400;

/** The call that an approval is bound to. */
export interface ApprovalCall {
  readonly agent: string;
  /** Verified id of the user whose task requested the call. */
  readonly userId: string;
  readonly sessionId: string;
  readonly tool: string;
  /** The tool's arguments, exactly as the model sent them. */
  readonly input: unknown;
}

/**
 * Returns the hex SHA-256 of the canonical JSON of `call`, so that the key
 * order of the arguments cannot change it, while any other difference in
 * tool, arguments, agent, user or session does.
 */
export function approvalCallHash(call: ApprovalCall): string {
  return canonicalSha256({
    agent: call.agent,
    arguments: call.input,
    sessionId: call.sessionId,
    tool: call.tool,
    userId: call.userId,
  });
}

/** A new request, as the worker stores it. */
export interface NewApproval extends ApprovalCall {
  readonly approvalId: string;
  /** Id of the task that requested the call. */
  readonly requestId: string;
  /** Id of the model's `toolUse` block, which the tool result must name. */
  readonly toolUseId: string;
  /** Seconds the request waits for a decision. */
  readonly expirySeconds: number;
  /** Task queue of a background agent, which receives the continuation message after a decision. */
  readonly queueUrl?: string;
}

/** One approval request as stored, with the arguments parsed. */
export interface Approval extends ApprovalCall {
  readonly approvalId: string;
  readonly state: ApprovalState;
  readonly requestId: string;
  readonly toolUseId: string;
  /** Hex SHA-256 from {@link approvalCallHash}. */
  readonly callSha256: string;
  /** Hex SHA-256 of the canonical JSON of the arguments alone, as the audit log keeps it. */
  readonly argumentsSha256: string;
  /** ISO 8601 time of the request. */
  readonly requestedAt: string;
  /** Epoch milliseconds after which a pending request counts as expired. */
  readonly deadlineMs: number;
  /** Epoch seconds after which DynamoDB may delete the item and reads ignore it. */
  readonly expiresAt: number;
  readonly queueUrl?: string;
  /** Verified identity of the person who decided: an IAM ARN, or the operator command's caller. */
  readonly decidedBy?: string;
  readonly decidedAt?: string;
  /** Reason the person gave with the decision. */
  readonly decisionReason?: string;
  readonly expiredAt?: string;
  readonly executedAt?: string;
  /** Id of the task that consumed the approval. */
  readonly executedBy?: string;
}

/** Outcome of {@link ApprovalStore.decide}. */
export type DecideResult =
  | { readonly kind: 'decided'; readonly approval: Approval }
  | { readonly kind: 'not-found' }
  /**
   * The request is no longer pending. `expiredNow` is true when this call
   * found it past its deadline and recorded the expiry.
   */
  | { readonly kind: 'conflict'; readonly approval: Approval; readonly expiredNow: boolean };

/** Reason that {@link ApprovalStore.consume} rejected a consume. */
export type ConsumeRejection = 'pending' | 'denied' | 'expired' | 'used' | 'mismatch';

/** Outcome of {@link ApprovalStore.consume}. */
export type ConsumeResult =
  | { readonly kind: 'consumed'; readonly approval: Approval }
  | { readonly kind: 'not-found' }
  | {
      readonly kind: 'rejected';
      readonly reason: ConsumeRejection;
      readonly approval: Approval;
      /** True when this call found the request past its deadline and recorded the expiry. */
      readonly expiredNow: boolean;
    };

export interface ApprovalStoreOptions {
  readonly client: DynamoDBDocumentClient;
  readonly table: string;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
}

const { partitionKey, pendingIndex, pendingPartitionKey, pendingSortKey } = APPROVALS_TABLE_KEY;

/** Reads and changes approval requests. */
export class ApprovalStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly now: () => number;

  constructor(options: ApprovalStoreOptions) {
    this.client = options.client;
    this.table = options.table;
    this.now = options.now ?? Date.now;
  }

  /**
   * Stores a pending request. The put is conditional on the id being new,
   * so a reused id raises ConditionalCheckFailedException instead of
   * replacing another request.
   */
  async create(request: NewApproval): Promise<Approval> {
    const now = this.now();
    const deadlineMs = now + request.expirySeconds * 1000;
    const item = {
      [partitionKey]: request.approvalId,
      state: 'pending' satisfies ApprovalState,
      [pendingPartitionKey]: request.agent,
      agent: request.agent,
      userId: request.userId,
      sessionId: request.sessionId,
      requestId: request.requestId,
      tool: request.tool,
      toolUseId: request.toolUseId,
      // JSON text, so that the arguments round-trip exactly, empty strings and all.
      arguments: JSON.stringify(request.input ?? null),
      callSha256: approvalCallHash(request),
      argumentsSha256: canonicalSha256(request.input ?? null),
      requestedAt: new Date(now).toISOString(),
      [pendingSortKey]: deadlineMs,
      expiresAt: Math.ceil(deadlineMs / 1000) + APPROVAL_RETENTION_DAYS * SECONDS_PER_DAY,
      ...(request.queueUrl === undefined ? {} : { queueUrl: request.queueUrl }),
    };
    await this.client.send(
      new PutCommand({
        TableName: this.table,
        Item: item,
        ConditionExpression: 'attribute_not_exists(#id)',
        ExpressionAttributeNames: { '#id': partitionKey },
      }),
    );
    return toApproval(item);
  }

  /**
   * Returns the request, or undefined when it does not exist or its item
   * has passed `expiresAt`, because DynamoDB deletes expired items only
   * some time later. A pending request past its deadline is returned as
   * found; {@link ApprovalStore.read} records its expiry.
   */
  async find(approvalId: string): Promise<Approval | undefined> {
    const output = await this.client.send(
      new GetCommand({ TableName: this.table, Key: { [partitionKey]: approvalId }, ConsistentRead: true }),
    );
    if (output.Item === undefined) return undefined;
    const approval = toApproval(output.Item);
    return approval.expiresAt * 1000 <= this.now() ? undefined : approval;
  }

  /**
   * Returns the request like {@link ApprovalStore.find}, after recording the
   * expiry of a pending request past its deadline. `expiredNow` is true when
   * this call recorded it.
   */
  async read(approvalId: string): Promise<{ approval: Approval; expiredNow: boolean } | undefined> {
    const approval = await this.find(approvalId);
    if (approval === undefined) return undefined;
    return this.expireIfDue(approval);
  }

  /**
   * Approves or denies a pending request. The condition on state `pending`
   * and an open deadline makes concurrent decisions resolve to exactly one
   * winner, and every other caller gets `conflict` with the state the
   * winner wrote.
   */
  async decide(
    approvalId: string,
    decision: ApprovalDecision,
    decidedBy: string,
    reason?: string,
  ): Promise<DecideResult> {
    const now = this.now();
    try {
      const output = await this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [partitionKey]: approvalId },
          UpdateExpression:
            'SET #state = :decision, decidedBy = :by, decidedAt = :at' +
            (reason === undefined ? '' : ', decisionReason = :reason') +
            ' REMOVE #pendingAgent',
          ConditionExpression: '#state = :pending AND #deadline > :now AND expiresAt > :nowSeconds',
          ExpressionAttributeNames: {
            '#state': 'state',
            '#pendingAgent': pendingPartitionKey,
            '#deadline': pendingSortKey,
          },
          ExpressionAttributeValues: {
            ':decision': decision,
            ':by': decidedBy,
            ':at': new Date(now).toISOString(),
            ':pending': 'pending',
            ':now': now,
            ':nowSeconds': Math.floor(now / 1000),
            ...(reason === undefined ? {} : { ':reason': reason }),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { kind: 'decided', approval: toApproval(output.Attributes!) };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
    const current = await this.read(approvalId);
    if (current === undefined) return { kind: 'not-found' };
    return { kind: 'conflict', approval: current.approval, expiredNow: current.expiredNow };
  }

  /**
   * Uses an approval once: `approved` becomes `executed` under a condition
   * on the state and on `callSha256`, so a second consume, or a consume for
   * a call with another hash, is rejected and leaves the item unchanged.
   * The caller runs the tool only after `consumed`.
   */
  async consume(approvalId: string, callSha256: string, requestId: string): Promise<ConsumeResult> {
    const now = this.now();
    try {
      const output = await this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [partitionKey]: approvalId },
          UpdateExpression: 'SET #state = :executed, executedAt = :at, executedBy = :requestId',
          ConditionExpression: '#state = :approved AND callSha256 = :hash AND expiresAt > :nowSeconds',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':executed': 'executed',
            ':approved': 'approved',
            ':at': new Date(now).toISOString(),
            ':requestId': requestId,
            ':hash': callSha256,
            ':nowSeconds': Math.floor(now / 1000),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { kind: 'consumed', approval: toApproval(output.Attributes!) };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
    const current = await this.read(approvalId);
    if (current === undefined) return { kind: 'not-found' };
    const { approval, expiredNow } = current;
    return { kind: 'rejected', reason: rejectionOf(approval, callSha256), approval, expiredNow };
  }

  /**
   * Records the expiry of a pending request past its deadline. Returns the
   * expired request, or undefined when it was decided, was already
   * expired, or its deadline has not passed.
   */
  async expire(approvalId: string): Promise<Approval | undefined> {
    const now = this.now();
    try {
      const output = await this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { [partitionKey]: approvalId },
          UpdateExpression: 'SET #state = :expired, expiredAt = :at REMOVE #pendingAgent',
          ConditionExpression: '#state = :pending AND #deadline <= :now',
          ExpressionAttributeNames: {
            '#state': 'state',
            '#pendingAgent': pendingPartitionKey,
            '#deadline': pendingSortKey,
          },
          ExpressionAttributeValues: {
            ':expired': 'expired',
            ':pending': 'pending',
            ':at': new Date(now).toISOString(),
            ':now': now,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toApproval(output.Attributes!);
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  /**
   * Lists the pending requests of `agent` whose deadline has not passed,
   * soonest deadline first. The index is eventually consistent, so a
   * request decided a moment ago may still be listed.
   */
  async listPending(agent: string): Promise<Approval[]> {
    const approvals: Approval[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page: QueryCommandOutput = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: pendingIndex,
          KeyConditionExpression: '#pendingAgent = :agent AND #deadline > :now',
          ExpressionAttributeNames: { '#pendingAgent': pendingPartitionKey, '#deadline': pendingSortKey },
          ExpressionAttributeValues: { ':agent': agent, ':now': this.now() },
          ExclusiveStartKey: startKey,
        }),
      );
      approvals.push(...(page.Items ?? []).map(toApproval));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return approvals;
  }

  /**
   * Lists the pending requests of every agent whose deadline has passed,
   * for the expiry sweep. It scans the sparse index, which contains pending
   * requests only.
   */
  async listDue(): Promise<Approval[]> {
    const approvals: Approval[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page: ScanCommandOutput = await this.client.send(
        new ScanCommand({
          TableName: this.table,
          IndexName: pendingIndex,
          FilterExpression: '#deadline <= :now',
          ExpressionAttributeNames: { '#deadline': pendingSortKey },
          ExpressionAttributeValues: { ':now': this.now() },
          ExclusiveStartKey: startKey,
        }),
      );
      approvals.push(...(page.Items ?? []).map(toApproval));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return approvals;
  }

  private async expireIfDue(approval: Approval): Promise<{ approval: Approval; expiredNow: boolean }> {
    if (approval.state !== 'pending' || approval.deadlineMs > this.now()) {
      return { approval, expiredNow: false };
    }
    const expired = await this.expire(approval.approvalId);
    if (expired !== undefined) return { approval: expired, expiredNow: true };
    // Someone decided or expired it between the read and the write.
    const current = await this.find(approval.approvalId);
    return { approval: current ?? approval, expiredNow: false };
  }
}

/** Explains why a consume with `callSha256` failed on `approval` as it is now. */
function rejectionOf(approval: Approval, callSha256: string): ConsumeRejection {
  switch (approval.state) {
    case 'pending':
      return 'pending';
    case 'denied':
      return 'denied';
    case 'expired':
      return 'expired';
    case 'executed':
      return 'used';
    default:
      // Still approved, so the condition failed on the hash.
      return approval.callSha256 === callSha256 ? 'used' : 'mismatch';
  }
}

function toApproval(item: Record<string, unknown>): Approval {
  const text = (key: string) => (typeof item[key] === 'string' ? (item[key] as string) : undefined);
  return {
    approvalId: String(item[partitionKey]),
    state: item.state as ApprovalState,
    agent: String(item.agent),
    userId: String(item.userId),
    sessionId: String(item.sessionId),
    requestId: String(item.requestId),
    tool: String(item.tool),
    toolUseId: String(item.toolUseId),
    input: JSON.parse(String(item.arguments)),
    callSha256: String(item.callSha256),
    argumentsSha256: String(item.argumentsSha256),
    requestedAt: String(item.requestedAt),
    deadlineMs: Number(item[pendingSortKey]),
    expiresAt: Number(item.expiresAt),
    queueUrl: text('queueUrl'),
    decidedBy: text('decidedBy'),
    decidedAt: text('decidedAt'),
    decisionReason: text('decisionReason'),
    expiredAt: text('expiredAt'),
    executedAt: text('executedAt'),
    executedBy: text('executedBy'),
  };
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

/** Approval as the decision API and the operator command show it, with times in ISO 8601. */
export function approvalView(approval: Approval): Record<string, unknown> {
  const { deadlineMs, expiresAt, input, ...rest } = approval;
  return {
    ...rest,
    arguments: input,
    deadline: new Date(deadlineMs).toISOString(),
    deleteAfter: new Date(expiresAt * 1000).toISOString(),
  };
}

/**
 * Builds the audit record of a change of `approval`'s state. `requestId`
 * is the id of the request that made the change.
 */
export function approvalAuditRecord(
  approval: Approval,
  decision: AuditDecision,
  requestId: string,
  time: number,
  reason?: string,
): AuditRecord {
  return {
    time: new Date(time).toISOString(),
    requestId,
    agent: approval.agent,
    userId: approval.userId,
    sessionId: approval.sessionId,
    kind: 'approval',
    decision,
    ...(reason === undefined ? {} : { reason }),
    tool: approval.tool,
    argumentsSha256: approval.argumentsSha256,
    approvalId: approval.approvalId,
    ...(approval.decidedBy === undefined ? {} : { approver: approval.decidedBy }),
  };
}

/** Body of the message that resumes a background agent after a decision or an expiry. */
export interface ContinuationMessage {
  /** Id of the decided or expired approval. */
  readonly resume: string;
  readonly sessionId: string;
  readonly userId: string;
}

/** Returns the continuation message of `approval`. */
export function continuationOf(approval: Approval): ContinuationMessage {
  return { resume: approval.approvalId, sessionId: approval.sessionId, userId: approval.userId };
}
