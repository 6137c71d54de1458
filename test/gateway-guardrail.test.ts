/**
 * The guardrail on calls across regions. us-east-1 is the guardrail's region
 * and the primary target, us-west-2 the failover target. Each region is its
 * own loopback Bedrock server, called through the real SDK.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { createBedrockClient } from '../lambda/gateway';
import { createGatewayStreamHandler } from '../lambda/gateway/stream/handler';
import type { GatewayRuntimeConfig, GatewayStreamEvent } from '../lambda/shared/contracts';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import { guardrailBlocked, guardrailMasked, guardrailPassed } from './support/bedrock-guardrail';
import { errorResponse, textResponse, type RecordedRequest } from './support/bedrock-server';
import {
  RegionalGateways,
  TEST_CREDENTIALS,
  expectFailure,
  expectSuccess,
  gatewayRequest,
  metricsNamed,
  startRegionServers,
  type RegionServers,
} from './support/failover-harness';
import { createEventSink } from './support/ndjson';

const EAST = 'us-east-1';
const WEST = 'us-west-2';
const EAST_MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const WEST_MODEL = 'us.amazon.nova-pro-v1:0';
const GUARDRAIL = { id: 'gr1234abcd', version: '3', region: EAST };
const QUESTION = 'What is the capital of France?';

const CONFIG: GatewayRuntimeConfig = {
  agents: {
    support: {
      route: [
        { region: EAST, modelId: EAST_MODEL },
        { region: WEST, modelId: WEST_MODEL },
      ],
      maxTokensPerCall: 512,
    },
    local: { route: [{ region: EAST, modelId: EAST_MODEL }], maxTokensPerCall: 512 },
  },
  client: { connectTimeoutMs: 200, firstByteTimeoutMs: 1_000, attemptTimeoutMs: 1_000, sdkMaxAttempts: 1 },
  guardrail: GUARDRAIL,
};

const throttled = () => errorResponse(429, 'ThrottlingException', { message: 'Too many tokens.' });

let servers: RegionServers;
let gateways: RegionalGateways;
const streamClients: BedrockRuntimeClient[] = [];

beforeAll(async () => {
  servers = await startRegionServers([EAST, WEST]);
  gateways = new RegionalGateways(servers);
});

afterAll(async () => {
  gateways.destroy();
  streamClients.forEach((client) => client.destroy());
  await Promise.all(Object.values(servers).map((server) => server.close()));
});

beforeEach(() => {
  for (const server of Object.values(servers)) {
    server.reset();
  }
});

function operations(requests: readonly RecordedRequest[]): Array<string | undefined> {
  return requests.map((request) => request.operation);
}

function body(request: RecordedRequest): Record<string, any> {
  return request.body as Record<string, any>;
}

describe('buffered call across regions', () => {
  test('failover applies guardrail separately', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(throttled(), guardrailPassed(), guardrailPassed());
    servers[WEST].script(textResponse('Paris.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.target).toEqual({ region: WEST, modelId: WEST_MODEL });
    expect(response.output.content).toEqual([{ text: 'Paris.' }]);
    expect(body(servers[EAST].requests[0]).guardrailConfig).toMatchObject({ guardrailIdentifier: 'gr1234abcd' });
    expect(operations(servers[WEST].requests)).toEqual(['converse']);
    expect(body(servers[WEST].requests[0]).guardrailConfig).toBeUndefined();
    const [, input, output] = servers[EAST].requests;
    expect(operations(servers[EAST].requests)).toEqual(['converse', 'apply-guardrail', 'apply-guardrail']);
    expect(input.guardrailId).toBe('gr1234abcd');
    expect(input.guardrailVersion).toBe('3');
    expect(input.region).toBe(EAST);
    expect(body(input)).toEqual({ source: 'INPUT', content: [{ text: { text: QUESTION } }] });
    expect(body(output)).toEqual({ source: 'OUTPUT', content: [{ text: { text: 'Paris.' } }] });
  });

  test('input block stops before model', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(throttled(), guardrailBlocked('PROMPT_ATTACK'));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('GuardrailBlockedError');
    expect(failure.error.layer).toBe('guardrail input');
    expect(failure.error.policy).toBe('contentPolicy PROMPT_ATTACK');
    expect(failure.error.message).toContain('Guardrail gr1234abcd version 3');
    expect(servers[WEST].requests).toHaveLength(0);
    expect(servers[EAST].pending()).toBe(0);
  });

  test('output block after remote call', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(throttled(), guardrailPassed(), guardrailBlocked('VIOLENCE'));
    servers[WEST].script(textResponse('A violent answer.'));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('GuardrailBlockedError');
    expect(failure.error.layer).toBe('guardrail output');
    expect(failure.error.policy).toBe('contentPolicy VIOLENCE');
    expect(failure.error.message).not.toContain('A violent answer');
    expect(operations(servers[WEST].requests)).toEqual(['converse']);
  });

  test('masked output replaces text', async () => {
    const gateway = gateways.create({ config: CONFIG });
    const masked = guardrailMasked('CREDIT_DEBIT_CARD_NUMBER', ['Card {CREDIT_DEBIT_CARD_NUMBER}.']);
    servers[EAST].script(throttled(), guardrailPassed(), masked);
    servers[WEST].script(textResponse('Card 4111 1111 1111 1111.'));

    const response = expectSuccess(await gateway.handle(gatewayRequest('support')));

    expect(response.output.content).toEqual([{ text: 'Card {CREDIT_DEBIT_CARD_NUMBER}.' }]);
  });

  test('masked input reaches model', async () => {
    const gateway = gateways.create({ config: CONFIG });
    const masked = guardrailMasked('EMAIL', ['Write to {EMAIL}.']);
    servers[EAST].script(throttled(), masked, guardrailPassed());
    servers[WEST].script(textResponse('Done.'));
    const messages = [{ role: 'user', content: [{ text: 'Write to jane@example.com.' }] }];

    expectSuccess(await gateway.handle(gatewayRequest('support', { messages })));

    const sent = body(servers[WEST].requests[0]).messages;
    expect(sent).toEqual([{ role: 'user', content: [{ text: 'Write to {EMAIL}.' }] }]);
  });

  test('apply failure ends call', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(throttled(), errorResponse(403, 'AccessDeniedException'));

    const failure = expectFailure(await gateway.handle(gatewayRequest('support')));

    expect(failure.error.name).toBe('ModelCallError');
    expect(failure.error.errorCode).toBe('GuardrailCheckFailed');
    expect(failure.error.message).toContain('ApplyGuardrail with guardrail gr1234abcd');
    expect(servers[WEST].requests).toHaveLength(0);
  });

  test('same region keeps guardrail config', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(textResponse('Paris.'));

    expectSuccess(await gateway.handle(gatewayRequest('local')));

    expect(operations(servers[EAST].requests)).toEqual(['converse']);
    expect(body(servers[EAST].requests[0]).guardrailConfig).toEqual({
      guardrailIdentifier: 'gr1234abcd',
      guardrailVersion: '3',
      trace: 'enabled',
    });
  });
});

describe('outcome metric', () => {
  test('counts a success', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(textResponse('Paris.'));

    expectSuccess(await gateway.handle(gatewayRequest('local')));

    const lines = metricsNamed(gateway.metricLines(), 'ModelCalls');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ Agent: 'local', Outcome: 'success', ModelCalls: 1 });
    expect(lines[0].requestId).toBe('req-failover-1');
    expect(lines[0]._aws.CloudWatchMetrics[0].Dimensions).toEqual([['Agent', 'Outcome']]);
    expect(lines[0]._aws.CloudWatchMetrics[0].Metrics).toEqual([{ Name: 'ModelCalls', Unit: 'Count' }]);
  });

  test('counts an error by name', async () => {
    const gateway = gateways.create({ config: CONFIG });
    servers[EAST].script(throttled(), guardrailBlocked('PROMPT_ATTACK'));

    expectFailure(await gateway.handle(gatewayRequest('support')));

    const lines = metricsNamed(gateway.metricLines(), 'ModelCalls');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ Agent: 'support', Outcome: 'GuardrailBlockedError' });
  });

  test('unknown agent counted as unknown', async () => {
    const gateway = gateways.create({ config: CONFIG });

    expectFailure(await gateway.handle(gatewayRequest('no-such-agent')));

    const lines = metricsNamed(gateway.metricLines(), 'ModelCalls');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ Agent: 'unknown', Outcome: 'InvalidRequestError' });
  });
});

describe('streamed call across regions', () => {
  const metricLines: string[] = [];
  const stream = createGatewayStreamHandler({
    config: CONFIG,
    logger: new Logger({}, { level: 'error', sink: () => undefined }),
    metrics: new MetricsWriter({ sink: (line) => metricLines.push(line) }),
    recordUsage: () => undefined,
    clientForRegion: (region, settings) => {
      const endpoint = servers[region].endpoint;
      const client = createBedrockClient(region, { settings, endpoint, credentials: TEST_CREDENTIALS });
      streamClients.push(client);
      return client;
    },
  });

  async function run(): Promise<GatewayStreamEvent[]> {
    const { writable, collector } = createEventSink<GatewayStreamEvent>();
    await stream({ ...gatewayRequest('support'), stream: true }, writable);
    return collector.events;
  }

  function outcomes(): unknown[] {
    const lines = metricsNamed(metricLines.splice(0).map((line) => JSON.parse(line)), 'ModelCalls');
    return lines.map((line) => line.Outcome);
  }

  test('failover streams without guardrail config', async () => {
    servers[EAST].script(throttled(), guardrailPassed(), guardrailPassed());
    servers[WEST].script(textResponse('Paris is the capital.'));

    const events = await run();

    expect(events[0]).toMatchObject({ type: 'start', target: { region: WEST } });
    expect(events.at(-1)?.type).toBe('usage');
    expect(operations(servers[WEST].requests)).toEqual(['converse-stream']);
    expect(body(servers[WEST].requests[0]).guardrailConfig).toBeUndefined();
    expect(body(servers[EAST].requests[2])).toEqual({
      source: 'OUTPUT',
      content: [{ text: { text: 'Paris is the capital.' } }],
    });
    expect(outcomes()).toEqual(['success']);
  });

  test('input block sends only error', async () => {
    servers[EAST].script(throttled(), guardrailBlocked('PROMPT_ATTACK'));

    const events = await run();

    expect(events.map((event) => event.type)).toEqual(['error']);
    expect(events[0]).toMatchObject({ error: { name: 'GuardrailBlockedError', layer: 'guardrail input' } });
    expect(servers[WEST].requests).toHaveLength(0);
    expect(outcomes()).toEqual(['GuardrailBlockedError']);
  });

  test('output block ends with error', async () => {
    servers[EAST].script(throttled(), guardrailPassed(), guardrailBlocked('VIOLENCE'));
    servers[WEST].script(textResponse('A violent answer.'));

    const events = await run();

    expect(events[0].type).toBe('start');
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      error: { name: 'GuardrailBlockedError', layer: 'guardrail output', policy: 'contentPolicy VIOLENCE' },
    });
    expect(events.some((event) => event.type === 'usage')).toBe(false);
    expect(outcomes()).toEqual(['GuardrailBlockedError']);
  });
});
