import type { BudgetWindow } from '../../shared/errors';

/** One window of one counter: its sort key, its start and the time it rolls over. */
export interface WindowSpan {
  readonly window: BudgetWindow;
  /** Sort key of the window's counter item, such as `day#2026-12-04`. */
  readonly key: string;
  /** Epoch milliseconds of the window's first instant. */
  readonly startMs: number;
  /** Epoch milliseconds at which the next window starts. */
  readonly endMs: number;
}

const MINUTE_MS = 60_000;

/** Returns the UTC window of kind `window` that contains `nowMs`. */
export function windowAt(window: BudgetWindow, nowMs: number): WindowSpan {
  const date = new Date(nowMs);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  if (window === 'month') {
    const startMs = Date.UTC(year, month, 1);
    const key = `month#${new Date(startMs).toISOString().slice(0, 7)}`;
    return { window, key, startMs, endMs: Date.UTC(year, month + 1, 1) };
  }
  if (window === 'day') {
    const startMs = Date.UTC(year, month, date.getUTCDate());
    const key = `day#${new Date(startMs).toISOString().slice(0, 10)}`;
    return { window, key, startMs, endMs: Date.UTC(year, month, date.getUTCDate() + 1) };
  }
  const startMs = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS;
  const key = `minute#${new Date(startMs).toISOString().slice(0, 16)}`;
  return { window, key, startMs, endMs: startMs + MINUTE_MS };
}

/**
 * Seconds a counter item outlives its window before TTL deletes it. A
 * reservation settles or is reclaimed within its lease, which is far
 * shorter, so a counter is still there when its reserved amount is released.
 * No read relies on TTL: the window is part of the key, so a new window
 * starts a new item while the old one waits for deletion.
 */
export const COUNTER_RETENTION_SECONDS = 7 * 24 * 3600;

/** Returns the `expiresAt` TTL value of a counter for `span`, in epoch seconds. */
export function counterExpiresAt(span: WindowSpan): number {
  return Math.ceil(span.endMs / 1000) + COUNTER_RETENTION_SECONDS;
}

/**
 * Escapes `#` and `%` in a key part, so that an agent or user id that
 * contains `#` cannot produce another scope's key.
 */
export function keyPart(value: string): string {
  return value.replace(/%/g, '%25').replace(/#/g, '%23');
}

/** Partition key of a spend counter: `budget#stack`, `budget#agent#<agent>` or `budget#user#<agent>#<user>`. */
export function spendCounterKey(scope: 'user' | 'agent' | 'stack', agent: string, userId: string): string {
  if (scope === 'stack') {
    return 'budget#stack';
  }
  if (scope === 'agent') {
    return `budget#agent#${keyPart(agent)}`;
  }
  return `budget#user#${keyPart(agent)}#${keyPart(userId)}`;
}

/** Partition key of a rate counter: `rate#agent#<agent>` or `rate#user#<agent>#<user>`. */
export function rateCounterKey(scope: 'user' | 'agent', agent: string, userId: string): string {
  return scope === 'agent'
    ? `rate#agent#${keyPart(agent)}`
    : `rate#user#${keyPart(agent)}#${keyPart(userId)}`;
}

/** Partition key of a reservation record. */
export function reservationKey(requestId: string): string {
  return `reservation#${requestId}`;
}

/** Sort key of every reservation record, which is alone in its partition. */
export const RESERVATION_SORT_KEY = 'reservation';

/**
 * Partition key of the lease index for the UTC hour in which a lease ends.
 * The reclaimer queries one partition per hour instead of scanning the table.
 */
export function leaseIndexKey(leaseExpiresAtMs: number): string {
  return `lease#${new Date(leaseExpiresAtMs).toISOString().slice(0, 13)}`;
}

/** Sort key of a lease index item; ISO times sort in time order. */
export function leaseIndexSortKey(leaseExpiresAtMs: number, requestId: string): string {
  return `${new Date(leaseExpiresAtMs).toISOString()}#${requestId}`;
}
