import {
  AccessDeniedException,
  BedrockRuntimeClient,
  ConverseCommand,
  ServiceUnavailableException,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  DEFAULT_SDK_MAX_ATTEMPTS,
  RESPONSE_MARGIN_MS,
  createBedrockClient,
  createGatewayHandler,
  handler as defaultHandler,
  loadGatewayConfigFromEnv,
  type GatewayHandler,
} from '../lambda/gateway';
import { normalizeUsage } from '../lambda/gateway/steps/invoke-model';
import type {
  GatewayErrorResponse,
  GatewayResponse,
  GatewayRuntimeConfig,
} from '../lambda/shared/contracts';
import { Logger, type LogLevel } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import {
  SCRIPT_EMPTY_ERROR_TYPE,
  errorResponse,
  startBedrockServer,
  textResponse,
  toolUseResponse,
  type BedrockServer,
} from './support/bedrock-server';

const SUPPORT_MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const RESEARCH_MODEL = 'eu.amazon.nova-pro-v1:0';

const CONFIG: GatewayRuntimeConfig = {
  agents: {
    support: {
      route: [
        { region: 'us-east-1', modelId: SUPPORT_MODEL },
        { region: 'us-west-2', modelId: 'anthropic.claude-3-haiku-20240307-v1:0' },
      ],
      maxTokensPerCall: 2048,
    },
    research: { route: [{ region: 'eu-west-1', modelId: RESEARCH_MODEL }], maxTokensPerCall: 512 },
  },
};

const PROMPT = 'What is the capital of France?';
const SYSTEM_PROMPT = 'You answer geography questions briefly.';

// Credentials only sign requests to the loopback server.
const TEST_CREDENTIALS = { accessKeyId: 'AKIDLOOPBACKTEST', secretAccessKey: 'loopback-secret' };

// Variables this file sets or clears, because the SDK reads them from process.env.
const ENV_NAMES = [
  'AWS_ENDPOINT_URL_BEDROCK_RUNTIME',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
  'AWS_BEARER_TOKEN_BEDROCK',
  'AWS_EC2_METADATA_DISABLED',
  'AGENT_GATEWAY_CONFIG',
  'LOG_LEVEL',
];

let server: BedrockServer;
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  server = await startBedrockServer();
  for (const name of ENV_NAMES) {
    savedEnv[name] = process.env[name];
    delete process.env[name];
  }
  process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = server.endpoint;
  process.env.AWS_ACCESS_KEY_ID = TEST_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = TEST_CREDENTIALS.secretAccessKey;
  // Keeps the credential chain from ever reaching the instance metadata service.
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
});

afterAll(async () => {
  await server.close();
  for (const name of ENV_NAMES) {
    if (savedEnv[name] === undefined) {
      delete process.env[name];
    } else {
      process.env[name] = savedEnv[name];
    }
  }
});

beforeEach(() => server.reset());

function gatewayRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: 'req-1',
    agent: 'support',
    userId: 'user-7',
    sessionId: 'session-3',
    messages: [{ role: 'user', content: [{ text: PROMPT }] }],
    ...overrides,
  };
}

/** Creates a handler on the default client factory, which finds the server through env. */
function createTestGateway(level: LogLevel = 'info'): {
  gateway: GatewayHandler;
  logs: () => Array<Record<string, unknown>>;
  rawLogs: string[];
} {
  const rawLogs: string[] = [];
  const logger = new Logger({}, { level, sink: (line) => rawLogs.push(line) });
  const metrics = new MetricsWriter({ sink: () => undefined });
  const gateway = createGatewayHandler({ config: CONFIG, logger, metrics });
  return { gateway, rawLogs, logs: () => rawLogs.map((line) => JSON.parse(line)) };
}

function expectSuccess(result: GatewayResponse | GatewayErrorResponse): GatewayResponse {
  if (!result.ok) {
    throw new Error(`Expected success, got ${result.error.name}: ${result.error.message}`);
  }
  return result;
}

function expectFailure(result: GatewayResponse | GatewayErrorResponse): GatewayErrorResponse {
  if (result.ok) {
    throw new Error(`Expected an error, got a response with stopReason ${result.stopReason}`);
  }
  return result;
}

function receivedBody(index = 0): Record<string, any> {
  return server.requests[index].body as Record<string, any>;
}

