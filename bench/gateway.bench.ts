/**
 * Gateway benchmark, run with `npm run bench:gateway`. It measures the
 * latency the gateway adds over a direct SDK call, the time from a
 * target's first throttle to the next target's response, and the bundle's
 * size and cold load time. It prints a table and writes the figures to
 * bench/results/gateway.json. Every server it starts listens on 127.0.0.1
 * and is stopped before it exits.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildBundle, measureBundle, type BundleResult } from './gateway/bundle';
import { measureFailover, type FailoverMode, type FailoverResult } from './gateway/failover';
import { measureAddedLatency, type LatencyOptions, type LatencyResult } from './gateway/latency';
import type { AddedLatency, LoopBounds } from './gateway/stats';

const ROOT = path.resolve(__dirname, '..');
const RESULTS_PATH = path.join(ROOT, 'bench', 'results', 'gateway.json');

/** Pairs below which a latency figure is reported as incomplete. */
const MIN_PAIRS = 1_000;

// The loops' time bounds below add up to 153 s, so this only stops a call that hangs.
const WATCHDOG_MS = 180_000;

const LATENCY: LatencyOptions = {
  warmup: { iterations: 300, maxSeconds: 5 },
  measured: { iterations: 4_000, maxSeconds: 40 },
};

const FAILOVER_MODES: readonly FailoverMode[] = [
  // Each run spends most of its time idle in the SDK's jittered retry
  // backoff, so by estimate ten runs at once seldom delay each other by
  // more than a few milliseconds.
  {
    sdkMaxAttempts: 2,
    concurrency: 10,
    warmup: { iterations: 10, maxSeconds: 5 },
    measured: { iterations: 300, maxSeconds: 25 },
  },
  // Without a retry (the default) the run is pure gateway and loopback
  // work, so runs go one at a time.
  {
    concurrency: 1,
    warmup: { iterations: 20, maxSeconds: 3 },
    measured: { iterations: 300, maxSeconds: 15 },
  },
];

const COLD_LOAD: LoopBounds = { iterations: 20, maxSeconds: 15 };

interface BenchResults {
  readonly machine: Record<string, unknown>;
  readonly software: Record<string, string>;
  readonly source: Record<string, unknown>;
  readonly date: string;
  readonly durationSeconds: number;
  readonly units: string;
  readonly latency: LatencyResult;
  readonly failover: FailoverResult[];
  readonly bundle: BundleResult;
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

function printResults(results: BenchResults): void {
  const { machine, latency, failover, bundle } = results;
  const memoryGiB = (Number(machine.totalMemoryBytes) / 2 ** 30).toFixed(1);
  console.log(
    `\nGateway benchmark, ${results.date}, commit ${String(results.source.commit).slice(0, 7)}: ` +
      `${machine.nproc} CPUs (${machine.cpuModel}), ${memoryGiB} GiB, Node.js ${machine.node}\n`,
  );
  console.log('Latency added by the gateway, loopback Bedrock server (ms)');
  const { buffered, streamed } = latency;
  console.log(
    formatTable(
      [
        'call',
        'pairs',
        'direct p50',
        'gateway p50',
        'added p50',
        'direct p99',
        'gateway p99',
        'added p99',
      ],
      [
        latencyRow('Converse', buffered.pairs, buffered),
        latencyRow('ConverseStream, first delta', streamed.pairs, streamed.firstDelta),
        latencyRow('ConverseStream, end', streamed.pairs, streamed.end),
      ],
    ),
  );
  console.log(`(${streamed.deltasPerStream} deltas per stream)\n`);

  console.log("Failover: first throttle to the next target's response (ms)");
  console.log(
    formatTable(
      ['sdkMaxAttempts', 'runs', 'in flight', 'throttled calls/run', 'p50', 'p99'],
      failover.map((mode) => [
        `${mode.sdkMaxAttempts}${mode.sdkMaxAttemptsIsDefault ? ' (default)' : ''}`,
        String(mode.runs),
        String(mode.concurrency),
        mode.throttledCallsPerRun.join(', '),
        formatMs(mode.p50Ms),
        formatMs(mode.p99Ms),
      ]),
    ),
  );

  console.log('\nGateway bundle');
  console.log(
    formatTable(
      ['file', 'bytes', 'pairs', 'load p50 ms', 'empty p50 ms', 'added p50 ms'],
      [
        [
          bundle.path,
          String(bundle.bytes),
          String(bundle.coldLoadPairs),
          formatMs(bundle.loadP50Ms),
          formatMs(bundle.baselineP50Ms),
          formatMs(bundle.addedP50Ms),
        ],
      ],
    ),
  );
  for (const warning of results.warnings) {
    console.log(`\nWARNING: ${warning}`);
  }
  console.log(`\nWrote ${path.relative(ROOT, RESULTS_PATH)}.`);
}

function collectWarnings(latency: LatencyResult, failover: FailoverResult[]): string[] {
  const warnings: string[] = [];
  for (const [mode, pairs] of [
    ['buffered', latency.buffered.pairs],
    ['streamed', latency.streamed.pairs],
  ] as const) {
    if (pairs < MIN_PAIRS) {
      warnings.push(
        `Only ${pairs} ${mode} pairs fit the time bound, below the aim of ${MIN_PAIRS}.`,
      );
    }
  }
  failover.forEach((result, index) => {
    const requested = FAILOVER_MODES[index].measured.iterations;
    if (result.runs < requested) {
      warnings.push(
        `Only ${result.runs} of ${requested} failover runs with sdkMaxAttempts ` +
          `${result.sdkMaxAttempts} fit the time bound.`,
      );
    }
  });
  return warnings;
}

/** Writes through a temporary file, so that an interrupted run never leaves half a file. */
function writeResults(results: BenchResults): void {
  mkdirSync(path.dirname(RESULTS_PATH), { recursive: true });
  const temporary = `${RESULTS_PATH}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(results, null, 2)}\n`);
  renameSync(temporary, RESULTS_PATH);
}

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    console.error(
      `Gateway benchmark timed out after ${WATCHDOG_MS / 1000} s, so a call is probably ` +
        'hanging. Rerun it, and if it times out again, look for a call that never returns.',
    );
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  progress('Building dist/assets with scripts/bundle-assets.js');
  const bundlePath = buildBundle(ROOT);
  progress(`Timing ${COLD_LOAD.iterations} cold loads of the bundle and of an empty script`);
  const bundle = measureBundle(ROOT, bundlePath, COLD_LOAD);

  const latency = await measureAddedLatency(LATENCY, progress);
  const failover = await measureFailover(FAILOVER_MODES, progress);
  clearTimeout(watchdog);

  const results: BenchResults = {
    machine: describeMachine(),
    software: {
      '@aws-sdk/client-bedrock-runtime': packageVersion('@aws-sdk/client-bedrock-runtime'),
      '@smithy/core': packageVersion('@smithy/core'),
      '@smithy/node-http-handler': packageVersion('@smithy/node-http-handler'),
      esbuild: packageVersion('esbuild'),
    },
    source: describeSource(),
    date: new Date().toISOString(),
    durationSeconds: Math.round((performance.now() - startedAt) / 1000),
    units: 'Times are milliseconds of wall time measured with performance.now(); sizes are bytes.',
    latency,
    failover,
    bundle,
    warnings: collectWarnings(latency, failover),
  };
  writeResults(results);
  printResults(results);
}

main().catch((error: unknown) => {
  console.error('Gateway benchmark failed:', error);
  process.exit(1);
});
