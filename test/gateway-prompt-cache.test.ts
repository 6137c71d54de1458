/**
 * Prompt caching through the gateway: buffered and streamed calls go
 * through the real SDK to a loopback Bedrock server. Its prompt cache
 * accounting derives the cache reads and writes from the cache points the
 * gateway sends, and a budget ledger in DynamoDB Local settles them.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayStreamHandler,
  type GatewayHandlerOptions,
} from '../lambda/gateway';
import { estimateInputTokens, toNanoUsd } from '../lambda/gateway/budget/pricing';
import type {
  GatewayAgentConfig,
  GatewayRequest,
  GatewayRuntimeConfig,
  GatewayStreamEvent,
  ModelPrice,
} from '../lambda/shared/contracts';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import { PromptCacheAccounting } from './support/bedrock-cache-accounting';
import { errorResponse, startBedrockServer, textResponse, type BedrockServer } from './support/bedrock-server';
import { countInputTokens } from './support/converse-tokens';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';
import { expectSuccess, gatewayRequest, TEST_CREDENTIALS } from './support/failover-harness';
import { createEventSink } from './support/ndjson';

const TABLE = 'gateway-prompt-cache';
const SONNET = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
// The same model called in-region, priced here so that a cache write costs
// twice the input and a read half of it, which needs three reads to pay off.
const SONNET_IN_REGION = 'anthropic.claude-sonnet-4-5-20250929-v1:0';
const HAIKU = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const NOVA = 'amazon.nova-pro-v1:0';
const LLAMA = 'meta.llama3-3-70b-instruct-v1:0';
const PRICE: ModelPrice = {
  inputPerMillion: 3,
  outputPerMillion: 15,
  cacheReadPerMillion: 0.3,
  cacheWritePerMillion: 3.75,
};
const DEAR_PRICE: ModelPrice = { ...PRICE, cacheReadPerMillion: 1.5, cacheWritePerMillion: 6 };
const MAX_TOKENS = 100;
const CACHE_POINT = { cachePoint: { type: 'default' } };

// About 3,500 tokens by the gateway's estimate and 2,000 by the loopback
// count, so the prefix reaches Sonnet's minimum of 1,024 either way.
const LONG_SYSTEM = 'abcdef '.repeat(2_000);
const LONG_TOOLS: GatewayRequest['tools'] = [
  {
    name: 'lookup_order',
    description: 'abcdef '.repeat(1_500),
    inputSchema: { type: 'object', properties: { orderId: { type: 'string' } } },
  },
];
// About 3,000 tokens by the gateway's estimate: above Sonnet's minimum, below Haiku's 4,096.
const MID_SYSTEM = 'abc '.repeat(3_000);

let dynamo: DynamoDbLocal;
let bedrock: BedrockServer;
let clock = Date.UTC(2026, 11, 4, 9, 30, 0);
const accounting = new PromptCacheAccounting({ now: () => clock });
const clients: BedrockRuntimeClient[] = [];
const metricLines: string[] = [];

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
  bedrock = await startBedrockServer({ promptCache: accounting });
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  await bedrock?.close();
  await dynamo?.stop();
});

beforeEach(() => {
  bedrock.reset();
  accounting.clear();
  metricLines.length = 0;
});

function agent(route: GatewayAgentConfig['route'], settings: Partial<GatewayAgentConfig> = {}): GatewayAgentConfig {
  return { route, maxTokensPerCall: MAX_TOKENS, ...settings };
}

const AGENTS: Record<string, GatewayAgentConfig> = {
  hinted: agent([{ region: 'us-east-1', modelId: SONNET }], { expectedCallsPer5Minutes: 10 }),
  learner: agent([{ region: 'us-east-1', modelId: SONNET }]),
  dear: agent([{ region: 'us-east-1', modelId: SONNET_IN_REGION }], { expectedCallsPer5Minutes: 2 }),
  'dear-busy': agent([{ region: 'us-east-1', modelId: SONNET_IN_REGION }], { expectedCallsPer5Minutes: 3 }),
  quiet: agent([{ region: 'us-east-1', modelId: SONNET }], { promptCache: 'off', expectedCallsPer5Minutes: 100 }),
  haiku: agent([{ region: 'us-east-1', modelId: HAIKU }], { promptCache: 'always' }),
  'to-llama': agent(
    [
      { region: 'us-east-1', modelId: SONNET },
      { region: 'us-west-2', modelId: LLAMA },
    ],
    { promptCache: 'always' },
  ),
  'to-nova': agent(
    [
      { region: 'us-east-1', modelId: SONNET },
      { region: 'us-east-2', modelId: NOVA },
    ],
    { promptCache: 'always' },
  ),
  settled: agent([{ region: 'us-east-1', modelId: SONNET }], { expectedCallsPer5Minutes: 5 }),
};

const CONFIG: GatewayRuntimeConfig = {
  agents: AGENTS,
  budget: {
    table: TABLE,
    leaseSeconds: 120,
    failOpen: false,
    allowAnonymous: false,
    agents: {},
    prices: { [SONNET]: PRICE, [SONNET_IN_REGION]: DEAR_PRICE, [HAIKU]: PRICE, [NOVA]: PRICE, [LLAMA]: PRICE },
  },
};

function options(): GatewayHandlerOptions {
  return {
    config: CONFIG,
    now: () => clock,
    logger: new Logger({}, { sink: () => undefined }),
    metrics: new MetricsWriter({ sink: (line) => metricLines.push(line), now: () => clock }),
    budgetTableClient: dynamo.documentClient,
    clientForRegion: (region, settings) => {
      const endpoint = bedrock.endpoint;
      const client = createBedrockClient(region, { settings, endpoint, credentials: TEST_CREDENTIALS });
      clients.push(client);
      return client;
    },
  };
}

function cachedRequest(agentName: string, requestId: string, overrides: Record<string, unknown> = {}) {
  return gatewayRequest(agentName, { requestId, system: LONG_SYSTEM, tools: LONG_TOOLS, ...overrides });
}

/** Returns the Converse body of the `index`th request the loopback server received. */
function sentBody(index: number): Record<string, any> {
  return bedrock.requests[index].body as Record<string, any>;
}

