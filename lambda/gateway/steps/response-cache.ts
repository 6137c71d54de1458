import type { Usage } from '../../shared/contracts';
import { AgentStackError } from '../../shared/errors';
import { AGENT_METRICS } from '../../shared/metric-catalog';
import type { MetricValue } from '../../shared/metrics';
import { budgetReason, recordBudgetDecision, recordModelCall } from '../audit';
import { callCostUsd } from '../call-metrics';
import { recordRedaction } from '../guard-verdicts';
import { redactMessage } from '../output-redaction';
import {
  requireField,
  type GatewayContext,
  type GatewayStep,
  type ModelCallResult,
  type ResolvedGatewayRequest,
} from '../pipeline';
import {
  responseCacheKey,
  uncacheableRequestReason,
  uncacheableResultReason,
  type CacheEntry,
  type ResponseCacheKey,
  type ResponseCacheStore,
} from '../response-cache';
import { rejectIfSuspended } from './budget';

/** Usage of a response served from the cache, which spent no tokens. */
const CACHE_HIT_USAGE: Usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };

function metric(definition: { name: string; unit: MetricValue['unit'] }, value: number): Record<string, MetricValue> {
  return { [definition.name]: { value, unit: definition.unit } };
}

/**
 * Counts a hit against the agent's and the user's request rate, after
 * rejecting it when the agent is suspended, because a suspension stops
 * every call of the agent. A hit reserves no budget. A rejection gets a
 * `budget` audit record, as in the budget step.
 */
async function countHit(context: GatewayContext, request: ResolvedGatewayRequest): Promise<void> {
  const ledger = context.services.budget;
  if (ledger === undefined) {
    return;
  }
  try {
    await rejectIfSuspended(context, request);
    const counted = await ledger.countRequest(
      { requestId: context.requestId, agent: request.agent, userId: request.userId },
      context.logger,
    );
    if (!counted.guarded) {
      const reason = 'ledger unreachable, so the cached response was served without counting its rate because the budget fails open';
      recordBudgetDecision(context, request, 'allowed', reason);
    }
  } catch (error) {
    if (error instanceof AgentStackError) {
      recordBudgetDecision(context, request, 'rejected', budgetReason(error));
    }
    throw error;
  }
}

/**
 * Serves the request with a cached response: counts it against the rate
 * limits, redacts the output with the current rules, and writes the
 * metrics and the `model-call` audit record of a hit.
 */
async function serveHit(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  entry: CacheEntry,
  latencyMs: number,
): Promise<void> {
  await countHit(context, request);
  const cached = entry.response;
  // The stored output was redacted when it was generated, and is redacted
  // again here, so that a rule added since then applies to it too.
  const { message, redacted } = redactMessage(cached.output);
  recordRedaction(context, request, redacted, cached.target);
  const result: ModelCallResult = {
    output: message,
    stopReason: cached.stopReason,
    usage: CACHE_HIT_USAGE,
    target: cached.target,
    latencyMs,
  };
  context.result = result;
  context.response = { ok: true, requestId: context.requestId, ...result, cached: true };

  const { metrics, config } = context.services;
  const usdSaved = callCostUsd(config, cached.target, cached.usage);
  metrics.put(
    { Agent: request.agent },
    {
      // CacheHit is 0 for every model call, so its average is the hit rate.
      ...metric(AGENT_METRICS.cacheHit, 1),
      ...metric(AGENT_METRICS.responseCacheHit, 1),
      ...metric(AGENT_METRICS.responseCacheTokensSaved, cached.usage.totalTokens),
      // Without a price the saving is unknown, so the metric is left out rather than written as 0.
      ...(usdSaved === undefined ? {} : metric(AGENT_METRICS.responseCacheUsdSaved, usdSaved)),
    },
    { requestId: context.requestId, modelId: cached.target.modelId, cachedBy: entry.requestId },
  );
  recordModelCall(context, request, {
    decision: 'completed',
    reason: `response cache hit, stored by request ${entry.requestId} at ${entry.cachedAt}; stop reason ${cached.stopReason}`,
    target: cached.target,
    usage: CACHE_HIT_USAGE,
    output: message,
  });
  context.logger.info('Served the response from the response cache', {
    cachedBy: entry.requestId,
    cachedAt: entry.cachedAt,
    tokensSaved: cached.usage.totalTokens,
  });
}

