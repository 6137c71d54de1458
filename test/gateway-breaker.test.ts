/**
 * Circuit breakers shared through a breaker state table in DynamoDB Local,
 * with each region a loopback Bedrock server called through the real SDK.
 * A second handler loaded in its own module registry shares nothing with
 * the first but the table.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import {
  CircuitBreaker,
  DynamoBreakerStore,
  breakerKey,
} from '../lambda/gateway';
import type { GatewayRuntimeConfig, ModelTarget } from '../lambda/shared/contracts';
import { errorResponse, textResponse } from './support/bedrock-server';
import {
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  createPartitionKeyTable,
  freePort,
  startDynamoDbLocal,
  type DynamoDbLocal,
} from './support/dynamodb-local';
import {
  RegionalGateways,
  expectSuccess,
  gatewayRequest,
  loadIsolatedGatewayModules,
  metricsNamed,
  startRegionServers,
  type RegionServers,
} from './support/failover-harness';

const EAST = 'us-east-1';
const WEST = 'us-west-2';
const STATE_TABLE = 'gateway-state';
const FALLBACK_MODEL = 'us.amazon.nova-pro-v1:0';

let dynamo: DynamoDbLocal;
let servers: RegionServers;
let gateways: RegionalGateways;
const extraClients: DynamoDBClient[] = [];

beforeAll(async () => {
  dynamo = await startDynamoDbLocal();
  await createPartitionKeyTable(dynamo.client, STATE_TABLE);
  servers = await startRegionServers([EAST, WEST]);
  gateways = new RegionalGateways(servers);
});

afterAll(async () => {
  gateways?.destroy();
  extraClients.forEach((client) => client.destroy());
  await Promise.all(Object.values(servers ?? {}).map((server) => server.close()));
  await dynamo?.stop();
});

beforeEach(() => {
  for (const server of Object.values(servers)) {
    server.reset();
  }
});

let modelCounter = 0;

/** Returns a primary model id no other test uses, so that breaker records do not collide. */
function uniqueModel(): string {
  modelCounter += 1;
  return `us.loopback.model-${modelCounter}-v1:0`;
}

function configFor(
  primaryModel: string,
  breaker: GatewayRuntimeConfig['breaker'],
): GatewayRuntimeConfig {
  return {
    agents: {
      support: {
        route: [
          { region: EAST, modelId: primaryModel },
          { region: WEST, modelId: FALLBACK_MODEL },
        ],
        maxTokensPerCall: 512,
      },
    },
    client: {
      connectTimeoutMs: 200,
      firstByteTimeoutMs: 500,
      attemptTimeoutMs: 500,
      sdkMaxAttempts: 1,
    },
    breaker,
    stateTable: STATE_TABLE,
  };
}

async function readItem(target: ModelTarget): Promise<Record<string, any> | undefined> {
  const result = await dynamo.documentClient.send(
    new GetCommand({
      TableName: STATE_TABLE,
      Key: { pk: breakerKey(target) },
      ConsistentRead: true,
    }),
  );
  return result.Item;
}