describe('gateway model call', () => {
  test('returns text response with usage', async () => {
    const { gateway } = createTestGateway();
    server.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));

    const response = expectSuccess(await gateway(gatewayRequest()));

    expect(response.requestId).toBe('req-1');
    expect(response.output).toEqual({ role: 'assistant', content: [{ text: 'Paris.' }] });
    expect(response.stopReason).toBe('end_turn');
    expect(response.usage).toEqual({ inputTokens: 12, outputTokens: 3, totalTokens: 15 });
    expect(response.target).toEqual(CONFIG.agents.support.route[0]);
    expect(response.latencyMs).toBeGreaterThanOrEqual(0);
  });

  test('calls first target with request fields', async () => {
    const { gateway } = createTestGateway();
    server.script(textResponse('Paris.'));
    const tool = {
      name: 'lookup_city',
      description: 'Looks a city up.',
      inputSchema: { type: 'object', properties: { city: { type: 'string' } } },
    };

    expectSuccess(
      await gateway(
        gatewayRequest({ system: SYSTEM_PROMPT, tools: [tool], maxTokens: 100, temperature: 0.2 }),
      ),
    );

    expect(server.requests).toHaveLength(1);
    const received = server.requests[0];
    expect(received.operation).toBe('converse');
    expect(received.modelId).toBe(SUPPORT_MODEL);
    expect(received.region).toBe('us-east-1');
    const body = receivedBody();
    expect(body.messages).toEqual([{ role: 'user', content: [{ text: PROMPT }] }]);
    expect(body.system).toEqual([{ text: SYSTEM_PROMPT }]);
    expect(body.inferenceConfig).toEqual({ maxTokens: 100, temperature: 0.2 });
    expect(body.toolConfig).toEqual({
      tools: [
        {
          toolSpec: {
            name: tool.name,
            description: tool.description,
            inputSchema: { json: tool.inputSchema },
          },
        },
      ],
    });
  });

  test('passes tool-use response through intact', async () => {
    const { gateway } = createTestGateway();
    const input = { city: 'Paris', units: ['metric'], options: { days: 3, hourly: false } };
    server.script(
      toolUseResponse({ toolUseId: 'tooluse_42', name: 'get_weather', input, text: 'Checking.' }),
    );

    const response = expectSuccess(await gateway(gatewayRequest()));

    expect(response.stopReason).toBe('tool_use');
    expect(response.output).toEqual({
      role: 'assistant',
      content: [
        { text: 'Checking.' },
        { toolUse: { toolUseId: 'tooluse_42', name: 'get_weather', input } },
      ],
    });
  });

  test.each([
    ['support', SUPPORT_MODEL, 'us-east-1', 2048],
    ['research', RESEARCH_MODEL, 'eu-west-1', 512],
  ])('defaults maxTokens to %s ceiling', async (agent, modelId, region, ceiling) => {
    const { gateway } = createTestGateway();
    server.script(textResponse('Paris.'));

    expectSuccess(await gateway(gatewayRequest({ agent })));

    expect(server.requests[0].modelId).toBe(modelId);
    expect(server.requests[0].region).toBe(region);
    expect(receivedBody().inferenceConfig).toEqual({ maxTokens: ceiling });
  });

  test('measures latency including server delay', async () => {
    const { gateway } = createTestGateway();
    server.script(textResponse('Paris.', { delayMs: 150 }));

    const response = expectSuccess(await gateway(gatewayRequest()));

    expect(response.latencyMs).toBeGreaterThanOrEqual(150);
  });

  test('creates one client per region', async () => {
    const regions: string[] = [];
    const gateway = createGatewayHandler({
      config: CONFIG,
      logger: new Logger({}, { sink: () => undefined }),
      clientForRegion: (region) => {
        regions.push(region);
        return createBedrockClient(region, { credentials: TEST_CREDENTIALS });
      },
    });
    server.script(textResponse('one'), textResponse('two'), textResponse('three'));

    expectSuccess(await gateway(gatewayRequest()));
    expectSuccess(await gateway(gatewayRequest({ requestId: 'req-2' })));
    expectSuccess(await gateway(gatewayRequest({ requestId: 'req-3', agent: 'research' })));

    expect(regions).toEqual(['us-east-1', 'eu-west-1']);
  });
});

