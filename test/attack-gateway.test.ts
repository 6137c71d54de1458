/**
 * Hostile and odd inputs to the ModelGateway handler: payloads the worker
 * would never send, and Bedrock responses with unusual usage, run through
 * the real Bedrock client against loopback servers.
 */
import { createServer, Server } from 'http';
import { AddressInfo } from 'net';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createGatewayHandler, type GatewayHandler } from '../lambda/gateway';
import type { GatewayErrorResponse, GatewayResponse } from '../lambda/shared/contracts';
import { Logger } from '../lambda/shared/logger';
import { startBedrockServer, textResponse, type BedrockServer } from './support/bedrock-server';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './support/dynamodb-local';

const MODEL_ID = 'test.loopback-model-v1:0';
const MAX_TOKENS_PER_CALL = 1_024;
const PROMPT = 'My card number is 4111 1111 1111 1111, please refund order 7.';

let bedrock: BedrockServer;
/** Serves one fixed Converse body, for usage values the scripted server cannot express. */
let rawServer: Server;
let rawEndpoint: string;
let rawBody: unknown;
const clients: BedrockRuntimeClient[] = [];

beforeAll(async () => {
  bedrock = await startBedrockServer();
  rawServer = createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      const text = JSON.stringify(rawBody);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => rawServer.listen(0, '127.0.0.1', () => resolve()));
  rawEndpoint = `http://127.0.0.1:${(rawServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  rawServer.closeAllConnections();
  await new Promise((resolve) => rawServer.close(resolve));
  await bedrock.close();
});

beforeEach(() => bedrock.reset());

function gateway(endpoint = bedrock.endpoint): { handle: GatewayHandler; lines: string[] } {
  const lines: string[] = [];
  const handle = createGatewayHandler({
    config: {
      agents: {
        support: {
          route: [{ region: LOCAL_REGION, modelId: MODEL_ID }],
          maxTokensPerCall: MAX_TOKENS_PER_CALL,
        },
      },
    },
    clientForRegion: (region) => {
      const client = new BedrockRuntimeClient({
        region,
        endpoint,
        credentials: LOCAL_CREDENTIALS,
        requestHandler: new NodeHttpHandler(),
        maxAttempts: 1,
      });
      clients.push(client);
      return client;
    },
    logger: new Logger({}, { level: 'info', sink: (line) => lines.push(line) }),
  });
  return { handle, lines };
}

function request(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: 'req-attack-1',
    agent: 'support',
    userId: 'user-1',
    sessionId: 'session-1',
    messages: [{ role: 'user', content: [{ text: PROMPT }] }],
    ...overrides,
  };
}

function failure(result: GatewayResponse | GatewayErrorResponse): GatewayErrorResponse {
  if (result.ok) throw new Error(`Expected an error, got stopReason ${result.stopReason}`);
  return result;
}

function success(result: GatewayResponse | GatewayErrorResponse): GatewayResponse {
  if (!result.ok) {
    throw new Error(`Expected success, got ${result.error.name}: ${result.error.message}`);
  }
  return result;
}

describe('gateway payload attacks', () => {
  // Zero, negative, fractional and string values are covered in gateway.test.ts.
  test.each([
    ['huge', 1e300],
    ['null', null],
  ])('rejects maxTokens %s', async (_case, maxTokens) => {
    const { handle } = gateway();
    const result = failure(await handle(request({ maxTokens })));
    expect(result.error.name).toBe('InvalidRequestError');
    expect(result.error.message).toMatch(/maxTokens/);
    expect(bedrock.requests).toHaveLength(0);
  });

  test('accepts maxTokens at the limit', async () => {
    bedrock.script(textResponse('ok'));
    const { handle } = gateway();
    success(await handle(request({ maxTokens: MAX_TOKENS_PER_CALL })));
    expect((bedrock.requests[0].body as any).inferenceConfig.maxTokens).toBe(MAX_TOKENS_PER_CALL);
  });

  test.each([
    [
      'an extra message field',
      request({ messages: [{ role: 'user', content: [{ text: PROMPT }], cache: true }] }),
    ],
    ['a prototype method as agent', request({ agent: 'constructor' })],
    ['a prototype key as agent', request({ agent: '__proto__' })],
  ])('rejects %s without calling Bedrock', async (_case, payload) => {
    const { handle, lines } = gateway();
    const result = failure(await handle(payload));
    expect(result.error.name).toBe('InvalidRequestError');
    expect(result.error.message).not.toContain('4111');
    expect(lines.join('\n')).not.toContain('4111');
    expect(bedrock.requests).toHaveLength(0);
  });

  test.each([42, 'text', [request()]])('rejects payload %p', async (payload) => {
    const { handle, lines } = gateway();
    const result = failure(await handle(payload));
    expect(result.error.name).toBe('InvalidRequestError');
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  });
});

describe('gateway usage from bedrock', () => {
  function converseBody(usage: unknown): unknown {
    return {
      output: { message: { role: 'assistant', content: [{ text: 'done' }] } },
      stopReason: 'end_turn',
      usage,
      metrics: { latencyMs: 1 },
    };
  }

  test('computes a missing total', async () => {
    rawBody = converseBody({ inputTokens: 700, outputTokens: 300 });
    const { handle } = gateway(rawEndpoint);
    const result = success(await handle(request()));
    expect(result.usage).toEqual({ inputTokens: 700, outputTokens: 300, totalTokens: 1_000 });
  });

  test('never reports negative usage', async () => {
    rawBody = converseBody({ inputTokens: -5_000, outputTokens: 20, totalTokens: -4_980 });
    const { handle } = gateway(rawEndpoint);
    const result = success(await handle(request()));
    expect(result.usage).toEqual({ inputTokens: 0, outputTokens: 20, totalTokens: 20 });
  });

  test('raises a total below its parts', async () => {
    rawBody = converseBody({ inputTokens: 700, outputTokens: 300, totalTokens: 1 });
    const { handle } = gateway(rawEndpoint);
    const result = success(await handle(request()));
    expect(result.usage.totalTokens).toBe(1_000);
  });

  test('passes an unseen stop reason through', async () => {
    rawBody = {
      ...(converseBody({ inputTokens: 1, outputTokens: 1, totalTokens: 2 }) as object),
      stopReason: 'brand_new_reason',
    };
    const { handle, lines } = gateway(rawEndpoint);
    const result = success(await handle(request()));
    expect(result.stopReason).toBe('brand_new_reason');
    expect(lines.join('\n')).not.toContain('4111');
  });
});
