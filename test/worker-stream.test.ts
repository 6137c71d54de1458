import { randomUUID } from 'crypto';
import { Server } from 'http';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createGatewayHandler } from '../lambda/gateway/handler';
import { createGatewayStreamHandler } from '../lambda/gateway/stream/handler';
import { createResponseStreamHandler } from '../lambda/gateway/stream/lambda-entry';
import type { StreamUsageRecord } from '../lambda/gateway/stream/usage';
import type { GatewayRuntimeConfig, GatewayStreamEvent } from '../lambda/shared/contracts';
import { ModelCallError } from '../lambda/shared/errors';
import { MetricsWriter } from '../lambda/shared/metrics';
import { AgentLoopDeps, runAgentTask } from '../lambda/worker/agent-loop';
import { createAuthenticator } from '../lambda/worker/auth-factory';
import { startRealtimeServer } from '../lambda/worker/http-server';
import type { RealtimeStreamEvent } from '../lambda/worker/http-stream';
import { StreamingGatewayModelClient } from '../lambda/worker/stream-client';
import {
  pauseUntil,
  streamEvents,
  streamException,
  streamResponse,
} from './support/bedrock-stream';
import { textResponse, toolUseResponse } from './support/bedrock-server';
import { LOCAL_CREDENTIALS } from './support/dynamodb-local';
import { httpRequest } from './support/http-client';
import { streamHttpRequest, within } from './support/ndjson';
import {
  AGENT,
  GATEWAY_FUNCTION,
  MAX_TOKENS_PER_CALL,
  MODEL_TARGET,
  WorkerHarness,
  startWorkerHarness,
  workerConfig,
} from './support/worker-harness';

/** A function that streams like the gateway but splits its payload into 5-byte chunks. */
const CHUNKED_GATEWAY = 'agent-gateway-chunked';

let harness: WorkerHarness;
let server: Server;
let invokeUrl: string;
let deps: AgentLoopDeps;
const usage: StreamUsageRecord[] = [];
const bedrockClients: BedrockRuntimeClient[] = [];

beforeAll(async () => {
  harness = await startWorkerHarness();
  const config: GatewayRuntimeConfig = {
    agents: { [AGENT]: { route: [MODEL_TARGET], maxTokensPerCall: MAX_TOKENS_PER_CALL } },
  };
  const options = {
    config,
    clientForRegion: (region: string) => {
      const client = new BedrockRuntimeClient({
        region,
        endpoint: harness.bedrock.endpoint,
        credentials: LOCAL_CREDENTIALS,
        requestHandler: new NodeHttpHandler(),
        maxAttempts: 1,
      });
      bedrockClients.push(client);
      return client;
    },
    logger: harness.logger.child({ component: 'gateway' }),
    metrics: new MetricsWriter({ sink: () => undefined }),
  };
  // The same entry point Lambda runs: buffered and streamed requests on one function.
  const entry = createResponseStreamHandler(
    createGatewayHandler(options),
    createGatewayStreamHandler({ ...options, recordUsage: (record) => void usage.push(record) }),
  );
  harness.lambda.registerStreaming(GATEWAY_FUNCTION, entry);
  harness.lambda.registerStreaming(CHUNKED_GATEWAY, entry, { maxChunkBytes: 5 });

  const workerSettings = workerConfig();
  deps = {
    ...harness.deps(workerSettings),
    model: new StreamingGatewayModelClient(harness.lambdaClient, GATEWAY_FUNCTION),
  };
  const started = await startRealtimeServer(
    {
      config: workerSettings,
      authenticator: createAuthenticator(workerSettings.auth, {}),
      runTask: (task, signal, listener) => runAgentTask(task, deps, signal, listener),
      logger: harness.logger,
    },
    0,
    '127.0.0.1',
  );
  server = started.server;
  invokeUrl = `http://127.0.0.1:${started.port}/agents/${AGENT}/invoke`;
});

afterAll(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  bedrockClients.forEach((client) => client.destroy());
  await harness?.close();
});

beforeEach(() => {
  harness.bedrock.reset();
  usage.length = 0;
});

