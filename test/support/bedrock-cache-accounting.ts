/**
 * Prompt cache accounting of the loopback Bedrock server: from the cache
 * points of a Converse request and an in-memory cache per region, it splits
 * the request's input tokens into cache reads, cache writes and plain input,
 * as Bedrock reports them. It imports nothing from `lambda/`, so the
 * gateway's placement of cache points is checked against rules it does not
 * share. Token counts follow the rule of converse-tokens.ts.
 *
 * The rules, from the Bedrock prompt caching page and the model cards
 * (https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html,
 * read 2026-12-04):
 * - A cache point caches the prompt before it (tool definitions, then the
 *   system prompt, then the messages) when the tokens since the previous
 *   cached point reach the model's minimum. A shorter prefix is not cached,
 *   and the call still succeeds.
 * - An entry lives 5 minutes, and each read starts its 5 minutes again.
 * - A call reads the longest cached prefix it repeats and writes the cache
 *   points after it, whose new tokens count as cache writes.
 *
 * NOTE: the server rejects a cache point in a field the model does not
 * accept, on a model it lists no caching for, or beyond the model's maximum
 * with a 400 ValidationException. That Bedrock rejects these requests is
 * assumed, and the message is the loopback server's own.
 */
import type { RecordedRequest, ScriptedResponse, ScriptedUsage } from './bedrock-server';
import type { StreamStep } from './bedrock-stream';
import { promptParts, TOOL_USE_SYSTEM_PROMPT_TOKENS, type PromptPart } from './converse-tokens';

/** Request field that may carry a cache point. */
export type CacheField = 'system' | 'messages' | 'tools';

/** Prompt caching limits of one model, as the loopback server applies them. */
export interface LoopbackCacheModel {
  readonly minTokensPerCachePoint: number;
  readonly maxCachePoints: number;
  readonly allowedIn: readonly CacheField[];
}

/**
 * Limits per foundation model id, from the "Prompt caching" tables of the
 * Bedrock model cards of Claude Sonnet 4.5 and Claude Haiku 4.5, and for
 * Nova Pro from copies of the supported-models table of the prompt caching
 * page. Every other model accepts no cache point.
 */
export const LOOPBACK_CACHE_MODELS: Readonly<Record<string, LoopbackCacheModel>> = {
  'anthropic.claude-sonnet-4-5-20250929-v1:0': {
    minTokensPerCachePoint: 1_024,
    maxCachePoints: 4,
    allowedIn: ['system', 'messages', 'tools'],
  },
  'anthropic.claude-haiku-4-5-20251001-v1:0': {
    minTokensPerCachePoint: 4_096,
    maxCachePoints: 4,
    allowedIn: ['system', 'messages', 'tools'],
  },
  'amazon.nova-pro-v1:0': { minTokensPerCachePoint: 1_000, maxCachePoints: 4, allowedIn: ['system', 'messages'] },
};

/** Lifetime of a cache entry after its last use. */
export const LOOPBACK_CACHE_TTL_MS = 5 * 60_000;

/** Geography prefixes of inference profile ids, which the server strips to find the model. */
const PROFILE_PREFIXES = ['us', 'us-gov', 'eu', 'apac', 'ca', 'jp', 'au', 'global'];

function foundationModelOf(modelId: string): string {
  const dot = modelId.indexOf('.');
  return dot > 0 && PROFILE_PREFIXES.includes(modelId.slice(0, dot)) ? modelId.slice(dot + 1) : modelId;
}

/** How a request's input tokens divide, as Bedrock's usage reports them. */
export interface CacheSplit {
  /** Input tokens neither read from nor written to the cache. */
  readonly inputTokens: number;
  readonly cacheReadInputTokens: number;
  readonly cacheWriteInputTokens: number;
}

/** Outcome of accounting one request: its split, or why Bedrock would reject it. */
export type CacheAccountingResult =
  | { readonly kind: 'no cache points' }
  | { readonly kind: 'split'; readonly split: CacheSplit }
  | { readonly kind: 'rejected'; readonly message: string };

/** Settings of {@link PromptCacheAccounting}. */
export interface PromptCacheAccountingOptions {
  /**
   * Clock in epoch milliseconds, so that a test can move past the TTL.
   * @default Date.now
   */
  readonly now?: () => number;
  /** @default LOOPBACK_CACHE_TTL_MS */
  readonly ttlMs?: number;
  /** @default LOOPBACK_CACHE_MODELS */
  readonly models?: Readonly<Record<string, LoopbackCacheModel>>;
}