describe('gateway request validation', () => {
  const assistantFirst = [
    { role: 'assistant', content: [{ text: 'Hello.' }] },
    { role: 'user', content: [{ text: PROMPT }] },
  ];
  const twoUserTurns = [
    { role: 'user', content: [{ text: PROMPT }] },
    { role: 'user', content: [{ text: 'And of Spain?' }] },
  ];

  test.each<[string, Record<string, unknown>, string[]]>([
    ['unknown agent', { agent: 'billing' }, ['agent', '"billing"', 'support, research']],
    ['empty messages', { messages: [] }, ['messages', 'at least one message', 'an array of 0']],
    ['assistant first', { messages: assistantFirst }, ['messages[0].role', '"assistant"']],
    ['roles not alternating', { messages: twoUserTurns }, ['messages[1].role', 'alternate']],
    [
      'invalid role',
      { messages: [{ role: 'system', content: [{ text: PROMPT }] }] },
      ['messages[0].role', '"system"'],
    ],
    [
      'empty content',
      { messages: [{ role: 'user', content: [] }] },
      ['messages[0].content', 'at least one content block'],
    ],
    ['fractional maxTokens', { maxTokens: 1.5 }, ['maxTokens', 'Received 1.5']],
    ['zero maxTokens', { maxTokens: 0 }, ['maxTokens', 'positive integer', 'Received 0']],
    ['negative maxTokens', { maxTokens: -5 }, ['maxTokens', 'Received -5']],
    ['string maxTokens', { maxTokens: '100' }, ['maxTokens', 'Received "100"']],
    [
      'maxTokens above ceiling',
      { maxTokens: 4096 },
      ['maxTokens', '4096', 'limit of 2048', 'maxTokensPerCall', '"support"'],
    ],
    ['missing userId', { userId: undefined }, ['userId', 'expected string', 'Received no value']],
    ['unknown field', { max_tokens: 10 }, ['max_tokens', 'Accepted fields there', 'maxTokens']],
  ])('rejects %s', async (_name, overrides, expectedParts) => {
    const { gateway } = createTestGateway();

    const failure = expectFailure(await gateway(gatewayRequest(overrides)));

    expect(failure.requestId).toBe('req-1');
    expect(failure.error.name).toBe('InvalidRequestError');
    for (const part of expectedParts) {
      expect(failure.error.message).toContain(part);
    }
    expect(server.requests).toHaveLength(0);
  });

  test('rejects payload that is not an object', async () => {
    const { gateway } = createTestGateway();

    const failure = expectFailure(await gateway(null, { awsRequestId: 'lambda-req-9' }));

    expect(failure.requestId).toBe('lambda-req-9');
    expect(failure.error.name).toBe('InvalidRequestError');
    expect(failure.error.message).toContain('expected object');
  });

  test('keeps prompt text out of errors', async () => {
    const { gateway } = createTestGateway();
    const secret = 'my account password is hunter2';

    const failure = expectFailure(
      await gateway(gatewayRequest({ messages: [{ role: 'user', content: secret }] })),
    );

    expect(failure.error.message).toContain('messages[0].content');
    expect(failure.error.message).toContain(`a string of ${secret.length} characters`);
    expect(failure.error.message).not.toContain('hunter2');
  });
});

describe('gateway Bedrock errors', () => {
  test('maps throttling on every target to AllTargetsFailedError', async () => {
    const { gateway } = createTestGateway();
    const targets = CONFIG.agents.support.route.length;
    for (let attempt = 0; attempt < DEFAULT_SDK_MAX_ATTEMPTS * targets; attempt++) {
      server.script(errorResponse(429, 'ThrottlingException', { message: 'Too many requests.' }));
    }

    const failure = expectFailure(await gateway(gatewayRequest()));

    expect(failure.error.name).toBe('AllTargetsFailedError');
    expect(failure.error.errorCode).toBe('ThrottlingException');
    expect(failure.error.message).toContain(SUPPORT_MODEL);
    expect(failure.error.message).toContain('us-east-1');
    expect(failure.error.message).toContain('us-west-2');
    expect(failure.error.message).toContain('Too many requests.');
    expect(server.requests).toHaveLength(DEFAULT_SDK_MAX_ATTEMPTS * targets);
  });

  test('moves on after one throttle', async () => {
    const { gateway } = createTestGateway();
    server.script(errorResponse(429, 'ThrottlingException'), textResponse('Paris.'));

    const response = expectSuccess(await gateway(gatewayRequest()));

    expect(response.output.content).toEqual([{ text: 'Paris.' }]);
    expect(server.requests.map((request) => request.modelId)).toEqual([
      SUPPORT_MODEL,
      'anthropic.claude-3-haiku-20240307-v1:0',
    ]);
  });

  test('maps ValidationException to InvalidRequestError', async () => {
    const { gateway } = createTestGateway();
    const message = 'The model returned the following errors: temperature: range: 0..1';
    server.script(errorResponse(400, 'ValidationException', { message }));

    const failure = expectFailure(await gateway(gatewayRequest({ temperature: 5 })));

    expect(failure.error.name).toBe('InvalidRequestError');
    expect(failure.error.message).toContain(message);
    expect(failure.error.message).toContain(SUPPORT_MODEL);
    expect(server.requests).toHaveLength(1);
  });

  test('maps access denied without retry', async () => {
    const { gateway } = createTestGateway();
    server.script(errorResponse(403, 'AccessDeniedException'));

    const failure = expectFailure(await gateway(gatewayRequest()));

    expect(failure.error.name).toBe('ModelCallError');
    expect(failure.error.errorCode).toBe('AccessDeniedException');
    expect(failure.error.message).toContain('bedrock:InvokeModel');
    expect(server.requests).toHaveLength(1);
  });

  test('fails over on service unavailable', async () => {
    const { gateway } = createTestGateway();
    server.script(
      errorResponse(503, 'ServiceUnavailableException'),
      errorResponse(500, 'ServiceUnavailableException'),
    );

    const failure = expectFailure(await gateway(gatewayRequest()));

    expect(failure.error.name).toBe('AllTargetsFailedError');
    expect(failure.error.errorCode).toBe('ServiceUnavailableException');
    expect(server.requests.map((request) => request.region)).toEqual(['us-east-1', 'us-west-2']);
    expect(server.pending()).toBe(0);
  });

  test('times out before Lambda deadline', async () => {
    const { gateway } = createTestGateway();
    server.script(textResponse('Too late.', { delayMs: 5_000 }));
    const lambdaContext = { getRemainingTimeInMillis: () => RESPONSE_MARGIN_MS + 200 };
    const startedAt = Date.now();

    const failure = expectFailure(await gateway(gatewayRequest(), lambdaContext));

    expect(failure.error.name).toBe('TimeoutError');
    expect(failure.error.message).toContain('Raise the gateway timeout');
    expect(Date.now() - startedAt).toBeLessThan(2_000);
  });
});

