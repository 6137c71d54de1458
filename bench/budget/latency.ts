/**
 * Latency the budget check adds to a buffered gateway call, and the
 * ledger's DynamoDB round trips per call. Calls alternate between the
 * gateway with a budget and the same gateway without one, so that machine
 * noise hits both alike, and every other pair runs the plain call first.
 */
import {
  addedLatencyOf,
  percentilesOf,
  roundMs,
  withinBounds,
  type AddedLatency,
  type LoopBounds,
  type Percentiles,
} from '../gateway/stats';
import { LATENCY_AGENT, checkSuccess, type BudgetBenchGateways, type TimedCall } from './gateways';
import type { LedgerPhase, RoundTrip } from './round-trips';

/** Round trips of one phase, per call, over the measured calls. */
export interface PhaseRoundTrips {
  /** Calls that made each number of round trips, such as `{ "2": 800 }`. */
  readonly perCall: Record<string, number>;
  /** Round trips per call, by DynamoDB operation, averaged over the calls. */
  readonly meanByOperation: Record<string, number>;
  /** Time spent in this phase's round trips per call, summed within a call. */
  readonly timeMs: Percentiles;
  /** Round trips that ended in an error, such as a timeout or a cancelled transaction. */
  readonly errors: number;
}

export interface RoundTripResult {
  readonly calls: number;
  readonly reserve: PhaseRoundTrips;
  readonly settle: PhaseRoundTrips;
  /** Round trips that named no measured request, such as those of warm-up calls still running. */
  readonly unattributed: number;
  /** Calls whose last settle round trip ended before the handler returned. */
  readonly settledBeforeReturn: number;
}

export interface BudgetLatencyResult {
  readonly pairs: number;
  /** `direct` is the gateway without a budget and `gateway` the one with it. */
  readonly latency: AddedLatency;
  readonly roundTrips: RoundTripResult;
}

/**
 * Runs a budgeted and a plain call per pair within `bounds`, each on a
 * freshly scripted Bedrock response. Odd pairs run the plain call first, so
 * that neither side always follows the other.
 */
export async function alternatePairs<T>(
  gateways: BudgetBenchGateways,
  bounds: LoopBounds,
  budgetedCall: (i: number) => Promise<T>,
  plainCall: (i: number) => Promise<T>,
): Promise<{ budgeted: T[]; plain: T[] }> {
  const samples = { budgeted: [] as T[], plain: [] as T[] };
  const inBounds = withinBounds(bounds);
  const runBudgeted = async (i: number) => {
    gateways.scriptResponses(1);
    samples.budgeted.push(await budgetedCall(i));
  };
  const runPlain = async (i: number) => {
    gateways.scriptResponses(1);
    samples.plain.push(await plainCall(i));
  };
  for (let i = 0; inBounds(i); i++) {
    if (i % 2 === 0) {
      await runBudgeted(i);
      await runPlain(i);
    } else {
      await runPlain(i);
      await runBudgeted(i);
    }
    gateways.resetBedrock();
  }
  return samples;
}

function runPairs(
  gateways: BudgetBenchGateways,
  bounds: LoopBounds,
  label: string,
): Promise<{ budgeted: TimedCall[]; plain: TimedCall[] }> {
  return alternatePairs(
    gateways,
    bounds,
    async (i) => {
      const call = await gateways.call(gateways.budgeted, `bench-${label}-budget-${i}`, LATENCY_AGENT);
      checkSuccess('budgeted', call);
      return call;
    },
    async (i) => {
      const call = await gateways.call(gateways.plain, `bench-${label}-plain-${i}`, LATENCY_AGENT);
      checkSuccess('plain', call);
      return call;
    },
  );
}

function countBy<T>(values: readonly T[], key: (value: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) {
    counts[key(value)] = (counts[key(value)] ?? 0) + 1;
  }
  return counts;
}

/** A measured call: its request id and the `performance.now()` at which its handler returned. */
export interface MeasuredCall {
  readonly requestId: string;
  readonly returnedAt: number;
}

