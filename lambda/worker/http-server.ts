/**
 * The realtime agent's HTTP server. The load balancer forwards
 * `POST /agents/<name>/invoke` and health checks on `GET /agents/<name>/health`.
 * An invoke request with `Accept: application/x-ndjson` gets its response
 * streamed (see http-stream.ts), and any other gets one JSON body.
 */
import { randomUUID } from 'crypto';
import { IncomingMessage, Server, ServerResponse, createServer } from 'http';
import { AddressInfo } from 'net';
import { WorkerRuntimeConfig } from '../shared/contracts';
import { AgentStackError, InvalidRequestError, PayloadTooLargeError } from '../shared/errors';
import { Logger } from '../shared/logger';
import { AgentResult, AgentTask } from './agent-loop';
import { Authenticator } from '../shared/auth';
import { InternalError, MethodNotAllowedError, NotFoundError, TaskAbortedError } from './errors';
import { acceptsStream, streamTaskResponse } from './http-stream';
import { SESSION_ID_PATTERN } from './memory';
import { ModelStreamListener } from './model-client';

export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * Milliseconds an idle keep-alive connection stays open. It must exceed the
 * load balancer's idle timeout (60 s by default), or the load balancer may
 * send a request on a connection the server is closing and respond with 502.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export interface RealtimeServerDeps {
  readonly config: WorkerRuntimeConfig;
  readonly authenticator: Authenticator;
  /** Runs a task; `listener` is given when the caller asked for a streamed response. */
  readonly runTask: (
    task: AgentTask,
    signal: AbortSignal,
    listener?: ModelStreamListener,
  ) => Promise<AgentResult>;
  readonly logger: Logger;
}

/**
 * Body of `POST /agents/<name>/invoke`: a message, or the resume of a
 * session whose high-impact tool call waited for approval `resume`.
 */
export type InvokeRequest =
  | { readonly message: string; readonly sessionId?: string; readonly resume?: undefined }
  | { readonly resume: string; readonly sessionId: string; readonly message?: undefined };

/** Approval ids are UUIDs, which the worker generates. */
const APPROVAL_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Validates the parsed body of an invoke request. */
export function parseInvokeRequest(text: string, requestId: string): InvokeRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new InvalidRequestError(
      'The request body is not valid JSON; send {"message": "..."}.',
      requestId,
    );
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidRequestError(
      'The request body must be a JSON object such as {"message": "..."}.',
      requestId,
    );
  }
  const { message, sessionId, resume, ...rest } = body as Record<string, unknown>;
  const unknownFields = Object.keys(rest);
  if (unknownFields.length > 0) {
    throw new InvalidRequestError(
      `Unknown field(s) ${unknownFields.join(', ')}; the body accepts only message, sessionId and resume.`,
      requestId,
    );
  }
  if (resume !== undefined) return parseResume(resume, message, sessionId, requestId);
  if (typeof message !== 'string' || message.trim() === '') {
    throw new InvalidRequestError(
      "Field message is missing or empty; send the user's text as a string.",
      requestId,
    );
  }
  if (
    sessionId !== undefined &&
    (typeof sessionId !== 'string' || !SESSION_ID_PATTERN.test(sessionId))
  ) {
    throw new InvalidRequestError(
      `Field sessionId must be 1 to 128 letters, digits, _ or -; omit it to start a new session.`,
      requestId,
    );
  }
  return { message, sessionId };
}

function parseResume(resume: unknown, message: unknown, sessionId: unknown, requestId: string): InvokeRequest {
  if (typeof resume !== 'string' || !APPROVAL_ID_PATTERN.test(resume)) {
    throw new InvalidRequestError(
      'Field resume must be the approvalId that a response with stopReason awaiting_approval returned.',
      requestId,
    );
  }
  if (message !== undefined) {
    throw new InvalidRequestError(
      'Send either message or resume, not both; resume the session first, then send the message.',
      requestId,
    );
  }
  if (typeof sessionId !== 'string' || !SESSION_ID_PATTERN.test(sessionId)) {
    throw new InvalidRequestError(
      'Field sessionId is required with resume; send the sessionId of the session that waits for the approval.',
      requestId,
    );
  }
  return { resume, sessionId };
}

