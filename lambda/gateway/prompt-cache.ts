import type { GatewayRequest, ModelPrice, ModelTarget, PromptCacheMode } from '../shared/contracts';
import { parseModelId } from '../shared/model-id';
import { RESERVATION_CHARS_PER_TOKEN } from './budget/pricing';

/**
 * Bedrock prompt caching: which models accept cache points and where, and
 * the rule by which the gateway adds them to a call.
 *
 * A cache point marks the end of a prompt prefix that Bedrock may cache. A
 * later call with the same prefix to the same model reads it from the cache
 * at a fraction of the input price, while the call that writes it may pay
 * more than the input price, depending on the model. Bedrock caches only a
 * prefix that reaches the model's minimum tokens per cache point, and a
 * call with a shorter prefix still succeeds, uncached. The cache lives 5
 * minutes after its last use.
 * Source: https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html (read 2026-12-04)
 */

/** Request field that may carry a cache point, as the Bedrock model cards name them. */
export type CachePointField = 'system' | 'messages' | 'tools';

/** Prompt caching limits of one foundation model on Bedrock. */
export interface PromptCacheCapability {
  /** Tokens a prefix needs since the previous cache point before Bedrock caches it. */
  readonly minTokensPerCachePoint: number;
  /** Cache points one request may carry. */
  readonly maxCachePoints: number;
  /** Request fields that accept a cache point. */
  readonly allowedIn: readonly CachePointField[];
  /** Page the figures were read from. */
  readonly source: string;
  /** Date the page was read, as YYYY-MM-DD. */
  readonly readOn: string;
}

const MODEL_CARD = 'https://docs.aws.amazon.com/bedrock/latest/userguide/model-card-';

/**
 * Prompt caching limits per foundation model id, from the "Prompt caching"
 * table of each Bedrock model card. A model missing here gets no cache
 * points, because a model may reject a cache point it does not support.
 */
export const PROMPT_CACHE_CAPABILITIES: Readonly<Record<string, PromptCacheCapability>> = {
  'anthropic.claude-sonnet-4-5-20250929-v1:0': {
    minTokensPerCachePoint: 1_024,
    maxCachePoints: 4,
    allowedIn: ['system', 'messages', 'tools'],
    source: `${MODEL_CARD}anthropic-claude-sonnet-4-5.html`,
    readOn: '2026-12-04',
  },
  'anthropic.claude-haiku-4-5-20251001-v1:0': {
    minTokensPerCachePoint: 4_096,
    maxCachePoints: 4,
    allowedIn: ['system', 'messages', 'tools'],
    source: `${MODEL_CARD}anthropic-claude-haiku-4-5.html`,
    readOn: '2026-12-04',
  },
  // NOTE: the Nova Pro figures (1K tokens, 4 points, system and messages
  // but not tools) come from copies of the supported-models table of the
  // Bedrock prompt caching page, not from the AWS page itself.
  'amazon.nova-pro-v1:0': {
    minTokensPerCachePoint: 1_000,
    maxCachePoints: 4,
    allowedIn: ['system', 'messages'],
    source: 'https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html',
    readOn: '2026-12-04',
  },
};

/** Returns the prompt caching limits of a model or inference profile id, or undefined when none are listed. */
export function promptCacheCapabilityOf(modelId: string): PromptCacheCapability | undefined {
  const { foundationModelId } = parseModelId(modelId);
  return Object.hasOwn(PROMPT_CACHE_CAPABILITIES, foundationModelId)
    ? PROMPT_CACHE_CAPABILITIES[foundationModelId]
    : undefined;
}

/** Time a cache entry lives after its last use: Bedrock's default of 5 minutes. */
export const PROMPT_CACHE_TTL_MS = 5 * 60_000;

/**
 * Cache reads within the TTL that make a cache write pay off when no price
 * is configured. Claude's 5-minute cache write costs 1.25 times the input
 * price and a read 0.1 times, so one read already saves money (see
 * {@link breakEvenReads}).
 * Source: https://platform.claude.com/docs/en/docs/about-claude/pricing (read 2026-12-04)
 */
export const DEFAULT_BREAK_EVEN_READS = 1;

/**
 * Returns the fewest cache reads within the TTL after one cache write for
 * which caching a prefix costs less than sending it as plain input each
 * time. With W the write price and R the read price as multiples of the
 * input price, a prefix written once and read n times costs W + nR, and
 * n + 1 without caching, so caching pays when n > (W - 1) / (1 - R).
 * Returns Infinity when a read costs no less than plain input.
 */
export function breakEvenReads(price: ModelPrice | undefined): number {
  if (price === undefined) {
    return DEFAULT_BREAK_EVEN_READS;
  }
  if (price.inputPerMillion <= 0 || price.cacheReadPerMillion >= price.inputPerMillion) {
    return Infinity;
  }
  const write = price.cacheWritePerMillion / price.inputPerMillion;
  const read = price.cacheReadPerMillion / price.inputPerMillion;
  return Math.max(0, Math.floor((write - 1) / (1 - read)) + 1);
}