function hasCachePoint(body: Record<string, any>): boolean {
  return JSON.stringify(body).includes('"cachePoint"');
}

/** Returns the parsed EMF line of a model call of `requestId`. */
function callLine(requestId: string): Record<string, any> {
  const lines = metricLines
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((line) => line.requestId === requestId && line.ModelLatency !== undefined);
  expect(lines).toHaveLength(1);
  return lines[0];
}

async function readReservation(requestId: string): Promise<Record<string, any> | undefined> {
  const key = { pk: `reservation#${requestId}`, sk: 'reservation' };
  const { Item } = await dynamo.documentClient.send(new GetCommand({ TableName: TABLE, Key: key, ConsistentRead: true }));
  return Item;
}

describe('cache point positions', () => {
  test('buffered call marks tools and system', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'));

    expectSuccess(await handle(cachedRequest('hinted', 'positions-1')));

    const body = sentBody(0);
    expect(body.toolConfig.tools).toHaveLength(2);
    expect(body.toolConfig.tools[0].toolSpec.name).toBe('lookup_order');
    expect(body.toolConfig.tools[1]).toEqual(CACHE_POINT);
    expect(body.system).toEqual([{ text: LONG_SYSTEM }, CACHE_POINT]);
    expect(JSON.stringify(body.messages)).not.toContain('cachePoint');
  });

  test('streamed call marks tools and system', async () => {
    const stream = createGatewayStreamHandler(options());
    bedrock.script(textResponse('Paris.'));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(cachedRequest('hinted', 'positions-2', { stream: true }), writable);

    expect(collector.events.at(-1)?.type).toBe('usage');
    expect(bedrock.requests[0].operation).toBe('converse-stream');
    const body = sentBody(0);
    expect(body.toolConfig.tools.at(-1)).toEqual(CACHE_POINT);
    expect(body.system).toEqual([{ text: LONG_SYSTEM }, CACHE_POINT]);
  });

  test('short prompt gets no points', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'));

    expectSuccess(await handle(cachedRequest('hinted', 'positions-3', { system: 'You help.', tools: undefined })));

    expect(hasCachePoint(sentBody(0))).toBe(false);
  });

  test('Haiku minimum is not reached', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'));

    expectSuccess(await handle(cachedRequest('haiku', 'positions-4', { system: MID_SYSTEM, tools: undefined })));

    expect(hasCachePoint(sentBody(0))).toBe(false);
  });
});

