/**
 * The loopback server's prompt cache accounting on its own: which cache
 * points write, which calls read, the 5-minute lifetime on a fake clock,
 * the model limits that reject a request, and the hook that rewrites a
 * scripted response's usage.
 */
import {
  accountPromptCache,
  LOOPBACK_CACHE_TTL_MS,
  PromptCacheAccounting,
  type CacheAccountingResult,
  type CacheSplit,
} from './support/bedrock-cache-accounting';
import { textResponse, type RecordedRequest } from './support/bedrock-server';
import { streamResponse, textStreamSteps } from './support/bedrock-stream';
import { countInputTokens, countTextTokens, TOOL_USE_SYSTEM_PROMPT_TOKENS } from './support/converse-tokens';

const SONNET = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const NOVA = 'amazon.nova-pro-v1:0';
const CACHE_POINT = { cachePoint: { type: 'default' } };
// 2,000 tokens by the loopback rule: six letters are one token, a space none.
const LONG_SYSTEM = 'abcdef '.repeat(2_000);
const TOOL = {
  toolSpec: {
    name: 'lookup_order',
    description: 'abcdef '.repeat(1_500),
    inputSchema: { json: { type: 'object' } },
  },
};

interface BodyOptions {
  readonly system?: string;
  readonly tools?: boolean;
  readonly question?: string;
  /** @default ['system'] */
  readonly points?: Array<'tools' | 'system'>;
}

/** Builds a Converse request body with cache points at `points`. */
function body(options: BodyOptions) {
  const points = options.points ?? ['system'];
  const tools = points.includes('tools') ? [TOOL, CACHE_POINT] : [TOOL];
  return {
    ...(options.tools ? { toolConfig: { tools } } : {}),
    system: [{ text: options.system ?? LONG_SYSTEM }, ...(points.includes('system') ? [CACHE_POINT] : [])],
    messages: [{ role: 'user', content: [{ text: options.question ?? 'Where is my order?' }] }],
  };
}

function splitOf(result: CacheAccountingResult): CacheSplit {
  if (result.kind !== 'split') {
    throw new Error(`Expected a split, got ${JSON.stringify(result)}`);
  }
  return result.split;
}

function account(accounting: PromptCacheAccounting, requestBody: unknown, modelId = SONNET, region = 'us-east-1') {
  const totalInputTokens = countInputTokens(requestBody);
  return accounting.account({ region, modelId, body: requestBody, totalInputTokens });
}

describe('PromptCacheAccounting', () => {
  let clock: number;
  let accounting: PromptCacheAccounting;

  beforeEach(() => {
    clock = Date.UTC(2026, 11, 4, 9, 0, 0);
    accounting = new PromptCacheAccounting({ now: () => clock });
  });

  test('long system prompt is written', () => {
    const request = body({});

    const split = splitOf(account(accounting, request));

    expect(countTextTokens(LONG_SYSTEM)).toBe(2_000);
    expect(split.cacheWriteInputTokens).toBe(2_000);
    expect(split.cacheReadInputTokens).toBe(0);
    expect(split.inputTokens).toBe(countInputTokens(request) - 2_000);
  });

  test('repeated prefix is read', () => {
    account(accounting, body({}));
    const second = body({ question: 'And my refund?' });

    const split = splitOf(account(accounting, second));

    expect(split.cacheReadInputTokens).toBe(2_000);
    expect(split.cacheWriteInputTokens).toBe(0);
    expect(split.inputTokens).toBe(countInputTokens(second) - 2_000);
  });

  test('entry expires after its lifetime', () => {
    account(accounting, body({}));
    clock += LOOPBACK_CACHE_TTL_MS;

    const split = splitOf(account(accounting, body({})));

    expect(split.cacheReadInputTokens).toBe(0);
    expect(split.cacheWriteInputTokens).toBe(2_000);
  });

  test('read restarts the lifetime', () => {
    account(accounting, body({}));
    clock += LOOPBACK_CACHE_TTL_MS - 1_000;
    account(accounting, body({}));
    clock += LOOPBACK_CACHE_TTL_MS - 1_000;

    const split = splitOf(account(accounting, body({})));

    expect(split.cacheReadInputTokens).toBe(2_000);
  });

  test('prefix below minimum is not cached', () => {
    const short = body({ system: 'abcdef '.repeat(1_000) });

    const first = splitOf(account(accounting, short));
    const second = splitOf(account(accounting, short));

    expect(first.cacheWriteInputTokens).toBe(0);
    expect(second.cacheReadInputTokens).toBe(0);
    expect(second.inputTokens).toBe(countInputTokens(short));
    expect(accounting.size()).toBe(0);
  });

  test('changed system reads tools prefix', () => {
    const both = body({ tools: true, points: ['tools', 'system'] });
    const toolTokens = countInputTokens({ toolConfig: { tools: [TOOL] } }) - TOOL_USE_SYSTEM_PROMPT_TOKENS;
    account(accounting, both);
    const changed = body({ tools: true, points: ['tools', 'system'], system: 'ghijkl '.repeat(1_200) });

    const split = splitOf(account(accounting, changed));

    expect(split.cacheReadInputTokens).toBe(toolTokens);
    // The system point's prefix adds the tool-use system prompt and the new system text.
    expect(split.cacheWriteInputTokens).toBe(TOOL_USE_SYSTEM_PROMPT_TOKENS + 1_200);
  });

  test('first call writes through last point', () => {
    const both = body({ tools: true, points: ['tools', 'system'] });

    const split = splitOf(account(accounting, both));

    const toolTokens = countInputTokens({ toolConfig: { tools: [TOOL] } });
    expect(split.cacheWriteInputTokens).toBe(toolTokens + 2_000);
    expect(accounting.size()).toBe(2);
  });

  test('regions keep their own entries', () => {
    account(accounting, body({}), SONNET, 'us-east-1');

    const west = splitOf(account(accounting, body({}), SONNET, 'us-west-2'));

    expect(west.cacheReadInputTokens).toBe(0);
    expect(west.cacheWriteInputTokens).toBe(2_000);
  });

  test('no cache points leave usage alone', () => {
    expect(account(accounting, body({ points: [] })).kind).toBe('no cache points');
  });

  test.each<[string, unknown, string, string]>([
    ['unknown model', body({}), 'meta.llama3-3-70b-instruct-v1:0', 'does not support prompt caching'],
    ['Nova tools point', body({ tools: true, points: ['tools'] }), NOVA, 'does not accept a cache point in tools'],
    [
      'too many points',
      { ...body({}), system: ['a', 'b', 'c', 'd', 'e'].flatMap((text) => [{ text }, CACHE_POINT]) },
      SONNET,
      'more than the maximum of 4',
    ],
  ])('rejects %s', (_name, requestBody, modelId, message) => {
    const result = account(accounting, requestBody, modelId);

    expect(result.kind).toBe('rejected');
    expect(result.kind === 'rejected' && result.message).toContain(message);
  });
});

