import { performance } from 'node:perf_hooks';

/** p50 and p99 of one set of samples, in milliseconds. */
export interface Percentiles {
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** Percentiles of a gateway measurement, of its direct baseline, and their difference. */
export interface AddedLatency {
  readonly direct: Percentiles;
  readonly gateway: Percentiles;
  /** gateway − direct at each percentile, so it can be negative within the noise. */
  readonly added: Percentiles;
}

/**
 * Returns the nearest-rank percentile `p` (0 to 100) of `samples`: the
 * smallest sample that at least p percent of the samples do not exceed.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) {
    throw new Error(
      'Cannot take a percentile of no samples. Raise the loop bounds so that it runs once.',
    );
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** Rounds milliseconds to microseconds, which is finer than the noise here. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export function percentilesOf(samples: readonly number[]): Percentiles {
  return { p50Ms: roundMs(percentile(samples, 50)), p99Ms: roundMs(percentile(samples, 99)) };
}

export function addedLatencyOf(
  direct: readonly number[],
  gateway: readonly number[],
): AddedLatency {
  const directPercentiles = percentilesOf(direct);
  const gatewayPercentiles = percentilesOf(gateway);
  return {
    direct: directPercentiles,
    gateway: gatewayPercentiles,
    added: {
      p50Ms: roundMs(gatewayPercentiles.p50Ms - directPercentiles.p50Ms),
      p99Ms: roundMs(gatewayPercentiles.p99Ms - directPercentiles.p99Ms),
    },
  };
}

/**
 * Loop bounds: a loop stops after `iterations` or once `maxSeconds` have
 * passed, whichever comes first, so that a slow machine cannot stretch the run.
 */
export interface LoopBounds {
  readonly iterations: number;
  readonly maxSeconds: number;
}

/** Returns a predicate that is true while iteration `i` is within the bounds. */
export function withinBounds(bounds: LoopBounds): (i: number) => boolean {
  const deadline = performance.now() + bounds.maxSeconds * 1000;
  return (i) => i < bounds.iterations && performance.now() < deadline;
}
