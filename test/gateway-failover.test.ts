/**
 * Failover across targets: each region is its own loopback Bedrock server,
 * called through the real SDK, and the breaker keeps state per instance.
 */
import type { GatewayRuntimeConfig } from '../lambda/shared/contracts';
import {
  errorResponse,
  guardrailResponse,
  textResponse,
} from './support/bedrock-server';
import { freePort } from './support/dynamodb-local';
import {
  RegionalGateways,
  expectFailure,
  expectSuccess,
  gatewayRequest,
  metricsNamed,
  startRegionServers,
  type RegionServers,
} from './support/failover-harness';

const EAST = 'us-east-1';
const WEST = 'us-west-2';
const PRIMARY_MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const SECONDARY_MODEL = 'us.amazon.nova-pro-v1:0';
const ATTEMPT_TIMEOUT_MS = 300;

const CLIENT = {
  connectTimeoutMs: 200,
  firstByteTimeoutMs: 300,
  attemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
  sdkMaxAttempts: 1,
};

const CONFIG: GatewayRuntimeConfig = {
  agents: {
    support: {
      route: [
        { region: EAST, modelId: PRIMARY_MODEL },
        { region: WEST, modelId: SECONDARY_MODEL },
      ],
      maxTokensPerCall: 512,
    },
  },
  client: CLIENT,
};

const throttled = (message: string) => errorResponse(429, 'ThrottlingException', { message });

let servers: RegionServers;
let gateways: RegionalGateways;

beforeAll(async () => {
  servers = await startRegionServers([EAST, WEST]);
  gateways = new RegionalGateways(servers);
});

afterAll(async () => {
  gateways.destroy();
  await Promise.all(Object.values(servers).map((server) => server.close()));
});

beforeEach(() => {
  for (const server of Object.values(servers)) {
    server.reset();
  }
});

