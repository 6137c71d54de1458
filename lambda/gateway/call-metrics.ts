import type { GatewayRuntimeConfig, ModelPrice, ModelTarget, Usage } from '../shared/contracts';
import type { MetricGroup, MetricValue, MetricsWriter } from '../shared/metrics';
import { AGENT_METRICS } from '../shared/metric-catalog';
import { priceCall, promptCacheSavingUsd, type CallUsage } from './budget/pricing';

/** Returns the token counts of `usage` in the shape the budget ledger settles. */
export function callUsageOf(usage: Usage): CallUsage {
  return {
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    cacheReadTokens: usage.cacheReadInputTokens ?? 0,
    cacheWriteTokens: usage.cacheWriteInputTokens ?? 0,
  };
}

/**
 * Returns the list price in US dollars of a call on `target` with `usage`,
 * cache reads and writes at their own rates, from `budget.prices`. Returns
 * undefined when no price is configured for the target's model id, which
 * is the case for every target of a gateway without `budget`.
 */
export function callCostUsd(
  config: GatewayRuntimeConfig,
  target: ModelTarget,
  usage: Usage,
): number | undefined {
  const price = configuredPrice(config, target);
  return price === undefined ? undefined : priceCall(price, callUsageOf(usage));
}

function configuredPrice(config: GatewayRuntimeConfig, target: ModelTarget): ModelPrice | undefined {
  const prices = config.budget?.prices;
  return prices !== undefined && Object.hasOwn(prices, target.modelId) ? prices[target.modelId] : undefined;
}

/**
 * Returns the group of PromptCacheReadTokens, PromptCacheWriteTokens
 * (Count) and PromptCacheSavedUsd (None) with dimensions Agent and Model,
 * each also under Agent alone, or undefined when Bedrock reported no cache
 * counts for the call. PromptCacheSavedUsd is left out without a price.
 */
function promptCacheGroup(config: GatewayRuntimeConfig, target: ModelTarget, usage: Usage): MetricGroup | undefined {
  if (usage.cacheReadInputTokens === undefined && usage.cacheWriteInputTokens === undefined) {
    return undefined;
  }
  const { promptCacheReadTokens, promptCacheWriteTokens, promptCacheSavedUsd } = AGENT_METRICS;
  const price = configuredPrice(config, target);
  const metrics: Record<string, MetricValue> = {
    [promptCacheReadTokens.name]: { value: usage.cacheReadInputTokens ?? 0, unit: promptCacheReadTokens.unit },
    [promptCacheWriteTokens.name]: { value: usage.cacheWriteInputTokens ?? 0, unit: promptCacheWriteTokens.unit },
  };
  if (price !== undefined) {
    const savedUsd = promptCacheSavingUsd(price, callUsageOf(usage));
    metrics[promptCacheSavedUsd.name] = { value: savedUsd, unit: promptCacheSavedUsd.unit };
  }
  return { dimensions: ['Agent', 'Model'], rollups: [['Agent']], metrics };
}

/** Settings of {@link putCallMetrics}. */
export interface CallMetricsOptions {
  readonly metrics: MetricsWriter;
  readonly config: GatewayRuntimeConfig;
  /** Agent of the validated request. */
  readonly agent: string;
  /** Target that served the call. */
  readonly target: ModelTarget;
  readonly usage: Usage;
  /** Milliseconds from sending the call to its response, or to the end of its stream. */
  readonly latencyMs: number;
  readonly requestId: string;
  /** Extra fields for the line that do not become dimensions. @default - none */
  readonly properties?: Record<string, unknown>;
}

/**
 * Writes one EMF line for a model call that reached a target: InputTokens,
 * OutputTokens, TotalTokens (Count) and CostUsd (None) with dimensions
 * Agent and Model, and ModelLatency (Milliseconds) with Agent, Model and
 * Region, each also under Agent alone, and CacheHit (Count) 0 with Agent.
 * A call with prompt cache counts also gets the group of
 * {@link promptCacheGroup}. Model is the model id or inference profile id
 * as called.
 */
export function putCallMetrics(options: CallMetricsOptions): void {
  const { metrics, config, agent, target, usage, latencyMs, requestId } = options;
  const costUsd = callCostUsd(config, target, usage);
  const usageGroup: MetricGroup = {
    dimensions: ['Agent', 'Model'],
    rollups: [['Agent']],
    metrics: {
      InputTokens: { value: usage.inputTokens, unit: 'Count' },
      OutputTokens: { value: usage.outputTokens, unit: 'Count' },
      TotalTokens: { value: usage.totalTokens, unit: 'Count' },
      // Without a price the cost is unknown, and a zero would pull sums and
      // averages down, so the metric is left out instead.
      ...(costUsd === undefined ? {} : { CostUsd: { value: costUsd, unit: 'None' as const } }),
    },
  };
  const latencyGroup: MetricGroup = {
    dimensions: ['Agent', 'Model', 'Region'],
    rollups: [['Agent']],
    metrics: { ModelLatency: { value: latencyMs, unit: 'Milliseconds' } },
  };
  // A call that reached a model missed the response cache, whose step writes
  // 1 for each hit, so the average of CacheHit is the hit rate.
  const cacheGroup: MetricGroup = {
    dimensions: ['Agent'],
    metrics: { CacheHit: { value: 0, unit: 'Count' } },
  };
  const promptCache = promptCacheGroup(config, target, usage);
  const groups = [usageGroup, latencyGroup, cacheGroup];
  if (promptCache !== undefined) {
    groups.push(promptCache);
  }
  metrics.putGroups(
    { Agent: agent, Model: target.modelId, Region: target.region },
    groups,
    {
      ...options.properties,
      requestId,
      cacheReadInputTokens: usage.cacheReadInputTokens,
      cacheWriteInputTokens: usage.cacheWriteInputTokens,
    },
  );
}