describe('accountPromptCache', () => {
  function recorded(
    requestBody: unknown,
    modelId = SONNET,
    operation: RecordedRequest['operation'] = 'converse',
  ): RecordedRequest {
    const path = `/model/${modelId}/${operation}`;
    return { method: 'POST', path, operation, modelId, region: 'us-east-1', headers: {}, body: requestBody };
  }

  test('text response gets the split', () => {
    const accounting = new PromptCacheAccounting();
    const requestBody = body({});
    const total = countInputTokens(requestBody);
    const scripted = textResponse('Hi', { usage: { inputTokens: total, outputTokens: 4 } });

    const response = accountPromptCache(accounting, recorded(requestBody), scripted);

    expect(response).toMatchObject({
      type: 'text',
      usage: { inputTokens: total - 2_000, outputTokens: 4, cacheReadInputTokens: 0, cacheWriteInputTokens: 2_000 },
    });
  });

  test('stream metadata gets the split', () => {
    const accounting = new PromptCacheAccounting();
    const requestBody = body({});
    const total = countInputTokens(requestBody);
    accounting.account({ region: 'us-east-1', modelId: SONNET, body: requestBody, totalInputTokens: total });
    const scripted = streamResponse(textStreamSteps(['Hi'], { usage: { inputTokens: total, outputTokens: 2 } }));

    const response = accountPromptCache(accounting, recorded(requestBody, SONNET, 'converse-stream'), scripted);

    const steps = response.type === 'stream' ? response.steps : [];
    const metadata = steps.find((step) => step.kind === 'event' && step.eventType === 'metadata');
    expect(metadata).toMatchObject({
      body: {
        usage: {
          inputTokens: total - 2_000,
          outputTokens: 2,
          cacheReadInputTokens: 2_000,
          cacheWriteInputTokens: 0,
          totalTokens: total + 2,
        },
      },
    });
  });

  test('rejected points become ValidationException', () => {
    const accounting = new PromptCacheAccounting();
    const requestBody = body({ tools: true, points: ['tools'] });
    const scripted = textResponse('Hi', { usage: { inputTokens: 10, outputTokens: 1 } });

    const response = accountPromptCache(accounting, recorded(requestBody, NOVA), scripted);

    expect(response).toMatchObject({ type: 'error', status: 400, errorType: 'ValidationException' });
    expect(accounting.size()).toBe(0);
  });

  test('no accounting leaves response', () => {
    const scripted = textResponse('Hi', { usage: { inputTokens: 10, outputTokens: 1 } });

    expect(accountPromptCache(undefined, recorded(body({})), scripted)).toBe(scripted);
  });
});
