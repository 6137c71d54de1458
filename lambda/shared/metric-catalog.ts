import type { MetricUnit } from './metrics';

/** Component that writes a metric. */
export type MetricEmitter = 'gateway' | 'worker' | 'kill-switch' | 'feedback';

/**
 * One metric as dashboards and alarms read it: name, unit and the exact
 * dimension set. CloudWatch treats each dimension set as its own metric, so
 * a metric published under two sets has two entries here.
 */
export interface MetricDefinition {
  /** Metric name in namespace `AgentStack`. */
  readonly name: string;
  readonly unit: MetricUnit;
  /** Dimension names of the set, `Agent` first. */
  readonly dimensions: readonly string[];
  readonly emittedBy: MetricEmitter;
  /** Meaning of one value, for dashboard labels and alarm descriptions. */
  readonly description: string;
}

/**
 * Every metric the runtime publishes, in namespace `AgentStack`. Emitters,
 * dashboards and alarms all refer to these entries, and a test runs the
 * emitters and checks that each entry arrives with this name, unit and
 * dimension set. Add entries; do not rename them.
 */
export const AGENT_METRICS = {
  inputTokens: {
    name: 'InputTokens',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'input tokens of one model call, cache reads and writes excluded',
  },
  inputTokensByModel: {
    name: 'InputTokens',
    unit: 'Count',
    dimensions: ['Agent', 'Model'],
    emittedBy: 'gateway',
    description: 'input tokens of one model call, per model or inference profile',
  },
  outputTokens: {
    name: 'OutputTokens',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'output tokens of one model call',
  },
  outputTokensByModel: {
    name: 'OutputTokens',
    unit: 'Count',
    dimensions: ['Agent', 'Model'],
    emittedBy: 'gateway',
    description: 'output tokens of one model call, per model or inference profile',
  },
  totalTokens: {
    name: 'TotalTokens',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'all tokens of one model call',
  },
  totalTokensByModel: {
    name: 'TotalTokens',
    unit: 'Count',
    dimensions: ['Agent', 'Model'],
    emittedBy: 'gateway',
    description: 'all tokens of one model call, per model or inference profile',
  },
  costUsd: {
    name: 'CostUsd',
    unit: 'None',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'list price of one model call in US dollars',
  },
  costUsdByModel: {
    name: 'CostUsd',
    unit: 'None',
    dimensions: ['Agent', 'Model'],
    emittedBy: 'gateway',
    description: 'list price of one model call in US dollars, per model or inference profile',
  },
  modelLatency: {
    name: 'ModelLatency',
    unit: 'Milliseconds',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'time from sending a model call to its last byte',
  },
  modelLatencyByTarget: {
    name: 'ModelLatency',
    unit: 'Milliseconds',
    dimensions: ['Agent', 'Model', 'Region'],
    emittedBy: 'gateway',
    description: 'time from sending a model call to its last byte, per model and region',
  },
  modelCalls: {
    name: 'ModelCalls',
    unit: 'Count',
    dimensions: ['Agent', 'Outcome'],
    emittedBy: 'gateway',
    description: 'gateway requests by outcome: success or the error name',
  },
  cacheHit: {
    name: 'CacheHit',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: '1 when the response cache returned the response, 0 when a model was called',
  },
  promptCacheReadTokens: {
    name: 'PromptCacheReadTokens',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'input tokens of one model call that Bedrock read from the prompt cache',
  },
  promptCacheReadTokensByModel: {
    name: 'PromptCacheReadTokens',
    unit: 'Count',
    dimensions: ['Agent', 'Model'],
    emittedBy: 'gateway',
    description: 'input tokens of one model call read from the prompt cache, per model or inference profile',
  },
  promptCacheWriteTokens: {
    name: 'PromptCacheWriteTokens',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'input tokens of one model call that Bedrock wrote to the prompt cache',
  },
  promptCacheWriteTokensByModel: {
    name: 'PromptCacheWriteTokens',
    unit: 'Count',
    dimensions: ['Agent', 'Model'],
    emittedBy: 'gateway',
    description: 'input tokens of one model call written to the prompt cache, per model or inference profile',
  },
  promptCacheSavedUsd: {
    name: 'PromptCacheSavedUsd',
    unit: 'None',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description:
      'US dollars the prompt cache saved on one model call: its cache reads and writes at the input price ' +
      'minus their price at the cache rates, negative when the writes cost more than the reads saved',
  },
  promptCacheSavedUsdByModel: {
    name: 'PromptCacheSavedUsd',
    unit: 'None',
    dimensions: ['Agent', 'Model'],
    emittedBy: 'gateway',
    description: 'US dollars the prompt cache saved on one model call, net of writes, per model or inference profile',
  },
  responseCacheHit: {
    name: 'ResponseCacheHit',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a request served from the response cache, without a model call',
  },
  responseCacheMiss: {
    name: 'ResponseCacheMiss',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a cacheable request that found no unexpired response in the response cache',
  },
  responseCacheTokensSaved: {
    name: 'ResponseCacheTokensSaved',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'tokens that the model call behind a response cache hit spent, and the hit did not',
  },
  responseCacheUsdSaved: {
    name: 'ResponseCacheUsdSaved',
    unit: 'None',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'list price in US dollars of the tokens a response cache hit saved, at the current price of its model',
  },
  responseCacheSkippedTooLarge: {
    name: 'ResponseCacheSkippedTooLarge',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: "a cacheable response not stored because its item would exceed DynamoDB's 400 KB item size limit",
  },
  failover: {
    name: 'Failover',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a model target failed and the call moved to the next one',
  },
  failoverByRegion: {
    name: 'Failover',
    unit: 'Count',
    dimensions: ['Agent', 'Region'],
    emittedBy: 'gateway',
    description: 'a target in this region failed and the call moved on',
  },
  throttled: {
    name: 'Throttled',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a model target rejected a call with a throttling error',
  },
  throttledByRegion: {
    name: 'Throttled',
    unit: 'Count',
    dimensions: ['Agent', 'Region'],
    emittedBy: 'gateway',
    description: 'a target in this region rejected a call with a throttling error',
  },
  breakerOpened: {
    name: 'BreakerOpened',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: "a target's circuit breaker opened, so calls skip the target until its cooldown ends",
  },
  breakerOpenedByRegion: {
    name: 'BreakerOpened',
    unit: 'Count',
    dimensions: ['Agent', 'Region'],
    emittedBy: 'gateway',
    description: 'the circuit breaker of a target in this region opened',
  },
  breakerClosed: {
    name: 'BreakerClosed',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: "a probe call succeeded and closed a target's circuit breaker",
  },
  breakerClosedByRegion: {
    name: 'BreakerClosed',
    unit: 'Count',
    dimensions: ['Agent', 'Region'],
    emittedBy: 'gateway',
    description: 'a probe call closed the circuit breaker of a target in this region',
  },
  guardBlocked: {
    name: 'GuardBlocked',
    unit: 'Count',
    dimensions: ['Agent', 'Layer'],
    emittedBy: 'gateway',
    description:
      "a request that a guard blocked, by layer: 'pattern', 'tool result', 'guardrail input', 'guardrail output' " +
      "or 'guardrail'. Under layer 'redaction', the number of secrets redacted from one response",
  },
  budgetRejected: {
    name: 'BudgetRejected',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a call rejected because a spend limit had no room',
  },
  rateLimited: {
    name: 'RateLimited',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a call rejected by a per-minute rate limit',
  },
  suspendedRejected: {
    name: 'SuspendedRejected',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a call rejected because the kill switch or an operator suspended the agent',
  },
  unguardedCall: {
    name: 'UnguardedCall',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a call served without a reservation because the ledger was unreachable and the budget fails open',
  },
  settleFailed: {
    name: 'SettleFailed',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'gateway',
    description: 'a call whose actual usage could not be written to the ledger',
  },
  budgetUsePercent: {
    name: 'BudgetUsePercent',
    unit: 'None',
    dimensions: ['Agent', 'Window'],
    emittedBy: 'kill-switch',
    description: "share of the agent's tightest limit in the window that is spent, in percent",
  },
  loopIterations: {
    name: 'LoopIterations',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description: 'model calls of one task',
  },
  taskTokens: {
    name: 'TaskTokens',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description: 'all tokens of one task',
  },
  stopReason: {
    name: 'StopReason',
    unit: 'Count',
    dimensions: ['Agent', 'Reason'],
    emittedBy: 'worker',
    description: 'one task that ended for this reason',
  },
  toolCalls: {
    name: 'ToolCalls',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description: 'one tool call of any tool',
  },
  toolCallsByTool: {
    name: 'ToolCalls',
    unit: 'Count',
    dimensions: ['Agent', 'Tool'],
    emittedBy: 'worker',
    description: 'one call of this tool',
  },
  toolFailures: {
    name: 'ToolFailures',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description: '1 when a tool call of any tool failed, 0 when it succeeded',
  },
  toolFailuresByTool: {
    name: 'ToolFailures',
    unit: 'Count',
    dimensions: ['Agent', 'Tool'],
    emittedBy: 'worker',
    description: '1 when a call of this tool failed, 0 when it succeeded',
  },
  confidence: {
    name: 'Confidence',
    unit: 'None',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description: "the confidence between 0 and 1 that an agent reports in its structured final output",
  },
  historySummaryCalls: {
    name: 'HistorySummaryCalls',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description: 'model calls one task made to summarize earlier turns, failed ones included; written when the agent compresses its history',
  },
  historyTokensSaved: {
    name: 'HistoryTokensSaved',
    unit: 'Count',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description:
      'estimated input tokens that history compression removed from the model calls of one task, net of the summary it sent; ' +
      'negative when a summary was longer than the turns it replaced',
  },
  inputTokenEstimateError: {
    name: 'InputTokenEstimateError',
    unit: 'None',
    dimensions: ['Agent'],
    emittedBy: 'worker',
    description:
      "error of the worker's input token estimates over one task's model calls, in percent of the input tokens the calls " +
      'reported; positive when the estimate was too high',
  },
  satisfaction: {
    name: 'Satisfaction',
    unit: 'None',
    dimensions: ['Agent'],
    emittedBy: 'feedback',
    description: 'a user score from 1 to 5',
  },
} as const satisfies Record<string, MetricDefinition>;

/** Key of an entry of {@link AGENT_METRICS}. */
export type AgentMetricKey = keyof typeof AGENT_METRICS;
