/**
 * Loopback server that speaks the Bedrock Runtime wire protocol of Converse,
 * ConverseStream and ApplyGuardrail (restJson1 over HTTP/1.1), so that tests drive the real
 * `@aws-sdk/client-bedrock-runtime` against scripted responses. Point a client
 * at `endpoint` with `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` or the `endpoint`
 * option, and give it a `NodeHttpHandler`, because this server does not
 * speak HTTP/2.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createRenderTools,
  renderConverseStream,
  responseBlocks,
  wireUsageOf,
  type RenderTools,
  type StreamRecord,
  type StreamResponse,
} from './bedrock-stream';
import {
  APPLY_GUARDRAIL_PATH,
  applyGuardrailBody,
  type ApplyGuardrailResponse,
} from './bedrock-guardrail';
import { accountPromptCache, type PromptCacheAccounting } from './bedrock-cache-accounting';
import { findConverseViolation } from './converse-rules';
import { countInputTokens, countOutputTokens } from './converse-tokens';

/** Token counts reported with a response. `totalTokens` defaults to their sum. */
export interface ScriptedUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly totalTokens?: number;
  /** Sent only when set, because the member is optional in Bedrock's TokenUsage. */
  readonly cacheReadInputTokens?: number;
  /** Sent only when set, because the member is optional in Bedrock's TokenUsage. */
  readonly cacheWriteInputTokens?: number;
}

interface ScriptedBase {
  /**
   * Milliseconds the server waits before it sends the response headers.
   * @default 0
   */
  readonly delayMs?: number;
}

/** A text response from the assistant. */
export interface TextResponse extends ScriptedBase {
  readonly type: 'text';
  readonly text: string;
  /** @default 'end_turn' */
  readonly stopReason?: string;
  /**
   * Token counts to report.
   * @default - the counts of the request and the response, by the rule of converse-tokens.ts
   */
  readonly usage?: ScriptedUsage;
  /**
   * Reasoning text sent as a signed reasoningContent block before the text.
   * @default - none
   */
  readonly reasoning?: string;
  /** Converse `trace` member, sent as given, such as a guardrail trace. @default - none */
  readonly trace?: unknown;
}

/** One toolUse block of a response. */
export interface ScriptedToolUse {
  readonly toolUseId: string;
  readonly name: string;
  readonly input: unknown;
}

/** A response that requests a tool call, optionally after some text. */
export interface ToolUseResponse extends ScriptedBase, ScriptedToolUse {
  readonly type: 'toolUse';
  /** Text block sent before the toolUse block. @default - none */
  readonly text?: string;
  /**
   * Further toolUse blocks after the first, for parallel tool calls.
   * @default - none
   */
  readonly parallel?: readonly ScriptedToolUse[];
  /**
   * Token counts to report.
   * @default - the counts of the request and the response, by the rule of converse-tokens.ts
   */
  readonly usage?: ScriptedUsage;
  /**
   * Reasoning text sent as a signed reasoningContent block before every other block.
   * @default - none
   */
  readonly reasoning?: string;
}

/** An AWS error response, such as 429 ThrottlingException. */
export interface ErrorResponse extends ScriptedBase {
  readonly type: 'error';
  readonly status: number;
  /** AWS error type, which the SDK turns into the exception name. */
  readonly errorType: string;
  /** @default - a message naming the error type */
  readonly message?: string;
}

/**
 * One scripted response. Each request consumes the next one in order. On
 * converse-stream, text and tool-use responses are sent as event-stream
 * frames, one text delta per word, and errors as an HTTP error status.
 */
export type ScriptedResponse =
  | TextResponse
  | ToolUseResponse
  | ErrorResponse
  | StreamResponse
  | ApplyGuardrailResponse;

/**
 * Operation named by the request path: `/model/{modelId}/{operation}`, or
 * `apply-guardrail` for `/guardrail/{id}/version/{version}/apply`.
 */
export type BedrockOperation = 'converse' | 'converse-stream' | 'apply-guardrail';

