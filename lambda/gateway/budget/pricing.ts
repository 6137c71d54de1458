import type { GatewayRequest, ModelPrice, ModelTarget } from '../../shared/contracts';

/** Token counts of one call, as the ledger settles them. */
export interface CallUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Input tokens read from the prompt cache. @default 0 */
  readonly cacheReadTokens?: number;
  /** Input tokens written to the prompt cache. @default 0 */
  readonly cacheWriteTokens?: number;
}

/** Returns every token of `usage`, cache reads and writes included. */
export function totalTokensOf(usage: CallUsage): number {
  return (
    usage.inputTokens +
    usage.outputTokens +
    (usage.cacheReadTokens ?? 0) +
    (usage.cacheWriteTokens ?? 0)
  );
}

/** Returns the list price in US dollars of a call with `usage` at `price`. */
export function priceCall(price: ModelPrice, usage: CallUsage): number {
  const perMillion =
    usage.inputTokens * price.inputPerMillion +
    usage.outputTokens * price.outputPerMillion +
    (usage.cacheReadTokens ?? 0) * price.cacheReadPerMillion +
    (usage.cacheWriteTokens ?? 0) * price.cacheWritePerMillion;
  return perMillion / 1_000_000;
}

/**
 * Returns what the prompt cache saved on a call in US dollars: the price of
 * its cache reads and writes at the input rate, minus their price at the
 * cache rates. It is negative when the writes cost more than the reads
 * saved, as on a call that only writes the cache.
 */
export function promptCacheSavingUsd(price: ModelPrice, usage: CallUsage): number {
  const read = usage.cacheReadTokens ?? 0;
  const write = usage.cacheWriteTokens ?? 0;
  const atInputRate = (read + write) * price.inputPerMillion;
  const atCacheRates = read * price.cacheReadPerMillion + write * price.cacheWritePerMillion;
  return (atInputRate - atCacheRates) / 1_000_000;
}

/**
 * Returns the configured price of `modelId`, and throws naming the model
 * when the configuration lists none, because a call without a price cannot
 * be counted against a dollar limit.
 */
export function priceOf(prices: Record<string, ModelPrice>, modelId: string): ModelPrice {
  if (!Object.hasOwn(prices, modelId)) {
    throw new Error(
      `No price configured for model ${modelId} in the gateway budget settings. ` +
        'Add it to budget.prices, keyed by the model or inference profile id of the route target.',
    );
  }
  return prices[modelId];
}

/**
 * Returns the highest price in US dollars that a call with these token
 * counts can cost on any target of `route`, because failover may serve it
 * on any of them. Input is priced at the higher of the input and cache
 * write rates, since a prompt written to the cache costs the write rate.
 */
export function worstCasePriceUsd(
  prices: Record<string, ModelPrice>,
  route: readonly ModelTarget[],
  inputTokens: number,
  maxTokens: number,
): number {
  let worst = 0;
  for (const target of route) {
    const price = priceOf(prices, target.modelId);
    const inputRate = Math.max(price.inputPerMillion, price.cacheWritePerMillion);
    const cost = (inputTokens * inputRate + maxTokens * price.outputPerMillion) / 1_000_000;
    worst = Math.max(worst, cost);
  }
  return worst;
}

/**
 * Characters per token for the input estimate. Four is a rule of thumb for
 * English text, and code or other languages may use more tokens per
 * character, so the settled usage can be above the reservation.
 */
export const RESERVATION_CHARS_PER_TOKEN = 4;

/**
 * Estimates the input tokens of a request as the characters of its system
 * prompt, messages and tool definitions (as JSON) divided by four, rounded up.
 */
export function estimateInputTokens(request: GatewayRequest): number {
  const chars =
    (request.system?.length ?? 0) +
    JSON.stringify(request.messages).length +
    (request.tools === undefined ? 0 : JSON.stringify(request.tools).length);
  return Math.ceil(chars / RESERVATION_CHARS_PER_TOKEN);
}

/** Nano-dollars per US dollar. Counters add integers, so repeated sums never drift. */
export const NANO_USD_PER_USD = 1_000_000_000;

/** Converts US dollars to whole nano-dollars, rounding up so that a reservation never undercounts. */
export function toNanoUsd(usd: number): number {
  return Math.ceil(usd * NANO_USD_PER_USD - 1e-6);
}

/** Converts nano-dollars to US dollars. */
export function fromNanoUsd(nanoUsd: number): number {
  return nanoUsd / NANO_USD_PER_USD;
}
