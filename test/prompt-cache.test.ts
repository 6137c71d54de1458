/**
 * The gateway's prompt cache rules on their own: the capability table, the
 * break-even derived from prices, the placement of cache points per target,
 * the instance's traffic count and the net saving of a call.
 */
import type { GatewayRequest, ModelPrice } from '../lambda/shared/contracts';
import { promptCacheSavingUsd } from '../lambda/gateway/budget/pricing';
import {
  breakEvenReads,
  DEFAULT_BREAK_EVEN_READS,
  estimatePrefixTokens,
  planCachePoints,
  promptCacheCapabilityOf,
  PROMPT_CACHE_CAPABILITIES,
} from '../lambda/gateway/prompt-cache';
import { MAX_TRACKED_PREFIXES, PrefixTraffic, prefixKey } from '../lambda/gateway/prompt-cache-planner';

const SONNET = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const HAIKU = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const NOVA = 'amazon.nova-pro-v1:0';
const LLAMA = 'meta.llama3-3-70b-instruct-v1:0';
const SONNET_PRICE: ModelPrice = {
  inputPerMillion: 3,
  outputPerMillion: 15,
  cacheReadPerMillion: 0.3,
  cacheWritePerMillion: 3.75,
};

/** Returns a system prompt of `tokens` tokens by the gateway's estimate of four characters per token. */
function systemOf(tokens: number): string {
  return 'a'.repeat(tokens * 4);
}

const TOOL = {
  name: 'lookup_order',
  description: 'Look up an order by its id.',
  inputSchema: { type: 'object', properties: { orderId: { type: 'string' } } },
};

/** Returns a tool whose JSON, in a list of one, is `tokens` tokens long by the gateway's estimate. */
function toolOf(tokens: number): NonNullable<GatewayRequest['tools']>[number] {
  const overhead = JSON.stringify([{ ...TOOL, description: '' }]).length;
  return { ...TOOL, description: 'd'.repeat(tokens * 4 - overhead) };
}

function request(overrides: Partial<GatewayRequest> = {}): GatewayRequest {
  return {
    requestId: 'req-cache-1',
    agent: 'support',
    userId: 'user-1',
    sessionId: 'session-1',
    messages: [{ role: 'user', content: [{ text: 'Where is my order?' }] }],
    ...overrides,
  };
}

function target(modelId: string) {
  return { region: 'us-east-1', modelId };
}

