/**
 * Gateway benchmark, run with `npm run bench:gateway`. It measures the
 * latency the gateway adds over a direct SDK call, the time from a
 * target's first throttle to the next target's response, and the bundle's
 * size and cold load time. It prints a table and writes the figures to
 * bench/results/gateway.json. Every server it starts listens on 127.0.0.1
 * and is stopped before it exits.
 */
import path from 'node:path';
import { buildBundle, measureBundle, type BundleResult } from './gateway/bundle';
import { measureFailover, type FailoverMode, type FailoverResult } from './gateway/failover';
import { measureAddedLatency, type LatencyOptions, type LatencyResult } from './gateway/latency';
import type { AddedLatency, LoopBounds } from './gateway/stats';
import {
  BenchRun,
  ROOT,
  formatMs,
  formatRunHeading,
  formatTable,
  packageVersion,
  resultsPath,
  writeResults,
  type RunDescription,
} from './support/report';

const RESULTS_PATH = resultsPath('gateway');

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

interface BenchResults extends RunDescription {
  readonly latency: LatencyResult;
  readonly failover: FailoverResult[];
  readonly bundle: BundleResult;
  readonly warnings: string[];
}

const bench = new BenchRun('Gateway benchmark');

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
  const { latency, failover, bundle } = results;
  console.log(`\n${formatRunHeading(bench.title, results)}\n`);
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

async function main(): Promise<void> {
  bench.startWatchdog(WATCHDOG_MS);

  bench.progress('Building dist/assets with scripts/bundle-assets.js');
  const bundlePath = buildBundle(ROOT);
  bench.progress(`Timing ${COLD_LOAD.iterations} cold loads of the bundle and of an empty script`);
  const bundle = measureBundle(ROOT, bundlePath, COLD_LOAD);

  const latency = await measureAddedLatency(LATENCY, bench.progress);
  const failover = await measureFailover(FAILOVER_MODES, bench.progress);
  bench.stopWatchdog();

  const results: BenchResults = {
    ...bench.describe(
      {
        '@aws-sdk/client-bedrock-runtime': packageVersion('@aws-sdk/client-bedrock-runtime'),
        '@smithy/core': packageVersion('@smithy/core'),
        '@smithy/node-http-handler': packageVersion('@smithy/node-http-handler'),
        esbuild: packageVersion('esbuild'),
      },
      'Times are milliseconds of wall time measured with performance.now(); sizes are bytes.',
    ),
    latency,
    failover,
    bundle,
    warnings: collectWarnings(latency, failover),
  };
  writeResults(RESULTS_PATH, results);
  printResults(results);
}

main().catch((error: unknown) => {
  console.error('Gateway benchmark failed:', error);
  process.exit(1);
});
