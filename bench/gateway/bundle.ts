/**
 * Size of the gateway bundle and the time Node.js takes to load it in a
 * new process, over the time it takes to start and exit with no code.
 */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { roundMs, percentile, withinBounds, type LoopBounds } from './stats';

export interface BundleResult {
  readonly path: string;
  readonly bytes: number;
  /** Pairs of processes run, one loading the bundle and one empty. */
  readonly coldLoadPairs: number;
  readonly loadP50Ms: number;
  readonly baselineP50Ms: number;
  /** loadP50Ms − baselineP50Ms: the cost of loading the bundle in a cold process. */
  readonly addedP50Ms: number;
  readonly loadSamplesMs: number[];
  readonly baselineSamplesMs: number[];
}

// The children get no NODE_OPTIONS, so that a loader such as ts-node's cannot slow them down.
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs `node -e code` and returns its wall time in milliseconds, from spawn to exit. */
function timeNode(code: string, env: NodeJS.ProcessEnv): number {
  const startedAt = performance.now();
  const child = spawnSync(process.execPath, ['-e', code], { env, encoding: 'utf8' });
  const elapsed = performance.now() - startedAt;
  if (child.status !== 0) {
    const exit = child.status ?? child.signal;
    throw new Error(`node -e ${JSON.stringify(code)} exited with ${exit}: ${child.stderr}`);
  }
  return elapsed;
}

/** Builds dist/assets with the package's own script, as `npm run bundle` does. */
export function buildBundle(root: string): string {
  const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'bundle-assets.js')], {
    cwd: root,
    env: childEnv(),
    encoding: 'utf8',
  });
  if (build.status !== 0) {
    throw new Error(`scripts/bundle-assets.js failed with ${build.status}: ${build.stderr}`);
  }
  return path.join(root, 'dist', 'assets', 'gateway', 'index.js');
}

/**
 * Measures the bundle's size and cold load time. Load and baseline
 * processes alternate, so that noise hits both alike.
 */
export function measureBundle(root: string, bundlePath: string, bounds: LoopBounds): BundleResult {
  const env = childEnv();
  const load = `require(${JSON.stringify(bundlePath)})`;
  const loadSamples: number[] = [];
  const baselineSamples: number[] = [];
  // One unmeasured pair, so that the files are in the page cache for every measured one.
  timeNode(load, env);
  timeNode('', env);
  const inBounds = withinBounds(bounds);
  for (let i = 0; inBounds(i); i++) {
    if (i % 2 === 0) {
      loadSamples.push(timeNode(load, env));
      baselineSamples.push(timeNode('', env));
    } else {
      baselineSamples.push(timeNode('', env));
      loadSamples.push(timeNode(load, env));
    }
  }
  const loadP50Ms = roundMs(percentile(loadSamples, 50));
  const baselineP50Ms = roundMs(percentile(baselineSamples, 50));
  return {
    path: path.relative(root, bundlePath),
    bytes: statSync(bundlePath).size,
    coldLoadPairs: loadSamples.length,
    loadP50Ms,
    baselineP50Ms,
    addedP50Ms: roundMs(loadP50Ms - baselineP50Ms),
    loadSamplesMs: loadSamples.map(roundMs),
    baselineSamplesMs: baselineSamples.map(roundMs),
  };
}
