/**
 * The gateway with a budget: a buffered and a streamed call through the
 * real SDK to a loopback Bedrock server, reserving and settling in a
 * ledger table in DynamoDB Local.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayStreamHandler,
  validateGatewayConfig,
  type GatewayHandlerOptions,
} from '../lambda/gateway';
import type { GatewayRuntimeConfig, GatewayStreamEvent } from '../lambda/shared/contracts';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import { errorResponse, startBedrockServer, textResponse, type BedrockServer } from './support/bedrock-server';
import { streamEvents, streamResponse } from './support/bedrock-stream';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';
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

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
  bedrock = await startBedrockServer();
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  await bedrock?.close();
  await dynamo?.stop();
});

beforeEach(() => bedrock.reset());

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
    metrics: new MetricsWriter({ sink: () => undefined }),
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

async function readItem(pk: string, sk: string): Promise<Record<string, any> | undefined> {
  const { Item } = await dynamo.documentClient.send(
    new GetCommand({ TableName: TABLE, Key: { pk, sk }, ConsistentRead: true }),
  );
  return Item;
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

  test('config without a price is invalid', () => {
    const unpriced = { ...config('x', 10), budget: { ...config('x', 10).budget!, prices: {} } };

    expect(() => validateGatewayConfig(unpriced, 'test')).toThrow(
      `budget.prices has no price for agents.x.route model ${PROFILE}`,
    );
  });
});