/** A request the server received, for assertions. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** Undefined when the path is not an operation this server serves. */
  readonly operation?: BedrockOperation;
  /** Model id decoded from the path. */
  readonly modelId?: string;
  /** Guardrail id decoded from an ApplyGuardrail path. */
  readonly guardrailId?: string;
  /** Guardrail version decoded from an ApplyGuardrail path. */
  readonly guardrailVersion?: string;
  /** Region of the SigV4 credential scope in the Authorization header. */
  readonly region?: string;
  readonly headers: IncomingHttpHeaders;
  /** Parsed JSON body, or undefined when the body is empty or not JSON. */
  readonly body: unknown;
}

/** A running loopback Bedrock server. */
export interface BedrockServer {
  /** Base URL, such as `http://127.0.0.1:40123`. */
  readonly endpoint: string;
  /** Requests received so far, oldest first. */
  readonly requests: readonly RecordedRequest[];
  /** ConverseStream responses started so far, oldest first. */
  readonly streams: readonly StreamRecord[];
  /** Appends responses to the script, one per expected request, retries included. */
  script(...responses: ScriptedResponse[]): void;
  /** Returns the number of scripted responses not consumed yet. */
  pending(): number;
  /** Clears the script and the recorded requests. */
  reset(): void;
  /** Stops the server, drops open connections and cancels delayed responses. */
  close(): Promise<void>;
}

/** Builds a text response. */
export function textResponse(
  text: string,
  options: Omit<TextResponse, 'type' | 'text'> = {},
): TextResponse {
  return { type: 'text', text, ...options };
}

/** Builds a tool-use response. */
export function toolUseResponse(options: Omit<ToolUseResponse, 'type'>): ToolUseResponse {
  return { type: 'toolUse', ...options };
}

/** Builds an error response, such as `errorResponse(429, 'ThrottlingException')`. */
export function errorResponse(
  status: number,
  errorType: string,
  options: Omit<ErrorResponse, 'type' | 'status' | 'errorType'> = {},
): ErrorResponse {
  return { type: 'error', status, errorType, ...options };
}

/** Settings of {@link guardrailResponse}. */
export interface GuardrailResponseOptions {
  /** Side the guardrail blocked: the request (`input`) or the model's output (`output`). */
  readonly side: 'input' | 'output';
  /**
   * Assessment of the guardrail, in the wire shape of Bedrock's GuardrailAssessment.
   * @default - a content filter of type PROMPT_ATTACK for input, VIOLENCE for output, BLOCKED
   */
  readonly assessment?: Record<string, unknown>;
  /** @default 'loopbackguardrail' */
  readonly guardrailId?: string;
  /** Text the guardrail returns in place of the content. @default - a fixed refusal */
  readonly text?: string;
  /** @default 0 */
  readonly delayMs?: number;
}

/**
 * Builds the Converse response of a guardrail that intervened. It has stop
 * reason `guardrail_intervened`, the guardrail's text as the output, and a
 * guardrail trace. As in GuardrailTraceAssessment of the Bedrock Runtime API
 * reference, the trace's `inputAssessment` maps the guardrail id to one
 * assessment, and its `outputAssessments` maps the id to a list.
 */
export function guardrailResponse(options: GuardrailResponseOptions): TextResponse {
  const filterType = options.side === 'input' ? 'PROMPT_ATTACK' : 'VIOLENCE';
  const assessment = options.assessment ?? {
    contentPolicy: {
      filters: [
        {
          type: filterType,
          confidence: 'HIGH',
          filterStrength: 'HIGH',
          action: 'BLOCKED',
          detected: true,
        },
      ],
    },
  };
  const id = options.guardrailId ?? 'loopbackguardrail';
  const guardrail =
    options.side === 'input'
      ? { inputAssessment: { [id]: assessment } }
      : { outputAssessments: { [id]: [assessment] }, modelOutput: ['(blocked model output)'] };
  return {
    type: 'text',
    text: options.text ?? 'Sorry, the model cannot answer this question.',
    stopReason: 'guardrail_intervened',
    trace: { guardrail },
    delayMs: options.delayMs,
  };
}

