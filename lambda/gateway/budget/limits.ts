import type { GatewayBudgetConfig, SpendLimits } from '../../shared/contracts';
import {
  BudgetExceededError,
  RateLimitedError,
  type BudgetScope,
  type LimitDetails,
} from '../../shared/errors';
import { fromNanoUsd, NANO_USD_PER_USD } from './pricing';
import { rateCounterKey, spendCounterKey, windowAt, type WindowSpan } from './windows';

/** One counter item a reservation adds to, with the limits that apply to it. */
export interface CounterPlan {
  readonly kind: 'spend' | 'rate';
  readonly scope: BudgetScope;
  /** Partition key of the counter item; the sort key is `span.key`. */
  readonly pk: string;
  readonly span: WindowSpan;
  readonly agent: string;
  readonly userId: string;
  /** Token limit of the window; for a rate counter, tokens per minute. */
  readonly tokenLimit?: number;
  /** Dollar limit of a spend counter, in nano-dollars. */
  readonly nanoUsdLimit?: number;
  /** Requests per minute of a rate counter. */
  readonly requestLimit?: number;
}

/** Amounts one reservation adds to each counter. */
export interface ReservedAmounts {
  readonly tokens: number;
  readonly nanoUsd: number;
}

function spendPlan(
  scope: BudgetScope,
  limits: SpendLimits | undefined,
  span: WindowSpan,
  agent: string,
  userId: string,
): CounterPlan[] {
  if (limits?.tokens === undefined && limits?.usd === undefined) {
    return [];
  }
  return [
    {
      kind: 'spend',
      scope,
      pk: spendCounterKey(scope, agent, userId),
      span,
      agent,
      userId,
      tokenLimit: limits.tokens,
      nanoUsdLimit: limits.usd === undefined ? undefined : Math.round(limits.usd * NANO_USD_PER_USD),
    },
  ];
}

/**
 * Lists the counters a call of `agent` by `userId` at `nowMs` counts
 * against: spend counters per scope and window with a limit, and per-minute
 * rate counters. A window without a limit gets no counter, so that an
 * unlimited scope adds no item and no write contention.
 */
export function planCounters(
  config: GatewayBudgetConfig,
  agent: string,
  userId: string,
  nowMs: number,
): CounterPlan[] {
  const agentConfig = Object.hasOwn(config.agents, agent) ? config.agents[agent] : {};
  const day = windowAt('day', nowMs);
  const month = windowAt('month', nowMs);
  const minute = windowAt('minute', nowMs);
  const plans: CounterPlan[] = [
    ...spendPlan('user', agentConfig.perUser?.daily, day, agent, userId),
    ...spendPlan('user', agentConfig.perUser?.monthly, month, agent, userId),
    ...spendPlan('agent', agentConfig.agent?.daily, day, agent, userId),
    ...spendPlan('agent', agentConfig.agent?.monthly, month, agent, userId),
    ...spendPlan('stack', config.stack?.daily, day, agent, userId),
    ...spendPlan('stack', config.stack?.monthly, month, agent, userId),
  ];
  const rates = [
    { scope: 'user' as const, limits: agentConfig.perUserRate },
    { scope: 'agent' as const, limits: agentConfig.agentRate },
  ];
  for (const { scope, limits } of rates) {
    if (limits?.requestsPerMinute === undefined && limits?.tokensPerMinute === undefined) {
      continue;
    }
    plans.push({
      kind: 'rate',
      scope,
      pk: rateCounterKey(scope, agent, userId),
      span: minute,
      agent,
      userId,
      tokenLimit: limits.tokensPerMinute,
      requestLimit: limits.requestsPerMinute,
    });
  }
  return plans;
}

/** Counter values as the ledger stores them; a missing attribute is zero. */
export interface CounterValues {
  readonly usedTokens?: number;
  readonly usedNanoUsd?: number;
  readonly requests?: number;
  readonly tokens?: number;
}

function subjectOf(plan: CounterPlan): string {
  if (plan.scope === 'stack') {
    return 'stack';
  }
  return plan.scope === 'agent' ? plan.agent : `${plan.agent}/${plan.userId}`;
}

