import type { GatewayBreakerSettings, ModelTarget } from '../shared/contracts';
import {
  MemoryBreakerStore,
  type BreakerRecord,
  type BreakerStore,
} from './breaker-store';

/**
 * Seconds a breaker record stays valid after the time it last describes: the
 * last failure of a closed breaker, the end of an open breaker's cooldown or
 * of a probe's lease. Failures ten minutes apart are not one outage, so a
 * closed breaker drops them, and an open breaker that no request probed
 * for ten minutes starts closed again.
 */
export const BREAKER_STALE_AFTER_SECONDS = 600;

/**
 * Milliseconds the breaker keeps to in-memory state after the state table
 * failed, so that an unreachable table costs one slow request per interval
 * rather than one per model call.
 */
export const STATE_TABLE_RETRY_INTERVAL_MS = 5_000;

/** Partition key of a target's breaker record. */
export function breakerKey(target: ModelTarget): string {
  return `breaker#${target.region}#${target.modelId}`;
}

/** Whether a call may use a target. */
export interface BreakerDecision {
  readonly allowed: boolean;
  /** True when this call is the single probe of a breaker that was open. */
  readonly probe: boolean;
  /** End of the probe's lease, which identifies the probe in the store. */
  readonly probeUntil?: number;
  /** Reason the target is skipped, when `allowed` is false. */
  readonly skipReason?: string;
}

/** A change of breaker state, or a problem with the state table. */
export type BreakerEvent =
  | { readonly type: 'breaker-opened'; readonly target: ModelTarget; readonly openUntil: number }
  | { readonly type: 'breaker-closed'; readonly target: ModelTarget }
  | { readonly type: 'breaker-probe'; readonly target: ModelTarget; readonly probeUntil: number }
  | {
      readonly type: 'breaker-state-unavailable';
      readonly operation: string;
      readonly error: unknown;
      /** Epoch milliseconds when the breaker tries the state table again. */
      readonly retryAt: number;
    };

/** Receives breaker events; the caller logs them and counts them as metrics. */
export type BreakerEventListener = (event: BreakerEvent) => void;

/** Settings of {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  readonly settings: GatewayBreakerSettings;
  /**
   * Store shared by every instance, such as the DynamoDB state table.
   * @default - state is kept per instance
   */
  readonly sharedStore?: BreakerStore;
  /** Milliseconds a probe may run before another instance may probe the target. */
  readonly probeLeaseMs: number;
  /**
   * Clock in epoch milliseconds.
   * @default Date.now
   */
  readonly now?: () => number;
}

const ALLOW: BreakerDecision = { allowed: true, probe: false };

function toSeconds(epochMs: number): number {
  return Math.ceil(epochMs / 1000) + BREAKER_STALE_AFTER_SECONDS;
}

function formatTime(epochMs: number | undefined): string {
  return new Date(epochMs ?? 0).toISOString();
}

/**
 * Circuit breaker per target. After `failureThreshold` consecutive failures
 * the breaker opens and its target is skipped. Once `cooldownSeconds` have
 * passed, one call claims the probe with a conditional write, so that one
 * instance alone tries the target: success closes the breaker and failure
 * opens it again. State read from the shared store is trusted for
 * `cacheTtlMs`, and when the store fails the breaker uses in-memory state.
 */
export class CircuitBreaker {
  private readonly memory = new MemoryBreakerStore();
  private readonly cache = new Map<string, { record?: BreakerRecord; readAt: number }>();
  private readonly now: () => number;
  private sharedStoreRetryAt = 0;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Decides whether a call may use `target`, claiming the probe when one is due. */
  async acquire(target: ModelTarget, onEvent?: BreakerEventListener): Promise<BreakerDecision> {
    const key = breakerKey(target);
    const now = this.now();
    let record = this.cached(key, now);
    if (record === null) {
      record = await this.run('read', onEvent, (store) => store.read(key, now));
      this.remember(key, record);
    }
    const blocked = this.skipReason(record, now);
    if (blocked !== undefined || record === undefined || record.state === 'closed') {
      return blocked === undefined ? ALLOW : { allowed: false, probe: false, skipReason: blocked };
    }

    const probeUntil = now + this.options.probeLeaseMs;
    const claimed = await this.run('claim probe', onEvent, (store) =>
      store.claimProbe(key, now, probeUntil, toSeconds(probeUntil)),
    );
    if (claimed !== undefined) {
      this.remember(key, claimed);
      onEvent?.({ type: 'breaker-probe', target, probeUntil });
      return { allowed: true, probe: true, probeUntil };
    }
    // Another instance claimed the probe or changed the state first.
    const current = await this.run('read', onEvent, (store) => store.read(key, now));
    this.remember(key, current);
    const reason = this.skipReason(current, now) ?? this.probeReason(current);
    return reason === undefined ? ALLOW : { allowed: false, probe: false, skipReason: reason };
  }