describe('cache points per failover target', () => {
  test('model without caching gets none', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(errorResponse(429, 'ThrottlingException'), textResponse('Paris.'));

    const response = expectSuccess(await handle(cachedRequest('to-llama', 'failover-1')));

    expect(response.target).toEqual({ region: 'us-west-2', modelId: LLAMA });
    expect(bedrock.requests.map((request) => request.modelId)).toEqual([SONNET, LLAMA]);
    expect(hasCachePoint(sentBody(0))).toBe(true);
    expect(hasCachePoint(sentBody(1))).toBe(false);
  });

  test('Nova gets no tools point', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(errorResponse(503, 'ServiceUnavailableException'), textResponse('Paris.'));

    const response = expectSuccess(await handle(cachedRequest('to-nova', 'failover-2')));

    expect(response.target.modelId).toBe(NOVA);
    const body = sentBody(1);
    expect(body.system).toEqual([{ text: LONG_SYSTEM }, CACHE_POINT]);
    expect(body.toolConfig.tools).toHaveLength(1);
    expect(body.toolConfig.tools[0].toolSpec.name).toBe('lookup_order');
  });

  test('streamed failover drops the points', async () => {
    const stream = createGatewayStreamHandler(options());
    bedrock.script(errorResponse(429, 'ThrottlingException'), textResponse('Paris.'));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(cachedRequest('to-llama', 'failover-3', { stream: true }), writable);

    expect(collector.events[0]).toMatchObject({ type: 'start', target: { modelId: LLAMA } });
    expect(hasCachePoint(sentBody(0))).toBe(true);
    expect(hasCachePoint(sentBody(1))).toBe(false);
  });
});

describe('pays-off rule', () => {
  test('first call of new traffic gets none', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'), textResponse('Lyon.'));

    expectSuccess(await handle(cachedRequest('learner', 'learner-1')));
    clock += 60_000;
    expectSuccess(await handle(cachedRequest('learner', 'learner-2')));

    // The second call within 5 minutes is the reuse one cache read needs to pay off.
    expect(hasCachePoint(sentBody(0))).toBe(false);
    expect(hasCachePoint(sentBody(1))).toBe(true);
  });

  test('traffic older than the lifetime does not count', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'), textResponse('Lyon.'));

    expectSuccess(await handle(cachedRequest('learner', 'learner-3')));
    clock += 5 * 60_000;
    expectSuccess(await handle(cachedRequest('learner', 'learner-4')));

    expect(hasCachePoint(sentBody(1))).toBe(false);
  });

  test('dear cache needs more calls', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'), textResponse('Lyon.'));

    expectSuccess(await handle(cachedRequest('dear', 'dear-1')));
    expectSuccess(await handle(cachedRequest('dear-busy', 'dear-2')));

    // A write at 2x and a read at 0.5x the input price pay off only above 2 reads.
    expect(hasCachePoint(sentBody(0))).toBe(false);
    expect(hasCachePoint(sentBody(1))).toBe(true);
  });

  test('off sends no points', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'));

    expectSuccess(await handle(cachedRequest('quiet', 'quiet-1')));

    expect(hasCachePoint(sentBody(0))).toBe(false);
  });
});