/** Creates a document client for DynamoDB Local from the given SDK modules. */
function documentClient(
  dynamoModule: typeof import('@aws-sdk/client-dynamodb'),
  libModule: typeof import('@aws-sdk/lib-dynamodb'),
  endpoint = dynamo.endpoint,
): DynamoDBDocumentClient {
  const client = new dynamoModule.DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  extraClients.push(client);
  return libModule.DynamoDBDocumentClient.from(client);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('breaker across instances', () => {
  test('opens after threshold and skips target', async () => {
    const model = uniqueModel();
    const primary = { region: EAST, modelId: model };
    const config = configFor(model, { failureThreshold: 2, cooldownSeconds: 60, cacheTtlMs: 0 });
    const gateway = gateways.create({ config, stateTableClient: dynamo.documentClient });
    servers[EAST].script(errorResponse(503, 'ServiceUnavailableException'));
    servers[EAST].script(errorResponse(503, 'ServiceUnavailableException'));
    servers[WEST].script(textResponse('one'), textResponse('two'), textResponse('three'));

    expectSuccess(await gateway.handle(gatewayRequest('support', { requestId: 'req-1' })));
    expect((await readItem(primary))?.failures).toBe(1);
    expectSuccess(await gateway.handle(gatewayRequest('support', { requestId: 'req-2' })));
    const response = expectSuccess(
      await gateway.handle(gatewayRequest('support', { requestId: 'req-3' })),
    );

    expect(response.target.region).toBe(WEST);
    expect(servers[EAST].requests).toHaveLength(2);
    const item = await readItem(primary);
    expect(item?.state).toBe('open');
    expect(item?.failures).toBe(2);
    expect(item?.openUntil).toBeGreaterThan(Date.now() + 50_000);
    expect(item?.expiresAt).toBeGreaterThan(Date.now() / 1000);
    const opened = metricsNamed(gateway.metricLines(), 'BreakerOpened');
    expect(opened).toHaveLength(1);
    expect(opened[0]).toMatchObject({ Agent: 'support', Region: EAST, requestId: 'req-2' });
    const skipped = gateway.logs().find((line) => line.message === 'Model target skipped');
    expect(skipped?.requestId).toBe('req-3');
    expect(skipped?.cause).toMatch(/^skipped: breaker open until \d{4}-/);
  });

  test('second instance skips then probes closed', async () => {
    const model = uniqueModel();
    const primary = { region: EAST, modelId: model };
    const config = configFor(model, { failureThreshold: 2, cooldownSeconds: 0.5, cacheTtlMs: 0 });
    const first = gateways.create({ config, stateTableClient: dynamo.documentClient });
    const isolated = loadIsolatedGatewayModules();
    let isolatedTable: DynamoDBDocumentClient | undefined;
    jest.isolateModules(() => {
      isolatedTable = documentClient(
        require('@aws-sdk/client-dynamodb'),
        require('@aws-sdk/lib-dynamodb'),
      );
    });
    const second = gateways.create({ config, stateTableClient: isolatedTable, modules: isolated });
    servers[EAST].script(
      errorResponse(503, 'ServiceUnavailableException'),
      errorResponse(503, 'ServiceUnavailableException'),
    );
    servers[WEST].script(textResponse('a'), textResponse('b'), textResponse('c'));
    expectSuccess(await first.handle(gatewayRequest('support', { requestId: 'open-1' })));
    expectSuccess(await first.handle(gatewayRequest('support', { requestId: 'open-2' })));

    const skippedResponse = expectSuccess(
      await second.handle(gatewayRequest('support', { requestId: 'skip-1' })),
    );
    expect(skippedResponse.target.region).toBe(WEST);
    expect(servers[EAST].requests).toHaveLength(2);

    await sleep(600);
    servers[EAST].script(textResponse('probe'), textResponse('after'));
    const probed = expectSuccess(
      await second.handle(gatewayRequest('support', { requestId: 'probe-1' })),
    );
    expect(probed.target.region).toBe(EAST);
    expect(servers[EAST].requests).toHaveLength(3);
    const item = await readItem(primary);
    expect(item?.state).toBe('closed');
    expect(item?.failures).toBe(0);
    const closed = metricsNamed(second.metricLines(), 'BreakerClosed');
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ Agent: 'support', Region: EAST, requestId: 'probe-1' });

    const after = expectSuccess(
      await first.handle(gatewayRequest('support', { requestId: 'after-1' })),
    );
    expect(after.target.region).toBe(EAST);
    expect(servers[EAST].requests).toHaveLength(4);
  });

  test('failed probe opens breaker again', async () => {
    const model = uniqueModel();
    const config = configFor(model, { failureThreshold: 1, cooldownSeconds: 0.3, cacheTtlMs: 0 });
    const gateway = gateways.create({ config, stateTableClient: dynamo.documentClient });
    servers[EAST].script(
      errorResponse(503, 'ServiceUnavailableException'),
      errorResponse(500, 'InternalServerException'),
    );
    servers[WEST].script(textResponse('a'), textResponse('b'), textResponse('c'));

    expectSuccess(await gateway.handle(gatewayRequest('support', { requestId: 'r1' })));
    await sleep(400);
    expectSuccess(await gateway.handle(gatewayRequest('support', { requestId: 'r2' })));
    expectSuccess(await gateway.handle(gatewayRequest('support', { requestId: 'r3' })));

    expect(servers[EAST].requests).toHaveLength(2);
    const opened = metricsNamed(gateway.metricLines(), 'BreakerOpened');
    expect(opened.map((line) => line.requestId)).toEqual(['r1', 'r2']);
    const item = await readItem({ region: EAST, modelId: model });
    expect(item?.state).toBe('open');
  });
});

describe('breaker probe claims', () => {
  test('concurrent probes claim once', async () => {
    const target = { region: EAST, modelId: uniqueModel() };
    const now = Date.now();
    await dynamo.documentClient.send(
      new PutCommand({
        TableName: STATE_TABLE,
        Item: {
          pk: breakerKey(target),
          state: 'open',
          failures: 3,
          openUntil: now - 1_000,
          expiresAt: Math.ceil(now / 1000) + 600,
        },
      }),
    );
    const breakers = Array.from({ length: 6 }, () => {
      const store = new DynamoBreakerStore(
        documentClient(require('@aws-sdk/client-dynamodb'), require('@aws-sdk/lib-dynamodb')),
        STATE_TABLE,
      );
      const settings = { failureThreshold: 3, cooldownSeconds: 30, cacheTtlMs: 0 };
      return new CircuitBreaker({ settings, sharedStore: store, probeLeaseMs: 5_000 });
    });

    const decisions = await Promise.all(breakers.map((breaker) => breaker.acquire(target)));

    expect(decisions.filter((decision) => decision.probe)).toHaveLength(1);
    const skipped = decisions.filter((decision) => !decision.allowed);
    expect(skipped).toHaveLength(breakers.length - 1);
    for (const decision of skipped) {
      expect(decision.skipReason).toMatch(/probing it until|claimed the probe first/);
    }
    expect((await readItem(target))?.state).toBe('half-open');
  });

  test('concurrent requests send one probe', async () => {
    const model = uniqueModel();
    const config = configFor(model, { failureThreshold: 1, cooldownSeconds: 0.2, cacheTtlMs: 0 });
    const first = gateways.create({ config, stateTableClient: dynamo.documentClient });
    const second = gateways.create({
      config,
      stateTableClient: dynamo.documentClient,
      modules: loadIsolatedGatewayModules(),
    });
    servers[EAST].script(errorResponse(503, 'ServiceUnavailableException'));
    servers[WEST].script(textResponse('a'), textResponse('b'));
    expectSuccess(await first.handle(gatewayRequest('support', { requestId: 'open' })));
    await sleep(300);
    servers[EAST].script(textResponse('probe', { delayMs: 200 }));
    servers[WEST].script(textResponse('c'));

    const responses = await Promise.all([
      first.handle(gatewayRequest('support', { requestId: 'p1' })),
      second.handle(gatewayRequest('support', { requestId: 'p2' })),
    ]);

    const regions = responses.map((response) => expectSuccess(response).target.region).sort();
    expect(regions).toEqual([EAST, WEST]);
    expect(servers[EAST].requests).toHaveLength(2);
  });
});

