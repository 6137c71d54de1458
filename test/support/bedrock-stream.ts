/**
 * ConverseStream half of the loopback Bedrock server: scripted steps rendered
 * as AWS event-stream frames. The frames are encoded with the SDK's own
 * `@smithy/eventstream-codec`, so that the real
 * `@aws-sdk/client-bedrock-runtime` decodes them as it decodes Bedrock's.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import type { ScriptedResponse, ScriptedUsage, TextResponse, ToolUseResponse } from './bedrock-server';
import { signReasoning } from './converse-rules';

/** Event types of the ConverseStream output union. */
export type ConverseStreamEventType =
  | 'messageStart'
  | 'contentBlockStart'
  | 'contentBlockDelta'
  | 'contentBlockStop'
  | 'messageStop'
  | 'metadata';

/**
 * Exception members of the ConverseStream output union. The SDK looks an
 * exception frame up by its `:exception-type` header among the union's
 * member names, which start with a lower-case letter, and only a match
 * becomes a typed exception such as `ModelStreamErrorException`.
 */
export type ConverseStreamExceptionType =
  | 'internalServerException'
  | 'modelStreamErrorException'
  | 'validationException'
  | 'throttlingException'
  | 'serviceUnavailableException';

interface StepTiming {
  /**
   * Milliseconds the server waits before it sends this step.
   * @default 0
   */
  readonly delayMs?: number;
}

/** One step of a scripted stream. */
export type StreamStep =
  | (StepTiming & {
      readonly kind: 'event';
      readonly eventType: ConverseStreamEventType;
      readonly body: Record<string, unknown>;
    })
  | (StepTiming & {
      readonly kind: 'exception';
      readonly exceptionType: ConverseStreamExceptionType;
      readonly body: Record<string, unknown>;
    })
  /** Delays the rest of the stream until `until` settles, so a test controls the order. */
  | { readonly kind: 'pause'; readonly until: Promise<unknown> }
  /** Destroys the connection without a frame, like a network failure. */
  | (StepTiming & { readonly kind: 'disconnect' });

/** A ConverseStream response given step by step. */
export interface StreamResponse {
  readonly type: 'stream';
  readonly steps: readonly StreamStep[];
  /**
   * Milliseconds the server waits before it sends the response headers.
   * @default 0
   */
  readonly delayMs?: number;
}

/** How a streamed response ended. */
export type StreamOutcome = 'completed' | 'client-closed' | 'disconnected';

/** A ConverseStream response in progress or done, for assertions. */
export interface StreamRecord {
  /** Position of the request in the server's `requests`. */
  readonly requestIndex: number;
  /** Frames written so far. */
  readonly framesSent: number;
  /** Resolves once the response ends; it never rejects. */
  readonly finished: Promise<StreamOutcome>;
}

/** Services the server lends a renderer: timers it cancels on close, and the stream log. */
export interface RenderTools {
  wait(delayMs: number): Promise<void>;
  recordStream(): { record: StreamRecord; frameSent(): void; end(outcome: StreamOutcome): void };
}

/**
 * Creates the tools of one request. Timers go into `timers`, which the
 * server clears on close, and stream records into `streams`.
 */
export function createRenderTools(
  requestIndex: number,
  timers: Set<NodeJS.Timeout>,
  streams: StreamRecord[],
): RenderTools {
  return {
    wait: (delayMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          resolve();
        }, delayMs);
        timers.add(timer);
      }),
    recordStream: () => {
      let resolveFinished!: (outcome: StreamOutcome) => void;
      const record = {
        requestIndex,
        framesSent: 0,
        finished: new Promise<StreamOutcome>((resolve) => (resolveFinished = resolve)),
      };
      streams.push(record);
      let ended = false;
      return {
        record,
        frameSent: () => {
          record.framesSent += 1;
        },
        end: (outcome) => {
          if (!ended) {
            ended = true;
            resolveFinished(outcome);
          }
        },
      };
    },
  };
}

const codec = new EventStreamCodec(toUtf8, fromUtf8);

function stringHeader(value: string) {
  return { type: 'string' as const, value };
}

/** Encodes one step as an event-stream frame; an `:exception-type` frame for exceptions. */
export function encodeStreamStep(step: StreamStep & { kind: 'event' | 'exception' }): Uint8Array {
  const headers: MessageHeaders =
    step.kind === 'event'
      ? {
          ':message-type': stringHeader('event'),
          ':event-type': stringHeader(step.eventType),
          ':content-type': stringHeader('application/json'),
        }
      : {
          ':message-type': stringHeader('exception'),
          ':exception-type': stringHeader(step.exceptionType),
          ':content-type': stringHeader('application/json'),
        };
  return codec.encode({ headers, body: fromUtf8(JSON.stringify(step.body)) });
}