/** Error type sent when a request arrives and the script is empty. */
export const SCRIPT_EMPTY_ERROR_TYPE = 'LoopbackScriptEmptyException';

const MODEL_PATH = /^\/model\/([^/]+)\/(converse|converse-stream)$/;
const CREDENTIAL_SCOPE = /Credential=[^/]+\/\d{8}\/([^/]+)\/bedrock\//;
// Real Bedrock sends the error type with a namespace suffix, which the SDK strips.
const ERROR_TYPE_SUFFIX = ':http://internal.amazon.com/coral/com.amazon.bedrock/';

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.destroyed || res.writableEnded) {
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    ...headers,
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, errorType: string, message: string): void {
  sendJson(res, status, { message }, { 'x-amzn-errortype': `${errorType}${ERROR_TYPE_SUFFIX}` });
}

/** Writes a scripted response as a Converse JSON body. */
function renderConverse(response: ScriptedResponse, res: ServerResponse): void {
  if (response.type === 'error') {
    const message = response.message ?? `Scripted ${response.errorType} from the loopback server.`;
    sendError(res, response.status, response.errorType, message);
    return;
  }
  if (response.type === 'stream' || response.type === 'applyGuardrail') {
    const message = `A ${response.type} response was scripted, but the request is a Converse call.`;
    sendError(res, 500, 'LoopbackScriptMismatchException', message);
    return;
  }
  const content = responseBlocks(response);
  sendJson(res, 200, {
    output: { message: { role: 'assistant', content } },
    stopReason: response.type === 'toolUse' ? 'tool_use' : (response.stopReason ?? 'end_turn'),
    usage: wireUsageOf(response.usage),
    metrics: { latencyMs: response.delayMs ?? 0 },
    trace: response.type === 'text' ? response.trace : undefined,
  });
}

/** Writes a scripted response as ConverseStream frames, or an error status for errors. */
function renderStream(response: ScriptedResponse, res: ServerResponse, tools: RenderTools): void {
  if (!renderConverseStream(response, res, tools)) {
    renderConverse(response, res);
  }
}

/** Writes a scripted ApplyGuardrail result, or the error a scripted error response names. */
function renderApplyGuardrail(response: ScriptedResponse, res: ServerResponse): void {
  if (response.type === 'applyGuardrail') {
    sendJson(res, 200, applyGuardrailBody(response));
  } else if (response.type === 'error') {
    renderConverse(response, res);
  } else {
    const message = `A ${response.type} response was scripted, but the request is ApplyGuardrail.`;
    sendError(res, 500, 'LoopbackScriptMismatchException', message);
  }
}

type Renderer = (response: ScriptedResponse, res: ServerResponse, tools: RenderTools) => void;

const RENDERERS: Partial<Record<BedrockOperation, Renderer>> = {
  converse: renderConverse,
  'converse-stream': renderStream,
  'apply-guardrail': renderApplyGuardrail,
};