function describeScope(plan: CounterPlan): string {
  if (plan.scope === 'stack') {
    return 'the stack';
  }
  return plan.scope === 'agent'
    ? `agent ${plan.agent}`
    : `user ${plan.userId} of agent ${plan.agent}`;
}

function formatUsd(usd: number): string {
  return `$${Number(usd.toFixed(6))}`;
}

const WINDOW_NAMES = { day: 'daily', month: 'monthly', minute: 'per-minute' } as const;

/**
 * Returns the limit that `current` plus `amounts` would pass, or undefined
 * when every limit of the counter still has room.
 */
export function findPassedLimit(
  plan: CounterPlan,
  current: CounterValues,
  amounts: ReservedAmounts,
): Omit<LimitDetails, 'resetsAt' | 'subject' | 'scope' | 'window'> | undefined {
  if (plan.kind === 'rate') {
    const requests = current.requests ?? 0;
    if (plan.requestLimit !== undefined && requests + 1 > plan.requestLimit) {
      return { unit: 'requests', limit: plan.requestLimit, spent: requests };
    }
    const tokens = current.tokens ?? 0;
    if (plan.tokenLimit !== undefined && tokens + amounts.tokens > plan.tokenLimit) {
      return { unit: 'tokens', limit: plan.tokenLimit, spent: tokens };
    }
    return undefined;
  }
  const usedTokens = current.usedTokens ?? 0;
  if (plan.tokenLimit !== undefined && usedTokens + amounts.tokens > plan.tokenLimit) {
    return { unit: 'tokens', limit: plan.tokenLimit, spent: usedTokens };
  }
  const usedNanoUsd = current.usedNanoUsd ?? 0;
  if (plan.nanoUsdLimit !== undefined && usedNanoUsd + amounts.nanoUsd > plan.nanoUsdLimit) {
    return {
      unit: 'usd',
      limit: fromNanoUsd(plan.nanoUsdLimit),
      spent: fromNanoUsd(usedNanoUsd),
    };
  }
  return undefined;
}

/**
 * Builds the error for a counter whose limit a reservation would pass.
 * `current` is the counter as it was when the condition failed.
 */
export function limitError(
  plan: CounterPlan,
  current: CounterValues,
  amounts: ReservedAmounts,
  requestId: string,
): BudgetExceededError | RateLimitedError {
  // A condition that failed means some limit had no room, and a later
  // reservation may have freed it since, so the first limit is reported.
  const passed = findPassedLimit(plan, current, amounts) ?? {
    unit: plan.requestLimit !== undefined ? 'requests' : 'tokens',
    limit: plan.requestLimit ?? plan.tokenLimit ?? 0,
    spent: current.requests ?? current.usedTokens ?? current.tokens ?? 0,
  };
  const details: LimitDetails = {
    ...passed,
    scope: plan.scope,
    subject: subjectOf(plan),
    window: plan.span.window,
    resetsAt: new Date(plan.span.endMs).toISOString(),
  };
  const isUsd = passed.unit === 'usd';
  const limit = isUsd ? formatUsd(passed.limit) : `${passed.limit} ${passed.unit}`;
  const spent = isUsd ? formatUsd(passed.spent) : `${passed.spent}`;
  const windowName = WINDOW_NAMES[plan.span.window];
  if (plan.kind === 'rate') {
    const needed = passed.unit === 'requests' ? '1 more request' : `up to ${amounts.tokens} tokens`;
    return new RateLimitedError(
      `Rate limit exceeded for ${describeScope(plan)} in request ${requestId}: the limit of ` +
        `${limit} per minute has ${spent} used in the minute that resets at ` +
        `${details.resetsAt}, and this call needs ${needed}. Retry after the reset, or raise ` +
        'the rate limit in the budget settings.',
      requestId,
      details,
    );
  }
  const needed = isUsd ? formatUsd(fromNanoUsd(amounts.nanoUsd)) : `${amounts.tokens} tokens`;
  return new BudgetExceededError(
    `Budget exceeded for ${describeScope(plan)} in request ${requestId}: the ${windowName} ` +
      `limit of ${limit} has ${spent} spent or reserved, and this call needs up to ${needed} ` +
      `(estimated input plus maxTokens). The window resets at ${details.resetsAt}. Wait for ` +
      'the reset, raise the limit in the budget settings, or send a smaller maxTokens.',
    requestId,
    details,
  );
}