/** One cache point of a request, with the prompt before it. */
interface CachePointAt {
  readonly field: CacheField;
  /** Tokens of the prompt before the point. */
  readonly prefixTokens: number;
  /** Region, model and prompt text before the point, the key of the cache entry. */
  readonly key: string;
}

function fieldOf(part: PromptPart): CacheField {
  if (part.path.startsWith('toolConfig')) return 'tools';
  return part.path.startsWith('system') ? 'system' : 'messages';
}

/** Returns the request member a part stands for, as text for the cache key. */
function partText(body: Record<string, any>, part: PromptPart): string {
  if (part.path === 'toolConfig') {
    return `tool use system prompt of ${TOOL_USE_SYSTEM_PROMPT_TOKENS} tokens`;
  }
  const steps = part.path.split('.');
  let value: any = body;
  for (const step of steps) value = value?.[step];
  // A message part stands for its role markers, whose content blocks are parts of their own.
  if (steps[0] === 'messages' && steps.length === 2) return `role ${value?.role}`;
  return JSON.stringify(value);
}

/** Lists the cache points of a request body with the prompt before each one. */
function cachePointsOf(body: unknown, region: string, modelId: string): CachePointAt[] {
  const request = (body ?? {}) as Record<string, any>;
  const points: CachePointAt[] = [];
  const texts: string[] = [];
  let tokens = 0;
  for (const part of promptParts(body)) {
    if (part.cachePoint) {
      points.push({ field: fieldOf(part), prefixTokens: tokens, key: JSON.stringify([region, modelId, texts]) });
    } else {
      texts.push(partText(request, part));
      tokens += part.tokens;
    }
  }
  return points;
}

/**
 * The prompt cache of a loopback Bedrock server, one entry per region,
 * model and cached prefix text. Pass one instance to the servers of every
 * region: entries are keyed by region, so a prefix cached in one region is
 * not read in another.
 */
export class PromptCacheAccounting {
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly models: Readonly<Record<string, LoopbackCacheModel>>;
  /** Expiry in epoch milliseconds per cache key. */
  private readonly entries = new Map<string, number>();

  constructor(options: PromptCacheAccountingOptions = {}) {
    this.now = options.now ?? Date.now;
    this.ttlMs = options.ttlMs ?? LOOPBACK_CACHE_TTL_MS;
    this.models = options.models ?? LOOPBACK_CACHE_MODELS;
  }

  /** Returns the number of unexpired cache entries. */
  size(): number {
    const now = this.now();
    return [...this.entries.values()].filter((expiresAt) => expiresAt > now).length;
  }

  /** Drops every entry. */
  clear(): void {
    this.entries.clear();
  }

  /**
   * Checks a request's cache points against the model's limits without
   * touching the cache. Returns the reason Bedrock would reject them, or
   * undefined.
   */
  check(body: unknown, modelId: string): string | undefined {
    const points = cachePointsOf(body, '', modelId);
    if (points.length === 0) return undefined;
    const model = this.models[foundationModelOf(modelId)];
    if (model === undefined) {
      return (
        `The model ${modelId} does not support prompt caching, but the request has ` +
        `${points.length} cache points.`
      );
    }
    const misplaced = points.find((point) => !model.allowedIn.includes(point.field));
    if (misplaced !== undefined) {
      const allowed = model.allowedIn.join(', ');
      return `The model ${modelId} does not accept a cache point in ${misplaced.field}, only in ${allowed}.`;
    }
    if (points.length > model.maxCachePoints) {
      const maximum = model.maxCachePoints;
      return `The request has ${points.length} cache points, more than the maximum of ${maximum} for ${modelId}.`;
    }
    return undefined;
  }

