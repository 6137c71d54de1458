/**
 * Streamed responses of the realtime server. A caller that sends
 * `Accept: application/x-ndjson` receives newline-delimited JSON events
 * while the agent works. Any other Accept header gets the single JSON body.
 *
 * Events, one per line, in this order:
 * - `start` with `requestId` and `sessionId`, as soon as the task begins.
 * - `delta` with `text`, for each text delta of each model call. Text the
 *   model writes before it requests a tool is streamed too.
 * - `toolUse` with `name` and `toolUseId`, when the model requests a tool,
 *   before the tool runs.
 * - `done` with `sessionId`, `output`, `stopReason`, `confidence` (only
 *   after a final answer with a valid confidence), `iterations`, `usage`,
 *   `approvalId` (only with stop reason `awaiting_approval`) and
 *   `requestId`, the same fields as the JSON body, as the last line.
 * - `error` with `error.name`, `error.message` and `error.requestId`, as the
 *   last line instead of `done` when the task failed after the stream began.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'http';
import type { Usage } from '../shared/contracts';
import { AgentStackError } from '../shared/errors';
import type { AgentResult, AgentTask, StopReason } from './agent-loop';
import { InternalError, TaskAbortedError } from './errors';
import type { ModelStreamListener } from './model-client';

/** Media type a caller accepts to get a streamed response. */
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

/** One line of a streamed realtime response. */
export type RealtimeStreamEvent =
  | { readonly type: 'start'; readonly requestId: string; readonly sessionId: string }
  | { readonly type: 'delta'; readonly text: string }
  | { readonly type: 'toolUse'; readonly name: string; readonly toolUseId: string }
  | {
      readonly type: 'done';
      readonly sessionId: string;
      readonly output: string;
      readonly stopReason: StopReason;
      readonly confidence?: number;
      readonly iterations: number;
      readonly usage: Usage;
      readonly approvalId?: string;
      readonly requestId: string;
    }
  | {
      readonly type: 'error';
      readonly error: {
        readonly name: string;
        readonly message: string;
        readonly requestId: string;
      };
    };

/** Checks whether the Accept header lists `application/x-ndjson` with a non-zero quality. */
export function acceptsStream(headers: IncomingHttpHeaders): boolean {
  const accept = headers.accept ?? '';
  return accept.split(',').some((range) => {
    const [mediaType, ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    if (mediaType !== NDJSON_CONTENT_TYPE) {
      return false;
    }
    const quality = params.find((param) => param.startsWith('q='));
    return quality === undefined || Number(quality.slice(2)) > 0;
  });
}

/**
 * Runs a task and streams its events to `res`. The status is 200 before the
 * task starts, so a failure midway arrives as an `error` event, and the
 * error is raised again for the server to log. A caller that disconnected
 * gets nothing more, and its TaskAbortedError is raised unchanged.
 */
export async function streamTaskResponse(
  res: ServerResponse,
  task: AgentTask,
  run: (listener: ModelStreamListener) => Promise<AgentResult>,
): Promise<void> {
  // NOTE: writes do not wait for the caller to read, because deltas are
  // small and bounded by maxTokens, so a slow caller costs memory, not time.
  const write = (event: RealtimeStreamEvent) => {
    if (!res.destroyed && !res.writableEnded) {
      res.write(`${JSON.stringify(event)}\n`);
    }
  };
  res.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store' });
  write({ type: 'start', requestId: task.requestId, sessionId: task.sessionId });

  const listener: ModelStreamListener = (event) => {
    if (event.type === 'delta') {
      write({ type: 'delta', text: event.text });
    } else if (event.type === 'toolUse') {
      write({ type: 'toolUse', name: event.name, toolUseId: event.toolUseId });
    }
  };
  try {
    const result = await run(listener);
    write({
      type: 'done',
      sessionId: result.sessionId,
      output: result.output,
      stopReason: result.stopReason,
      confidence: result.confidence,
      iterations: result.iterations,
      usage: result.usage,
      approvalId: result.approvalId,
      requestId: task.requestId,
    });
  } catch (caught) {
    if (!(caught instanceof TaskAbortedError)) {
      const error =
        caught instanceof AgentStackError
          ? caught
          : new InternalError(
              `Internal error; quote request id ${task.requestId} when you report it.`,
              task.requestId,
            );
      write({ type: 'error', error: { ...error.toJSON(), requestId: task.requestId } });
    }
    throw caught;
  } finally {
    if (!res.destroyed) {
      res.end();
    }
  }
}