/** Estimated tokens of the parts of a request that can end in a cache point, in prompt order. */
export interface PrefixTokens {
  /** Tool definitions, which come first in the prompt. */
  readonly tools: number;
  readonly system: number;
}

/**
 * Estimates the tokens of the tool definitions (as JSON) and the system
 * prompt at four characters per token, like the budget's input estimate.
 * An estimate above the real count places a cache point that Bedrock then
 * ignores, which costs nothing.
 */
export function estimatePrefixTokens(request: GatewayRequest): PrefixTokens {
  const toolChars = request.tools === undefined ? 0 : JSON.stringify(request.tools).length;
  return {
    tools: Math.ceil(toolChars / RESERVATION_CHARS_PER_TOKEN),
    system: Math.ceil((request.system?.length ?? 0) / RESERVATION_CHARS_PER_TOKEN),
  };
}

/** Cache points the gateway adds to one call on one target. */
export interface CachePointPlan {
  /** A cache point after the last tool definition. */
  readonly afterTools: boolean;
  /** A cache point after the system prompt. */
  readonly afterSystem: boolean;
  /** Reason the points are placed or left out, for the log line. */
  readonly reason: string;
}

/** Inputs of {@link planCachePoints}. */
export interface CachePointPlanInput {
  readonly request: GatewayRequest;
  readonly target: ModelTarget;
  /** The agent's setting. @default 'auto' */
  readonly mode?: PromptCacheMode;
  /**
   * Calls with this agent's prefix expected in the 5 minutes after this one:
   * the larger of the agent's configured hint and the calls this gateway
   * instance saw in the 5 minutes before.
   */
  readonly expectedCalls: number;
  /** Price of the target, when the budget configures one. */
  readonly price?: ModelPrice;
}

function noCachePoints(reason: string): CachePointPlan {
  return { afterTools: false, afterSystem: false, reason };
}

/**
 * Chooses the cache points of one call on one target. The gateway places a
 * point only after the tool definitions and after the system prompt, in a
 * field the target's model accepts, and only where the tokens since the
 * previous point reach the model's minimum. With more candidates than the
 * model allows, the later points are kept, because they cover longer
 * prefixes. Mode `off` places none and `always` places every point that
 * reaches the minimum. Mode `auto` places them only when the expected calls
 * reach {@link breakEvenReads} for the target's price, on the assumption
 * that each later call within the TTL reads the prefix once.
 */
export function planCachePoints(input: CachePointPlanInput): CachePointPlan {
  const { request, target } = input;
  const mode = input.mode ?? 'auto';
  if (mode === 'off') {
    return noCachePoints('prompt caching is off for the agent');
  }
  const capability = promptCacheCapabilityOf(target.modelId);
  if (capability === undefined) {
    return noCachePoints(`no prompt caching capability is listed for ${target.modelId}`);
  }

  const tokens = estimatePrefixTokens(request);
  const hasTools = request.tools !== undefined && request.tools.length > 0;
  const hasSystem = request.system !== undefined && request.system.length > 0;
  const candidates: Array<{ field: 'tools' | 'system'; present: boolean; tokens: number }> = [
    { field: 'tools', present: hasTools, tokens: tokens.tools },
    { field: 'system', present: hasSystem, tokens: tokens.system },
  ];
  const placed: Array<'tools' | 'system'> = [];
  let sincePrevious = 0;
  for (const candidate of candidates) {
    sincePrevious += candidate.tokens;
    const allowed = candidate.present && capability.allowedIn.includes(candidate.field);
    if (allowed && sincePrevious >= capability.minTokensPerCachePoint) {
      placed.push(candidate.field);
      sincePrevious = 0;
    }
  }
  const withinLimit = placed.slice(Math.max(0, placed.length - capability.maxCachePoints));
  if (withinLimit.length === 0) {
    return noCachePoints(
      `the prefix of about ${tokens.tools + tokens.system} tokens does not reach the minimum of ` +
        `${capability.minTokensPerCachePoint} tokens per cache point in a field ${target.modelId} accepts`,
    );
  }

  const plan = { afterTools: withinLimit.includes('tools'), afterSystem: withinLimit.includes('system') };
  if (mode === 'always') {
    return { ...plan, reason: 'prompt caching is always on for the agent' };
  }
  const needed = breakEvenReads(input.price);
  if (needed === Infinity) {
    return noCachePoints(`a cache read on ${target.modelId} costs no less than plain input`);
  }
  if (input.expectedCalls < needed) {
    return noCachePoints(
      `${input.expectedCalls} calls expected within the cache lifetime, below the ${needed} ` +
        'cache reads that make a cache write pay off',
    );
  }
  return { ...plan, reason: `${input.expectedCalls} calls expected within the cache lifetime` };
}

/**
 * The Converse cache point block, a member of the SystemContentBlock,
 * ContentBlock and Tool unions alike, whose only required field `type`
 * takes the value `default`.
 * Source: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_CachePointBlock.html (read 2026-12-04)
 */
export const CACHE_POINT_BLOCK = { cachePoint: { type: 'default' } } as const;
