/**
 * Request-level attacks on the realtime server: bodies at and just past
 * maxBodyBytes, chunked bodies, invalid UTF-8, prototype keys, non-object
 * JSON and a caller that disconnects mid-body.
 */
import { Server } from 'http';
import { connect } from 'net';
import { runAgentTask } from '../lambda/worker/agent-loop';
import { createAuthenticator } from '../lambda/worker/auth-factory';
import { startRealtimeServer } from '../lambda/worker/http-server';
import { textResponse } from './support/bedrock-server';
import { httpRequest } from './support/http-client';
import { AGENT, WorkerHarness, startWorkerHarness, workerConfig } from './support/worker-harness';

const MAX_BODY_BYTES = 256;

let harness: WorkerHarness;
let server: Server;
let port: number;
let url: string;

beforeAll(async () => {
  harness = await startWorkerHarness();
  const config = workerConfig({ limits: { maxBodyBytes: MAX_BODY_BYTES } });
  const deps = harness.deps(config);
  ({ server, port } = await startRealtimeServer(
    {
      config,
      authenticator: createAuthenticator(config.auth),
      runTask: (task, signal) => runAgentTask(task, deps, signal),
      logger: harness.logger,
    },
    0,
    '127.0.0.1',
  ));
  url = `http://127.0.0.1:${port}/agents/${AGENT}/invoke`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await harness?.close();
});

beforeEach(() => {
  harness.bedrock.reset();
  harness.logs.length = 0;
});

/** Returns a JSON body of exactly `bytes` bytes. */
function bodyOfSize(bytes: number): string {
  const empty = JSON.stringify({ message: '' });
  return JSON.stringify({ message: 'x'.repeat(bytes - empty.length) });
}

function post(body: string | string[]) {
  return httpRequest(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
}

describe('realtime body attacks', () => {
  test('accepts a body of exactly maxBodyBytes', async () => {
    harness.bedrock.script(textResponse('ok'));
    const body = bodyOfSize(MAX_BODY_BYTES);
    expect(Buffer.byteLength(body)).toBe(MAX_BODY_BYTES);
    expect((await post(body)).status).toBe(200);
  });

  test('rejects one byte over maxBodyBytes', async () => {
    const result = await post(bodyOfSize(MAX_BODY_BYTES + 1));
    expect(result.status).toBe(413);
    expect(harness.bedrock.requests).toHaveLength(0);
  });

  test('accepts a chunked body of exactly maxBodyBytes', async () => {
    harness.bedrock.script(textResponse('ok'));
    const body = bodyOfSize(MAX_BODY_BYTES);
    expect((await post([body.slice(0, 100), body.slice(100)])).status).toBe(200);
  });

  test('rejects a chunked body one byte over', async () => {
    const body = bodyOfSize(MAX_BODY_BYTES + 1);
    const result = await post([body.slice(0, 100), body.slice(100)]);
    expect(result.status).toBe(413);
    expect(harness.bedrock.requests).toHaveLength(0);
  });

  test.each([
    ['null', 'null'],
    ['a number', '42'],
    ['a string', '"Hi"'],
    ['a prototype key', '{"message": "Hi", "__proto__": {"sessionId": "victim"}}'],
    ['a message that is an object', '{"message": {"text": "Hi"}}'],
  ])('rejects JSON that is %s', async (_case, body) => {
    const result = await post(body);
    expect(result.status).toBe(400);
    expect(result.json.error.name).toBe('InvalidRequestError');
    expect(harness.bedrock.requests).toHaveLength(0);
  });

  test('replaces invalid UTF-8 in the message', async () => {
    harness.bedrock.script(textResponse('ok'));
    const body = Buffer.concat([
      Buffer.from('{"message": "caf'),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from('"}'),
    ]);
    const result = await post(body.toString('latin1'));
    expect(result.status).toBe(200);
    const sent = (harness.bedrock.requests[0].body as any).messages[0].content[0].text;
    expect(typeof sent).toBe('string');
  });

  test('survives a caller that disconnects mid-body', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST /agents/${AGENT}/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        'Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"message": "par',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));

    harness.bedrock.script(textResponse('still here'));
    expect((await post(JSON.stringify({ message: 'Hi' }))).status).toBe(200);
    expect(harness.bedrock.requests).toHaveLength(1);
    const errors = harness.logs.filter((line) => line.level === 'error');
    expect(errors.map((line) => line.message)).toEqual([]);
    const cancelled = harness.logs.filter(
      (line) => line.message === 'request cancelled because the caller disconnected',
    );
    expect(cancelled).toHaveLength(1);
  });
});