describe('breaker state records', () => {
  test('ignores expired open record', async () => {
    const model = uniqueModel();
    const now = Date.now();
    await dynamo.documentClient.send(
      new PutCommand({
        TableName: STATE_TABLE,
        Item: {
          pk: breakerKey({ region: EAST, modelId: model }),
          state: 'open',
          failures: 5,
          openUntil: now + 3_600_000,
          expiresAt: Math.floor(now / 1000) - 10,
        },
      }),
    );
    const config = configFor(model, { failureThreshold: 5, cooldownSeconds: 60, cacheTtlMs: 0 });
    const gateway = gateways.create({ config, stateTableClient: dynamo.documentClient });
    servers[EAST].script(textResponse('Paris.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target.region).toBe(EAST);
    expect(servers[WEST].requests).toHaveLength(0);
  });

  test('restarts failure count after expiry', async () => {
    const model = uniqueModel();
    const primary = { region: EAST, modelId: model };
    const now = Date.now();
    await dynamo.documentClient.send(
      new PutCommand({
        TableName: STATE_TABLE,
        Item: {
          pk: breakerKey(primary),
          state: 'closed',
          failures: 4,
          expiresAt: Math.floor(now / 1000) - 1,
        },
      }),
    );
    const config = configFor(model, { failureThreshold: 5, cooldownSeconds: 60, cacheTtlMs: 0 });
    const gateway = gateways.create({ config, stateTableClient: dynamo.documentClient });
    servers[EAST].script(errorResponse(503, 'ServiceUnavailableException'));
    servers[WEST].script(textResponse('Paris.'));

    expectSuccess(await gateway.handle(gatewayRequest('support')));

    const item = await readItem(primary);
    expect(item?.state).toBe('closed');
    expect(item?.failures).toBe(1);
  });

  test('claims probe after lease ends', async () => {
    const model = uniqueModel();
    const primary = { region: EAST, modelId: model };
    const now = Date.now();
    await dynamo.documentClient.send(
      new PutCommand({
        TableName: STATE_TABLE,
        Item: {
          pk: breakerKey(primary),
          state: 'half-open',
          failures: 5,
          openUntil: now - 60_000,
          probeUntil: now - 1_000,
          expiresAt: Math.ceil(now / 1000) + 600,
        },
      }),
    );
    const config = configFor(model, { failureThreshold: 5, cooldownSeconds: 60, cacheTtlMs: 0 });
    const gateway = gateways.create({ config, stateTableClient: dynamo.documentClient });
    servers[EAST].script(textResponse('Paris.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target.region).toBe(EAST);
    expect((await readItem(primary))?.state).toBe('closed');
  });
});

describe('unreachable state table', () => {
  test('serves with in-memory breaker state', async () => {
    const closedEndpoint = `http://127.0.0.1:${await freePort()}`;
    const unreachable = documentClient(
      require('@aws-sdk/client-dynamodb'),
      require('@aws-sdk/lib-dynamodb'),
      closedEndpoint,
    );
    const model = uniqueModel();
    const config = configFor(model, { failureThreshold: 1, cooldownSeconds: 60, cacheTtlMs: 0 });
    const gateway = gateways.create({ config, stateTableClient: unreachable });
    servers[EAST].script(errorResponse(503, 'ServiceUnavailableException'));
    servers[WEST].script(textResponse('one'), textResponse('two'));

    const first = expectSuccess(
      await gateway.handle(gatewayRequest('support', { requestId: 'u1' })),
    );
    const second = expectSuccess(
      await gateway.handle(gatewayRequest('support', { requestId: 'u2' })),
    );

    expect(first.target.region).toBe(WEST);
    expect(second.target.region).toBe(WEST);
    expect(servers[EAST].requests).toHaveLength(1);
    const warnings = gateway
      .logs()
      .filter((line) => line.message.startsWith('Breaker state table failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 'warn', requestId: 'u1', operation: 'read' });
    expect(warnings[0].errorMessage).toContain('ECONNREFUSED');
  });
});