function event(eventType: ConverseStreamEventType, body: Record<string, unknown>): StreamStep {
  return { kind: 'event', eventType, body };
}

/** Builders of single ConverseStream events. */
export const streamEvents = {
  messageStart: () => event('messageStart', { role: 'assistant' }),
  text: (index: number, text: string) =>
    event('contentBlockDelta', { contentBlockIndex: index, delta: { text } }),
  toolUseStart: (index: number, toolUseId: string, name: string) =>
    event('contentBlockStart', {
      contentBlockIndex: index,
      start: { toolUse: { toolUseId, name } },
    }),
  /** A part of the tool input's JSON text; the parts concatenate to the whole. */
  toolUseInput: (index: number, inputJsonPart: string) =>
    event('contentBlockDelta', {
      contentBlockIndex: index,
      delta: { toolUse: { input: inputJsonPart } },
    }),
  blockStop: (index: number) => event('contentBlockStop', { contentBlockIndex: index }),
  messageStop: (stopReason = 'end_turn') => event('messageStop', { stopReason }),
  metadata: (usage?: ScriptedUsage) =>
    event('metadata', { usage: wireUsageOf(usage), metrics: { latencyMs: 1 } }),
};

/** Builds an exception frame step, such as `streamException('modelStreamErrorException')`. */
export function streamException(
  exceptionType: ConverseStreamExceptionType,
  message = `Scripted ${exceptionType} from the loopback server.`,
  fields: Record<string, unknown> = {},
): StreamStep {
  return { kind: 'exception', exceptionType, body: { message, ...fields } };
}

/** Returns `step` sent `delayMs` after the step before it. */
export function delayed(delayMs: number, step: StreamStep): StreamStep {
  return step.kind === 'pause' ? step : { ...step, delayMs };
}

/** Builds a step that delays the rest of the stream until `until` settles. */
export function pauseUntil(until: Promise<unknown>): StreamStep {
  return { kind: 'pause', until };
}

/** Builds a step that drops the connection without a frame. */
export function disconnect(): StreamStep {
  return { kind: 'disconnect' };
}

/** Builds a stream response from steps. */
export function streamResponse(
  steps: readonly StreamStep[],
  options: Omit<StreamResponse, 'type' | 'steps'> = {},
): StreamResponse {
  return { type: 'stream', steps, ...options };
}

/**
 * Returns the steps of a whole text response: one delta per chunk, then the
 * stop and the usage. A text block has no contentBlockStart event in
 * ConverseStream, so the first delta opens it.
 */
export function textStreamSteps(
  chunks: readonly string[],
  options: { stopReason?: string; usage?: ScriptedUsage; index?: number } = {},
): StreamStep[] {
  const index = options.index ?? 0;
  return [
    streamEvents.messageStart(),
    ...chunks.map((chunk) => streamEvents.text(index, chunk)),
    streamEvents.blockStop(index),
    streamEvents.messageStop(options.stopReason ?? 'end_turn'),
    streamEvents.metadata(options.usage),
  ];
}

