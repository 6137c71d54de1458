import {
  GetCommand,
  QueryCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { GatewayBudgetConfig } from '../../shared/contracts';
import {
  AgentStackError,
  BudgetUnavailableError,
  InvalidRequestError,
  UnauthorizedError,
} from '../../shared/errors';
import { Logger } from '../../shared/logger';
import { AGENT_METRICS } from '../../shared/metric-catalog';
import { MetricsWriter } from '../../shared/metrics';
import {
  releaseCounterItem,
  reserveCounterItem,
  transitionItem,
  type ReservationRecord,
  type ReservationState,
  type SettlementHandle,
} from './items';
import { applyOverrides, NO_OVERRIDES, type LimitOverrideStore } from './overrides';
import { findPassedLimit, limitError, planCounters, type CounterPlan, type CounterValues } from './limits';
import { toNanoUsd, totalTokensOf, type CallUsage } from './pricing';
import { transactWithRetry, type TransactionRetry, type TransactItem } from './transact';
import {
  leaseIndexKey,
  leaseIndexSortKey,
  RESERVATION_SORT_KEY,
  reservationKey,
} from './windows';

/** User id that requests without a verified identity count against. */
export const ANONYMOUS_USER_ID = 'anonymous';

/**
 * Seconds a reservation record is kept after its lease: long enough for a
 * late settle to find it, and for the operator's spend report to cover the
 * current and the previous calendar month.
 */
export const RESERVATION_RETENTION_SECONDS = 62 * 24 * 3600;

/** Default attempts of a ledger transaction that conflicts with concurrent ones. */
export const DEFAULT_TRANSACTION_ATTEMPTS = 10;

/** Hours of lease index partitions the reclaimer reads, back from now. */
export const DEFAULT_RECLAIM_LOOKBACK_HOURS = 24;

/** A call to reserve budget for. */
export interface ReserveRequest {
  readonly requestId: string;
  readonly agent: string;
  /** Verified user id; missing or `anonymous` is rejected unless `allowAnonymous`. */
  readonly userId?: string;
  readonly estimatedInputTokens: number;
  readonly maxTokens: number;
  /** Worst-case price of the call in US dollars. */
  readonly priceUsd: number;
}

/** A request served without a model call, such as from the response cache, to count against the rate limits. */
export interface RateCountRequest {
  readonly requestId: string;
  readonly agent: string;
  /** Verified user id; missing or `anonymous` is rejected unless `allowAnonymous`. */
  readonly userId?: string;
}

/** Result of a reservation; `guarded` is false when the ledger was down and `failOpen` served the call. */
export type Reservation =
  | {
      readonly guarded: true;
      readonly requestId: string;
      readonly tokens: number;
      readonly nanoUsd: number;
      readonly leaseExpiresAt: number;
      /** Handle with which {@link BudgetLedger.settle} settles in one round trip. */
      readonly settlement: SettlementHandle;
    }
  | { readonly guarded: false; readonly requestId: string };

/** A call's actual usage to settle. */
export interface SettleRequest {
  readonly requestId: string;
  readonly usage: CallUsage;
  readonly costUsd: number;
  /**
   * Handle that `reserve` returned for `requestId`. Without it, settle
   * first reads the reservation record, which costs one more round trip.
   */
  readonly settlement?: SettlementHandle;
}

/** Result of a settle or reclaim. Only `settled` and `reclaimed` changed the ledger. */
export type ReleaseOutcome =
  | 'settled'
  | 'reclaimed'
  | 'already-settled'
  | 'already-reclaimed'
  | 'lease-active'
  | 'not-found';

/** Settings of {@link BudgetLedger}. */
export interface BudgetLedgerOptions {
  readonly client: DynamoDBDocumentClient;
  readonly config: GatewayBudgetConfig;
  /** @default - a MetricsWriter writing to stdout */
  readonly metrics?: MetricsWriter;
  /** @default - a Logger writing to stdout */
  readonly logger?: Logger;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Attempts of a transaction cancelled by conflicts. @default DEFAULT_TRANSACTION_ATTEMPTS */
  readonly maxTransactionAttempts?: number;
  /** Called before each retry of a conflicting transaction. @default - none */
  readonly onTransactionRetry?: (retry: TransactionRetry) => void;
  /**
   * Limits an operator set at runtime, applied over `config` on each reservation.
   * @default - the configured limits only
   */
  readonly overrides?: LimitOverrideStore;
}

function isState(value: unknown): value is ReservationState {
  return value === 'reserved' || value === 'settled' || value === 'reclaimed';
}

/**
 * Budget ledger over one DynamoDB table. Each scope and window has its own
 * counter item, keyed by the window's start, and each call has a
 * reservation record whose state moves reserved → settled or reserved →
 * reclaimed under a condition, which makes both idempotent.
 */
export class BudgetLedger {
  private readonly client: DynamoDBDocumentClient;
  private readonly config: GatewayBudgetConfig;
  private readonly table: string;
  private readonly metrics: MetricsWriter;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly retry: Parameters<typeof transactWithRetry>[3];
  private readonly overrides?: LimitOverrideStore;

  constructor(options: BudgetLedgerOptions) {
    this.client = options.client;
    this.config = options.config;
    this.table = options.config.table;
    this.now = options.now ?? Date.now;
    this.metrics = options.metrics ?? new MetricsWriter({ now: this.now });
    this.logger = options.logger ?? new Logger();
    this.overrides = options.overrides;
    this.retry = {
      maxAttempts: options.maxTransactionAttempts ?? DEFAULT_TRANSACTION_ATTEMPTS,
      baseDelayMs: 10,
      maxDelayMs: 200,
      onRetry: options.onTransactionRetry,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      random: Math.random,
    };
  }

  /** Returns the user id a request counts against, or rejects a request without one. */
  resolveUser(requestId: string, userId: string | undefined): string {
    if (userId !== undefined && userId !== '' && userId !== ANONYMOUS_USER_ID) {
      return userId;
    }
    if (this.config.allowAnonymous) {
      return ANONYMOUS_USER_ID;
    }
    throw new UnauthorizedError(
      `Request ${requestId} has no verified user id (received ${JSON.stringify(userId ?? null)}), ` +
        'and the budget settings do not allow anonymous calls. Authenticate the caller, or set ' +
        'budget.allowAnonymous to count such calls against the anonymous user.',
      requestId,
    );
  }

  /**
   * Reserves the worst case of a call in every counter that applies, in one
   * transaction with a condition per counter, and writes the reservation
   * record. Raises BudgetExceededError or RateLimitedError naming the
   * counter that had no room, and BudgetUnavailableError when the ledger
   * cannot be reached, unless `failOpen` is set.
   */
  async reserve(request: ReserveRequest, logger = this.logger): Promise<Reservation> {
    const { requestId, agent } = request;
    const userId = this.resolveUser(requestId, request.userId);
    const amounts = {
      tokens: request.estimatedInputTokens + request.maxTokens,
      nanoUsd: toNanoUsd(request.priceUsd),
    };
    try {
      const nowMs = this.now();
      const overrides = this.overrides === undefined ? NO_OVERRIDES : await this.overrides.get(agent);
      const plans = planCounters(applyOverrides(this.config, agent, overrides), agent, userId, nowMs);
      // A call larger than a whole limit would pass the condition of a
      // counter that does not exist yet, so it is rejected here.
      for (const plan of plans) {
        if (findPassedLimit(plan, {}, amounts) !== undefined) {
          this.countRejection(plan, requestId);
          throw limitError(plan, await this.readCounter(plan), amounts, requestId);
        }
      }
      const leaseExpiresAt = nowMs + this.config.leaseSeconds * 1000;
      const record: ReservationRecord = {
        pk: reservationKey(requestId),
        sk: RESERVATION_SORT_KEY,
        state: 'reserved',
        requestId,
        agent,
        userId,
        tokens: amounts.tokens,
        nanoUsd: amounts.nanoUsd,
        counters: plans.map((plan) => ({ kind: plan.kind, pk: plan.pk, sk: plan.span.key })),
        leaseExpiresAt,
        leasePk: leaseIndexKey(leaseExpiresAt),
        leaseSk: leaseIndexSortKey(leaseExpiresAt, requestId),
        expiresAt: Math.ceil(leaseExpiresAt / 1000) + RESERVATION_RETENTION_SECONDS,
      };
      const items: TransactItem[] = plans.map((plan) => reserveCounterItem(this.table, plan, amounts));
      items.push({
        Put: {
          TableName: this.table,
          Item: { ...record, createdAt: new Date(nowMs).toISOString() },
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      });
      items.push({
        Put: {
          TableName: this.table,
          Item: { pk: record.leasePk, sk: record.leaseSk, requestId, expiresAt: record.expiresAt },
        },
      });
      const { failed } = await transactWithRetry(
        this.client,
        items,
        { operation: 'reserve', requestId },
        this.retry,
      );
      if (failed.length > 0) {
        throw await this.rejectionFor(failed[0], plans, amounts, requestId);
      }
      const settlement: SettlementHandle = {
        requestId,
        counters: record.counters,
        leasePk: record.leasePk,
        leaseSk: record.leaseSk,
        tokens: amounts.tokens,
        nanoUsd: amounts.nanoUsd,
      };
      return { guarded: true, ...amounts, requestId, leaseExpiresAt, settlement };
    } catch (error) {
      if (error instanceof AgentStackError) {
        throw error;
      }
      await this.cancelUnconfirmed(requestId, logger);
      return this.unavailable(error, request, logger);
    }
  }

  /**
   * Counts one request with no tokens against the agent's and the user's
   * per-minute rate counters, in one transaction with the same conditions
   * as a reservation, and reserves nothing. A request that a model does
   * not serve, such as a response cache hit, still counts against the
   * request rate. Raises RateLimitedError naming the counter that had no
   * room, and BudgetUnavailableError when the ledger cannot be reached,
   * unless `failOpen` is set, in which case `guarded` is false.
   */
  async countRequest(request: RateCountRequest, logger = this.logger): Promise<{ readonly guarded: boolean }> {
    const { requestId, agent } = request;
    const userId = this.resolveUser(requestId, request.userId);
    const amounts = { tokens: 0, nanoUsd: 0 };
    try {
      const nowMs = this.now();
      const overrides = this.overrides === undefined ? NO_OVERRIDES : await this.overrides.get(agent);
      const config = applyOverrides(this.config, agent, overrides);
      const plans = planCounters(config, agent, userId, nowMs).filter((plan) => plan.kind === 'rate');
      // A request limit of 0 would pass the condition of a counter that does not exist yet.
      for (const plan of plans) {
        if (findPassedLimit(plan, {}, amounts) !== undefined) {
          this.countRejection(plan, requestId);
          throw limitError(plan, await this.readCounter(plan), amounts, requestId);
        }
      }
      if (plans.length === 0) {
        return { guarded: true };
      }
      const items = plans.map((plan) => reserveCounterItem(this.table, plan, amounts));
      const { failed } = await transactWithRetry(this.client, items, { operation: 'count', requestId }, this.retry);
      if (failed.length > 0) {
        throw await this.rejectionFor(failed[0], plans, amounts, requestId);
      }
      return { guarded: true };
    } catch (error) {
      if (error instanceof AgentStackError) {
        throw error;
      }
      return this.unavailable(error, request, logger, 'count');
    }
  }

  /**
   * Releases the reservation of a reserve call that failed without a
   * response, such as a timeout, because its transaction may still have
   * committed. Without this the reservation would hold budget until its
   * lease ends. A failure here is logged, and the reclaimer releases the
   * reservation after the lease instead.
   */
  private async cancelUnconfirmed(requestId: string, logger: Logger): Promise<void> {
    try {
      const fields = { reclaimedAt: new Date(this.now()).toISOString(), reclaimCause: 'reserve-failed' };
      const outcome = await this.release(requestId, 'reclaimed', { tokens: 0, nanoUsd: 0 }, fields);
      if (outcome === 'reclaimed') {
        logger.warn('Released a reservation whose reserve call failed after it committed', { outcome });
      }
    } catch (error) {
      logger.warn('Releasing the reservation of a failed reserve call failed, so the reclaimer releases it after the lease', {}, error);
    }
  }

  /**
   * Settles a call: the reservation moves to `settled`, and in the same
   * transaction each counter spends the actual usage and releases the rest
   * of the reservation. A second settle of the same request changes nothing.
   * With `request.settlement` the transaction is the only round trip while
   * the reservation is still `reserved`. Otherwise the reservation record
   * is read first.
   */
  async settle(request: SettleRequest): Promise<ReleaseOutcome> {
    const actual = { tokens: totalTokensOf(request.usage), nanoUsd: toNanoUsd(request.costUsd) };
    const fields = {
      settledAt: new Date(this.now()).toISOString(),
      inputTokens: request.usage.inputTokens,
      outputTokens: request.usage.outputTokens,
      cacheReadTokens: request.usage.cacheReadTokens ?? 0,
      cacheWriteTokens: request.usage.cacheWriteTokens ?? 0,
      actualTokens: actual.tokens,
      actualNanoUsd: actual.nanoUsd,
    };
    const handle = request.settlement;
    if (handle === undefined) {
      return this.release(request.requestId, 'settled', actual, fields);
    }
    if (handle.requestId !== request.requestId) {
      throw new Error(
        `Settling request ${request.requestId} failed: its settlement handle belongs to request ` +
          `${handle.requestId}. Pass the handle that reserve returned for the same request.`,
      );
    }
    if (await this.writeRelease(handle, 'reserved', 'settled', actual, fields)) {
      return 'settled';
    }
    // The state moved first, by an earlier settle or by a reclaim after the
    // lease ended. Only the record distinguishes the two, and a reclaimed
    // call still has its actual usage to add, so the settle reads it by id.
    return this.release(request.requestId, 'settled', actual, fields);
  }

  /** Releases a reservation whose lease has passed, as if it had settled with no usage. */
  async reclaim(requestId: string, nowMs = this.now()): Promise<ReleaseOutcome> {
    const fields = { reclaimedAt: new Date(nowMs).toISOString() };
    return this.release(requestId, 'reclaimed', { tokens: 0, nanoUsd: 0 }, fields, nowMs);
  }

  /**
   * Reclaims every reservation whose lease ended by `nowMs`, reading the
   * lease index of the last `lookbackHours` hours, and returns their ids.
   */
  async reclaimExpired(
    nowMs = this.now(),
    lookbackHours = DEFAULT_RECLAIM_LOOKBACK_HOURS,
  ): Promise<string[]> {
    const reclaimed: string[] = [];
    const upper = `${new Date(nowMs).toISOString()}#\uffff`;
    for (let hour = lookbackHours; hour >= 0; hour--) {
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk AND sk <= :upper',
            ExpressionAttributeValues: { ':pk': leaseIndexKey(nowMs - hour * 3_600_000), ':upper': upper },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
          }),
        );
        for (const item of page.Items ?? []) {
          if ((await this.reclaim(String(item.requestId), nowMs)) === 'reclaimed') {
            reclaimed.push(String(item.requestId));
          }
        }
        startKey = page.LastEvaluatedKey;
      } while (startKey !== undefined);
    }
    return reclaimed;
  }

  /** Reads the reservation record of `requestId` with a consistent read. */
  async readReservation(requestId: string): Promise<ReservationRecord | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({
        TableName: this.table,
        Key: { pk: reservationKey(requestId), sk: RESERVATION_SORT_KEY },
        ConsistentRead: true,
      }),
    );
    return Item !== undefined && isState(Item.state) ? (Item as ReservationRecord) : undefined;
  }

  private async release(
    requestId: string,
    to: 'settled' | 'reclaimed',
    actual: { tokens: number; nanoUsd: number },
    fields: Record<string, unknown>,
    leaseEndedBy?: number,
  ): Promise<ReleaseOutcome> {
    const record = await this.readReservation(requestId);
    if (record === undefined) {
      return 'not-found';
    }
    // A call that outlived its lease still spent its tokens, so its settle
    // adds them after the reclaim gave back the reservation.
    const late = to === 'settled' && record.state === 'reclaimed';
    if (record.state !== 'reserved' && !late) {
      return record.state === 'settled' ? 'already-settled' : 'already-reclaimed';
    }
    if (leaseEndedBy !== undefined && record.leaseExpiresAt > leaseEndedBy) {
      return 'lease-active';
    }
    if (await this.writeRelease(record, record.state, to, actual, fields, leaseEndedBy)) {
      return to;
    }
    // Another settle or reclaim moved the state first; return what it did.
    const now = await this.readReservation(requestId);
    return now?.state === 'settled' ? 'already-settled' : 'already-reclaimed';
  }

  /**
   * Moves a reservation from `from` to `to` in one transaction with its
   * counter updates. From `reclaimed` the counters only add the actual
   * amounts, because the reclaim already released the reserved ones.
   * Returns false when the state was no longer `from`, and raises when a
   * counter has less reserved than the reservation.
   */
  private async writeRelease(
    handle: SettlementHandle,
    from: 'reserved' | 'reclaimed',
    to: 'settled' | 'reclaimed',
    actual: { tokens: number; nanoUsd: number },
    fields: Record<string, unknown>,
    leaseEndedBy?: number,
  ): Promise<boolean> {
    const { requestId } = handle;
    const released = from === 'reserved';
    const extra =
      leaseEndedBy === undefined
        ? undefined
        : { expression: 'leaseExpiresAt <= :leaseEndedBy', values: { ':leaseEndedBy': leaseEndedBy } };
    const items: TransactItem[] = [transitionItem(this.table, requestId, from, to, fields, extra)];
    const counterIndexes: number[] = [];
    handle.counters.forEach((counter, index) => {
      const item = releaseCounterItem(this.table, counter, handle, actual, released);
      if (item !== undefined) {
        counterIndexes.push(index);
        items.push(item);
      }
    });
    if (released) {
      items.push({ Delete: { TableName: this.table, Key: { pk: handle.leasePk, sk: handle.leaseSk } } });
    }
    const { failed } = await transactWithRetry(
      this.client,
      items,
      { operation: to === 'settled' ? 'settle' : 'reclaim', requestId },
      this.retry,
    );
    if (failed.length === 0) {
      return true;
    }
    if (failed[0].index === 0) {
      return false;
    }
    const counter = handle.counters[counterIndexes[failed[0].index - 1]];
    throw new Error(
      `Releasing reservation ${requestId} failed: counter ${counter?.pk} ${counter?.sk} has ` +
        'less reserved than the reservation, so the ledger is inconsistent. Inspect the counter item.',
    );
  }

  private async readCounter(plan: CounterPlan): Promise<CounterValues> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.table, Key: { pk: plan.pk, sk: plan.span.key }, ConsistentRead: true }),
    );
    return (Item ?? {}) as CounterValues;
  }

  private async rejectionFor(
    failed: { index: number; item?: Record<string, unknown> },
    plans: readonly CounterPlan[],
    amounts: { tokens: number; nanoUsd: number },
    requestId: string,
  ): Promise<AgentStackError> {
    const plan = plans[failed.index];
    if (plan === undefined) {
      return new InvalidRequestError(
        `Request id ${requestId} already has a budget reservation, so the call was not made. ` +
          'Send each model call with a new request id.',
        requestId,
      );
    }
    const current = (failed.item as CounterValues | undefined) ?? (await this.readCounter(plan));
    this.countRejection(plan, requestId);
    return limitError(plan, current, amounts, requestId);
  }

  /** Writes `RateLimited` or `BudgetRejected` for a call that `plan`'s limit rejected. */
  private countRejection(plan: CounterPlan, requestId: string): void {
    const metric = plan.kind === 'rate' ? AGENT_METRICS.rateLimited : AGENT_METRICS.budgetRejected;
    this.metrics.put({ Agent: plan.agent }, { [metric.name]: { value: 1, unit: metric.unit } }, { requestId });
  }

  /**
   * Raises BudgetUnavailableError for a ledger failure during `operation`,
   * or, when the budget fails open, logs it, counts `UnguardedCall` and
   * returns an unguarded result.
   */
  private unavailable(
    error: unknown,
    request: Pick<ReserveRequest, 'requestId' | 'agent'>,
    logger: Logger,
    operation: 'reserve' | 'count' = 'reserve',
  ): Reservation {
    const { requestId, agent } = request;
    const cause = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const work = operation === 'reserve' ? 'reserve' : 'count against the rate limits';
    if (!this.config.failOpen) {
      throw new BudgetUnavailableError(
        `The budget ledger table ${this.table} could not ${work} request ${requestId} ` +
          `(${cause}), so the call was not made. Retry later; if it persists, check the ` +
          "table and the gateway's network access to DynamoDB.",
        requestId,
        { cause: error },
      );
    }
    const message =
      operation === 'reserve'
        ? 'Budget ledger unreachable; serving the call without a reservation'
        : 'Budget ledger unreachable; serving the request without counting it against the rate limits';
    logger.error(message, { table: this.table }, error);
    const metric = AGENT_METRICS.unguardedCall;
    this.metrics.put({ Agent: agent }, { [metric.name]: { value: 1, unit: metric.unit } }, { requestId });
    return { guarded: false, requestId };
  }
}