function parseJson(text: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

function recordRequest(method: string, path: string, headers: IncomingHttpHeaders, text: string) {
  const match = MODEL_PATH.exec(path);
  const guardrail = APPLY_GUARDRAIL_PATH.exec(path);
  const scope = CREDENTIAL_SCOPE.exec(headers.authorization ?? '');
  const operation = guardrail === null ? match?.[2] : 'apply-guardrail';
  return {
    method,
    path,
    operation: operation as BedrockOperation | undefined,
    modelId: match === null ? undefined : decodeURIComponent(match[1]),
    guardrailId: guardrail === null ? undefined : decodeURIComponent(guardrail[1]),
    guardrailVersion: guardrail === null ? undefined : decodeURIComponent(guardrail[2]),
    region: scope?.[1],
    headers,
    body: parseJson(text),
  };
}

/** Settings of {@link startBedrockServer}. */
export interface BedrockServerOptions {
  /**
   * Reject a Converse or ConverseStream request that breaks a conversation
   * rule of converse-rules.ts with the 400 ValidationException Bedrock
   * returns. The rejected request is recorded but consumes no scripted response.
   * @default true
   */
  readonly enforceConverseRules?: boolean;
  /**
   * Check requests as if the model had extended thinking enabled, so that
   * an active tool loop must keep its reasoning blocks.
   * @default false
   */
  readonly thinking?: boolean;
  /**
   * Prompt cache that splits the input tokens of a request with cache
   * points into cache reads, cache writes and plain input.
   * @default - none: usage carries no cache counts unless scripted
   */
  readonly promptCache?: PromptCacheAccounting;
  /**
   * Returns the response to a Converse or ConverseStream request that the
   * script has none for, so a long run such as a benchmark can answer by
   * the request's content instead of by its position.
   * @default - none: such a request gets a LoopbackScriptEmptyException
   */
  readonly respond?: (request: RecordedRequest) => ScriptedResponse;
}

/** Message type of a rejected request, which the SDK turns into the exception name. */
export const VALIDATION_ERROR_TYPE = 'ValidationException';

/**
 * Returns `response` with the usage the server reports for it: the scripted
 * usage, or else the input tokens of `body` and the output tokens of the
 * response by the rule of converse-tokens.ts. This is the one place the
 * server decides a response's usage, so accounting such as prompt caching
 * can hook in here.
 */
export function accountUsage(response: ScriptedResponse, body: unknown): ScriptedResponse {
  if ((response.type !== 'text' && response.type !== 'toolUse') || response.usage !== undefined) {
    return response;
  }
  const usage = {
    inputTokens: countInputTokens(body),
    outputTokens: countOutputTokens(responseBlocks(response)),
  };
  return { ...response, usage };
}

/** Starts a server on 127.0.0.1 on a free port. */
export async function startBedrockServer(options: BedrockServerOptions = {}): Promise<BedrockServer> {
  const enforceRules = options.enforceConverseRules ?? true;
  const script: ScriptedResponse[] = [];
  const requests: RecordedRequest[] = [];
  const streams: StreamRecord[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      const text = Buffer.concat(chunks).toString('utf8');
      const recorded = recordRequest(req.method ?? 'GET', path, req.headers, text);
      requests.push(recorded);

      const render = recorded.operation && RENDERERS[recorded.operation];
      if (req.method !== 'POST' || render === undefined) {
        const message = `The loopback Bedrock server does not serve ${req.method} ${path}.`;
        sendError(res, recorded.operation ? 500 : 404, 'UnknownOperationException', message);
        return;
      }
      const isConverse = recorded.operation === 'converse' || recorded.operation === 'converse-stream';
      const violation =
        isConverse && enforceRules ? findConverseViolation(recorded.body, { thinking: options.thinking }) : undefined;
      if (violation !== undefined) {
        sendError(res, 400, VALIDATION_ERROR_TYPE, violation.message);
        return;
      }
      const scripted = script.shift() ?? (isConverse ? options.respond?.(recorded) : undefined);
      if (scripted === undefined) {
        const message =
          `The loopback Bedrock server has no scripted response left for request ` +
          `${requests.length} (POST ${path}). Script one response per expected request, ` +
          'retries included.';
        sendError(res, 500, SCRIPT_EMPTY_ERROR_TYPE, message);
        return;
      }
      const response = accountPromptCache(options.promptCache, recorded, accountUsage(scripted, recorded.body));
      const tools = createRenderTools(requests.length - 1, timers, streams);
      const timer = setTimeout(() => {
        timers.delete(timer);
        render(response, res, tools);
      }, response.delayMs ?? 0);
      timers.add(timer);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    streams,
    script: (...responses) => {
      script.push(...responses);
    },
    pending: () => script.length,
    reset: () => {
      script.length = 0;
      requests.length = 0;
      streams.length = 0;
    },
    close: async () => {
      for (const timer of timers) {
        clearTimeout(timer);
      }
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive clients hold idle connections that would keep close() waiting.
      server.closeAllConnections();
      await closed;
    },
  };
}