describe('gateway request log', () => {
  test('writes one line per request', async () => {
    const { gateway, logs } = createTestGateway();
    server.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));

    expectSuccess(await gateway(gatewayRequest()));

    expect(logs()).toHaveLength(1);
    const line = logs()[0];
    expect(line.level).toBe('info');
    expect(line.requestId).toBe('req-1');
    expect(line.agent).toBe('support');
    expect(line.user).toBe('user-7');
    expect(line.session).toBe('session-3');
    expect(line.outcome).toBe('success');
    expect(line.region).toBe('us-east-1');
    expect(line.modelId).toBe(SUPPORT_MODEL);
    expect(line.inputTokens).toBe(12);
    expect(line.outputTokens).toBe(3);
    expect(line.totalTokens).toBe(15);
    expect(typeof line.latencyMs).toBe('number');
  });

  test('keeps prompt out of info logs', async () => {
    const { gateway, rawLogs } = createTestGateway('info');
    server.script(textResponse('Paris.'));

    expectSuccess(await gateway(gatewayRequest({ system: SYSTEM_PROMPT })));

    expect(rawLogs.length).toBeGreaterThan(0);
    for (const line of rawLogs) {
      expect(line).not.toContain(PROMPT);
      expect(line).not.toContain(SYSTEM_PROMPT);
    }
  });

  test('logs prompt at debug level', async () => {
    const { gateway, rawLogs } = createTestGateway('debug');
    server.script(textResponse('Paris.'));

    expectSuccess(await gateway(gatewayRequest({ system: SYSTEM_PROMPT })));

    expect(rawLogs.some((line) => line.includes(PROMPT))).toBe(true);
    expect(rawLogs.some((line) => line.includes(SYSTEM_PROMPT))).toBe(true);
  });

  test('logs rejected request as warning', async () => {
    const { gateway, logs } = createTestGateway();

    expectFailure(await gateway(gatewayRequest({ agent: 'billing' })));

    expect(logs()).toHaveLength(1);
    expect(logs()[0]).toMatchObject({
      level: 'warn',
      requestId: 'req-1',
      agent: 'billing',
      user: 'user-7',
      outcome: 'InvalidRequestError',
      errorName: 'InvalidRequestError',
    });
  });

  test('logs failed model call as error', async () => {
    const { gateway, logs } = createTestGateway();
    server.script(errorResponse(403, 'AccessDeniedException'));

    expectFailure(await gateway(gatewayRequest()));

    expect(logs()).toHaveLength(1);
    expect(logs()[0]).toMatchObject({
      level: 'error',
      outcome: 'ModelCallError',
      errorCode: 'AccessDeniedException',
      modelId: SUPPORT_MODEL,
    });
  });
});

