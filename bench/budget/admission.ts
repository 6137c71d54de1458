/**
 * Admission under a burst. All calls of a round start at once against a
 * daily agent limit that fits exactly `admit` worst-case reservations, so
 * exactly `admit` calls should succeed and no more may reach Bedrock.
 */
import { performance } from 'node:perf_hooks';
import { windowAt } from '../../lambda/gateway/budget/windows';
import { roundMs, withinBounds, type LoopBounds } from '../gateway/stats';
import { WORST_CASE_TOKENS, type BudgetBenchGateways } from './gateways';

/** Settings of {@link measureAdmission}. */
export interface AdmissionOptions {
  /** Rounds, each with its own agent and so its own counter. */
  readonly rounds: LoopBounds;
  /** Calls started at once per round. */
  readonly calls: number;
  /** Calls the limit admits. */
  readonly admit: number;
  /** Agents of the rounds, at least `rounds.iterations` of them. */
  readonly agents: readonly string[];
}

/** Counter attributes after a round, with 0 for a missing attribute. */
export interface CounterSnapshot {
  readonly usedTokens: number;
  readonly spentTokens: number;
  readonly reservedTokens: number;
}

export interface AdmissionRound {
  readonly agent: string;
  readonly calls: number;
  readonly admitted: number;
  readonly rejected: number;
  /** Errors other than BudgetExceededError, by error name. */
  readonly otherErrors: Record<string, number>;
  /** Converse requests the loopback Bedrock server received. */
  readonly bedrockRequests: number;
  readonly counter: CounterSnapshot;
  /** Tokens the reservation record of one admitted call holds, to confirm the worst case. */
  readonly reservedTokensPerCall?: number;
  /** Ledger round trips of the round by DynamoDB operation, retries included. */
  readonly roundTrips: Record<string, number>;
  /** Ledger round trips of the round that ended in an error, by error name. */
  readonly roundTripErrors: Record<string, number>;
  /** Maximum duration of one ledger round trip in the round. */
  readonly maxRoundTripMs: number;
  /** Wall time from starting the first call to the last call's return. */
  readonly durationMs: number;
  /** True when exactly the calls the limit fits were admitted. */
  readonly pass: boolean;
  /**
   * True when the counter spent the whole limit and contains nothing reserved,
   * so that every admitted call settled. A settle that fails leaves its
   * reservation until the reclaimer releases it.
   */
  readonly counterSettled: boolean;
}

export interface AdmissionResult {
  readonly callsPerRound: number;
  readonly expectedAdmitted: number;
  readonly worstCaseTokensPerCall: number;
  readonly limitTokens: number;
  readonly rounds: AdmissionRound[];
  readonly pass: boolean;
}

/** Returns the daily agent limit that fits exactly `admit` reservations. */
export function admissionLimit(admit: number): number {
  return admit * WORST_CASE_TOKENS;
}

function numberOf(item: Record<string, unknown> | undefined, name: string): number {
  const value = item?.[name];
  return typeof value === 'number' ? value : 0;
}

async function runRound(
  gateways: BudgetBenchGateways,
  options: AdmissionOptions,
  round: number,
): Promise<AdmissionRound> {
  const agent = options.agents[round];
  const limitTokens = admissionLimit(options.admit);
  const dayBefore = windowAt('day', Date.now()).key;
  gateways.scriptResponses(options.calls);
  const bedrockBefore = gateways.bedrockRequestCount();
  gateways.recorder.clear();

  const startedAt = performance.now();
  const calls = await Promise.all(
    Array.from({ length: options.calls }, (_, i) =>
      gateways.call(gateways.budgeted, `bench-burst-${round}-${i}`, agent),
    ),
  );
  const durationMs = performance.now() - startedAt;

  const dayAfter = windowAt('day', Date.now()).key;
  if (dayAfter !== dayBefore) {
    throw new Error(
      `The admission round crossed midnight UTC (${dayBefore} to ${dayAfter}), so its ` +
        'reservations went to two daily counters. Run the benchmark again.',
    );
  }
  let admitted = 0;
  let rejected = 0;
  const otherErrors: Record<string, number> = {};
  let firstAdmitted: string | undefined;
  for (const call of calls) {
    if (call.result.ok) {
      admitted += 1;
      firstAdmitted ??= call.requestId;
    } else if (call.result.error.name === 'BudgetExceededError') {
      rejected += 1;
    } else {
      otherErrors[call.result.error.name] = (otherErrors[call.result.error.name] ?? 0) + 1;
    }
  }
  const counterItem = await gateways.readItem(`budget#agent#${agent}`, dayBefore);
  const counter = {
    usedTokens: numberOf(counterItem, 'usedTokens'),
    spentTokens: numberOf(counterItem, 'spentTokens'),
    reservedTokens: numberOf(counterItem, 'reservedTokens'),
  };
  const record =
    firstAdmitted === undefined
      ? undefined
      : await gateways.readItem(`reservation#${firstAdmitted}`, 'reservation');
  const bedrockRequests = gateways.bedrockRequestCount() - bedrockBefore;
  const trips = gateways.recorder.recorded;
  const roundTrips: Record<string, number> = {};
  const roundTripErrors: Record<string, number> = {};
  let maxRoundTripMs = 0;
  for (const trip of trips) {
    roundTrips[trip.operation] = (roundTrips[trip.operation] ?? 0) + 1;
    if (trip.error !== undefined) {
      roundTripErrors[trip.error] = (roundTripErrors[trip.error] ?? 0) + 1;
    }
    maxRoundTripMs = Math.max(maxRoundTripMs, trip.endedAt - trip.startedAt);
  }
  gateways.recorder.clear();
  gateways.resetBedrock();
  return {
    agent,
    calls: calls.length,
    admitted,
    rejected,
    otherErrors,
    bedrockRequests,
    counter,
    reservedTokensPerCall: record === undefined ? undefined : numberOf(record, 'tokens'),
    roundTrips,
    roundTripErrors,
    maxRoundTripMs: roundMs(maxRoundTripMs),
    durationMs: roundMs(durationMs),
    pass: admitted === options.admit,
    counterSettled:
      counter.usedTokens === limitTokens &&
      counter.spentTokens === limitTokens &&
      counter.reservedTokens === 0,
  };
}

/** Runs the admission rounds one after another. */
export async function measureAdmission(
  gateways: BudgetBenchGateways,
  options: AdmissionOptions,
  progress: (message: string) => void,
): Promise<AdmissionResult> {
  if (options.agents.length < options.rounds.iterations) {
    throw new Error(
      `measureAdmission needs one agent per round: ${options.rounds.iterations} rounds, ` +
        `${options.agents.length} agents.`,
    );
  }
  const rounds: AdmissionRound[] = [];
  const inBounds = withinBounds(options.rounds);
  for (let round = 0; inBounds(round); round++) {
    progress(`Admission round ${round + 1}: ${options.calls} calls at once, ${options.admit} fit`);
    rounds.push(await runRound(gateways, options, round));
  }
  return {
    callsPerRound: options.calls,
    expectedAdmitted: options.admit,
    worstCaseTokensPerCall: WORST_CASE_TOKENS,
    limitTokens: admissionLimit(options.admit),
    rounds,
    pass: rounds.length > 0 && rounds.every((round) => round.pass),
  };
}