/** Splits text after each word, keeping the spaces, as a model's deltas would. */
export function splitWords(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

/** Token counts as the wire usage object carries them. */
export type WireUsage = Required<Pick<ScriptedUsage, 'inputTokens' | 'outputTokens' | 'totalTokens'>> &
  Pick<ScriptedUsage, 'cacheReadInputTokens' | 'cacheWriteInputTokens'>;

/**
 * Returns the wire usage of a scripted response: 1 input and 1 output token
 * by default, and a total of every count given, cache tokens included.
 */
export function wireUsageOf(usage: ScriptedUsage | undefined): WireUsage {
  const inputTokens = usage?.inputTokens ?? 1;
  const outputTokens = usage?.outputTokens ?? 1;
  const cacheRead = usage?.cacheReadInputTokens;
  const cacheWrite = usage?.cacheWriteInputTokens;
  const totalTokens =
    usage?.totalTokens ?? inputTokens + outputTokens + (cacheRead ?? 0) + (cacheWrite ?? 0);
  return {
    inputTokens,
    outputTokens,
    totalTokens,
    ...(cacheRead === undefined ? {} : { cacheReadInputTokens: cacheRead }),
    ...(cacheWrite === undefined ? {} : { cacheWriteInputTokens: cacheWrite }),
  };
}

/**
 * Returns the content blocks of a text or tool-use response in the order
 * the model sends them: reasoning, text, then each toolUse. A reasoning
 * block carries the loopback signature that converse-rules.ts checks.
 */
export function responseBlocks(response: TextResponse | ToolUseResponse): Record<string, unknown>[] {
  const blocks: Record<string, unknown>[] = [];
  if (response.reasoning !== undefined) {
    const reasoningText = { text: response.reasoning, signature: signReasoning(response.reasoning) };
    blocks.push({ reasoningContent: { reasoningText } });
  }
  if (response.text !== undefined) {
    blocks.push({ text: response.text });
  }
  if (response.type === 'toolUse') {
    for (const { toolUseId, name, input } of [response, ...(response.parallel ?? [])]) {
      blocks.push({ toolUse: { toolUseId, name, input } });
    }
  }
  return blocks;
}

/** Returns the events that send one content block at `index`. */
function blockSteps(block: Record<string, unknown>, index: number): StreamStep[] {
  if (typeof block.text === 'string') {
    return [...splitWords(block.text).map((chunk) => streamEvents.text(index, chunk)), streamEvents.blockStop(index)];
  }
  if (block.reasoningContent !== undefined) {
    const { text, signature } = (block.reasoningContent as { reasoningText: { text: string; signature: string } })
      .reasoningText;
    const delta = (reasoningContent: Record<string, string>) =>
      event('contentBlockDelta', { contentBlockIndex: index, delta: { reasoningContent } });
    return [delta({ text }), delta({ signature }), streamEvents.blockStop(index)];
  }
  const { toolUseId, name, input } = block.toolUse as { toolUseId: string; name: string; input: unknown };
  // The input arrives in two parts, so a client must join them before parsing.
  const json = JSON.stringify(input ?? {});
  const half = Math.ceil(json.length / 2);
  return [
    streamEvents.toolUseStart(index, toolUseId, name),
    streamEvents.toolUseInput(index, json.slice(0, half)),
    streamEvents.toolUseInput(index, json.slice(half)),
    streamEvents.blockStop(index),
  ];
}

/** Steps of a text or tool-use response, so that one script serves both operations. */
function stepsOf(response: ScriptedResponse): readonly StreamStep[] | undefined {
  if (response.type === 'stream') {
    return response.steps;
  }
  if (response.type !== 'text' && response.type !== 'toolUse') {
    return undefined;
  }
  const stopReason = response.type === 'toolUse' ? 'tool_use' : (response.stopReason ?? 'end_turn');
  return [
    streamEvents.messageStart(),
    ...responseBlocks(response).flatMap(blockSteps),
    streamEvents.messageStop(stopReason),
    streamEvents.metadata(response.usage),
  ];
}

/**
 * Writes a scripted response as a ConverseStream body: status 200 with
 * `application/vnd.amazon.eventstream`, then one frame per step. Returns
 * false when the response type has no stream form, so the caller sends
 * an error instead.
 */
export function renderConverseStream(
  response: ScriptedResponse,
  res: ServerResponse,
  tools: RenderTools,
): boolean {
  const steps = stepsOf(response);
  if (steps === undefined) {
    return false;
  }
  const { frameSent, end } = tools.recordStream();
  res.once('close', () => end(res.writableFinished ? 'completed' : 'client-closed'));
  res.writeHead(200, {
    'content-type': 'application/vnd.amazon.eventstream',
    'x-amzn-requestid': randomUUID(),
  });
  // Flushing the headers now lets the client see the response before the first frame.
  res.flushHeaders();

  const play = async () => {
    for (const step of steps) {
      if (step.kind === 'pause') {
        await step.until.catch(() => undefined);
      } else if (step.delayMs) {
        await tools.wait(step.delayMs);
      }
      if (res.destroyed) {
        return;
      }
      if (step.kind === 'disconnect') {
        end('disconnected');
        res.socket?.destroy();
        return;
      }
      if (step.kind !== 'pause') {
        // Waiting for the flush keeps a later disconnect from dropping this frame.
        await new Promise<void>((resolve) => res.write(encodeStreamStep(step), () => resolve()));
        frameSent();
      }
    }
    res.end();
  };
  void play();
  return true;
}