function postStreamed(message: string, sessionId = randomUUID()) {
  return streamHttpRequest<RealtimeStreamEvent>(invokeUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
    body: JSON.stringify({ message, sessionId }),
  });
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('realtime streaming', () => {
  test('streams deltas before the answer ends', async () => {
    const held = gate();
    harness.bedrock.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Your order'),
        pauseUntil(held.promise),
        streamEvents.text(0, ' ships today.'),
        streamEvents.blockStop(0),
        streamEvents.messageStop('end_turn'),
        streamEvents.metadata({ inputTokens: 40, outputTokens: 5 }),
      ]),
    );
    const sessionId = randomUUID();

    const response = await postStreamed('Where is order A-17?', sessionId);
    await response.collector.waitFor((event) => event.type === 'delta');
    const typesWhilePaused = response.collector.events.map((event) => event.type);
    const framesWhilePaused = harness.bedrock.streams[0].framesSent;
    held.open();
    await within(response.ended, 10_000, 'the end of the HTTP response');

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/x-ndjson');
    expect(typesWhilePaused).toEqual(['start', 'delta']);
    expect(framesWhilePaused).toBe(2);
    const events = response.collector.events;
    // The gateway's secret redactor holds back the last word of each delta
    // until the next whitespace, so the two deltas of the model arrive as three.
    expect(events.map((event) => event.type)).toEqual(['start', 'delta', 'delta', 'delta', 'done']);
    expect(events[0]).toMatchObject({ type: 'start', sessionId });
    expect(events[4]).toMatchObject({
      type: 'done',
      output: 'Your order ships today.',
      stopReason: 'end_turn',
      iterations: 1,
      usage: { inputTokens: 40, outputTokens: 5, totalTokens: 45 },
    });
    const gatewayCall = harness.lambda.invocations.find(
      (call) => call.functionName === GATEWAY_FUNCTION,
    );
    expect(gatewayCall?.streamed).toBe(true);
    const saved = await deps.memory.load({ agent: AGENT, userId: 'anonymous', sessionId });
    expect(saved.messages.map((message) => message.role)).toEqual(['user', 'assistant']);
  });

  test('runs tools between streamed calls', async () => {
    harness.bedrock.script(
      toolUseResponse({
        toolUseId: 'tool-1',
        name: 'lookup_order',
        // The tool's input schema requires 6 to 20 letters, digits or dashes.
        input: { orderId: 'ORD-1017' },
        text: 'Let me check.',
      }),
      textResponse('Order A-17 has shipped.'),
    );

    const response = await postStreamed('Where is order A-17?');
    await within(response.ended, 10_000, 'the end of the HTTP response');

    const events = response.collector.events;
    const toolUse = events.find((event) => event.type === 'toolUse');
    expect(toolUse).toEqual({ type: 'toolUse', name: 'lookup_order', toolUseId: 'tool-1' });
    const text = events.flatMap((event) => (event.type === 'delta' ? [event.text] : []));
    expect(text.join('')).toBe('Let me check.Order A-17 has shipped.');
    expect(events.at(-1)).toMatchObject({ type: 'done', iterations: 2, stopReason: 'end_turn' });
    const toolCalls = harness.lambda.invocations.filter(
      (call) => call.functionName === 'lookup-order',
    );
    expect(toolCalls).toHaveLength(1);
    expect(harness.bedrock.requests.map((request) => request.operation)).toEqual([
      'converse-stream',
      'converse-stream',
    ]);
  });

  test('ends with typed error after content', async () => {
    harness.bedrock.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Your order'),
        streamException('modelStreamErrorException', 'The model stream broke.'),
      ]),
    );

    const response = await postStreamed('Where is order A-17?');
    await within(response.ended, 10_000, 'the end of the HTTP response');

    const events = response.collector.events;
    expect(events.map((event) => event.type)).toEqual(['start', 'delta', 'error']);
    expect(events[2]).toMatchObject({ type: 'error', error: { name: 'ModelCallError' } });
    expect(usage).toHaveLength(1);
    expect(usage[0].outcome).toBe('failed');
  });

  test('keeps JSON default without Accept', async () => {
    harness.bedrock.script(textResponse('Order A-17 has shipped.'));

    const result = await httpRequest(invokeUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'Where is order A-17?' }),
    });

    expect(result.status).toBe(200);
    expect(result.headers['content-type']).toBe('application/json');
    expect(result.json.output).toBe('Order A-17 has shipped.');
    expect(harness.bedrock.requests[0].operation).toBe('converse');
  });

  test('caller disconnect aborts the model stream', async () => {
    harness.bedrock.script(
      streamResponse([
        streamEvents.messageStart(),
        // Ends with a space, so that the gateway's secret redactor lets the word through at once.
        streamEvents.text(0, 'Partial '),
        pauseUntil(new Promise(() => {})),
      ]),
    );

    const response = await postStreamed('Where is order A-17?');
    await response.collector.waitFor((event) => event.type === 'delta');
    response.abort();
    const outcome = await within(harness.bedrock.streams[0].finished, 10_000, 'the upstream close');
    await within(
      new Promise<void>((resolve) => {
        const check = () => (usage.length > 0 ? resolve() : setTimeout(check, 10));
        check();
      }),
      10_000,
      'the usage record',
    );

    expect(outcome).toBe('client-closed');
    expect(usage[0].outcome).toBe('cancelled');
    expect(usage[0].usage.estimated).toBe(true);
  });
});