/** Reads the body, rejecting it as soon as it grows past `maxBytes`. */
function readBody(req: IncomingMessage, maxBytes: number, requestId: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        req.pause();
        reject(tooLarge(maxBytes, requestId));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', (error: NodeJS.ErrnoException) => {
      // Node reports a caller that disconnected mid-body as ECONNRESET, which
      // is the caller's choice rather than a server failure.
      if (error.code !== 'ECONNRESET') {
        reject(error);
        return;
      }
      reject(
        new TaskAbortedError(
          `Request ${requestId} was cancelled because the caller disconnected during the body.`,
          requestId,
          { cause: error },
        ),
      );
    });
  });
}

function tooLarge(maxBytes: number, requestId: string): PayloadTooLargeError {
  return new PayloadTooLargeError(
    `The request body is larger than this agent's limit of ${maxBytes} bytes; ` +
      'send a shorter message.',
    requestId,
  );
}

function sendJson(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/** Creates the server; call `listen` on it, or use {@link startRealtimeServer}. */
export function createRealtimeServer(deps: RealtimeServerDeps): Server {
  const { config } = deps;
  const invokePath = `/agents/${config.agent}/invoke`;
  const healthPath = `/agents/${config.agent}/health`;

  async function route(req: IncomingMessage, res: ServerResponse, requestId: string, log: Logger) {
    const path = (req.url ?? '/').split('?')[0];
    if (path === healthPath) {
      if (req.method !== 'GET')
        throw new MethodNotAllowedError(`Use GET on ${healthPath}.`, requestId);
      sendJson(res, 200, { status: 'ok', agent: config.agent });
      return;
    }
    if (path !== invokePath) {
      throw new NotFoundError(
        `No route for ${path}; this agent serves POST ${invokePath}.`,
        requestId,
      );
    }
    if (req.method !== 'POST')
      throw new MethodNotAllowedError(`Use POST on ${invokePath}.`, requestId);

    const maxBytes = config.limits.maxBodyBytes;
    if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw tooLarge(maxBytes, requestId);
    const userId = await deps.authenticator.authenticate(req.headers, requestId, log);
    const input = parseInvokeRequest(await readBody(req, maxBytes, requestId), requestId);

    // A caller that disconnects cancels its task, so no more tokens are spent on it.
    const cancel = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) cancel.abort();
    });
    const sessionId = input.sessionId ?? randomUUID();
    const task: AgentTask =
      input.resume === undefined
        ? { requestId, userId, sessionId, message: input.message }
        : { requestId, userId, sessionId, resume: input.resume };
    if (acceptsStream(req.headers)) {
      await streamTaskResponse(res, task, (listener) =>
        deps.runTask(task, cancel.signal, listener),
      );
      return;
    }
    const result = await deps.runTask(task, cancel.signal);
    sendJson(res, 200, {
      sessionId: result.sessionId,
      output: result.output,
      stopReason: result.stopReason,
      confidence: result.confidence,
      iterations: result.iterations,
      usage: result.usage,
      approvalId: result.approvalId,
      requestId,
    });
  }

  return createServer((req, res) => {
    const requestId = randomUUID();
    const started = Date.now();
    const log = deps.logger.child({ requestId, agent: config.agent });
    res.setHeader(REQUEST_ID_HEADER, requestId);

    let errorName: string | undefined;
    route(req, res, requestId, log)
      .catch((caught: unknown) => {
        const error =
          caught instanceof AgentStackError
            ? caught
            : new InternalError(
                `Internal error; quote request id ${requestId} when you report it.`,
                requestId,
              );
        errorName = error.name;
        if (error instanceof TaskAbortedError) {
          log.info('request cancelled because the caller disconnected');
          return;
        }
        if (error.statusCode >= 500) log.error('request failed', { path: req.url }, caught);
        if (res.headersSent || res.destroyed) return;

        // After a 413 the rest of the body stays unread, so the connection is closed.
        const close = error instanceof PayloadTooLargeError;
        sendJson(res, error.statusCode, { error: { ...error.toJSON(), requestId } }, close);
        if (close) res.once('finish', () => req.destroy());
      })
      .finally(() => {
        log.info('request finished', {
          method: req.method,
          path: req.url,
          // Undefined when the caller left before any response was sent.
          status: res.headersSent ? res.statusCode : undefined,
          errorName,
          durationMs: Date.now() - started,
        });
      });
  });
}

/**
 * Starts the server on `host`, or on all interfaces when it is omitted, and
 * returns the bound port.
 */
export async function startRealtimeServer(
  deps: RealtimeServerDeps,
  port: number,
  host?: string,
): Promise<{ server: Server; port: number }> {
  const server = createRealtimeServer(deps);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
