/**
 * Latency the budget check adds to a streamed gateway call, timed to the
 * `usage` event, which is the last event the reader needs, and to the
 * handler's return. The gateway writes `usage` before it settles the
 * ledger, so the settle should add to the second time but not the first.
 * Calls alternate as in the buffered measurement.
 */
import { addedLatencyOf, type AddedLatency, type LoopBounds } from '../gateway/stats';
import {
  LATENCY_AGENT,
  checkStreamSuccess,
  type BudgetBenchGateways,
  type CompletedStreamCall,
} from './gateways';
import {
  alternatePairs,
  groupByCall,
  settleTrips,
  summarizeRoundTrips,
  type RoundTripResult,
} from './latency';

/** Round trips of the streamed calls, and when their settle ran against the `usage` event. */
export interface StreamedRoundTripResult extends RoundTripResult {
  /** Calls whose every settle round trip ended after the `usage` event reached the reader. */
  readonly settledAfterUsage: number;
  /** Calls whose every settle round trip started after the `usage` event reached the reader. */
  readonly settleStartedAfterUsage: number;
}

export interface StreamedBudgetLatencyResult {
  readonly pairs: number;
  /**
   * Time from the call to the `usage` event at the reader, the reader's
   * critical path. `direct` is the gateway without a budget and `gateway`
   * the one with it.
   */
  readonly usageEvent: AddedLatency;
  /** Time from the call to the handler's return, which waits for the settle. */
  readonly handlerReturn: AddedLatency;
  readonly roundTrips: StreamedRoundTripResult;
}

function runStreamPairs(
  gateways: BudgetBenchGateways,
  bounds: LoopBounds,
  label: string,
): Promise<{ budgeted: CompletedStreamCall[]; plain: CompletedStreamCall[] }> {
  const streamed = async (
    side: 'budgeted' | 'plain',
    requestId: string,
  ): Promise<CompletedStreamCall> => {
    const gateway = side === 'budgeted' ? gateways.budgeted : gateways.plain;
    const call = await gateways.callStream(gateway, requestId, LATENCY_AGENT);
    checkStreamSuccess(side, call);
    return call;
  };
  return alternatePairs(
    gateways,
    bounds,
    (i) => streamed('budgeted', `bench-${label}-stream-budget-${i}`),
    (i) => streamed('plain', `bench-${label}-stream-plain-${i}`),
  );
}

/**
 * Runs streamed pairs and discards them, so that the stream path is warm
 * before it is measured. Returns the number of pairs run.
 */
export async function warmUpStreamed(
  gateways: BudgetBenchGateways,
  bounds: LoopBounds,
  progress: (message: string) => void,
): Promise<number> {
  progress(`Warming up with up to ${bounds.iterations} streamed pairs, budget and no budget`);
  const warm = await runStreamPairs(gateways, bounds, 'warmup');
  gateways.recorder.clear();
  return warm.budgeted.length;
}

/**
 * Counts the calls whose settle round trips all end, or all start, after
 * the call's `usage` event reached the reader.
 */
function compareSettleWithUsage(
  calls: readonly CompletedStreamCall[],
  gateways: BudgetBenchGateways,
): { settledAfterUsage: number; settleStartedAfterUsage: number } {
  const { tripsByRequest } = groupByCall(calls, gateways.recorder.recorded);
  let settledAfterUsage = 0;
  let settleStartedAfterUsage = 0;
  for (const call of calls) {
    const settles = settleTrips(tripsByRequest.get(call.requestId));
    if (settles.length === 0) {
      continue;
    }
    if (settles.every((trip) => trip.endedAt > call.usageAt)) {
      settledAfterUsage += 1;
    }
    if (settles.every((trip) => trip.startedAt >= call.usageAt)) {
      settleStartedAfterUsage += 1;
    }
  }
  return { settledAfterUsage, settleStartedAfterUsage };
}

/** Measures the budget's added latency on streamed calls and counts the ledger's round trips. */
export async function measureStreamedBudgetLatency(
  gateways: BudgetBenchGateways,
  bounds: LoopBounds,
  progress: (message: string) => void,
): Promise<StreamedBudgetLatencyResult> {
  gateways.recorder.clear();
  progress(`Measuring up to ${bounds.iterations} streamed pairs, budget and no budget`);
  const { budgeted, plain } = await runStreamPairs(gateways, bounds, 'measured');
  const trips = gateways.recorder.recorded;
  return {
    pairs: budgeted.length,
    usageEvent: addedLatencyOf(
      plain.map((call) => call.usageMs),
      budgeted.map((call) => call.usageMs),
    ),
    handlerReturn: addedLatencyOf(
      plain.map((call) => call.elapsedMs),
      budgeted.map((call) => call.elapsedMs),
    ),
    roundTrips: {
      ...summarizeRoundTrips(budgeted, trips),
      ...compareSettleWithUsage(budgeted, gateways),
    },
  };
}
