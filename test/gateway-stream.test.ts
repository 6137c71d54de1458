import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { createBedrockClient, type ClientForRegion } from '../lambda/gateway';
import {
  createGatewayStreamHandler,
  type GatewayStreamHandler,
} from '../lambda/gateway/stream/handler';
import {
  createResponseStreamHandler,
  isStreamRequest,
  selectLambdaEntry,
  type ResponseStreamHandler,
} from '../lambda/gateway/stream/lambda-entry';
import type { StreamUsageRecord } from '../lambda/gateway/stream/usage';
import { createGatewayHandler, type GatewayHandler } from '../lambda/gateway/handler';
import type {
  GatewayResponse,
  GatewayRuntimeConfig,
  GatewayStreamEvent,
} from '../lambda/shared/contracts';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import {
  errorResponse,
  startBedrockServer,
  textResponse,
  toolUseResponse,
  type BedrockServer,
} from './support/bedrock-server';
import {
  delayed,
  disconnect,
  pauseUntil,
  streamEvents,
  streamException,
  streamResponse,
  textStreamSteps,
} from './support/bedrock-stream';
import { createEventSink, within } from './support/ndjson';

const PRIMARY = { region: 'us-east-1', modelId: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0' };
const SECONDARY = { region: 'us-west-2', modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0' };
const CREDENTIALS = { accessKeyId: 'AKIDLOOPBACKTEST', secretAccessKey: 'loopback-secret' };

let primary: BedrockServer;
let secondary: BedrockServer;
const clients: BedrockRuntimeClient[] = [];

beforeAll(async () => {
  [primary, secondary] = await Promise.all([startBedrockServer(), startBedrockServer()]);
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  await Promise.all([primary.close(), secondary.close()]);
});

beforeEach(() => {
  primary.reset();
  secondary.reset();
});

function config(client: GatewayRuntimeConfig['client'] = {}): GatewayRuntimeConfig {
  return {
    agents: { support: { route: [PRIMARY, SECONDARY], maxTokensPerCall: 1024 } },
    // One attempt per target, so that each scripted failure is one request.
    client: { sdkMaxAttempts: 1, ...client },
  };
}

interface TestGateway {
  readonly stream: GatewayStreamHandler;
  readonly buffered: GatewayHandler;
  readonly usage: StreamUsageRecord[];
  readonly logs: Array<Record<string, unknown>>;
}

/**
 * Creates the gateway with each region's client pointed at its own loopback
 * server. Usage goes to `usage`, or with `logUsage` to the default recorder.
 */
function createTestGateway(
  client: GatewayRuntimeConfig['client'] = {},
  { logUsage = false } = {},
): TestGateway {
  const usage: StreamUsageRecord[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const clientForRegion: ClientForRegion = (region, settings) => {
    const endpoint = region === PRIMARY.region ? primary.endpoint : secondary.endpoint;
    const created = createBedrockClient(region, { settings, endpoint, credentials: CREDENTIALS });
    clients.push(created);
    return created;
  };
  const options = {
    config: config(client),
    logger: new Logger({}, { level: 'info', sink: (line) => logs.push(JSON.parse(line)) }),
    metrics: new MetricsWriter({ sink: () => undefined }),
    clientForRegion,
  };
  const recordUsage = (record: StreamUsageRecord) => {
    usage.push(record);
  };
  const stream = createGatewayStreamHandler({
    ...options,
    recordUsage: logUsage ? undefined : recordUsage,
  });
  const buffered = createGatewayHandler(options);
  return { stream, buffered, usage, logs };
}

function streamRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: 'req-stream-1',
    agent: 'support',
    userId: 'user-7',
    sessionId: 'session-3',
    messages: [{ role: 'user', content: [{ text: 'Where is my order?' }] }],
    stream: true,
    ...overrides,
  };
}

function typesOf(events: readonly GatewayStreamEvent[]): string[] {
  return events.map((event) => event.type);
}

function deltaTexts(events: readonly GatewayStreamEvent[]): string[] {
  return events.flatMap((event) => (event.type === 'delta' ? [event.text] : []));
}

/** Returns a promise and the function that resolves it, for pausing a scripted stream. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('gateway streaming', () => {
  test('writes deltas before the stream ends', async () => {
    const { stream, usage } = createTestGateway();
    const held = gate();
    primary.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Your order'),
        pauseUntil(held.promise),
        streamEvents.text(0, ' ships today.'),
        streamEvents.blockStop(0),
        streamEvents.messageStop('end_turn'),
        streamEvents.metadata({ inputTokens: 21, outputTokens: 6 }),
      ]),
    );
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    const done = stream(streamRequest(), writable);
    await collector.waitFor((event) => event.type === 'delta');
    const typesWhilePaused = typesOf(collector.events);
    const endedWhilePaused = writable.writableEnded;
    const framesWhilePaused = primary.streams[0].framesSent;
    held.open();
    await within(done, 5_000, 'the end of the stream');

    expect(typesWhilePaused).toEqual(['start', 'delta']);
    expect(endedWhilePaused).toBe(false);
    expect(framesWhilePaused).toBe(2);
    // The secret redactor holds back the last word of each delta until the
    // next whitespace, so the two deltas of the model arrive as three.
    expect(typesOf(collector.events)).toEqual(['start', 'delta', 'delta', 'delta', 'stop', 'usage']);
    expect(deltaTexts(collector.events)).toEqual(['Your ', 'order ships ', 'today.']);
    expect(collector.events[0]).toEqual({
      type: 'start',
      requestId: 'req-stream-1',
      target: PRIMARY,
    });
    expect(collector.events[5]).toMatchObject({
      type: 'usage',
      usage: { inputTokens: 21, outputTokens: 6, totalTokens: 27, estimated: false },
    });
    expect(writable.writableEnded).toBe(true);
    expect(usage).toHaveLength(1);
    expect(usage[0]).toMatchObject({
      outcome: 'completed',
      stopReason: 'end_turn',
      target: PRIMARY,
    });
  });

  test('streams tool use with parsed input', async () => {
    const { stream } = createTestGateway();
    const input = { orderId: 'A-17', notify: true };
    primary.script(
      toolUseResponse({ toolUseId: 'tool-1', name: 'lookup_order', input, text: 'Checking.' }),
    );
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest(), writable);

    const toolUse = collector.events.find((event) => event.type === 'toolUse');
    expect(toolUse).toEqual({
      type: 'toolUse',
      index: 1,
      toolUseId: 'tool-1',
      name: 'lookup_order',
      input,
    });
    expect(collector.events.find((event) => event.type === 'stop')).toEqual({
      type: 'stop',
      stopReason: 'tool_use',
    });
  });

  test.each([
    ['HTTP 429', errorResponse(429, 'ThrottlingException')],
    ['exception frame first', streamResponse([streamException('throttlingException')])],
    ['503 status', errorResponse(503, 'ServiceUnavailableException')],
    [
      'drop before content',
      streamResponse([streamEvents.messageStart(), pauseUntil(Promise.resolve()), disconnect()]),
    ],
  ])('fails over before first content: %s', async (_case, failure) => {
    const { stream, usage, logs } = createTestGateway();
    primary.script(failure);
    secondary.script(textResponse('Served by the second region.'));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest(), writable);

    const starts = collector.events.filter((event) => event.type === 'start');
    expect(starts).toEqual([{ type: 'start', requestId: 'req-stream-1', target: SECONDARY }]);
    expect(typesOf(collector.events).at(-1)).toBe('usage');
    expect(primary.requests).toHaveLength(1);
    expect(secondary.requests).toHaveLength(1);
    expect(secondary.requests[0].operation).toBe('converse-stream');
    expect(logs.some((line) => line.message === 'Model target failed')).toBe(true);
    expect(usage.map((record) => record.target)).toEqual([SECONDARY]);
  });

  test('fails over after slow first byte', async () => {
    const { stream } = createTestGateway({ attemptTimeoutMs: 300 });
    primary.script(textResponse('Too late.', { delayMs: 5_000 }));
    secondary.script(textResponse('On time.'));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest(), writable);

    expect(collector.events.filter((event) => event.type === 'start')).toHaveLength(1);
    expect(collector.events[0]).toMatchObject({ type: 'start', target: SECONDARY });
  });

  test('reports break after content as typed error', async () => {
    const { stream, usage } = createTestGateway();
    primary.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Your order is'),
        streamException('modelStreamErrorException', 'The model stream broke.', {
          originalStatusCode: 500,
        }),
      ]),
    );
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest(), writable);

    expect(typesOf(collector.events)).toEqual(['start', 'delta', 'error']);
    const error = collector.events[2] as Extract<GatewayStreamEvent, { type: 'error' }>;
    expect(error.error.name).toBe('ModelCallError');
    expect(error.error.errorCode).toBe('ModelStreamErrorException');
    expect(error.error.message).toContain('The model stream broke.');
    expect(error.usage?.estimated).toBe(true);
    expect(error.usage?.outputTokens).toBe(Math.ceil('Your order is'.length / 4));
    expect(secondary.requests).toHaveLength(0);
    expect(usage).toHaveLength(1);
    expect(usage[0].outcome).toBe('failed');
    expect(usage[0].errorName).toBe('ModelCallError');
    expect(usage[0].usage).toEqual(error.usage);
    expect(writable.writableEnded).toBe(true);
  });

  test('aborts upstream when reader disconnects', async () => {
    const { stream, usage, logs } = createTestGateway();
    primary.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Partial answer'),
        pauseUntil(new Promise(() => {})),
      ]),
    );
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    const done = stream(streamRequest(), writable);
    await collector.waitFor((event) => event.type === 'delta');
    writable.destroy();
    await within(done, 5_000, 'the end of the handler');
    const outcome = await within(primary.streams[0].finished, 5_000, 'the upstream close');

    expect(outcome).toBe('client-closed');
    expect(typesOf(collector.events)).toEqual(['start', 'delta']);
    expect(usage).toHaveLength(1);
    expect(usage[0].outcome).toBe('cancelled');
    expect(usage[0].usage.estimated).toBe(true);
    expect(usage[0].usage.outputTokens).toBe(Math.ceil('Partial answer'.length / 4));
    const outcomeLine = logs.find(
      (line) => line.message === 'Gateway stream cancelled by its reader',
    );
    expect(outcomeLine?.outcome).toBe('StreamCancelledError');
  });

  test('logs usage of partial stream', async () => {
    const { stream, logs } = createTestGateway({}, { logUsage: true });
    primary.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Twelve chars'),
        streamException('internalServerException'),
      ]),
    );
    const { writable } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest(), writable);

    const usageLines = logs.filter((line) => line.message === 'Gateway stream usage');
    expect(usageLines).toHaveLength(1);
    expect(usageLines[0]).toMatchObject({
      requestId: 'req-stream-1',
      agent: 'support',
      outcome: 'failed',
      region: PRIMARY.region,
      modelId: PRIMARY.modelId,
      outputTokens: 3,
      usageEstimated: true,
      errorName: 'ModelCallError',
    });
    expect(usageLines[0].inputTokens).toBeGreaterThan(0);
    expect(usageLines[0].totalTokens).toBe(
      (usageLines[0].inputTokens as number) + (usageLines[0].outputTokens as number),
    );
  });

  test('rejects invalid request without start', async () => {
    const { stream } = createTestGateway();
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest({ agent: 'unknown-agent' }), writable);

    expect(typesOf(collector.events)).toEqual(['error']);
    expect(collector.events[0]).toMatchObject({ error: { name: 'InvalidRequestError' } });
    expect(primary.requests).toHaveLength(0);
  });

  test('reports every target failing without start', async () => {
    const { stream, usage } = createTestGateway();
    primary.script(errorResponse(429, 'ThrottlingException'));
    secondary.script(errorResponse(500, 'InternalServerException'));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest(), writable);

    expect(typesOf(collector.events)).toEqual(['error']);
    const error = collector.events[0] as Extract<GatewayStreamEvent, { type: 'error' }>;
    expect(error.error.name).toBe('AllTargetsFailedError');
    expect(error.error.failures).toHaveLength(2);
    expect(error.usage).toBeUndefined();
    expect(usage).toHaveLength(0);
  });

  test('times out after content at deadline', async () => {
    const { stream, usage } = createTestGateway();
    primary.script(
      streamResponse([
        streamEvents.messageStart(),
        // Ends with a space, so that the secret redactor lets the word through at once.
        streamEvents.text(0, 'Slow '),
        delayed(5_000, streamEvents.text(0, 'answer')),
      ]),
    );
    const { writable, collector } = createEventSink<GatewayStreamEvent>();
    // 1.5 s left less the response margin of 1 s leaves 0.5 s for the call.
    const lambdaContext = { awsRequestId: 'lambda-1', getRemainingTimeInMillis: () => 1_500 };

    await stream(streamRequest(), writable, lambdaContext);

    expect(typesOf(collector.events)).toEqual(['start', 'delta', 'error']);
    expect(collector.events[2]).toMatchObject({ error: { name: 'TimeoutError' } });
    expect(usage[0].outcome).toBe('failed');
  });

  test('reports guardrail intervention as error', async () => {
    const { stream } = createTestGateway();
    const stopReason = 'guardrail_intervened';
    const steps = textStreamSteps(['Sorry, I cannot help.'], { stopReason });
    primary.script(streamResponse(steps));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(streamRequest(), writable);

    // The secret redactor emits the last word of the delta at the stop.
    expect(typesOf(collector.events)).toEqual(['start', 'delta', 'delta', 'stop', 'error']);
    expect(collector.events[4]).toMatchObject({
      error: { name: 'GuardrailBlockedError', layer: 'guardrail' },
    });
  });
});

describe('gateway Lambda entry', () => {
  test('serves buffered and streamed requests', async () => {
    const { stream, buffered } = createTestGateway();
    const entry = createResponseStreamHandler(buffered, stream);
    primary.script(textResponse('Buffered answer.'), textResponse('Streamed answer.'));

    const bufferedSink = createEventSink<GatewayResponse>();
    const { stream: _flag, ...bufferedRequest } = streamRequest();
    await entry(bufferedRequest, bufferedSink.writable);
    const streamedSink = createEventSink<GatewayStreamEvent>();
    await entry(streamRequest(), streamedSink.writable);

    expect(bufferedSink.collector.events).toHaveLength(1);
    expect(bufferedSink.collector.events[0]).toMatchObject({ ok: true, stopReason: 'end_turn' });
    expect(bufferedSink.collector.events[0].output.content).toEqual([{ text: 'Buffered answer.' }]);
    const operations = primary.requests.map((request) => request.operation);
    expect(operations).toEqual(['converse', 'converse-stream']);
    expect(typesOf(streamedSink.collector.events)).toEqual([
      'start',
      'delta',
      'delta',
      'stop',
      'usage',
    ]);
  });

  test('streamifies only in Lambda runtime', () => {
    const { stream, buffered } = createTestGateway();
    const marked: unknown[] = [];
    const runtime = {
      streamifyResponse: (handler: unknown) => {
        marked.push(handler);
        return handler;
      },
    };

    const outside = selectLambdaEntry(buffered, stream, undefined);
    const inside = selectLambdaEntry(buffered, stream, runtime);

    expect(outside).toBe(buffered);
    expect(marked).toEqual([inside]);
  });

  test('bundled entry streams in Lambda runtime', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AGENT_GATEWAY_CONFIG: JSON.stringify({
        agents: { support: { route: [PRIMARY], maxTokensPerCall: 1024 } },
        client: { sdkMaxAttempts: 1 },
      }),
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: primary.endpoint,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: 'true',
      LOG_LEVEL: 'error',
    });
    const marked: unknown[] = [];
    const runtime = {
      streamifyResponse: (handler: unknown) => {
        marked.push(handler);
        return handler;
      },
    };
    (globalThis as { awslambda?: unknown }).awslambda = runtime;
    let bundle: { handler: ResponseStreamHandler } | undefined;
    try {
      jest.isolateModules(() => {
        // The global setup bundles the assets before any test file runs.
        bundle = require('../dist/assets/gateway/index.js');
      });
      primary.script(textResponse('Streamed from the bundle.'), textResponse('Buffered.'));
      const streamed = createEventSink<GatewayStreamEvent>();
      const buffered = createEventSink<GatewayResponse>();
      const lambdaContext = { awsRequestId: 'lambda-1', getRemainingTimeInMillis: () => 60_000 };
      const { stream: _flag, ...bufferedRequest } = streamRequest();

      await bundle!.handler(streamRequest(), streamed.writable, lambdaContext);
      await bundle!.handler(bufferedRequest, buffered.writable, lambdaContext);

      expect(marked).toEqual([bundle!.handler]);
      const deltas = ['delta', 'delta', 'delta', 'delta'];
      expect(typesOf(streamed.collector.events)).toEqual(['start', ...deltas, 'stop', 'usage']);
      expect(buffered.collector.events[0]).toMatchObject({ ok: true, stopReason: 'end_turn' });
    } finally {
      delete (globalThis as { awslambda?: unknown }).awslambda;
      process.env = saved;
    }
  });

  test('detects stream flag', () => {
    expect(isStreamRequest({ stream: true })).toBe(true);
    expect(isStreamRequest({ stream: 'true' })).toBe(false);
    expect(isStreamRequest(null)).toBe(false);
  });
});