describe('capability table', () => {
  test('profile maps to its model', () => {
    expect(promptCacheCapabilityOf(SONNET)).toBe(PROMPT_CACHE_CAPABILITIES['anthropic.claude-sonnet-4-5-20250929-v1:0']);
    expect(promptCacheCapabilityOf('global.anthropic.claude-haiku-4-5-20251001-v1:0')).toBe(
      PROMPT_CACHE_CAPABILITIES['anthropic.claude-haiku-4-5-20251001-v1:0'],
    );
  });

  test('unknown model has none', () => {
    expect(promptCacheCapabilityOf(LLAMA)).toBeUndefined();
  });

  test('entries carry source and date', () => {
    for (const capability of Object.values(PROMPT_CACHE_CAPABILITIES)) {
      expect(capability.source).toMatch(/^https:\/\/docs\.aws\.amazon\.com\/bedrock\//);
      expect(capability.readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });
});

describe('breakEvenReads', () => {
  test.each<[string, ModelPrice | undefined, number]>([
    ['Claude list prices', SONNET_PRICE, 1],
    ['no price', undefined, DEFAULT_BREAK_EVEN_READS],
    ['write at input price', { ...SONNET_PRICE, cacheWritePerMillion: 3 }, 1],
    ['write cheaper than input', { ...SONNET_PRICE, cacheWritePerMillion: 2 }, 0],
    // (2 - 1) / (1 - 0.5) = 2, and caching pays only above it.
    ['write 2x, read 0.5x', { ...SONNET_PRICE, cacheWritePerMillion: 6, cacheReadPerMillion: 1.5 }, 3],
    ['read at input price', { ...SONNET_PRICE, cacheReadPerMillion: 3 }, Infinity],
    ['free input', { ...SONNET_PRICE, inputPerMillion: 0 }, Infinity],
  ])('%s', (_name, price, expected) => {
    expect(breakEvenReads(price)).toBe(expected);
  });
});

describe('planCachePoints', () => {
  const long = { system: systemOf(2_000), tools: [toolOf(1_500)] };

  test('always places both points', () => {
    const plan = planCachePoints({ request: request(long), target: target(SONNET), mode: 'always', expectedCalls: 0 });

    expect(plan.afterTools).toBe(true);
    expect(plan.afterSystem).toBe(true);
  });

  test('off places none', () => {
    const plan = planCachePoints({ request: request(long), target: target(SONNET), mode: 'off', expectedCalls: 100 });

    expect(plan.afterTools).toBe(false);
    expect(plan.afterSystem).toBe(false);
    expect(plan.reason).toContain('off');
  });

  test('unknown model gets none', () => {
    const plan = planCachePoints({ request: request(long), target: target(LLAMA), mode: 'always', expectedCalls: 100 });

    expect(plan.afterTools).toBe(false);
    expect(plan.afterSystem).toBe(false);
    expect(plan.reason).toContain(LLAMA);
  });

  test('Nova gets no tools point', () => {
    const plan = planCachePoints({ request: request(long), target: target(NOVA), mode: 'always', expectedCalls: 0 });

    expect(plan.afterTools).toBe(false);
    expect(plan.afterSystem).toBe(true);
  });

  test('short prefix gets none', () => {
    const short = request({ system: systemOf(500), tools: [toolOf(300)] });

    const plan = planCachePoints({ request: short, target: target(SONNET), mode: 'always', expectedCalls: 10 });

    expect(plan.afterTools).toBe(false);
    expect(plan.afterSystem).toBe(false);
    expect(plan.reason).toContain('minimum of 1024');
  });

  test('short tools move point to system', () => {
    // The tools alone stay below 1,024 tokens, and with the system prompt they reach it.
    const shortTools = request({ system: systemOf(600), tools: [toolOf(600)] });

    const plan = planCachePoints({ request: shortTools, target: target(SONNET), mode: 'always', expectedCalls: 0 });

    expect(plan.afterTools).toBe(false);
    expect(plan.afterSystem).toBe(true);
  });

  test('Haiku needs its higher minimum', () => {
    const mid = request({ system: systemOf(3_000) });

    const sonnet = planCachePoints({ request: mid, target: target(SONNET), mode: 'always', expectedCalls: 0 });
    const haiku = planCachePoints({ request: mid, target: target(HAIKU), mode: 'always', expectedCalls: 0 });

    expect(sonnet.afterSystem).toBe(true);
    expect(haiku.afterSystem).toBe(false);
  });

  test('no system means no system point', () => {
    const toolsOnly = request({ tools: [toolOf(1_500)] });

    const plan = planCachePoints({ request: toolsOnly, target: target(SONNET), mode: 'always', expectedCalls: 0 });

    expect(plan.afterTools).toBe(true);
    expect(plan.afterSystem).toBe(false);
  });

  test('auto without reuse places none', () => {
    const plan = planCachePoints({
      request: request(long),
      target: target(SONNET),
      mode: 'auto',
      expectedCalls: 0,
      price: SONNET_PRICE,
    });

    expect(plan.afterTools).toBe(false);
    expect(plan.afterSystem).toBe(false);
    expect(plan.reason).toContain('below the 1 cache reads');
  });

  test('auto with one expected call places both', () => {
    const plan = planCachePoints({
      request: request(long),
      target: target(SONNET),
      mode: 'auto',
      expectedCalls: 1,
      price: SONNET_PRICE,
    });

    expect(plan.afterTools).toBe(true);
    expect(plan.afterSystem).toBe(true);
  });

  test('auto follows the price break-even', () => {
    const dear = { ...SONNET_PRICE, cacheWritePerMillion: 6, cacheReadPerMillion: 1.5 };
    const input = { request: request(long), target: target(SONNET), mode: 'auto' as const, price: dear };

    expect(planCachePoints({ ...input, expectedCalls: 2 }).afterSystem).toBe(false);
    expect(planCachePoints({ ...input, expectedCalls: 3 }).afterSystem).toBe(true);
  });

  test('default mode is auto', () => {
    const plan = planCachePoints({ request: request(long), target: target(SONNET), expectedCalls: 0 });

    expect(plan.afterSystem).toBe(false);
  });

  test('prefix estimate counts tools and system', () => {
    const tokens = estimatePrefixTokens(request(long));

    expect(tokens.system).toBe(2_000);
    expect(tokens.tools).toBe(1_500);
  });
});

describe('PrefixTraffic', () => {
  test('counts calls within the window', () => {
    const traffic = new PrefixTraffic(300_000);

    expect(traffic.record('a', 0)).toBe(0);
    expect(traffic.record('a', 1_000)).toBe(1);
    expect(traffic.record('a', 2_000)).toBe(2);
    expect(traffic.record('b', 2_000)).toBe(0);
  });

  test('forgets calls past the window', () => {
    const traffic = new PrefixTraffic(300_000);
    traffic.record('a', 0);
    traffic.record('a', 100_000);

    expect(traffic.record('a', 350_000)).toBe(1);
    expect(traffic.record('a', 700_000)).toBe(0);
  });

  test('drops the least recent prefix', () => {
    const traffic = new PrefixTraffic(300_000);
    traffic.record('first', 0);
    traffic.record('first', 1);
    for (let i = 0; i < MAX_TRACKED_PREFIXES; i++) {
      traffic.record(`other-${i}`, 2);
    }

    expect(traffic.record('first', 3)).toBe(0);
  });

  test('key depends on agent and prefix', () => {
    const base = { ...request({ system: 'You help.', tools: [TOOL] }), maxTokens: 100 };

    expect(prefixKey(base)).toBe(prefixKey({ ...base, messages: [{ role: 'user', content: [{ text: 'Hi' }] }] }));
    expect(prefixKey(base)).not.toBe(prefixKey({ ...base, agent: 'billing' }));
    expect(prefixKey(base)).not.toBe(prefixKey({ ...base, system: 'You help customers.' }));
    expect(prefixKey(base)).not.toBe(prefixKey({ ...base, tools: [] }));
  });
});

describe('promptCacheSavingUsd', () => {
  test('reads save money', () => {
    const saved = promptCacheSavingUsd(SONNET_PRICE, { inputTokens: 10, outputTokens: 5, cacheReadTokens: 2_000 });

    expect(saved).toBeCloseTo((2_000 * (3 - 0.3)) / 1_000_000, 12);
  });

  test('writes alone cost money', () => {
    const saved = promptCacheSavingUsd(SONNET_PRICE, { inputTokens: 10, outputTokens: 5, cacheWriteTokens: 2_000 });

    expect(saved).toBeCloseTo((2_000 * (3 - 3.75)) / 1_000_000, 12);
    expect(saved).toBeLessThan(0);
  });

  test('no cache tokens save nothing', () => {
    expect(promptCacheSavingUsd(SONNET_PRICE, { inputTokens: 10, outputTokens: 5 })).toBe(0);
  });
});
