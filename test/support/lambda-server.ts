/**
 * Loopback server that speaks the Lambda Invoke and InvokeWithResponseStream
 * APIs, so that code under test calls handlers through the real
 * `@aws-sdk/client-lambda`. Handlers run in this process. Point a client at
 * `endpoint` with the `endpoint` option or `AWS_ENDPOINT_URL_LAMBDA`.
 */
import { randomUUID } from 'crypto';
import { IncomingMessage, ServerResponse, createServer } from 'http';
import { AddressInfo } from 'net';
import { Writable } from 'stream';
import {
  serveResultAsStream,
  serveStreamedInvocation,
  type LocalStreamingHandler,
  type StreamedInvocationOptions,
} from './lambda-stream';

/** The parts of the Lambda context object that the project's handlers read. */
export interface LocalLambdaContext {
  readonly awsRequestId: string;
  readonly functionName: string;
  getRemainingTimeInMillis(): number;
}

/**
 * A handler of any event type. The event is typed `never` so that handlers
 * declared with their own event type can be registered.
 */
export type LocalHandler = (event: never, context: LocalLambdaContext) => unknown;

/** One invocation, for assertions. */
export interface RecordedInvocation {
  readonly functionName: string;
  readonly payload: unknown;
  /** `Unhandled` when the handler threw. */
  readonly functionError?: string;
  /** True when the call came through InvokeWithResponseStream. */
  readonly streamed?: boolean;
}

/** Options of {@link LambdaServer.registerStreaming}. */
export interface StreamingRegistration extends Pick<StreamedInvocationOptions, 'maxChunkBytes'> {
  /** @default 60_000 */
  readonly timeoutMs?: number;
}

export interface LambdaServer {
  readonly endpoint: string;
  readonly invocations: RecordedInvocation[];
  /** Registers `handler` under `functionName`, replacing any earlier one. */
  register(functionName: string, handler: LocalHandler, options?: { timeoutMs?: number }): void;
  /**
   * Registers a response streaming handler, the function that Lambda's
   * `awslambda.streamifyResponse` wraps, replacing any earlier one. Invoke
   * returns what it wrote as one payload, and InvokeWithResponseStream
   * streams each write as it happens.
   */
  registerStreaming(
    functionName: string,
    handler: LocalStreamingHandler<LocalLambdaContext>,
    options?: StreamingRegistration,
  ): void;
  close(): Promise<void>;
}

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;
// Path of InvokeWithResponseStream, per the Lambda API reference:
// https://docs.aws.amazon.com/lambda/latest/api/API_InvokeWithResponseStream.html
const STREAM_PATH = /^\/2021-11-15\/functions\/([^/]+)\/response-streaming-invocations$/;

type Entry =
  | { readonly kind: 'buffered'; readonly handler: LocalHandler; readonly timeoutMs: number }
  | {
      readonly kind: 'streaming';
      readonly handler: LocalStreamingHandler<LocalLambdaContext>;
      readonly timeoutMs: number;
      readonly maxChunkBytes?: number;
    };

/** Runs a streaming handler for a plain Invoke and returns what it wrote, as Lambda buffers it. */
async function collectStreamed(
  handler: LocalStreamingHandler<LocalLambdaContext>,
  payload: unknown,
  context: LocalLambdaContext,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const responseStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  await handler(payload as never, responseStream, context);
  return Buffer.concat(chunks);
}

/** Reads the function name from a name, a partial ARN or a full ARN, as Lambda does. */
function functionNameOf(raw: string): string {
  const name = decodeURIComponent(raw);
  const arn = /^arn:aws[a-z-]*:lambda:[^:]+:\d{12}:function:([^:]+)(:.+)?$/.exec(name);
  return arn ? arn[1] : name;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': randomUUID(),
    ...headers,
  });
  res.end(body);
}

/** Sends an AWS error that the SDK turns into an exception named `type`. */
function sendError(res: ServerResponse, status: number, type: string, message: string) {
  send(res, status, JSON.stringify({ Type: 'User', message }), { 'x-amzn-errortype': type });
}

export async function startLambdaServer(): Promise<LambdaServer> {
  const handlers = new Map<string, Entry>();
  const invocations: RecordedInvocation[] = [];

  const server = createServer(async (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const streamMatch = STREAM_PATH.exec(path);
    const match = INVOKE_PATH.exec(path) ?? streamMatch;
    const text = await readBody(req);
    if (req.method !== 'POST' || !match) {
      sendError(
        res,
        404,
        'UnknownOperationException',
        `No Lambda operation at ${req.method} ${req.url}`,
      );
      return;
    }
    const functionName = functionNameOf(match[1]);
    const entry = handlers.get(functionName);
    if (!entry) {
      sendError(res, 404, 'ResourceNotFoundException', `Function not found: ${functionName}`);
      return;
    }
    let payload: unknown;
    try {
      payload = text === '' ? {} : JSON.parse(text);
    } catch {
      sendError(
        res,
        400,
        'InvalidRequestContentException',
        'Could not parse request body into json',
      );
      return;
    }

    const started = Date.now();
    const context: LocalLambdaContext = {
      awsRequestId: randomUUID(),
      functionName,
      getRemainingTimeInMillis: () => Math.max(0, entry.timeoutMs - (Date.now() - started)),
    };
    if (streamMatch !== null) {
      await serveStream(res, entry, payload, context);
      return;
    }
    try {
      // Lambda serializes an undefined result as null.
      const body =
        entry.kind === 'streaming'
          ? (await collectStreamed(entry.handler, payload, context)).toString('utf8')
          : JSON.stringify((await entry.handler(payload as never, context)) ?? null);
      invocations.push({ functionName, payload });
      send(res, 200, body, { 'x-amz-executed-version': '$LATEST' });
    } catch (error) {
      invocations.push({ functionName, payload, functionError: 'Unhandled' });
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      send(res, 200, JSON.stringify({ errorType: name, errorMessage: message, trace: [] }), {
        'x-amz-executed-version': '$LATEST',
        'x-amz-function-error': 'Unhandled',
      });
    }
  });

  /** Serves InvokeWithResponseStream, sending a buffered handler's result as one PayloadChunk. */
  async function serveStream(
    res: ServerResponse,
    entry: Entry,
    payload: unknown,
    context: LocalLambdaContext,
  ): Promise<void> {
    const { functionName } = context;
    if (entry.kind === 'streaming') {
      const run = (stream: Writable) => entry.handler(payload as never, stream, context);
      const { maxChunkBytes } = entry;
      const { error } = await serveStreamedInvocation(res, run, { maxChunkBytes });
      const functionError = error === undefined ? undefined : 'Unhandled';
      invocations.push({ functionName, payload, functionError, streamed: true });
      return;
    }
    const run = async () => entry.handler(payload as never, context);
    const { error } = await serveResultAsStream(res, run);
    const functionError = error === undefined ? undefined : 'Unhandled';
    invocations.push({ functionName, payload, functionError, streamed: true });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    invocations,
    register(functionName, handler, options = {}) {
      handlers.set(functionName, {
        kind: 'buffered',
        handler,
        timeoutMs: options.timeoutMs ?? 60_000,
      });
    },
    registerStreaming(functionName, handler, options = {}) {
      handlers.set(functionName, {
        kind: 'streaming',
        handler,
        timeoutMs: options.timeoutMs ?? 60_000,
        maxChunkBytes: options.maxChunkBytes,
      });
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive clients hold idle connections that would keep close() waiting.
      server.closeAllConnections();
      await closed;
    },
  };
}
