/**
 * The gateway with a budget: a buffered and a streamed call through the
 * real SDK to a loopback Bedrock server, reserving and settling in a
 * ledger table in DynamoDB Local, and the per-call EMF metrics line.
 */
import { Writable } from 'node:stream';
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayStreamHandler,
  validateGatewayConfig,
  type GatewayHandlerOptions,
} from '../lambda/gateway';
import type { GatewayRuntimeConfig, GatewayStreamEvent } from '../lambda/shared/contracts';
import { SuspensionStore } from '../lambda/gateway/budget';
import { AgentSuspendedError, errorFromResponse } from '../lambda/shared/errors';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import {
  errorResponse,
  guardrailResponse,
  startBedrockServer,
  textResponse,
  type BedrockServer,
} from './support/bedrock-server';
import { streamEvents, streamResponse, textStreamSteps } from './support/bedrock-stream';
import {
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  interceptedClient,
  isReleaseTransaction,
  namedError,
  startDynamoDbLocal,
  type DynamoDbLocal,
} from './support/dynamodb-local';
import { expectFailure, expectSuccess, gatewayRequest, TEST_CREDENTIALS } from './support/failover-harness';
import { createEventSink } from './support/ndjson';

const TABLE = 'gateway-budget';
const PROFILE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const PRICE = {
  inputPerMillion: 3,
  outputPerMillion: 15,
  cacheReadPerMillion: 0.3,
  cacheWritePerMillion: 3.75,
};
const NOW = Date.UTC(2026, 11, 4, 9, 30, 0);

let dynamo: DynamoDbLocal;
let bedrock: BedrockServer;
const clients: BedrockRuntimeClient[] = [];
const ledgerClients: DynamoDBClient[] = [];
const metricLines: string[] = [];

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
  bedrock = await startBedrockServer();
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  ledgerClients.forEach((client) => client.destroy());
  await bedrock?.close();
  await dynamo?.stop();
});

beforeEach(() => {
  bedrock.reset();
  metricLines.length = 0;
});

function config(agent: string, dailyTokens: number): GatewayRuntimeConfig {
  return {
    agents: { [agent]: { route: [{ region: 'us-east-1', modelId: PROFILE }], maxTokensPerCall: 100 } },
    budget: {
      table: TABLE,
      leaseSeconds: 120,
      failOpen: false,
      allowAnonymous: false,
      agents: { [agent]: { agent: { daily: { tokens: dailyTokens } } } },
      prices: { [PROFILE]: PRICE },
    },
  };
}

function options(gatewayConfig: GatewayRuntimeConfig): GatewayHandlerOptions {
  return {
    config: gatewayConfig,
    now: () => NOW,
    logger: new Logger({}, { sink: () => undefined }),
    metrics: new MetricsWriter({ sink: (line) => metricLines.push(line), now: () => NOW }),
    budgetTableClient: dynamo.documentClient,
    clientForRegion: (region, settings) => {
      const client = createBedrockClient(region, {
        settings,
        endpoint: bedrock.endpoint,
        credentials: TEST_CREDENTIALS,
      });
      clients.push(client);
      return client;
    },
  };
}

/** Returns the parsed EMF lines that publish `name`. */
function metricsNamed(name: string): Array<Record<string, any>> {
  return metricLines
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((line) =>
      (line._aws?.CloudWatchMetrics ?? []).some((group: any) =>
        group.Metrics.some((metric: any) => metric.Name === name),
      ),
    );
}

/** Returns the one EMF line of a model call, failing when there is none or more than one. */
function callMetricLine(): Record<string, any> {
  const lines = metricsNamed('ModelLatency');
  expect(lines).toHaveLength(1);
  return lines[0];
}

async function readItem(pk: string, sk: string): Promise<Record<string, any> | undefined> {
  const { Item } = await dynamo.documentClient.send(
    new GetCommand({ TableName: TABLE, Key: { pk, sk }, ConsistentRead: true }),
  );
  return Item;
}

/** Creates a ledger client that records the DynamoDB operation of each HTTP request, retries included. */
function countingLedgerClient(operations: string[]): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    endpoint: dynamo.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  ledgerClients.push(client);
  client.middlewareStack.add(
    (next) => async (args) => {
      const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
      const target = headers['x-amz-target'] ?? 'unknown';
      operations.push(target.slice(target.lastIndexOf('.') + 1));
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'countLedgerRoundTrips' },
  );
  return DynamoDBDocumentClient.from(client);
}

