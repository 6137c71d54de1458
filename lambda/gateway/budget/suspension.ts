import {
  DeleteCommand,
  GetCommand,
  PutCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { AgentSuspendedError, type SuspensionReason } from '../../shared/errors';
import { keyPart } from './windows';

/** Sort key of every suspension item, which is alone in its partition. */
export const SUSPENSION_SORT_KEY = 'suspension';

/**
 * Milliseconds a gateway instance reuses a suspension read, so that most
 * calls pay no round trip. A suspension or a resume therefore takes effect
 * on a warm instance up to this long after it is written.
 */
export const DEFAULT_SUSPENSION_CACHE_MS = 2_000;

/** Seconds a lapsed suspension item is kept before TTL deletes it. Reads never rely on the deletion. */
export const SUSPENSION_RETENTION_SECONDS = 7 * 24 * 3600;

const REASONS: readonly SuspensionReason[] = ['budget-exhausted', 'anomaly', 'operator'];

/** Returns true when `value` is a known suspension reason. */
export function isSuspensionReason(value: unknown): value is SuspensionReason {
  return REASONS.includes(value as SuspensionReason);
}

/** Partition key of an agent's suspension item: `suspension#agent#<agent>`. */
export function suspensionKey(agent: string): string {
  return `suspension#agent#${keyPart(agent)}`;
}

/** A suspension as the ledger table stores it. */
export interface Suspension {
  readonly agent: string;
  readonly reason: SuspensionReason;
  /** Epoch milliseconds at which the suspension lapses, or missing for a suspension that lasts until a resume. */
  readonly until?: number;
  /** Name of the suspender, such as `kill-switch:schedule`, `alarm:<alarm name>` or an operator's name. */
  readonly suspendedBy: string;
  /** Epoch milliseconds of the suspension. */
  readonly suspendedAt: number;
}

/** A suspension to write. */
export interface SuspendRequest {
  readonly agent: string;
  readonly reason: SuspensionReason;
  /** Epoch milliseconds at which the suspension lapses. @default - until an operator resumes the agent */
  readonly until?: number;
  readonly suspendedBy: string;
}

/**
 * Result of {@link SuspensionStore.suspend}. `applied` is false when an
 * active suspension that lasts at least as long was kept.
 */
export interface SuspendOutcome {
  readonly applied: boolean;
  readonly suspension: Suspension;
}

/** Settings of {@link SuspensionStore}. */
export interface SuspensionStoreOptions {
  readonly client: DynamoDBDocumentClient;
  /** Name of the ledger table. */
  readonly table: string;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Milliseconds a read is reused. @default DEFAULT_SUSPENSION_CACHE_MS */
  readonly cacheTtlMs?: number;
}

function toSuspension(item: Record<string, unknown> | undefined): Suspension | undefined {
  if (item === undefined || typeof item.agent !== 'string' || !isSuspensionReason(item.reason)) {
    return undefined;
  }
  return {
    agent: item.agent,
    reason: item.reason,
    ...(typeof item.until === 'number' ? { until: item.until } : {}),
    suspendedBy: String(item.suspendedBy ?? 'unknown'),
    suspendedAt: Number(item.suspendedAt ?? 0),
  };
}

/** Returns true when `suspension` is still in force at `nowMs`. */
export function isActive(suspension: Suspension | undefined, nowMs: number): suspension is Suspension {
  return suspension !== undefined && (suspension.until === undefined || suspension.until > nowMs);
}

/**
 * Suspensions of agents in the budget ledger table, one item per agent. A
 * suspension lapses when its `until` passes: every read compares it with
 * the clock, because TTL deletes items up to days late.
 */
export class SuspensionStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly now: () => number;
  private readonly cacheTtlMs: number;
  private readonly cache = new Map<string, { suspension?: Suspension; readAt: number }>();
  /** Reads in flight per agent, shared by concurrent calls so that a burst costs one read. */
  private readonly pending = new Map<string, Promise<Suspension | undefined>>();

  constructor(options: SuspensionStoreOptions) {
    this.client = options.client;
    this.table = options.table;
    this.now = options.now ?? Date.now;
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_SUSPENSION_CACHE_MS;
  }

  /**
   * Returns the active suspension of `agent`, or undefined. A read younger
   * than the cache time is reused, but its `until` is compared with the
   * clock on every call.
   */
  async getSuspension(agent: string): Promise<Suspension | undefined> {
    const nowMs = this.now();
    const cached = this.cache.get(agent);
    if (cached !== undefined && nowMs - cached.readAt < this.cacheTtlMs) {
      return isActive(cached.suspension, nowMs) ? cached.suspension : undefined;
    }
    let read = this.pending.get(agent);
    if (read === undefined) {
      read = this.read(agent).finally(() => this.pending.delete(agent));
      this.pending.set(agent, read);
    }
    const suspension = await read;
    this.cache.set(agent, { suspension, readAt: nowMs });
    return isActive(suspension, nowMs) ? suspension : undefined;
  }

  /**
   * Suspends `agent`, unless an active suspension already lasts at least as
   * long: one without `until` outlasts every other, so a budget suspension
   * never shortens an operator's or an anomaly's.
   */
  async suspend(request: SuspendRequest): Promise<SuspendOutcome> {
    const nowMs = this.now();
    if (request.agent === '') {
      throw new Error('Cannot suspend an agent with an empty name; pass the agent name the gateway serves.');
    }
    if (request.until !== undefined && request.until <= nowMs) {
      throw new Error(
        `Cannot suspend agent ${request.agent} until ${new Date(request.until).toISOString()}, ` +
          'which is not in the future; pass a later time or none.',
      );
    }
    const suspension: Suspension = {
      agent: request.agent,
      reason: request.reason,
      ...(request.until === undefined ? {} : { until: request.until }),
      suspendedBy: request.suspendedBy,
      suspendedAt: nowMs,
    };
    // A lapsed suspension has an `until` in the past, so the `#until < :until`
    // branch replaces it; an indefinite one is only replaced by a resume.
    const condition =
      request.until === undefined
        ? 'attribute_not_exists(pk) OR attribute_exists(#until)'
        : 'attribute_not_exists(pk) OR (attribute_exists(#until) AND #until < :until)';
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: suspensionKey(request.agent),
            sk: SUSPENSION_SORT_KEY,
            ...suspension,
            ...(request.until === undefined
              ? {}
              : { expiresAt: Math.ceil(request.until / 1000) + SUSPENSION_RETENTION_SECONDS }),
          },
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#until': 'until' },
          ExpressionAttributeValues: request.until === undefined ? undefined : { ':until': request.until },
        }),
      );
    } catch (error) {
      if (!(error instanceof Error) || error.name !== 'ConditionalCheckFailedException') {
        throw error;
      }
      const existing = await this.read(request.agent);
      this.cache.set(request.agent, { suspension: existing, readAt: nowMs });
      // The item can be deleted between the failed put and the read; the caller may then suspend again.
      return { applied: false, suspension: existing ?? suspension };
    }
    this.cache.set(request.agent, { suspension, readAt: nowMs });
    return { applied: true, suspension };
  }

  /** Deletes the suspension of `agent` and returns it, or undefined when none was active. */
  async resume(agent: string): Promise<Suspension | undefined> {
    const nowMs = this.now();
    const { Attributes } = await this.client.send(
      new DeleteCommand({
        TableName: this.table,
        Key: { pk: suspensionKey(agent), sk: SUSPENSION_SORT_KEY },
        ReturnValues: 'ALL_OLD',
      }),
    );
    this.cache.set(agent, { readAt: nowMs });
    const removed = toSuspension(Attributes);
    return isActive(removed, nowMs) ? removed : undefined;
  }

  private async read(agent: string): Promise<Suspension | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({
        TableName: this.table,
        Key: { pk: suspensionKey(agent), sk: SUSPENSION_SORT_KEY },
        ConsistentRead: true,
      }),
    );
    return toSuspension(Item);
  }
}

/** Builds the error a call of a suspended agent is rejected with. */
export function suspendedError(suspension: Suspension, requestId: string): AgentSuspendedError {
  const { agent, reason } = suspension;
  const since = new Date(suspension.suspendedAt).toISOString();
  const until = suspension.until === undefined ? undefined : new Date(suspension.until).toISOString();
  const remedy =
    until === undefined
      ? `until an operator resumes it. Once the cause is resolved, send the kill switch {"action":"resume","agent":${JSON.stringify(agent)}}.`
      : `until ${until}, when its budget window rolls over. Wait until then, or raise the agent's budget and resume it through the kill switch.`;
  return new AgentSuspendedError(
    `Agent ${agent} is suspended (reason: ${reason}, by ${suspension.suspendedBy} at ${since}), ` +
      `so request ${requestId} was not sent to a model. The suspension lasts ${remedy}`,
    requestId,
    { agent, reason, ...(until === undefined ? {} : { until }) },
  );
}
