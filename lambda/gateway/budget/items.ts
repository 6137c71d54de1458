import type { CounterPlan, ReservedAmounts } from './limits';
import type { TransactItem } from './transact';
import { counterExpiresAt, RESERVATION_SORT_KEY, reservationKey } from './windows';

/** State of a reservation record. Each moves only forward, under a condition. */
export type ReservationState = 'reserved' | 'settled' | 'reclaimed';

/** A counter a reservation added to, as the reservation record stores it. */
export interface CounterRef {
  readonly kind: 'spend' | 'rate';
  readonly pk: string;
  readonly sk: string;
}

/** Reservation record as stored under `reservation#<requestId>`. */
export interface ReservationRecord {
  readonly pk: string;
  readonly sk: string;
  readonly state: ReservationState;
  readonly requestId: string;
  readonly agent: string;
  readonly userId: string;
  readonly tokens: number;
  readonly nanoUsd: number;
  readonly counters: readonly CounterRef[];
  /** Epoch milliseconds after which the reclaimer may release the reservation. */
  readonly leaseExpiresAt: number;
  readonly leasePk: string;
  readonly leaseSk: string;
  /** TTL in epoch seconds. */
  readonly expiresAt: number;
}

/**
 * Keys and amounts that settling a reservation writes, as `reserve`
 * returns them, so that a settle can skip reading the reservation record.
 * A reservation record contains the same fields.
 */
export interface SettlementHandle {
  readonly requestId: string;
  readonly counters: readonly CounterRef[];
  /** Key of the reservation's lease index item, which the settle deletes. */
  readonly leasePk: string;
  readonly leaseSk: string;
  /** Worst-case amounts the reservation added to each counter. */
  readonly tokens: number;
  readonly nanoUsd: number;
}

/**
 * Builds the conditional increment of one counter: it adds `amounts` only
 * if every limit of the counter keeps room for them, so that concurrent
 * reservations together never pass a limit. `used*` is spent plus
 * reserved, kept as its own attribute because a condition expression
 * cannot add two attributes.
 */
export function reserveCounterItem(
  table: string,
  plan: CounterPlan,
  amounts: ReservedAmounts,
): TransactItem {
  const values: Record<string, unknown> = {
    ':tokens': amounts.tokens,
    ':expiresAt': counterExpiresAt(plan.span),
    ':windowStart': new Date(plan.span.startMs).toISOString(),
  };
  const conditions: string[] = [];
  let update: string;
  if (plan.kind === 'rate') {
    values[':one'] = 1;
    update = 'ADD requests :one, tokens :tokens';
    if (plan.requestLimit !== undefined) {
      values[':maxRequests'] = plan.requestLimit - 1;
      conditions.push('(attribute_not_exists(requests) OR requests <= :maxRequests)');
    }
    if (plan.tokenLimit !== undefined) {
      values[':maxRateTokens'] = plan.tokenLimit - amounts.tokens;
      conditions.push('(attribute_not_exists(tokens) OR tokens <= :maxRateTokens)');
    }
  } else {
    values[':nanoUsd'] = amounts.nanoUsd;
    update =
      'ADD reservedTokens :tokens, usedTokens :tokens, ' +
      'reservedNanoUsd :nanoUsd, usedNanoUsd :nanoUsd';
    if (plan.tokenLimit !== undefined) {
      values[':maxTokens'] = plan.tokenLimit - amounts.tokens;
      conditions.push('(attribute_not_exists(usedTokens) OR usedTokens <= :maxTokens)');
    }
    if (plan.nanoUsdLimit !== undefined) {
      values[':maxNanoUsd'] = plan.nanoUsdLimit - amounts.nanoUsd;
      conditions.push('(attribute_not_exists(usedNanoUsd) OR usedNanoUsd <= :maxNanoUsd)');
    }
  }
  return {
    Update: {
      TableName: table,
      Key: { pk: plan.pk, sk: plan.span.key },
      UpdateExpression: `${update} SET expiresAt = :expiresAt, windowStart = :windowStart`,
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeValues: values,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  };
}

/** Actual amounts of a settled call; zero for a reclaimed reservation. */
export interface ActualAmounts {
  readonly tokens: number;
  readonly nanoUsd: number;
}

/**
 * Builds the update that moves a reservation's amounts on one counter:
 * the reserved amount is released and the actual amount is spent. With
 * `released` false (a call that settles after its reservation was
 * reclaimed) only the actual amount is added. The condition keeps the
 * reserved attributes from going below zero.
 */
export function releaseCounterItem(
  table: string,
  counter: CounterRef,
  record: Pick<SettlementHandle, 'tokens' | 'nanoUsd'>,
  actual: ActualAmounts,
  released: boolean,
): TransactItem | undefined {
  const reservedTokens = released ? record.tokens : 0;
  const reservedNanoUsd = released ? record.nanoUsd : 0;
  const key = { pk: counter.pk, sk: counter.sk };
  if (counter.kind === 'rate') {
    // Requests stay counted; only the tokens of the worst case not used are given back.
    const unused = reservedTokens - actual.tokens;
    if (!released || unused === 0) {
      return undefined;
    }
    return {
      Update: {
        TableName: table,
        Key: key,
        UpdateExpression: 'ADD tokens :delta',
        ConditionExpression: unused > 0 ? 'tokens >= :unused' : undefined,
        ExpressionAttributeValues: unused > 0 ? { ':delta': -unused, ':unused': unused } : { ':delta': -unused },
      },
    };
  }
  return {
    Update: {
      TableName: table,
      Key: key,
      UpdateExpression:
        'ADD reservedTokens :releaseTokens, usedTokens :deltaTokens, spentTokens :spentTokens, ' +
        'reservedNanoUsd :releaseNanoUsd, usedNanoUsd :deltaNanoUsd, spentNanoUsd :spentNanoUsd',
      ConditionExpression: released
        ? 'reservedTokens >= :reservedTokens AND reservedNanoUsd >= :reservedNanoUsd'
        : undefined,
      ExpressionAttributeValues: {
        ':releaseTokens': -reservedTokens,
        ':deltaTokens': actual.tokens - reservedTokens,
        ':spentTokens': actual.tokens,
        ':releaseNanoUsd': -reservedNanoUsd,
        ':deltaNanoUsd': actual.nanoUsd - reservedNanoUsd,
        ':spentNanoUsd': actual.nanoUsd,
        ...(released ? { ':reservedTokens': reservedTokens, ':reservedNanoUsd': reservedNanoUsd } : {}),
      },
    },
  };
}

/**
 * Builds the transition of a reservation record from `from` to `to` with a
 * condition on its current state, which makes settling and reclaiming
 * idempotent: a second transition finds the state already moved and fails.
 */
export function transitionItem(
  table: string,
  requestId: string,
  from: ReservationState,
  to: ReservationState,
  fields: Record<string, unknown>,
  extraCondition?: { expression: string; values: Record<string, unknown> },
): TransactItem {
  const names: Record<string, string> = { '#state': 'state' };
  const values: Record<string, unknown> = { ':from': from, ':to': to, ...extraCondition?.values };
  const sets = ['#state = :to'];
  for (const [name, value] of Object.entries(fields)) {
    names[`#${name}`] = name;
    values[`:${name}`] = value;
    sets.push(`#${name} = :${name}`);
  }
  const condition = ['#state = :from', extraCondition?.expression].filter(Boolean).join(' AND ');
  return {
    Update: {
      TableName: table,
      Key: { pk: reservationKey(requestId), sk: RESERVATION_SORT_KEY },
      UpdateExpression: `SET ${sets.join(', ')}`,
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    },
  };
}
