/**
 * Storage of circuit-breaker state, one record per target. Every operation
 * is a compare-and-set, so that instances sharing a store agree on who
 * opened a breaker and who probes it.
 */

/** State of one target's breaker. */
export type BreakerStateName = 'closed' | 'open' | 'half-open';

/** Stored state of one target's breaker. */
export interface BreakerRecord {
  readonly state: BreakerStateName;
  /** Consecutive failures counted while closed. */
  readonly failures: number;
  /** Epoch milliseconds from which an open breaker lets one probe through. */
  readonly openUntil?: number;
  /** Epoch milliseconds when the probe's lease ends and another instance may probe. */
  readonly probeUntil?: number;
  /** Epoch seconds after which the record is stale and counts as a closed breaker. */
  readonly expiresAt: number;
}

/** Compare-and-set operations on breaker records. Each returns the record it wrote. */
export interface BreakerStore {
  /** Returns the record, or undefined when there is none or it expired before `now`. */
  read(key: string, now: number): Promise<BreakerRecord | undefined>;
  /**
   * Adds one failure to a closed breaker, counting from zero when the record
   * is missing or expired. Returns the record unchanged when the breaker is
   * open or half-open.
   */
  addFailure(key: string, now: number, expiresAt: number): Promise<BreakerRecord>;
  /** Opens a closed breaker with at least `threshold` failures. */
  open(
    key: string,
    now: number,
    threshold: number,
    openUntil: number,
    expiresAt: number,
  ): Promise<BreakerRecord | undefined>;
  /**
   * Makes a breaker half-open with a probe lease until `probeUntil`, when it
   * is open past `openUntil` or its last probe lease ended.
   */
  claimProbe(
    key: string,
    now: number,
    probeUntil: number,
    expiresAt: number,
  ): Promise<BreakerRecord | undefined>;
  /** Closes a half-open breaker whose probe lease is still `probeUntil`. */
  closeProbe(
    key: string,
    probeUntil: number,
    expiresAt: number,
  ): Promise<BreakerRecord | undefined>;
  /** Opens a half-open breaker again whose probe lease is still `probeUntil`. */
  reopenProbe(
    key: string,
    probeUntil: number,
    openUntil: number,
    expiresAt: number,
  ): Promise<BreakerRecord | undefined>;
  /** Sets the failures of a closed breaker back to zero. */
  resetFailures(key: string, expiresAt: number): Promise<void>;
}

/** Returns the record, or undefined when it is missing or expired at `now`. */
export function freshRecord(
  record: BreakerRecord | undefined,
  now: number,
): BreakerRecord | undefined {
  return record !== undefined && record.expiresAt * 1000 > now ? record : undefined;
}

/** Breaker state held by one instance, used without a state table and when it is unreachable. */
export class MemoryBreakerStore implements BreakerStore {
  private readonly records = new Map<string, BreakerRecord>();

  async read(key: string, now: number): Promise<BreakerRecord | undefined> {
    return freshRecord(this.records.get(key), now);
  }

  async addFailure(key: string, now: number, expiresAt: number): Promise<BreakerRecord> {
    const current = freshRecord(this.records.get(key), now);
    if (current !== undefined && current.state !== 'closed') {
      return current;
    }
    return this.write(key, { state: 'closed', failures: (current?.failures ?? 0) + 1, expiresAt });
  }

  async open(key: string, now: number, threshold: number, openUntil: number, expiresAt: number) {
    const current = freshRecord(this.records.get(key), now);
    if (current?.state !== 'closed' || current.failures < threshold) {
      return undefined;
    }
    return this.write(key, { state: 'open', failures: current.failures, openUntil, expiresAt });
  }

  async claimProbe(key: string, now: number, probeUntil: number, expiresAt: number) {
    const current = freshRecord(this.records.get(key), now);
    const openElapsed = current?.state === 'open' && (current.openUntil ?? 0) <= now;
    const leaseEnded = current?.state === 'half-open' && (current.probeUntil ?? 0) <= now;
    if (current === undefined || !(openElapsed || leaseEnded)) {
      return undefined;
    }
    return this.write(key, { ...current, state: 'half-open', probeUntil, expiresAt });
  }

  async closeProbe(key: string, probeUntil: number, expiresAt: number) {
    const current = this.records.get(key);
    if (current?.state !== 'half-open' || current.probeUntil !== probeUntil) {
      return undefined;
    }
    return this.write(key, { state: 'closed', failures: 0, expiresAt });
  }

  async reopenProbe(key: string, probeUntil: number, openUntil: number, expiresAt: number) {
    const current = this.records.get(key);
    if (current?.state !== 'half-open' || current.probeUntil !== probeUntil) {
      return undefined;
    }
    return this.write(key, { state: 'open', failures: current.failures, openUntil, expiresAt });
  }

  async resetFailures(key: string, expiresAt: number): Promise<void> {
    const current = this.records.get(key);
    if (current?.state === 'closed' && current.failures > 0) {
      this.write(key, { state: 'closed', failures: 0, expiresAt });
    }
  }

  private write(key: string, record: BreakerRecord): BreakerRecord {
    this.records.set(key, record);
    return record;
  }
}