describe('gateway budget', () => {
  test('buffered call reserves and settles', async () => {
    const handle = createGatewayHandler(options(config('billing', 10_000)));
    bedrock.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));

    expectSuccess(await handle(gatewayRequest('billing', { requestId: 'budget-1' })));

    const counter = await readItem('budget#agent#billing', 'day#2026-12-04');
    expect(counter?.spentTokens).toBe(15);
    expect(counter?.reservedTokens).toBe(0);
    expect(counter?.spentNanoUsd).toBe(12 * 3_000 + 3 * 15_000);
    const record = await readItem('reservation#budget-1', 'reservation');
    expect(record?.state).toBe('settled');
    expect(record?.inputTokens).toBe(12);
  });

  test('caller estimate raises the reservation', async () => {
    const handle = createGatewayHandler(options(config('estimated', 10_000)));
    bedrock.script(
      textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }),
      textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }),
    );

    expectSuccess(await handle(gatewayRequest('estimated', { requestId: 'budget-estimate-1', estimatedInputTokens: 900 })));
    expectSuccess(await handle(gatewayRequest('estimated', { requestId: 'budget-estimate-2', estimatedInputTokens: 1 })));

    const raised = await readItem('reservation#budget-estimate-1', 'reservation');
    const kept = await readItem('reservation#budget-estimate-2', 'reservation');
    expect(raised?.tokens).toBe(900 + 100);
    // A lower caller estimate never lowers the gateway's own.
    expect(kept?.tokens).toBeGreaterThan(1 + 100);
  });

  test('failed call releases the reservation', async () => {
    const handle = createGatewayHandler(options(config('refunds', 10_000)));
    bedrock.script(errorResponse(400, 'ValidationException'));

    expectFailure(await handle(gatewayRequest('refunds', { requestId: 'budget-2' })));

    const counter = await readItem('budget#agent#refunds', 'day#2026-12-04');
    expect(counter?.usedTokens).toBe(0);
    expect(counter?.reservedTokens).toBe(0);
    expect((await readItem('reservation#budget-2', 'reservation'))?.state).toBe('settled');
  });

  test('over budget returns typed error', async () => {
    const handle = createGatewayHandler(options(config('orders', 50)));

    const failure = expectFailure(await handle(gatewayRequest('orders', { requestId: 'budget-3' })));

    expect(failure.error.name).toBe('BudgetExceededError');
    expect(failure.error.limit).toMatchObject({ scope: 'agent', window: 'day', limit: 50, spent: 0 });
    expect(failure.error.message).toContain('request budget-3');
    expect(bedrock.requests).toHaveLength(0);
  });

  test('streamed call settles through recorder', async () => {
    const stream = createGatewayStreamHandler(options(config('chat', 10_000)));
    bedrock.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Paris.'),
        streamEvents.blockStop(0),
        streamEvents.messageStop('end_turn'),
        streamEvents.metadata({ inputTokens: 20, outputTokens: 4 }),
      ]),
    );
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(gatewayRequest('chat', { requestId: 'budget-4', stream: true }), writable);

    expect(collector.events.at(-1)?.type).toBe('usage');
    const counter = await readItem('budget#agent#chat', 'day#2026-12-04');
    expect(counter?.spentTokens).toBe(24);
    expect(counter?.reservedTokens).toBe(0);
    expect((await readItem('reservation#budget-4', 'reservation'))?.state).toBe('settled');
  });

  test('settle takes one round trip', async () => {
    const operations: string[] = [];
    const budgetTableClient = countingLedgerClient(operations);
    const handle = createGatewayHandler({ ...options(config('trips', 10_000)), budgetTableClient });
    const stream = createGatewayStreamHandler({ ...options(config('trips', 10_000)), budgetTableClient });
    bedrock.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));
    const streamedUsage = { inputTokens: 8, outputTokens: 2 };
    bedrock.script(streamResponse(textStreamSteps(['Par', 'is.'], { usage: streamedUsage })));
    const { writable } = createEventSink<GatewayStreamEvent>();

    expectSuccess(await handle(gatewayRequest('trips', { requestId: 'budget-trips-1' })));
    const bufferedTrips = operations.splice(0);
    await stream(gatewayRequest('trips', { requestId: 'budget-trips-2', stream: true }), writable);
    const streamedTrips = operations.splice(0);

    // Each handler reads the agent's suspension and its limit overrides once
    // (both then cached), then one transaction reserves and one settles.
    const trips = ['GetItem', 'BatchGetItem', 'TransactWriteItems', 'TransactWriteItems'];
    expect(bufferedTrips).toEqual(trips);
    expect(streamedTrips).toEqual(trips);
    expect((await readItem('reservation#budget-trips-1', 'reservation'))?.state).toBe('settled');
    expect((await readItem('reservation#budget-trips-2', 'reservation'))?.state).toBe('settled');
    const counter = await readItem('budget#agent#trips', 'day#2026-12-04');
    expect(counter?.spentTokens).toBe(25);
    expect(counter?.reservedTokens).toBe(0);
  });

  test('stream settles after its last event', async () => {
    const sequence: string[] = [];
    const recording = interceptedClient(dynamo.documentClient, (command, send) => {
      if (isReleaseTransaction(command)) {
        sequence.push('settle');
      }
      return send(command);
    });
    const stream = createGatewayStreamHandler({ ...options(config('settle-order', 10_000)), budgetTableClient: recording });
    bedrock.script(streamResponse(textStreamSteps(['Par', 'is.'], { usage: { inputTokens: 8, outputTokens: 2 } })));
    const writable = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          sequence.push(`event:${JSON.parse(line).type}`);
        }
        done();
      },
    });

    await stream(gatewayRequest('settle-order', { requestId: 'budget-order-1', stream: true }), writable);

    expect(sequence.slice(-2)).toEqual(['event:usage', 'settle']);
    expect((await readItem('reservation#budget-order-1', 'reservation'))?.state).toBe('settled');
  });

  test('burst shares one control read', async () => {
    const operations: string[] = [];
    const budgetTableClient = countingLedgerClient(operations);
    const handle = createGatewayHandler({ ...options(config('burst-read', 10_000)), budgetTableClient });
    const calls = 20;
    bedrock.script(...Array.from({ length: calls }, () => textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } })));

    const responses = await Promise.all(
      Array.from({ length: calls }, (_, i) => handle(gatewayRequest('burst-read', { requestId: `budget-burst-${i}` }))),
    );

    responses.forEach((response) => expectSuccess(response));
    expect(operations.filter((operation) => operation === 'GetItem')).toHaveLength(1);
    expect(operations.filter((operation) => operation === 'BatchGetItem')).toHaveLength(1);
  });

  test('suspension read is cached', async () => {
    const operations: string[] = [];
    const budgetTableClient = countingLedgerClient(operations);
    const handle = createGatewayHandler({ ...options(config('cached-read', 10_000)), budgetTableClient });
    bedrock.script(
      textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }),
      textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }),
    );

    expectSuccess(await handle(gatewayRequest('cached-read', { requestId: 'budget-cache-1' })));
    operations.length = 0;
    expectSuccess(await handle(gatewayRequest('cached-read', { requestId: 'budget-cache-2' })));

    // The clock is fixed, so the second call finds the first read still fresh.
    expect(operations).toEqual(['TransactWriteItems', 'TransactWriteItems']);
  });

  test('suspended agent is rejected', async () => {
    const handle = createGatewayHandler(options(config('paused', 10_000)));
    await new SuspensionStore({ client: dynamo.documentClient, table: TABLE }).suspend({
      agent: 'paused',
      reason: 'anomaly',
      suspendedBy: 'alarm:TokenAnomaly',
    });

    const failure = expectFailure(await handle(gatewayRequest('paused', { requestId: 'budget-paused-1' })));

    expect(failure.error.name).toBe('AgentSuspendedError');
    expect(failure.error.suspension).toEqual({ agent: 'paused', reason: 'anomaly' });
    expect(failure.error.message).toContain('Agent paused is suspended (reason: anomaly');
    expect(failure.error.message).toContain('until an operator resumes it');
    expect(bedrock.requests).toHaveLength(0);
    expect(await readItem('reservation#budget-paused-1', 'reservation')).toBeUndefined();
    expect(await readItem('budget#agent#paused', 'day#2026-12-04')).toBeUndefined();
    const rebuilt = errorFromResponse(failure.error, 'budget-paused-1');
    expect(rebuilt).toBeInstanceOf(AgentSuspendedError);
    expect(rebuilt.statusCode).toBe(423);
  });

  test('suspended rejection is counted', async () => {
    const handle = createGatewayHandler(options(config('paused-metric', 10_000)));
    await new SuspensionStore({ client: dynamo.documentClient, table: TABLE }).suspend({
      agent: 'paused-metric',
      reason: 'operator',
      suspendedBy: 'test',
    });

    expectFailure(await handle(gatewayRequest('paused-metric', { requestId: 'budget-paused-2' })));

    const [line] = metricsNamed('SuspendedRejected');
    expect(line.Agent).toBe('paused-metric');
    expect(line.SuspendedRejected).toBe(1);
    expect(line.reason).toBe('operator');
    expect(line._aws.CloudWatchMetrics[0].Dimensions).toEqual([['Agent']]);
  });

  test('blocked output still settles usage', async () => {
    const guarded = {
      ...config('blocked-output', 10_000),
      guardrail: { id: 'loopbackguardrail', version: '1', region: 'us-east-1' },
    };
    const handle = createGatewayHandler(options(guarded));
    bedrock.script({ ...guardrailResponse({ side: 'output' }), usage: { inputTokens: 40, outputTokens: 25 } });

    const failure = expectFailure(await handle(gatewayRequest('blocked-output', { requestId: 'budget-blocked-1' })));

    expect(failure.error.name).toBe('GuardrailBlockedError');
    const record = await readItem('reservation#budget-blocked-1', 'reservation');
    expect(record?.state).toBe('settled');
    expect(record?.actualTokens).toBe(65);
    const counter = await readItem('budget#agent#blocked-output', 'day#2026-12-04');
    expect(counter?.spentTokens).toBe(65);
    expect(counter?.reservedTokens).toBe(0);
  });

  test('failed settle is retried', async () => {
    let failures = 1;
    // The first settle transaction fails as a timeout would, and every other call reaches DynamoDB Local.
    const flaky = interceptedClient(dynamo.documentClient, (command, send) => {
      if (isReleaseTransaction(command) && failures > 0) {
        failures -= 1;
        return Promise.reject(namedError('TimeoutError', 'Simulated timeout'));
      }
      return send(command);
    });
    const handle = createGatewayHandler({ ...options(config('flaky-settle', 10_000)), budgetTableClient: flaky });
    bedrock.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));

    expectSuccess(await handle(gatewayRequest('flaky-settle', { requestId: 'budget-flaky-1' })));

    expect(failures).toBe(0);
    expect((await readItem('reservation#budget-flaky-1', 'reservation'))?.state).toBe('settled');
    expect(metricsNamed('SettleFailed')).toHaveLength(0);
  });

  test('settle that keeps failing is counted', async () => {
    const broken = interceptedClient(dynamo.documentClient, (command, send) =>
      isReleaseTransaction(command) ? Promise.reject(namedError('InternalServerError', 'Simulated outage')) : send(command),
    );
    const logLines: Array<Record<string, any>> = [];
    const handle = createGatewayHandler({
      ...options(config('broken-settle', 10_000)),
      budgetTableClient: broken,
      logger: new Logger({}, { sink: (line) => logLines.push(JSON.parse(line)) }),
    });
    bedrock.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));

    expectSuccess(await handle(gatewayRequest('broken-settle', { requestId: 'budget-broken-1' })));

    const [line] = metricsNamed('SettleFailed');
    expect(line.Agent).toBe('broken-settle');
    expect(line.requestId).toBe('budget-broken-1');
    const logged = logLines.find((entry) => entry.message === 'Settling the budget reservation failed');
    expect(logged?.usage).toMatchObject({ inputTokens: 12, outputTokens: 3 });
    expect(logged?.attempts).toBe(3);
    expect((await readItem('reservation#budget-broken-1', 'reservation'))?.state).toBe('reserved');
  });

  test('suspension lapses at until', async () => {
    let nowMs = NOW;
    const until = NOW + 30_000;
    const handle = createGatewayHandler({ ...options(config('lapsing', 10_000)), now: () => nowMs });
    await new SuspensionStore({ client: dynamo.documentClient, table: TABLE, now: () => NOW }).suspend({
      agent: 'lapsing',
      reason: 'budget-exhausted',
      until,
      suspendedBy: 'kill-switch:schedule',
    });
    bedrock.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));

    const rejected = expectFailure(await handle(gatewayRequest('lapsing', { requestId: 'budget-lapse-1' })));
    nowMs = until;
    const served = await handle(gatewayRequest('lapsing', { requestId: 'budget-lapse-2' }));

    expect(rejected.error.name).toBe('AgentSuspendedError');
    expect(rejected.error.suspension?.until).toBe(new Date(until).toISOString());
    expect(rejected.error.message).toContain(`until ${new Date(until).toISOString()}`);
    expectSuccess(served);
    expect(bedrock.requests).toHaveLength(1);
  });

  test('config without a price is invalid', () => {
    const unpriced = { ...config('x', 10), budget: { ...config('x', 10).budget!, prices: {} } };

    expect(() => validateGatewayConfig(unpriced, 'test')).toThrow(
      `budget.prices has no price for agents.x.route model ${PROFILE}`,
    );
  });
  test('buffered cache tokens reach settle', async () => {
    const handle = createGatewayHandler(options(config('cached', 10_000)));
    const usage = { inputTokens: 10, outputTokens: 5, cacheReadInputTokens: 200, cacheWriteInputTokens: 40 };
    bedrock.script(textResponse('Paris.', { usage }));

    const response = expectSuccess(await handle(gatewayRequest('cached', { requestId: 'budget-5' })));

    expect(response.usage).toEqual({ ...usage, totalTokens: 255 });
    const record = await readItem('reservation#budget-5', 'reservation');
    expect(record?.state).toBe('settled');
    expect(record?.cacheReadTokens).toBe(200);
    expect(record?.cacheWriteTokens).toBe(40);
    expect(record?.actualTokens).toBe(255);
    // 10 × $3 + 5 × $15 + 200 × $0.30 + 40 × $3.75 per million tokens.
    const nanoUsd = 10 * 3_000 + 5 * 15_000 + 200 * 300 + 40 * 3_750;
    expect(record?.actualNanoUsd).toBe(nanoUsd);
    const counter = await readItem('budget#agent#cached', 'day#2026-12-04');
    expect(counter?.spentTokens).toBe(255);
    expect(counter?.spentNanoUsd).toBe(nanoUsd);
  });

  test('streamed cache tokens reach settle', async () => {
    const stream = createGatewayStreamHandler(options(config('cached-chat', 10_000)));
    const usage = { inputTokens: 8, outputTokens: 2, cacheReadInputTokens: 500 };
    bedrock.script(streamResponse(textStreamSteps(['Par', 'is.'], { usage })));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(gatewayRequest('cached-chat', { requestId: 'budget-6', stream: true }), writable);

    const last = collector.events.at(-1);
    expect(last?.type).toBe('usage');
    const streamed = last as Extract<GatewayStreamEvent, { type: 'usage' }>;
    expect(streamed.usage).toEqual({ ...usage, totalTokens: 510, estimated: false });
    const record = await readItem('reservation#budget-6', 'reservation');
    expect(record?.state).toBe('settled');
    expect(record?.cacheReadTokens).toBe(500);
    expect(record?.cacheWriteTokens).toBe(0);
    expect(record?.actualTokens).toBe(510);
    expect(record?.actualNanoUsd).toBe(8 * 3_000 + 2 * 15_000 + 500 * 300);
  });

  test('buffered call writes one EMF line', async () => {
    const handle = createGatewayHandler(options(config('metered', 10_000)));
    const usage = { inputTokens: 12, outputTokens: 3, cacheWriteInputTokens: 100 };
    bedrock.script(textResponse('Paris.', { usage }));

    expectSuccess(await handle(gatewayRequest('metered', { requestId: 'metrics-1' })));

    const line = callMetricLine();
    expect(line.Agent).toBe('metered');
    expect(line.Model).toBe(PROFILE);
    expect(line.Region).toBe('us-east-1');
    expect(line.requestId).toBe('metrics-1');
    expect(line.InputTokens).toBe(12);
    expect(line.OutputTokens).toBe(3);
    expect(line.TotalTokens).toBe(115);
    expect(line.CostUsd).toBeCloseTo((12 * 3 + 3 * 15 + 100 * 3.75) / 1_000_000, 12);
    // The clock is fixed, so the latency is 0 ms.
    expect(line.ModelLatency).toBe(0);
    expect(line.cacheWriteInputTokens).toBe(100);
    expect(line.CacheHit).toBe(0);
    expect(line.PromptCacheReadTokens).toBe(0);
    expect(line.PromptCacheWriteTokens).toBe(100);
    // A call that only writes the cache pays 100 × ($3.75 - $3) per million tokens more than without it.
    expect(line.PromptCacheSavedUsd).toBeCloseTo((100 * (3 - 3.75)) / 1_000_000, 12);
    expect(line._aws.Timestamp).toBe(NOW);
    expect(line._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: 'AgentStack',
        Dimensions: [['Agent', 'Model'], ['Agent']],
        Metrics: [
          { Name: 'InputTokens', Unit: 'Count' },
          { Name: 'OutputTokens', Unit: 'Count' },
          { Name: 'TotalTokens', Unit: 'Count' },
          { Name: 'CostUsd', Unit: 'None' },
        ],
      },
      {
        Namespace: 'AgentStack',
        Dimensions: [['Agent', 'Model', 'Region'], ['Agent']],
        Metrics: [{ Name: 'ModelLatency', Unit: 'Milliseconds' }],
      },
      {
        Namespace: 'AgentStack',
        Dimensions: [['Agent']],
        Metrics: [{ Name: 'CacheHit', Unit: 'Count' }],
      },
      {
        Namespace: 'AgentStack',
        Dimensions: [['Agent', 'Model'], ['Agent']],
        Metrics: [
          { Name: 'PromptCacheReadTokens', Unit: 'Count' },
          { Name: 'PromptCacheWriteTokens', Unit: 'Count' },
          { Name: 'PromptCacheSavedUsd', Unit: 'None' },
        ],
      },
    ]);
  });

  test('streamed call writes one EMF line', async () => {
    const stream = createGatewayStreamHandler(options(config('metered-chat', 10_000)));
    const usage = { inputTokens: 20, outputTokens: 4, cacheReadInputTokens: 1_000 };
    bedrock.script(streamResponse(textStreamSteps(['Paris.'], { usage })));
    const { writable } = createEventSink<GatewayStreamEvent>();

    await stream(gatewayRequest('metered-chat', { requestId: 'metrics-2', stream: true }), writable);

    const line = callMetricLine();
    expect(line.Agent).toBe('metered-chat');
    expect(line.Model).toBe(PROFILE);
    expect(line.Region).toBe('us-east-1');
    expect(line.requestId).toBe('metrics-2');
    expect(line.outcome).toBe('completed');
    expect(line.usageEstimated).toBe(false);
    expect(line.InputTokens).toBe(20);
    expect(line.OutputTokens).toBe(4);
    expect(line.TotalTokens).toBe(1_024);
    expect(line.CostUsd).toBeCloseTo((20 * 3 + 4 * 15 + 1_000 * 0.3) / 1_000_000, 12);
    expect(line.ModelLatency).toBe(0);
    expect(line.cacheReadInputTokens).toBe(1_000);
    const groups = line._aws.CloudWatchMetrics;
    expect(line.CacheHit).toBe(0);
    expect(line.PromptCacheReadTokens).toBe(1_000);
    expect(line.PromptCacheWriteTokens).toBe(0);
    expect(line.PromptCacheSavedUsd).toBeCloseTo((1_000 * (3 - 0.3)) / 1_000_000, 12);
    expect(groups.map((group: any) => group.Namespace)).toEqual(['AgentStack', 'AgentStack', 'AgentStack', 'AgentStack']);
    expect(groups.map((group: any) => group.Dimensions)).toEqual([
      [['Agent', 'Model'], ['Agent']],
      [['Agent', 'Model', 'Region'], ['Agent']],
      [['Agent']],
      [['Agent', 'Model'], ['Agent']],
    ]);
    expect(groups[0].Metrics).toContainEqual({ Name: 'CostUsd', Unit: 'None' });
    expect(groups[1].Metrics).toEqual([{ Name: 'ModelLatency', Unit: 'Milliseconds' }]);
    expect(groups[2].Metrics).toEqual([{ Name: 'CacheHit', Unit: 'Count' }]);
  });

  test('no CostUsd without a price', async () => {
    const { budget: _budget, ...unbudgeted } = config('free', 10_000);
    const handle = createGatewayHandler(options(unbudgeted));
    const stream = createGatewayStreamHandler(options(unbudgeted));
    bedrock.script(
      textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }),
      textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }),
    );

    expectSuccess(await handle(gatewayRequest('free', { requestId: 'metrics-3' })));
    const { writable } = createEventSink<GatewayStreamEvent>();
    await stream(gatewayRequest('free', { requestId: 'metrics-4', stream: true }), writable);

    const lines = metricsNamed('ModelLatency');
    expect(lines.map((line) => line.requestId)).toEqual(['metrics-3', 'metrics-4']);
    for (const line of lines) {
      expect(line.TotalTokens).toBe(15);
      expect(line).not.toHaveProperty('CostUsd');
      const names = line._aws.CloudWatchMetrics[0].Metrics.map((metric: any) => metric.Name);
      expect(names).toEqual(['InputTokens', 'OutputTokens', 'TotalTokens']);
    }
    expect(metricsNamed('CostUsd')).toHaveLength(0);
  });
});