describe('failover to next target', () => {
  test('throttling moves to next target', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(throttled('Too many tokens.'));
    servers[WEST].script(textResponse('Paris.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target).toEqual({ region: WEST, modelId: SECONDARY_MODEL });
    expect(response.output.content).toEqual([{ text: 'Paris.' }]);
    expect(servers[EAST].requests).toHaveLength(1);
    expect(servers[WEST].requests).toHaveLength(1);
    expect(servers[WEST].requests[0].modelId).toBe(SECONDARY_MODEL);
  });

  test('server error moves to next target', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(errorResponse(500, 'InternalServerException'));
    servers[WEST].script(textResponse('Paris.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target.region).toBe(WEST);
    expect(servers[EAST].requests).toHaveLength(1);
  });

  test('model not ready moves to next target', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(errorResponse(429, 'ModelNotReadyException'));
    servers[WEST].script(textResponse('Paris.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target.region).toBe(WEST);
  });

  test('hang past attempt timeout moves on', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(textResponse('Too late.', { delayMs: 5_000 }));
    servers[WEST].script(textResponse('Paris.'));
    const startedAt = Date.now();

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target.region).toBe(WEST);
    const elapsedMs = Date.now() - startedAt;
    expect(elapsedMs).toBeGreaterThanOrEqual(ATTEMPT_TIMEOUT_MS - 20);
    expect(elapsedMs).toBeLessThan(2_000);
    const failed = gateway.logs().find((line) => line.message === 'Model target failed');
    expect(failed?.cause).toContain(`attempt timeout of ${ATTEMPT_TIMEOUT_MS} ms`);
    expect(failed?.kind).toBe('timeout');
  });

  test('first-byte timeout spares buffered calls', async () => {
    const client = { ...CLIENT, firstByteTimeoutMs: 100, attemptTimeoutMs: 2_000 };
    const gateway = gateways.create({ config: { ...CONFIG, client } });
    servers[EAST].script(textResponse('Paris.', { delayMs: 400 }));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target.region).toBe(EAST);
    expect(servers[WEST].requests).toHaveLength(0);
  });

  test('refused connection moves on', async () => {
    const closedEndpoint = `http://127.0.0.1:${await freePort()}`;
    const gateway = gateways.create({ config: CONFIG, endpoints: { [EAST]: closedEndpoint } });
    servers[WEST].script(textResponse('Paris.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target.region).toBe(WEST);
    const failed = gateway.logs().find((line) => line.message === 'Model target failed');
    expect(failed?.kind).toBe('connection');
    expect(failed?.cause).toContain('ECONNREFUSED');
  });
});

describe('errors that do not fail over', () => {
  test.each<[string, number, string, string, string]>([
    ['access denied', 403, 'AccessDeniedException', 'ModelCallError', 'bedrock:InvokeModel'],
    ['validation error', 400, 'ValidationException', 'InvalidRequestError', 'Fix the request'],
    ['missing model', 404, 'ResourceNotFoundException', 'ModelCallError', 'Check the model id'],
  ])('%s ends the request', async (_case, status, errorType, name, fix) => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(errorResponse(status, errorType, { message: `Scripted ${errorType}.` }));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe(name);
    expect(failure.error.message).toContain(`Scripted ${errorType}.`);
    expect(failure.error.message).toContain(fix);
    expect(failure.error.message).toContain(PRIMARY_MODEL);
    expect(failure.requestId).toBe('req-failover-1');
    expect(servers[EAST].requests).toHaveLength(1);
    expect(servers[WEST].requests).toHaveLength(0);
  });

  test('service control policy deny names the policy', async () => {
    const gateway = gateways.create({ config: CONFIG });
    const message =
      'User: arn:aws:sts::123456789012:assumed-role/gateway/fn is not authorized to perform: ' +
      'bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/m with an ' +
      'explicit deny in a service control policy: arn:aws:organizations::1:policy/o-1/p-1';
    servers[EAST].script(errorResponse(403, 'AccessDeniedException', { message }));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.errorCode).toBe('AccessDeniedException');
    expect(failure.error.message).toContain('service control policy of the AWS organization');
    expect(failure.error.message).toContain("organization's administrator");
    expect(servers[WEST].requests).toHaveLength(0);
  });

  test.each([
    [EAST, 'us.'],
    ['eu-central-1', 'eu.'],
    ['ap-southeast-2', 'apac.'],
  ])('plain model id in %s names %s profile', async (region, prefix) => {
    const modelId = 'anthropic.claude-3-7-sonnet-20250219-v1:0';
    const config: GatewayRuntimeConfig = {
      agents: {
        support: {
          route: [
            { region, modelId },
            { region: WEST, modelId: SECONDARY_MODEL },
          ],
          maxTokensPerCall: 512,
        },
      },
      client: CLIENT,
    };
    const gateway = gateways.create({ config, endpoints: { [region]: servers[EAST].endpoint } });
    const message =
      `Invocation of model ID ${modelId} with on-demand throughput isn\u2019t supported. Retry ` +
      'your request with the ID or ARN of an inference profile that contains this model.';
    servers[EAST].script(errorResponse(400, 'ValidationException', { message }));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('ModelCallError');
    expect(failure.error.errorCode).toBe('ValidationException');
    expect(failure.error.message).toContain(`inference profile id ${prefix}${modelId}`);
    expect(servers[WEST].requests).toHaveLength(0);
  });
});

describe('every target failing', () => {
  test('lists each target with its cause', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(errorResponse(503, 'ServiceUnavailableException', { message: 'Down.' }));
    servers[WEST].script(errorResponse(429, 'ThrottlingException', { message: 'Slow down.' }));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('AllTargetsFailedError');
    expect(failure.error.errorCode).toBe('ThrottlingException');
    expect(failure.error.failures).toEqual([
      { region: EAST, modelId: PRIMARY_MODEL, cause: 'ServiceUnavailableException: Down.' },
      { region: WEST, modelId: SECONDARY_MODEL, cause: 'ThrottlingException: Slow down.' },
    ]);
    expect(failure.error.message).toContain(`${PRIMARY_MODEL} in ${EAST}`);
    expect(failure.error.message).toContain(`${SECONDARY_MODEL} in ${WEST}`);
    const outcome = gateway.logs().find((line) => line.message === 'Gateway request failed');
    expect(outcome?.outcome).toBe('AllTargetsFailedError');
    expect(outcome?.failures).toHaveLength(2);
  });

  test('request deadline ends the loop', async () => {
    const client = { ...CLIENT, attemptTimeoutMs: 2_000, requestDeadlineMs: 200 };
    const config = { ...CONFIG, client };
    const gateway = gateways.create({ config });
    servers[EAST].script(textResponse('Too late.', { delayMs: 5_000 }));
    const startedAt = Date.now();

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('TimeoutError');
    expect(failure.error.message).toContain(`while calling ${PRIMARY_MODEL} in ${EAST}`);
    expect(Date.now() - startedAt).toBeLessThan(1_500);
    expect(servers[WEST].requests).toHaveLength(0);
  });
});