describe('gateway default handler', () => {
  test('reads configuration and endpoint from environment', async () => {
    process.env.AGENT_GATEWAY_CONFIG = JSON.stringify(CONFIG);
    process.env.LOG_LEVEL = 'error';
    server.script(textResponse('Paris.'));

    const response = expectSuccess(await defaultHandler(gatewayRequest({ agent: 'research' })));

    expect(response.target).toEqual({ region: 'eu-west-1', modelId: RESEARCH_MODEL });
    expect(server.requests[0].modelId).toBe(RESEARCH_MODEL);
  });

  test('rejects missing configuration', () => {
    expect(() => loadGatewayConfigFromEnv({})).toThrow(/AGENT_GATEWAY_CONFIG is not set/);
  });

  test('rejects configuration that is not JSON', () => {
    const env = { AGENT_GATEWAY_CONFIG: '{agents:' };
    expect(() => loadGatewayConfigFromEnv(env)).toThrow(/AGENT_GATEWAY_CONFIG is not valid JSON/);
  });

  test('rejects route without targets', () => {
    const env = {
      AGENT_GATEWAY_CONFIG: JSON.stringify({
        agents: { support: { route: [], maxTokensPerCall: 1 } },
      }),
    };
    expect(() => loadGatewayConfigFromEnv(env)).toThrow(
      /agents\.support\.route: must list at least/,
    );
  });
});

describe('loopback Bedrock server', () => {
  let client: BedrockRuntimeClient;

  beforeAll(() => {
    client = new BedrockRuntimeClient({
      region: 'us-west-2',
      endpoint: server.endpoint,
      credentials: TEST_CREDENTIALS,
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler(),
    });
  });

  afterAll(() => client.destroy());

  const converse = (modelId = SUPPORT_MODEL) =>
    client.send(
      new ConverseCommand({ modelId, messages: [{ role: 'user', content: [{ text: PROMPT }] }] }),
    );

  test.each([
    [429, 'ThrottlingException', ThrottlingException],
    [500, 'ServiceUnavailableException', ServiceUnavailableException],
    [503, 'ServiceUnavailableException', ServiceUnavailableException],
    [400, 'ValidationException', ValidationException],
    [403, 'AccessDeniedException', AccessDeniedException],
  ])('surfaces %i %s through real client', async (status, errorType, errorClass) => {
    server.script(errorResponse(status, errorType, { message: `scripted ${errorType}` }));

    const error = await converse().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(errorClass);
    expect((error as Error).name).toBe(errorType);
    expect((error as Error).message).toBe(`scripted ${errorType}`);
    expect((error as ThrottlingException).$metadata.httpStatusCode).toBe(status);
  });

  test('decodes model id from path', async () => {
    const arn =
      'arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.amazon.nova-lite-v1:0';
    server.script(textResponse('ok'));

    await converse(arn);

    expect(server.requests[0].modelId).toBe(arn);
    expect(server.requests[0].region).toBe('us-west-2');
  });

  test('fails visibly when script is empty', async () => {
    const error = await converse().catch((caught: unknown) => caught);

    expect((error as Error).name).toBe(SCRIPT_EMPTY_ERROR_TYPE);
    expect((error as Error).message).toContain('no scripted response left');
  });
});

describe('normalizeUsage', () => {
  test('keeps reported cache tokens', () => {
    const usage = normalizeUsage({
      inputTokens: 10,
      outputTokens: 5,
      totalTokens: 255,
      cacheReadInputTokens: 200,
      cacheWriteInputTokens: 40,
    });

    expect(usage).toStrictEqual({
      inputTokens: 10,
      outputTokens: 5,
      totalTokens: 255,
      cacheReadInputTokens: 200,
      cacheWriteInputTokens: 40,
    });
  });

  test('clamps negative cache tokens to 0', () => {
    const usage = normalizeUsage({
      inputTokens: 10,
      outputTokens: 5,
      totalTokens: 15,
      cacheReadInputTokens: -3,
      cacheWriteInputTokens: 2.5,
    });

    expect(usage.cacheReadInputTokens).toBe(0);
    expect(usage.cacheWriteInputTokens).toBe(0);
    expect(usage.totalTokens).toBe(15);
  });

  test('raises total to include cache tokens', () => {
    const usage = normalizeUsage({
      inputTokens: 10,
      outputTokens: 5,
      totalTokens: 15,
      cacheReadInputTokens: 100,
    });

    expect(usage.totalTokens).toBe(115);
  });

  test('omits cache tokens Bedrock did not report', () => {
    const usage = normalizeUsage({ inputTokens: 1, outputTokens: 2, totalTokens: 3 });

    expect(usage).toStrictEqual({ inputTokens: 1, outputTokens: 2, totalTokens: 3 });
  });
});
