import { z } from 'zod';
import {
  DEFAULT_ALLOW_ANONYMOUS,
  DEFAULT_FAIL_OPEN,
  DEFAULT_LEASE_SECONDS,
  LEASE_SECONDS_RANGE,
  PRICE_RANGE,
  RATE_LIMIT_RANGES,
  REGIONAL_PREMIUM_RANGE,
  SPEND_LIMIT_RANGES,
} from '../constructs/budget-settings';
import { DEFAULT_REGIONAL_PREMIUM_PERCENT } from '../constructs/model-prices';

/**
 * Schema of the top-level `budget` section and of `agents[].budget`. The
 * defaults and ranges come from the constructs' budget settings, which the
 * TokenBudget construct uses too. A cap or rate left out is unlimited.
 */

const spendSchema = z.strictObject({
  tokens: z.number().int().min(SPEND_LIMIT_RANGES.tokens.min).max(SPEND_LIMIT_RANGES.tokens.max).optional(),
  /** US dollars. */
  usd: z.number().min(SPEND_LIMIT_RANGES.usd.min).max(SPEND_LIMIT_RANGES.usd.max).optional(),
});

/** Caps per UTC day and per calendar month (UTC). */
export const windowLimitsSchema = z.strictObject({
  daily: spendSchema.optional(),
  monthly: spendSchema.optional(),
});

const rateSchema = z.strictObject({
  requestsPerMinute: z.number().int().min(RATE_LIMIT_RANGES.requestsPerMinute.min).max(RATE_LIMIT_RANGES.requestsPerMinute.max).optional(),
  tokensPerMinute: z.number().int().min(RATE_LIMIT_RANGES.tokensPerMinute.min).max(RATE_LIMIT_RANGES.tokensPerMinute.max).optional(),
});

const perMillion = z.number().min(PRICE_RANGE.min).max(PRICE_RANGE.max);

/** Price of a model in US dollars per million tokens. Every field is required. */
export const priceSchema = z.strictObject({
  inputPerMillion: perMillion,
  outputPerMillion: perMillion,
  cacheReadPerMillion: perMillion,
  cacheWritePerMillion: perMillion,
});

/** `agents[].budget`: limits of one agent, enforced only when the top-level `budget` section exists. */
export const agentBudgetSchema = z.strictObject({
  /** Caps on the agent's total spend, all users together. */
  agent: windowLimitsSchema.optional(),
  /** Caps on each user's spend with this agent. */
  perUser: windowLimitsSchema.optional(),
  /** Rate limits on the agent as a whole. */
  agentRate: rateSchema.optional(),
  /** Rate limits on each user of this agent. */
  perUserRate: rateSchema.optional(),
});

/** The top-level `budget` section. Its presence turns the budget ledger on. */
export const budgetSchema = z.strictObject({
  /** Caps on the whole stack's spend. */
  stack: windowLimitsSchema.optional(),
  /** Time after which an unsettled reservation may be reclaimed. It must be longer than gateway.timeoutSeconds. */
  leaseSeconds: z.number().int().min(LEASE_SECONDS_RANGE.min).max(LEASE_SECONDS_RANGE.max).default(DEFAULT_LEASE_SECONDS),
  /** Serve calls without a reservation when the ledger cannot be reached. */
  failOpen: z.boolean().default(DEFAULT_FAIL_OPEN),
  /** Accept calls without a user identity, counted as the `anonymous` user. */
  allowAnonymous: z.boolean().default(DEFAULT_ALLOW_ANONYMOUS),
  /** Percentage added to built-in list prices for in-region and geographic calls to models priced higher there. */
  regionalPremiumPercent: z.number().min(REGIONAL_PREMIUM_RANGE.min).max(REGIONAL_PREMIUM_RANGE.max).default(DEFAULT_REGIONAL_PREMIUM_PERCENT),
  /** Prices keyed by model id or inference profile id, used in place of the built-in table. */
  prices: z.record(z.string().min(1).max(256), priceSchema).default({}),
});

export type BudgetConfig = z.output<typeof budgetSchema>;