describe('cache usage', () => {
  test('write then read settle and save', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'), textResponse('Lyon.'));

    const first = expectSuccess(await handle(cachedRequest('settled', 'settle-1')));
    clock += 60_000;
    const second = expectSuccess(await handle(cachedRequest('settled', 'settle-2')));

    // The loopback count of the tools, the tool-use system prompt and the system prompt.
    const prefixTokens = countInputTokens({ ...sentBody(0), messages: [] });
    expect(first.usage.cacheWriteInputTokens).toBe(prefixTokens);
    expect(first.usage.cacheReadInputTokens).toBe(0);
    expect(first.usage.inputTokens).toBe(countInputTokens(sentBody(0)) - prefixTokens);
    expect(second.usage.cacheReadInputTokens).toBe(prefixTokens);
    expect(second.usage.cacheWriteInputTokens).toBe(0);

    for (const [requestId, response] of [['settle-1', first], ['settle-2', second]] as const) {
      const record = await readReservation(requestId);
      const { inputTokens, outputTokens } = response.usage;
      const read = response.usage.cacheReadInputTokens!;
      const write = response.usage.cacheWriteInputTokens!;
      expect(record?.state).toBe('settled');
      expect(record?.inputTokens).toBe(inputTokens);
      expect(record?.cacheReadTokens).toBe(read);
      expect(record?.cacheWriteTokens).toBe(write);
      expect(record?.actualTokens).toBe(inputTokens + outputTokens + read + write);
      // Nano-dollars per token: $3 input, $15 output, $0.30 cache reads and $3.75 cache writes per million.
      expect(record?.actualNanoUsd).toBe(inputTokens * 3_000 + outputTokens * 15_000 + read * 300 + write * 3_750);
    }

    const writeLine = callLine('settle-1');
    expect(writeLine.PromptCacheWriteTokens).toBe(prefixTokens);
    expect(writeLine.PromptCacheReadTokens).toBe(0);
    expect(writeLine.PromptCacheSavedUsd).toBeCloseTo((prefixTokens * (3 - 3.75)) / 1_000_000, 12);
    expect(writeLine.PromptCacheSavedUsd).toBeLessThan(0);
    const readLine = callLine('settle-2');
    expect(readLine.PromptCacheReadTokens).toBe(prefixTokens);
    expect(readLine.PromptCacheSavedUsd).toBeCloseTo((prefixTokens * (3 - 0.3)) / 1_000_000, 12);
    expect(readLine.PromptCacheSavedUsd).toBeGreaterThan(0);
  });

  test('streamed read settles', async () => {
    const handle = createGatewayHandler(options());
    const stream = createGatewayStreamHandler(options());
    bedrock.script(textResponse('Paris.'), textResponse('Lyon.'));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    expectSuccess(await handle(cachedRequest('settled', 'settle-3')));
    await stream(cachedRequest('settled', 'settle-4', { stream: true }), writable);

    const prefixTokens = countInputTokens({ ...sentBody(1), messages: [] });
    const last = collector.events.at(-1) as Extract<GatewayStreamEvent, { type: 'usage' }>;
    expect(last.type).toBe('usage');
    expect(last.usage.cacheReadInputTokens).toBe(prefixTokens);
    expect(last.usage.cacheWriteInputTokens).toBe(0);
    const record = await readReservation('settle-4');
    expect(record?.state).toBe('settled');
    expect(record?.cacheReadTokens).toBe(prefixTokens);
    expect(callLine('settle-4').PromptCacheSavedUsd).toBeGreaterThan(0);
  });

  test('reservation prices input as a write', async () => {
    const handle = createGatewayHandler(options());
    bedrock.script(textResponse('Paris.'));
    const request = cachedRequest('settled', 'settle-5');

    expectSuccess(await handle(request));

    const estimated = estimateInputTokens(request as unknown as GatewayRequest);
    const record = await readReservation('settle-5');
    expect(record?.tokens).toBe(estimated + MAX_TOKENS);
    // Every input token may be a cache write, which costs $3.75 rather than $3 per million.
    expect(record?.nanoUsd).toBe(toNanoUsd((estimated * 3.75 + MAX_TOKENS * 15) / 1_000_000));
  });
});