describe('streaming model client', () => {
  const request = (requestId: string) => ({
    requestId,
    agent: AGENT,
    userId: 'user-1',
    sessionId: randomUUID(),
    messages: [{ role: 'user' as const, content: [{ text: 'Say hello.' }] }],
  });

  test('joins lines split across payload chunks', async () => {
    // Multi-byte characters split at 5-byte chunk boundaries test the UTF-8 decoding.
    harness.bedrock.script(textResponse('Grüße aus München, ça va?'));
    const client = new StreamingGatewayModelClient(harness.lambdaClient, CHUNKED_GATEWAY);
    const received: GatewayStreamEvent[] = [];

    const response = await client.converse(request('req-chunked'), undefined, (event) =>
      received.push(event),
    );

    expect(response.output.content).toEqual([{ text: 'Grüße aus München, ça va?' }]);
    expect(response.stopReason).toBe('end_turn');
    expect(received.map((event) => event.type)).toEqual([
      'start',
      'delta',
      'delta',
      'delta',
      'delta',
      'delta',
      'stop',
      'usage',
    ]);
  });

  test('resolves at usage before stream end', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    // Ends the stream anyway after 3 s, so that a client that waits for the end fails instead of hanging.
    const fallback = setTimeout(() => release(), 3_000);
    let ended = false;
    const usageEvent = {
      type: 'usage',
      usage: { inputTokens: 5, outputTokens: 2, totalTokens: 907, cacheReadInputTokens: 900, estimated: false },
      latencyMs: 12,
    };
    harness.lambda.registerStreaming('slow-settle-gateway', async (_event, responseStream) => {
      const events = [
        { type: 'start', requestId: 'req-early', target: { region: 'us-east-1', modelId: 'm' } },
        { type: 'delta', index: 0, text: 'Paris.' },
        { type: 'stop', stopReason: 'end_turn' },
        usageEvent,
      ];
      for (const event of events) {
        responseStream.write(`${JSON.stringify(event)}\n`);
      }
      // The gateway settles the budget here, after the last event.
      await held;
      ended = true;
      responseStream.end();
    });
    const client = new StreamingGatewayModelClient(harness.lambdaClient, 'slow-settle-gateway');

    const response = await client.converse(request('req-early'), undefined, () => undefined);

    expect(ended).toBe(false);
    expect(response.usage).toEqual({ inputTokens: 5, outputTokens: 2, totalTokens: 907, cacheReadInputTokens: 900 });
    release();
    clearTimeout(fallback);
  });

  test('raises function error from InvokeComplete', async () => {
    harness.lambda.registerStreaming('broken-gateway', async (_event, responseStream) => {
      const start = { type: 'start', requestId: 'r', target: { region: 'x', modelId: 'm' } };
      responseStream.write(`${JSON.stringify(start)}\n`);
      throw new Error('the gateway crashed');
    });
    const client = new StreamingGatewayModelClient(harness.lambdaClient, 'broken-gateway');

    const error = await client
      .converse(request('req-broken'), undefined, () => undefined)
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ModelCallError);
    expect((error as ModelCallError).errorCode).toBe('GatewayFunctionError');
    expect((error as ModelCallError).message).toContain('the gateway crashed');
  });

  test('raises typed gateway error event', async () => {
    const client = new StreamingGatewayModelClient(harness.lambdaClient, GATEWAY_FUNCTION);

    const error = await client
      .converse({ ...request('req-invalid'), agent: 'no-such-agent' }, undefined, () => undefined)
      .catch((caught: unknown) => caught);

    expect((error as Error).name).toBe('InvalidRequestError');
  });
});