  /**
   * Accounts one request that the model served: reads the longest cached
   * prefix it repeats, starting that entry's lifetime again, and writes the
   * cacheable points after it. `totalInputTokens` is the request's whole
   * prompt, of which the rest is plain input.
   */
  account(request: {
    readonly region: string;
    readonly modelId: string;
    readonly body: unknown;
    readonly totalInputTokens: number;
  }): CacheAccountingResult {
    const { region, modelId, body } = request;
    const points = cachePointsOf(body, region, modelId);
    if (points.length === 0) return { kind: 'no cache points' };
    const rejection = this.check(body, modelId);
    if (rejection !== undefined) return { kind: 'rejected', message: rejection };

    const model = this.models[foundationModelOf(modelId)];
    const cacheable: CachePointAt[] = [];
    let previousTokens = 0;
    for (const point of points) {
      if (point.prefixTokens - previousTokens >= model.minTokensPerCachePoint) {
        cacheable.push(point);
        previousTokens = point.prefixTokens;
      }
    }

    const now = this.now();
    const isCached = (point: CachePointAt) => (this.entries.get(point.key) ?? 0) > now;
    let hit = -1;
    cacheable.forEach((point, index) => {
      if (isCached(point)) hit = index;
    });
    const readTokens = hit < 0 ? 0 : cacheable[hit].prefixTokens;
    for (const point of cacheable.slice(0, hit + 1)) {
      if (isCached(point)) this.entries.set(point.key, now + this.ttlMs);
    }
    const written = cacheable.slice(hit + 1);
    for (const point of written) this.entries.set(point.key, now + this.ttlMs);
    const writeTokens = written.length === 0 ? 0 : written[written.length - 1].prefixTokens - readTokens;

    return {
      kind: 'split',
      split: {
        inputTokens: Math.max(0, request.totalInputTokens - readTokens - writeTokens),
        cacheReadInputTokens: readTokens,
        cacheWriteInputTokens: writeTokens,
      },
    };
  }
}

function withSplit(usage: ScriptedUsage, split: CacheSplit): ScriptedUsage {
  return {
    inputTokens: split.inputTokens,
    outputTokens: usage.outputTokens,
    cacheReadInputTokens: split.cacheReadInputTokens,
    cacheWriteInputTokens: split.cacheWriteInputTokens,
  };
}

/** Returns the usage a scripted stream reports in its metadata event, if it has one. */
function streamUsageOf(steps: readonly StreamStep[]): ScriptedUsage | undefined {
  const metadata = steps.find((step) => step.kind === 'event' && step.eventType === 'metadata');
  return metadata?.kind === 'event' ? (metadata.body.usage as ScriptedUsage | undefined) : undefined;
}

/** Returns the steps with the metadata event's usage replaced, its total recomputed. */
function withStreamSplit(steps: readonly StreamStep[], split: CacheSplit): StreamStep[] {
  return steps.map((step) => {
    if (step.kind !== 'event' || step.eventType !== 'metadata') return step;
    const usage = withSplit(step.body.usage as ScriptedUsage, split);
    const totalTokens =
      usage.inputTokens + usage.outputTokens + usage.cacheReadInputTokens! + usage.cacheWriteInputTokens!;
    return { ...step, body: { ...step.body, usage: { ...usage, totalTokens } } };
  });
}

/**
 * Hook of the loopback server: returns `response` with the usage split by
 * `accounting` for a Converse or ConverseStream request with cache points.
 * The input tokens of the usage the server would report are taken as the
 * whole prompt. A request whose cache points break the model's limits gets
 * a 400 ValidationException in place of any scripted response. A request
 * without cache points, or a scripted error, comes back unchanged, so only
 * a response the model served changes the cache.
 */
export function accountPromptCache(
  accounting: PromptCacheAccounting | undefined,
  recorded: RecordedRequest,
  response: ScriptedResponse,
): ScriptedResponse {
  const isConverse = recorded.operation === 'converse' || recorded.operation === 'converse-stream';
  if (accounting === undefined || !isConverse || recorded.modelId === undefined) {
    return response;
  }
  const rejection = accounting.check(recorded.body, recorded.modelId);
  if (rejection !== undefined) {
    return { type: 'error', status: 400, errorType: 'ValidationException', message: rejection };
  }
  const usage =
    response.type === 'text' || response.type === 'toolUse'
      ? response.usage
      : response.type === 'stream'
        ? streamUsageOf(response.steps)
        : undefined;
  if (usage === undefined) {
    return response;
  }
  const result = accounting.account({
    region: recorded.region ?? 'unknown',
    modelId: recorded.modelId,
    body: recorded.body,
    totalInputTokens: usage.inputTokens,
  });
  if (result.kind !== 'split') {
    return response;
  }
  if (response.type === 'stream') {
    return { ...response, steps: withStreamSplit(response.steps, result.split) };
  }
  return { ...response, usage: withSplit(usage, result.split) } as ScriptedResponse;
}