describe('guardrail on Converse', () => {
  const guardedConfig: GatewayRuntimeConfig = {
    ...CONFIG,
    guardrail: { id: 'gr1234abcd', version: '3', region: EAST },
  };

  test('sends guardrail config with trace', async () => {
    const gateway = gateways.create({ config: guardedConfig });
    servers[EAST].script(textResponse('Paris.'));

    expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect((servers[EAST].requests[0].body as any).guardrailConfig).toEqual({
      guardrailIdentifier: 'gr1234abcd',
      guardrailVersion: '3',
      trace: 'enabled',
    });
  });

  test('input block raises GuardrailBlockedError', async () => {
    const gateway = gateways.create({ config: guardedConfig });
    servers[EAST].script(guardrailResponse({ side: 'input', guardrailId: 'gr1234abcd' }));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('GuardrailBlockedError');
    expect(failure.error.layer).toBe('guardrail input');
    expect(failure.error.policy).toBe('contentPolicy PROMPT_ATTACK');
    expect(failure.error.message).toContain('Guardrail gr1234abcd version 3');
    expect(failure.error.message).not.toContain('capital of France');
    expect(servers[WEST].requests).toHaveLength(0);
  });

  test('output block reports output layer', async () => {
    const gateway = gateways.create({ config: guardedConfig });
    const assessment = {
      topicPolicy: { topics: [{ name: 'Investment advice', type: 'DENY', action: 'BLOCKED' }] },
    };
    servers[EAST].script(guardrailResponse({ side: 'output', assessment }));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('GuardrailBlockedError');
    expect(failure.error.layer).toBe('guardrail output');
    expect(failure.error.policy).toBe('topicPolicy Investment advice');
    expect(servers[WEST].requests).toHaveLength(0);
  });
});

describe('failover telemetry', () => {
  test('logs failover with request ids', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(throttled('Too many tokens.'));
    servers[WEST].script(textResponse('Paris.'));

    expectSuccess(await gateway.handle(gatewayRequest('support')));

    const failed = gateway.logs().find((line) => line.message === 'Model target failed');
    expect(failed).toMatchObject({
      level: 'warn',
      requestId: 'req-failover-1',
      agent: 'support',
      user: 'user-7',
      target: { region: EAST, modelId: PRIMARY_MODEL },
      cause: 'ThrottlingException: Too many tokens.',
      kind: 'throttled',
      nextTarget: { region: WEST, modelId: SECONDARY_MODEL },
    });
  });

  test('emits Failover and Throttled as EMF', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(errorResponse(429, 'ThrottlingException'));
    servers[WEST].script(textResponse('Paris.'));

    expectSuccess(await gateway.handle(gatewayRequest('support')));

    const lines = gateway.metricLines();
    for (const name of ['Failover', 'Throttled']) {
      const [line, ...others] = metricsNamed(lines, name);
      expect(others).toHaveLength(0);
      expect(line[name]).toBe(1);
      expect(line.Agent).toBe('support');
      expect(line.Region).toBe(EAST);
      expect(line.requestId).toBe('req-failover-1');
      expect(typeof line._aws.Timestamp).toBe('number');
      expect(line._aws.CloudWatchMetrics).toEqual([
        {
          Namespace: 'AgentStack',
          Dimensions: [['Agent', 'Region'], ['Agent']],
          Metrics: [{ Name: name, Unit: 'Count' }],
        },
      ]);
    }
  });

  test('counts no failover after last target', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(errorResponse(503, 'ServiceUnavailableException'));
    servers[WEST].script(errorResponse(503, 'ServiceUnavailableException'));

    expectFailure(await gateway.handle(gatewayRequest('support')));

    const failovers = metricsNamed(gateway.metricLines(), 'Failover');
    expect(failovers.map((line) => line.Region)).toEqual([EAST]);
  });
});
