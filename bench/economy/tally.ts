/**
 * Figures of one workload of one run, read from the gateway's EMF lines as
 * CloudWatch would read them: one line per model call with its tokens,
 * prompt cache counts and model, and one line per response cache hit.
 * Dollars are list prices per million tokens, computed here from the same
 * prices the gateway's budget uses, with cache reads and writes at their
 * own rates.
 */
import type { ModelPrice } from '../../lambda/shared/contracts';

/** Token, call and dollar figures of one workload. */
export interface WorkloadFigures {
  /** Model calls that reached Bedrock, summary calls included. */
  readonly modelCalls: number;
  /** Model calls that wrote a history summary. */
  readonly summaryCalls: number;
  /** Requests served from the response cache, without a model call. */
  readonly responseCacheHits: number;
  /** Input tokens read neither from nor into the prompt cache. */
  readonly inputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
  readonly outputTokens: number;
  /** Dollars of input, cache read and cache write tokens. */
  readonly inputUsd: number;
  readonly outputUsd: number;
  readonly totalUsd: number;
  /** Sum of the gateway's CostUsd metric, which must equal totalUsd. */
  readonly gatewayCostUsd: number;
}

function numberOf(value: unknown): number {
  return typeof value === 'number' ? value : 0;
}

/**
 * Adds up the gateway lines of the agents in `agents`. A line with
 * `InputTokens` and a `Model` is a model call; one with `ResponseCacheHit`
 * is a response served from the cache.
 */
export function tallyWorkload(
  lines: ReadonlyArray<Record<string, any>>,
  agents: readonly string[],
  summaryAgents: readonly string[],
  prices: Readonly<Record<string, ModelPrice>>,
): WorkloadFigures {
  let modelCalls = 0;
  let summaryCalls = 0;
  let responseCacheHits = 0;
  let inputTokens = 0;
  let cacheReadTokens = 0;
  let cacheWriteTokens = 0;
  let outputTokens = 0;
  let inputUsd = 0;
  let outputUsd = 0;
  let gatewayCostUsd = 0;

  for (const line of lines) {
    if (!agents.includes(line.Agent)) continue;
    responseCacheHits += numberOf(line.ResponseCacheHit);
    if (typeof line.InputTokens !== 'number' || typeof line.Model !== 'string') continue;
    const price = prices[line.Model];
    if (price === undefined) throw new Error(`No price for model ${line.Model} in the benchmark's price list.`);
    modelCalls += 1;
    if (summaryAgents.includes(line.Agent)) summaryCalls += 1;
    const read = numberOf(line.PromptCacheReadTokens);
    const write = numberOf(line.PromptCacheWriteTokens);
    inputTokens += line.InputTokens;
    cacheReadTokens += read;
    cacheWriteTokens += write;
    outputTokens += numberOf(line.OutputTokens);
    inputUsd +=
      (line.InputTokens * price.inputPerMillion + read * price.cacheReadPerMillion + write * price.cacheWritePerMillion) /
      1_000_000;
    outputUsd += (numberOf(line.OutputTokens) * price.outputPerMillion) / 1_000_000;
    gatewayCostUsd += numberOf(line.CostUsd);
  }

  return {
    modelCalls,
    summaryCalls,
    responseCacheHits,
    inputTokens,
    cacheReadTokens,
    cacheWriteTokens,
    outputTokens,
    inputUsd,
    outputUsd,
    totalUsd: inputUsd + outputUsd,
    gatewayCostUsd,
  };
}

/** Returns how much lower `on` is than `off`, in percent of `off`; 0 when `off` is 0. */
export function reductionPercent(off: number, on: number): number {
  return off === 0 ? 0 : ((off - on) / off) * 100;
}