/** Reads the cache, and logs a failed read and returns undefined, so that the request calls the model instead. */
async function readEntry(
  context: GatewayContext,
  store: ResponseCacheStore,
  key: ResponseCacheKey,
): Promise<CacheEntry | undefined> {
  try {
    return await store.get(key);
  } catch (error) {
    context.logger.error('Reading the response cache failed; calling the model instead', { cacheKey: key.hash }, error);
    return undefined;
  }
}

/**
 * Stores the completed call's response, unless its stop reason or its
 * content makes it uncacheable or it is too large for one item. A failed
 * write is logged and not raised, because the response is already made.
 */
async function storeResult(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  store: ResponseCacheStore,
  key: ResponseCacheKey,
  ttlSeconds: number,
): Promise<void> {
  const result = context.result;
  if (result === undefined) {
    return;
  }
  const reason = uncacheableResultReason(result);
  if (reason !== undefined) {
    context.logger.debug('Response not cached', { reason });
    return;
  }
  const { output, stopReason, usage, target, latencyMs } = result;
  try {
    const outcome = await store.put(key, {
      response: { output, stopReason, usage, target, latencyMs },
      requestId: context.requestId,
      userId: request.userId,
      ttlSeconds,
    });
    if (!outcome.stored) {
      context.services.metrics.put(
        { Agent: request.agent },
        metric(AGENT_METRICS.responseCacheSkippedTooLarge, 1),
        { requestId: context.requestId, itemBytes: outcome.bytes },
      );
      context.logger.info('Response not cached because its item would exceed the DynamoDB item size limit', {
        itemBytes: outcome.bytes,
      });
    }
  } catch (error) {
    context.logger.error('Writing the response to the response cache failed', { cacheKey: key.hash }, error);
  }
}

/**
 * Serves a request from the agent's exact-match response cache, or lets
 * it call the model and stores the response. It runs after the input
 * guard and before the budget step, so that a hit reserves and spends no
 * tokens. A hit still counts against the per-minute request rate (see
 * BudgetLedger.countRequest), has its output redacted and gets a
 * `model-call` audit record. A miss stores the response only when the
 * steps after this one completed without an error, so a guardrail block,
 * a failed call and a stream that broke or was cancelled are never stored.
 * Responses that are truncated or request a tool call are not stored
 * either (see uncacheableResultReason). A streamed hit is replayed by the
 * stream handler from `context.response`.
 */
export const responseCacheStep: GatewayStep = {
  name: 'response-cache',
  async run(context, next) {
    const request = requireField(context, 'request', this.name);
    const agentConfig = requireField(context, 'agentConfig', this.name);
    const route = requireField(context, 'route', this.name);
    const settings = agentConfig.responseCache;
    const store = context.services.responseCache;
    if (settings === undefined || store === undefined) {
      await next();
      return;
    }
    const skipped = uncacheableRequestReason(request, settings);
    if (skipped !== undefined) {
      context.logger.debug('Response cache not used for the request', { reason: skipped });
      await next();
      return;
    }

    const { now, config, metrics } = context.services;
    const key = responseCacheKey(request, route, settings, config.guardrail);
    const startedAt = now();
    const entry = await readEntry(context, store, key);
    if (entry !== undefined) {
      await serveHit(context, request, entry, Math.round(now() - startedAt));
      return;
    }
    metrics.put({ Agent: request.agent }, metric(AGENT_METRICS.responseCacheMiss, 1), { requestId: context.requestId });

    await next();
    await storeResult(context, request, store, key, settings.ttlSeconds);
  },
};
