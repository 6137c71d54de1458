import type { AgentBudgetConfig, ModelPrice, RateLimits, WindowLimits } from '../lambda/shared/contracts';
import type { SettingRange, SettingsIssue } from './gateway-settings';

/**
 * Defaults, ranges and checks of the budget settings. The config schema
 * and the TokenBudget construct both use them, so the two can never
 * disagree on a default.
 */

/** Default time after which an unsettled reservation may be reclaimed: 15 minutes. */
export const DEFAULT_LEASE_SECONDS = 900;
/** By default the gateway rejects calls when the ledger cannot be reached. */
export const DEFAULT_FAIL_OPEN = false;
/** By default the gateway rejects calls without a user identity. */
export const DEFAULT_ALLOW_ANONYMOUS = false;

/**
 * Allowed lease: at least a minute, and at most 12 hours, past which a
 * crashed caller's reservation would block its scope for most of a day.
 */
export const LEASE_SECONDS_RANGE: SettingRange = { min: 60, max: 43_200 };
/** Allowed spending caps per window. */
export const SPEND_LIMIT_RANGES = {
  tokens: { min: 1, max: 1e12 },
  usd: { min: 0.01, max: 1e9 },
} as const;
/** Allowed rate limits per minute. */
export const RATE_LIMIT_RANGES = {
  requestsPerMinute: { min: 1, max: 1_000_000 },
  tokensPerMinute: { min: 1, max: 1e10 },
} as const;
/** Allowed price per million tokens, in US dollars. */
export const PRICE_RANGE: SettingRange = { min: 0, max: 10_000 };
/** Allowed regional premium, in percent of the list price. */
export const REGIONAL_PREMIUM_RANGE: SettingRange = { min: 0, max: 100 };

/**
 * Checks that no daily cap exceeds the monthly cap of the same unit,
 * because such a daily cap could never be reached.
 */
export function windowLimitIssues(limits: WindowLimits | undefined): SettingsIssue[] {
  const issues: SettingsIssue[] = [];
  for (const unit of ['tokens', 'usd'] as const) {
    const daily = limits?.daily?.[unit];
    const monthly = limits?.monthly?.[unit];
    if (daily !== undefined && monthly !== undefined && daily > monthly) {
      issues.push({
        path: ['daily', unit],
        message: `exceeds monthly.${unit} (${monthly}), so it could never be reached; lower daily.${unit} or raise monthly.${unit}`,
        value: daily,
      });
    }
  }
  return issues;
}

/** Checks the window limits of an agent's budget, relative to the agent budget object. */
export function agentBudgetIssues(budget: AgentBudgetConfig): SettingsIssue[] {
  return (['agent', 'perUser'] as const).flatMap((scope) =>
    windowLimitIssues(budget[scope]).map((issue) => ({ ...issue, path: [scope, ...issue.path] })),
  );
}

/**
 * Checks numbers that the construct receives without a schema: every cap,
 * rate and price must be a finite number within its range.
 */
export function budgetRangeIssues(settings: {
  stack?: WindowLimits;
  agents?: Readonly<Record<string, AgentBudgetConfig>>;
  prices?: Readonly<Record<string, ModelPrice>>;
  regionalPremiumPercent: number;
}): SettingsIssue[] {
  const issues: SettingsIssue[] = [];
  const check = (path: Array<string | number>, value: unknown, range: SettingRange, whole: boolean) => {
    const valid = typeof value === 'number' && Number.isFinite(value) && value >= range.min && value <= range.max;
    if (!valid || (whole && !Number.isInteger(value))) {
      issues.push({ path, message: `must be a ${whole ? 'whole ' : ''}number from ${range.min} to ${range.max}`, value });
    }
  };
  const checkWindows = (prefix: Array<string | number>, limits: WindowLimits | undefined) => {
    for (const window of ['daily', 'monthly'] as const) {
      const spend = limits?.[window];
      if (spend?.tokens !== undefined) check([...prefix, window, 'tokens'], spend.tokens, SPEND_LIMIT_RANGES.tokens, true);
      if (spend?.usd !== undefined) check([...prefix, window, 'usd'], spend.usd, SPEND_LIMIT_RANGES.usd, false);
    }
  };
  const checkRates = (prefix: Array<string | number>, rates: RateLimits | undefined) => {
    for (const field of ['requestsPerMinute', 'tokensPerMinute'] as const) {
      if (rates?.[field] !== undefined) check([...prefix, field], rates[field], RATE_LIMIT_RANGES[field], true);
    }
  };

  check(['regionalPremiumPercent'], settings.regionalPremiumPercent, REGIONAL_PREMIUM_RANGE, false);
  checkWindows(['stack'], settings.stack);
  for (const [name, agent] of Object.entries(settings.agents ?? {})) {
    checkWindows(['agents', name, 'agent'], agent.agent);
    checkWindows(['agents', name, 'perUser'], agent.perUser);
    checkRates(['agents', name, 'agentRate'], agent.agentRate);
    checkRates(['agents', name, 'perUserRate'], agent.perUserRate);
  }
  for (const [id, price] of Object.entries(settings.prices ?? {})) {
    for (const field of ['inputPerMillion', 'outputPerMillion', 'cacheReadPerMillion', 'cacheWritePerMillion'] as const) {
      check(['prices', id, field], price[field], PRICE_RANGE, false);
    }
  }
  return issues;
}
