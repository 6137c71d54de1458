import {
  BedrockRuntimeClient,
  ConverseStreamCommand,
  ModelStreamErrorException,
  ThrottlingException,
  type ConverseStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
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
  splitWords,
  streamEvents,
  streamException,
  streamResponse,
  textStreamSteps,
} from './support/bedrock-stream';

const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const CREDENTIALS = { accessKeyId: 'AKIDLOOPBACKTEST', secretAccessKey: 'loopback-secret' };

let server: BedrockServer;
let client: BedrockRuntimeClient;

beforeAll(async () => {
  server = await startBedrockServer();
  client = new BedrockRuntimeClient({
    region: 'us-east-1',
    endpoint: server.endpoint,
    credentials: CREDENTIALS,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler(),
  });
});

afterAll(async () => {
  client.destroy();
  await server.close();
});

beforeEach(() => server.reset());

function converseStream(signal?: AbortSignal) {
  const command = new ConverseStreamCommand({
    modelId: MODEL,
    messages: [{ role: 'user', content: [{ text: 'Hello' }] }],
  });
  return client.send(command, { abortSignal: signal });
}

/** Reads the whole stream, returning the events and the error that ended it, if any. */
async function collect(
  stream: AsyncIterable<ConverseStreamOutput> | undefined,
): Promise<{ events: ConverseStreamOutput[]; error?: unknown }> {
  const events: ConverseStreamOutput[] = [];
  try {
    for await (const event of stream ?? []) {
      events.push(event);
    }
  } catch (error) {
    return { events, error };
  }
  return { events };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('loopback ConverseStream server', () => {
  test('streams text deltas, stop and usage', async () => {
    const usage = { inputTokens: 12, outputTokens: 5 };
    server.script(textResponse('Paris is the capital.', { usage }));

    const output = await converseStream();
    const { events, error } = await collect(output.stream);

    expect(error).toBeUndefined();
    expect(events[0]).toEqual({ messageStart: { role: 'assistant' } });
    const deltas = events.flatMap((event) => event.contentBlockDelta?.delta?.text ?? []);
    expect(deltas).toEqual(['Paris', ' is', ' the', ' capital.']);
    expect(events.some((event) => event.messageStop?.stopReason === 'end_turn')).toBe(true);
    const metadata = events.find((event) => event.metadata)?.metadata;
    expect(metadata?.usage).toEqual({ inputTokens: 12, outputTokens: 5, totalTokens: 17 });
    expect(server.requests[0].operation).toBe('converse-stream');
    expect(await server.streams[0].finished).toBe('completed');
  });

  test('streams tool use input in parts', async () => {
    server.script(
      toolUseResponse({
        toolUseId: 'tool-1',
        name: 'lookup_order',
        input: { orderId: 'A-17' },
        text: 'Checking.',
      }),
    );

    const { events } = await collect((await converseStream()).stream);

    const start = events.find((event) => event.contentBlockStart)?.contentBlockStart;
    expect(start).toEqual({
      contentBlockIndex: 1,
      start: { toolUse: { toolUseId: 'tool-1', name: 'lookup_order' } },
    });
    const inputParts = events.flatMap(
      (event) => event.contentBlockDelta?.delta?.toolUse?.input ?? [],
    );
    expect(inputParts).toHaveLength(2);
    expect(JSON.parse(inputParts.join(''))).toEqual({ orderId: 'A-17' });
    expect(events.find((event) => event.messageStop)?.messageStop?.stopReason).toBe('tool_use');
  });

  test('exception frame midway surfaces as typed error', async () => {
    server.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Partial'),
        streamException('modelStreamErrorException', 'model stream broke', {
          originalStatusCode: 500,
          originalMessage: 'upstream reset',
        }),
      ]),
    );

    const { events, error } = await collect((await converseStream()).stream);

    const deltas = events.flatMap((event) => event.contentBlockDelta?.delta?.text ?? []);
    expect(deltas).toEqual(['Partial']);
    expect(error).toBeInstanceOf(ModelStreamErrorException);
    expect((error as ModelStreamErrorException).name).toBe('ModelStreamErrorException');
    expect((error as ModelStreamErrorException).message).toBe('model stream broke');
    expect((error as ModelStreamErrorException).originalStatusCode).toBe(500);
  });

  test('exception frame first rejects the send', async () => {
    server.script(streamResponse([streamException('throttlingException', 'slow down')]));

    const error = await converseStream().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ThrottlingException);
    expect((error as Error).message).toBe('slow down');
  });

  test('HTTP error status rejects the send', async () => {
    server.script(errorResponse(429, 'ThrottlingException', { message: 'scripted throttle' }));

    const error = await converseStream().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ThrottlingException);
    expect((error as ThrottlingException).$metadata.httpStatusCode).toBe(429);
  });

  test('dropped connection fails the iterator', async () => {
    // The pause lets the client read the frames first, because a reset socket
    // discards data the client has received but not read yet.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    server.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'Hal'),
        pauseUntil(released),
        disconnect(),
      ]),
    );

    const iterator = (await converseStream()).stream![Symbol.asyncIterator]();
    const events = [await iterator.next(), await iterator.next()];
    release();
    const error = await iterator.next().catch((caught: unknown) => caught);

    expect(events.map((event) => event.done)).toEqual([false, false]);
    // Node creates this error outside jest's realm, so instanceof Error is false.
    expect((error as Error).message).toMatch(/aborted/);
    expect(await server.streams[0].finished).toBe('disconnected');
  });

  test('pause holds later events until released', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    server.script(
      streamResponse([
        streamEvents.messageStart(),
        streamEvents.text(0, 'First'),
        pauseUntil(released),
        ...textStreamSteps([' second']).slice(1),
      ]),
    );

    const output = await converseStream();
    const iterator = output.stream![Symbol.asyncIterator]();
    const first = await iterator.next();
    const second = await iterator.next();
    const framesBeforeRelease = server.streams[0].framesSent;
    release();
    const rest = await collect({ [Symbol.asyncIterator]: () => iterator });

    expect(first.value).toEqual({ messageStart: { role: 'assistant' } });
    expect(second.value?.contentBlockDelta?.delta?.text).toBe('First');
    expect(framesBeforeRelease).toBe(2);
    const restDeltas = rest.events.flatMap((event) => event.contentBlockDelta?.delta?.text ?? []);
    expect(restDeltas).toEqual([' second']);
  });

  test('per-event delay and slow first byte are observed', async () => {
    server.script(
      streamResponse(
        [
          streamEvents.messageStart(),
          delayed(50, streamEvents.text(0, 'late')),
          ...textStreamSteps([]).slice(1),
        ],
        { delayMs: 50 },
      ),
    );
    const started = Date.now();

    const { events } = await collect((await converseStream()).stream);

    // A lower bound only, with slack for timer rounding: a loaded machine may take longer.
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(events.some((event) => event.contentBlockDelta?.delta?.text === 'late')).toBe(true);
  });

  test('client abort closes the stream on the server', async () => {
    const controller = new AbortController();
    const never = new Promise(() => {});
    server.script(
      streamResponse([streamEvents.messageStart(), streamEvents.text(0, 'one'), pauseUntil(never)]),
    );

    const output = await converseStream(controller.signal);
    const iterator = output.stream![Symbol.asyncIterator]();
    await iterator.next();
    await iterator.next();
    controller.abort();

    const outcome = await withTimeout(server.streams[0].finished, 5_000, 'server-side close');
    expect(outcome).toBe('client-closed');
    await expect(iterator.next()).rejects.toThrow();
  });

  test('splits text after words', () => {
    expect(splitWords('Hi  there you ')).toEqual(['Hi', '  there', ' you', ' ']);
    expect(splitWords('')).toEqual([]);
  });
});
