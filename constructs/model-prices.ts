import type { ModelPrice } from '../lambda/shared/contracts';
import { parseModelId } from './model-gateway-iam';

/**
 * List prices of Bedrock models in US dollars per million tokens, and how a
 * target id (a model id or an inference profile id) gets its price.
 *
 * A price is looked up in this order:
 * 1. an override keyed by the exact target id, used as it is;
 * 2. an override keyed by the foundation model id, used as it is for every
 *    profile of that model;
 * 3. the built-in table below, keyed by the foundation model id, plus the
 *    regional premium for in-region and geographic calls to models that
 *    have one.
 * A target with no price is an error, never a price of zero.
 */

/** One entry of the built-in price table. */
export interface ListedPrice {
  /** The list price, which Bedrock charges for calls through a `global.` profile. */
  readonly price: ModelPrice;
  /**
   * True when Bedrock charges in-region calls and geographic profiles
   * (`us.`, `eu.`, `apac.` and so on) more than global ones.
   */
  readonly regionalPremium: boolean;
  /** Page the figures were read from. */
  readonly source: string;
  /** Date the page was read, as YYYY-MM-DD. */
  readonly readOn: string;
}

const ANTHROPIC_PRICING = 'https://platform.claude.com/docs/en/docs/about-claude/pricing';

/**
 * Built-in list prices per foundation model id. Cache writes are priced at
 * the 5-minute rate, the default cache lifetime on Anthropic's pricing
 * page. A 1-hour cache write costs more and is counted too low.
 */
export const MODEL_PRICES: Readonly<Record<string, ListedPrice>> = {
  // Anthropic's list price: $3 input, $15 output, $0.30 cache hits, $3.75
  // 5-minute cache writes per million tokens.
  'anthropic.claude-sonnet-4-5-20250929-v1:0': {
    price: { inputPerMillion: 3, outputPerMillion: 15, cacheReadPerMillion: 0.3, cacheWritePerMillion: 3.75 },
    regionalPremium: true,
    source: ANTHROPIC_PRICING,
    readOn: '2026-12-04',
  },
  // Anthropic's list price: $1 input, $5 output, $0.10 cache hits, $1.25
  // 5-minute cache writes per million tokens.
  'anthropic.claude-haiku-4-5-20251001-v1:0': {
    price: { inputPerMillion: 1, outputPerMillion: 5, cacheReadPerMillion: 0.1, cacheWritePerMillion: 1.25 },
    regionalPremium: true,
    source: ANTHROPIC_PRICING,
    readOn: '2026-12-04',
  },
  // NOTE: $0.80 input, $3.20 output and $0.20 cache reads come from a
  // third-party summary of the Bedrock pricing page, not from the AWS page
  // itself. Nova caches prompts automatically and no cache write price was
  // found, so cache writes are counted at the input price. Override with
  // budget.prices after checking https://aws.amazon.com/bedrock/pricing/.
  'amazon.nova-pro-v1:0': {
    price: { inputPerMillion: 0.8, outputPerMillion: 3.2, cacheReadPerMillion: 0.2, cacheWritePerMillion: 0.8 },
    regionalPremium: false,
    source: 'https://www.swfte.com/de/blog/amazon-nova-pro-pricing',
    readOn: '2026-12-04',
  },
};

/**
 * Default percentage added to the list price of in-region and geographic
 * calls to models with a regional premium. AWS states that global
 * cross-region inference for Claude Sonnet 4.5 costs "approximately 10%"
 * less than geographic cross-region inference, for input and output tokens.
 * Source: https://docs.aws.amazon.com/bedrock/latest/userguide/global-cross-region-inference.html (read 2026-12-04)
 *
 * NOTE: the AWS page gives no exact figure, and the per-profile prices on
 * the Bedrock pricing page were not confirmed. Counting 10% on top of the
 * list price errs towards reserving too much, never too little. The config
 * sets it with budget.regionalPremiumPercent.
 */
export const DEFAULT_REGIONAL_PREMIUM_PERCENT = 10;

/** Origin of a target's price, for messages and tests. */
export type PriceSource = 'override' | 'table' | 'table with regional premium';

/** The price of one target id. */
export interface TargetPrice {
  readonly price: ModelPrice;
  readonly source: PriceSource;
}

/** Inputs of {@link priceTarget}. */
export interface PriceOptions {
  /** Prices keyed by target id or foundation model id; they take precedence over the table. */
  readonly overrides?: Readonly<Record<string, ModelPrice>>;
  /** Percentage added for in-region and geographic calls to models with a regional premium. */
  readonly regionalPremiumPercent: number;
}

/**
 * Returns the price of a target id, or undefined when neither the
 * overrides nor the built-in table list it.
 */
export function priceTarget(targetId: string, options: PriceOptions): TargetPrice | undefined {
  const overrides = options.overrides ?? {};
  const { profilePrefix, foundationModelId } = parseModelId(targetId);
  const override = overrides[targetId] ?? overrides[foundationModelId];
  if (override) return { price: override, source: 'override' };

  const listed = MODEL_PRICES[foundationModelId];
  if (!listed) return undefined;
  if (!listed.regionalPremium || profilePrefix === 'global' || options.regionalPremiumPercent === 0) {
    return { price: listed.price, source: 'table' };
  }
  const factor = 1 + options.regionalPremiumPercent / 100;
  return { price: scalePrice(listed.price, factor), source: 'table with regional premium' };
}

/** Returns the foundation model id that the built-in table and overrides also accept for a target id. */
export function foundationModelOf(targetId: string): string {
  return parseModelId(targetId).foundationModelId;
}

// Six decimals keep a sub-cent price per million exact and keep the
// function environment short: 3 x 1.1 prints as 3.3, not 3.3000000000000003.
function scalePrice(price: ModelPrice, factor: number): ModelPrice {
  const scale = (value: number) => Math.round(value * factor * 1e6) / 1e6;
  return {
    inputPerMillion: scale(price.inputPerMillion),
    outputPerMillion: scale(price.outputPerMillion),
    cacheReadPerMillion: scale(price.cacheReadPerMillion),
    cacheWritePerMillion: scale(price.cacheWritePerMillion),
  };
}