function summarizePhase(
  phase: LedgerPhase,
  calls: readonly MeasuredCall[],
  tripsByRequest: ReadonlyMap<string, readonly RoundTrip[]>,
): PhaseRoundTrips {
  const perCallTrips = calls.map((call) =>
    (tripsByRequest.get(call.requestId) ?? []).filter((trip) => trip.phase === phase),
  );
  const all = perCallTrips.flat();
  const meanByOperation: Record<string, number> = {};
  for (const [operation, count] of Object.entries(countBy(all, (trip) => trip.operation))) {
    meanByOperation[operation] = roundMs(count / calls.length);
  }
  return {
    perCall: countBy(perCallTrips, (trips) => String(trips.length)),
    meanByOperation,
    timeMs: percentilesOf(
      perCallTrips.map((trips) => trips.reduce((sum, t) => sum + (t.endedAt - t.startedAt), 0)),
    ),
    errors: all.filter((trip) => trip.error !== undefined).length,
  };
}

/**
 * Groups the recorded round trips by the measured call they name, and
 * counts those that name no measured call.
 */
export function groupByCall(
  calls: readonly MeasuredCall[],
  trips: readonly RoundTrip[],
): { tripsByRequest: Map<string, RoundTrip[]>; unattributed: number } {
  const measured = new Set(calls.map((call) => call.requestId));
  const tripsByRequest = new Map<string, RoundTrip[]>();
  let unattributed = 0;
  for (const trip of trips) {
    if (trip.requestId === undefined || !measured.has(trip.requestId)) {
      unattributed += 1;
      continue;
    }
    const list = tripsByRequest.get(trip.requestId) ?? [];
    list.push(trip);
    tripsByRequest.set(trip.requestId, list);
  }
  return { tripsByRequest, unattributed };
}

/** Returns the settle round trips among `trips`. */
export function settleTrips(trips: readonly RoundTrip[] | undefined): RoundTrip[] {
  return (trips ?? []).filter((trip) => trip.phase === 'settle');
}

/** Attributes the recorded round trips to the measured budgeted calls. */
export function summarizeRoundTrips(
  calls: readonly MeasuredCall[],
  trips: readonly RoundTrip[],
): RoundTripResult {
  const { tripsByRequest, unattributed } = groupByCall(calls, trips);
  const settledBeforeReturn = calls.filter((call) => {
    const settles = settleTrips(tripsByRequest.get(call.requestId));
    return settles.length > 0 && settles.every((trip) => trip.endedAt <= call.returnedAt);
  }).length;
  return {
    calls: calls.length,
    reserve: summarizePhase('reserve', calls, tripsByRequest),
    settle: summarizePhase('settle', calls, tripsByRequest),
    unattributed,
    settledBeforeReturn,
  };
}

/**
 * Runs pairs of calls and discards them, so that connections, the JIT and
 * DynamoDB Local's JVM are warm before anything is measured. Returns the
 * number of pairs run.
 */
export async function warmUp(
  gateways: BudgetBenchGateways,
  bounds: LoopBounds,
  progress: (message: string) => void,
): Promise<number> {
  progress(`Warming up with up to ${bounds.iterations} pairs, budget and no budget`);
  const warm = await runPairs(gateways, bounds, 'warmup');
  gateways.recorder.clear();
  return warm.budgeted.length;
}

/** Measures the budget's added latency and counts the ledger's round trips of the measured calls. */
export async function measureBudgetLatency(
  gateways: BudgetBenchGateways,
  bounds: LoopBounds,
  progress: (message: string) => void,
): Promise<BudgetLatencyResult> {
  gateways.recorder.clear();
  progress(`Measuring up to ${bounds.iterations} pairs, budget and no budget`);
  const { budgeted, plain } = await runPairs(gateways, bounds, 'measured');
  return {
    pairs: budgeted.length,
    latency: addedLatencyOf(
      plain.map((call) => call.elapsedMs),
      budgeted.map((call) => call.elapsedMs),
    ),
    roundTrips: summarizeRoundTrips(budgeted, gateways.recorder.recorded),
  };
}
