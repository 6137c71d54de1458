import { createHash } from 'node:crypto';
import type { ModelTarget } from '../shared/contracts';
import type { GatewayContext, ResolvedGatewayRequest } from './pipeline';
import { planCachePoints, PROMPT_CACHE_TTL_MS, type CachePointPlan } from './prompt-cache';

/** Calls remembered per prefix. A count above it is reported as this number, which is far above any break-even. */
export const MAX_COUNTED_CALLS = 1_000;

/** Agent and prefix pairs remembered per instance. Beyond it the pair seen least recently is dropped. */
export const MAX_TRACKED_PREFIXES = 1_000;

/**
 * Counts one gateway instance's recent calls per agent and prompt prefix,
 * as the estimate of how often a cached prefix would be read. Lambda
 * spreads an agent's calls over several instances while the Bedrock cache
 * serves them all, so the count is a lower bound of the agent's traffic.
 */
export class PrefixTraffic {
  private readonly calls = new Map<string, number[]>();

  constructor(private readonly windowMs = PROMPT_CACHE_TTL_MS) {}

  /** Records a call with `key` at `now` and returns the calls with that key in the window before it. */
  record(key: string, now: number): number {
    const times = (this.calls.get(key) ?? []).filter((time) => now - time < this.windowMs);
    const earlier = times.length;
    times.push(now);
    if (times.length > MAX_COUNTED_CALLS) {
      times.splice(0, times.length - MAX_COUNTED_CALLS);
    }
    // Re-inserting moves the key to the end, so the first key is the one seen least recently.
    this.calls.delete(key);
    this.calls.set(key, times);
    if (this.calls.size > MAX_TRACKED_PREFIXES) {
      this.calls.delete(this.calls.keys().next().value!);
    }
    return earlier;
  }
}

/** Returns a key for the agent and the parts of its prompt that cache points cover: tool definitions and system prompt. */
export function prefixKey(request: ResolvedGatewayRequest): string {
  const prefix = JSON.stringify([request.tools ?? [], request.system ?? '']);
  return `${request.agent}#${createHash('sha256').update(prefix).digest('hex')}`;
}

/**
 * Records the request's prefix in the instance's traffic and returns a
 * function that plans the cache points for each target the call tries, so
 * that a failover target gets only the points its model accepts. The
 * expected calls are the larger of the agent's `expectedCallsPer5Minutes`
 * and the calls with the same prefix that this instance saw in the last 5
 * minutes. Each plan is logged at debug level.
 */
export function createCachePointPlanner(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
): (target: ModelTarget) => CachePointPlan {
  const { config, now, promptCacheTraffic } = context.services;
  const agentConfig = context.agentConfig ?? config.agents[request.agent];
  const mode = agentConfig?.promptCache;
  const observed = mode === 'off' ? 0 : (promptCacheTraffic?.record(prefixKey(request), now()) ?? 0);
  const expectedCalls = Math.max(agentConfig?.expectedCallsPer5Minutes ?? 0, observed);
  const prices = config.budget?.prices;
  return (target) => {
    const price = prices !== undefined && Object.hasOwn(prices, target.modelId) ? prices[target.modelId] : undefined;
    const plan = planCachePoints({ request, target, mode, expectedCalls, price });
    context.logger.debug('Prompt cache points planned', {
      region: target.region,
      modelId: target.modelId,
      afterTools: plan.afterTools,
      afterSystem: plan.afterSystem,
      reason: plan.reason,
    });
    return plan;
  };
}