  /** Records a call that `target` served, closing its breaker when the call was the probe. */
  async recordSuccess(
    target: ModelTarget,
    decision: BreakerDecision,
    onEvent?: BreakerEventListener,
  ): Promise<void> {
    const key = breakerKey(target);
    const expiresAt = toSeconds(this.now());
    if (decision.probe && decision.probeUntil !== undefined) {
      const probeUntil = decision.probeUntil;
      const closed = await this.run('close', onEvent, (store) =>
        store.closeProbe(key, probeUntil, expiresAt),
      );
      if (closed !== undefined) {
        this.remember(key, closed);
        onEvent?.({ type: 'breaker-closed', target });
      }
      return;
    }
    const known = this.cache.get(key)?.record;
    if (known?.state === 'closed' && known.failures > 0) {
      await this.run('reset failures', onEvent, (store) => store.resetFailures(key, expiresAt));
      this.remember(key, { ...known, failures: 0 });
    }
  }

  /** Records a failure of `target`, opening its breaker at the threshold or after a probe. */
  async recordFailure(
    target: ModelTarget,
    decision: BreakerDecision,
    onEvent?: BreakerEventListener,
  ): Promise<void> {
    const key = breakerKey(target);
    const now = this.now();
    const openUntil = now + this.options.settings.cooldownSeconds * 1000;
    if (decision.probe && decision.probeUntil !== undefined) {
      const probeUntil = decision.probeUntil;
      const reopened = await this.run('reopen', onEvent, (store) =>
        store.reopenProbe(key, probeUntil, openUntil, toSeconds(openUntil)),
      );
      this.openedBy(key, target, reopened, onEvent);
      return;
    }
    const counted = await this.run('add failure', onEvent, (store) =>
      store.addFailure(key, now, toSeconds(now)),
    );
    this.remember(key, counted);
    const threshold = this.options.settings.failureThreshold;
    if (counted.state === 'closed' && counted.failures >= threshold) {
      const opened = await this.run('open', onEvent, (store) =>
        store.open(key, now, threshold, openUntil, toSeconds(openUntil)),
      );
      this.openedBy(key, target, opened, onEvent);
    }
  }

  private openedBy(
    key: string,
    target: ModelTarget,
    record: BreakerRecord | undefined,
    onEvent: BreakerEventListener | undefined,
  ): void {
    if (record === undefined) {
      return;
    }
    this.remember(key, record);
    onEvent?.({ type: 'breaker-opened', target, openUntil: record.openUntil ?? 0 });
  }

  /** Returns the reason a target is skipped now, or undefined when it may be called or probed. */
  private skipReason(record: BreakerRecord | undefined, now: number): string | undefined {
    if (record?.state === 'open' && (record.openUntil ?? 0) > now) {
      return `skipped: breaker open until ${formatTime(record.openUntil)}`;
    }
    if (record?.state === 'half-open' && (record.probeUntil ?? 0) > now) {
      return `skipped: another request is probing it until ${formatTime(record.probeUntil)}`;
    }
    return undefined;
  }

  private probeReason(record: BreakerRecord | undefined): string | undefined {
    if (record === undefined || record.state === 'closed') {
      return undefined;
    }
    return 'skipped: another request claimed the probe first';
  }

  /** Returns the cached record, undefined for a cached absence, or null when nothing is cached. */
  private cached(key: string, now: number): BreakerRecord | undefined | null {
    const entry = this.cache.get(key);
    if (entry === undefined || now - entry.readAt >= this.options.settings.cacheTtlMs) {
      return null;
    }
    return entry.record;
  }

  private remember(key: string, record: BreakerRecord | undefined): void {
    this.cache.set(key, { record, readAt: this.now() });
  }

  /**
   * Runs `operation` on the shared store, or on in-memory state when there
   * is none or it failed within the last retry interval.
   */
  private async run<T>(
    operation: string,
    onEvent: BreakerEventListener | undefined,
    action: (store: BreakerStore) => Promise<T>,
  ): Promise<T> {
    const shared = this.options.sharedStore;
    const now = this.now();
    if (shared !== undefined && now >= this.sharedStoreRetryAt) {
      try {
        return await action(shared);
      } catch (error) {
        this.sharedStoreRetryAt = now + STATE_TABLE_RETRY_INTERVAL_MS;
        const retryAt = this.sharedStoreRetryAt;
        onEvent?.({ type: 'breaker-state-unavailable', operation, error, retryAt });
      }
    }
    return action(this.memory);
  }
}
