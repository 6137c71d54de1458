import type { Writable } from 'node:stream';
import type { GatewayResponse } from '../../shared/contracts';
import {
  AgentStackError,
  AllTargetsFailedError,
  GuardrailBlockedError,
  ModelCallError,
} from '../../shared/errors';
import { Logger } from '../../shared/logger';
import {
  errorBodyOf,
  requestDeadline,
  type GatewayHandlerOptions,
  type GatewayLambdaContext,
} from '../handler';
import { flushAudit } from '../audit';
import { putOutcomeMetric } from '../failover-report';
import { recordGuardBlock } from '../guard-verdicts';
import { runSteps, type GatewayServices, type GatewayStep } from '../pipeline';
import { createGatewayServices } from '../services';
import { auditModelCallStep } from '../steps/audit';
import { budgetStep, createBudgetUsageRecorder } from '../steps/budget';
import { inputGuardStep } from '../steps/input-guard';
import { responseCacheStep } from '../steps/response-cache';
import { resolveRouteStep } from '../steps/route';
import { validateStep } from '../steps/validate';
import { StreamEventWriter } from './event-writer';
import {
  createConverseStreamStep,
  StreamCancelledError,
  type StreamGatewayContext,
} from './stream-step';
import { logStreamUsage, type StreamUsageRecorder } from './usage';

/**
 * Steps a streamed request runs before its model call: the same checks as a
 * buffered request. A step added before the model call in
 * DEFAULT_GATEWAY_STEPS belongs here too.
 */
export const DEFAULT_STREAM_STEPS: readonly GatewayStep[] = [
  validateStep,
  resolveRouteStep,
  inputGuardStep,
  responseCacheStep,
  budgetStep,
  auditModelCallStep,
];

/** Streams one gateway request to `writable` as newline-delimited JSON events. */
export type GatewayStreamHandler = (
  event: unknown,
  writable: Writable,
  lambdaContext?: GatewayLambdaContext,
) => Promise<void>;

/** Dependencies of {@link streamGatewayRequest}. */
export interface GatewayStreamDeps {
  readonly services: GatewayServices;
  /** Logger whose child loggers write the request's lines. */
  readonly logger: Logger;
  /**
   * Steps before the model call.
   * @default DEFAULT_STREAM_STEPS
   */
  readonly steps?: readonly GatewayStep[];
  /**
   * Receives the usage of each call that generated content.
   * @default logStreamUsage
   */
  readonly recordUsage?: StreamUsageRecorder;
  /** Lambda context, whose remaining time sets the deadline. @default - no deadline */
  readonly lambdaContext?: GatewayLambdaContext;
}

/** Settings of {@link createGatewayStreamHandler}. */
export interface GatewayStreamHandlerOptions extends Omit<GatewayHandlerOptions, 'steps'> {
  /**
   * Steps before the model call.
   * @default DEFAULT_STREAM_STEPS
   */
  readonly steps?: readonly GatewayStep[];
  /**
   * Receives the usage of each call that generated content.
   * @default logStreamUsage
   */
  readonly recordUsage?: StreamUsageRecorder;
}

const MAX_LOGGED_ID_CHARS = 128;

function readId(event: unknown, field: string): string | undefined {
  const value = (event as Record<string, unknown> | null | undefined)?.[field];
  return typeof value === 'string' ? value.slice(0, MAX_LOGGED_ID_CHARS) : undefined;
}

/** Returns the payload without its `stream` flag, which the request schema does not list. */
function withoutStreamFlag(event: unknown): unknown {
  if (event === null || typeof event !== 'object' || Array.isArray(event) || !('stream' in event)) {
    return event;
  }
  const { stream: _stream, ...request } = event as Record<string, unknown>;
  return request;
}

/**
 * Replays a response that a step produced without the model, such as a
 * cached one: `start`, one `delta` per text block and one `toolUse` per
 * tool-use block, `stop`, and `usage` with the response's usage.
 */
async function writeResponse(writer: StreamEventWriter, response: GatewayResponse): Promise<void> {
  const { requestId, target, cached } = response;
  await writer.write({ type: 'start', requestId, target, ...(cached ? { cached } : {}) });
  for (const [index, block] of response.output.content.entries()) {
    if (typeof block.text === 'string') {
      await writer.write({ type: 'delta', index, text: block.text });
    }
    type ToolUse = { toolUseId: string; name: string; input: unknown };
    const toolUse = block.toolUse as ToolUse | undefined;
    if (toolUse !== undefined) {
      await writer.write({ type: 'toolUse', index, ...toolUse });
    }
  }
  await writer.write({ type: 'stop', stopReason: response.stopReason });
  const usage = { ...response.usage, estimated: false };
  await writer.write({ type: 'usage', usage, latencyMs: response.latencyMs });
}

/** Writes the one line that summarizes a streamed request, and counts its outcome as a metric. */
function logOutcome(
  context: StreamGatewayContext,
  startedAt: number,
  error?: AgentStackError,
): void {
  const usage = context.streamUsage;
  const outcome = error === undefined ? 'success' : error.name;
  // A block happens after validation, so the request and its agent are known.
  if (error instanceof GuardrailBlockedError && context.request !== undefined) {
    recordGuardBlock(context, context.request, error);
  }
  putOutcomeMetric({
    metrics: context.services.metrics,
    config: context.services.config,
    agent: context.request?.agent ?? readId(context.event, 'agent'),
    outcome,
    requestId: context.requestId,
    target: usage?.target ?? context.route?.[0],
  });
  const fields = {
    outcome,
    errorCode: error instanceof ModelCallError ? error.errorCode : undefined,
    layer: error instanceof GuardrailBlockedError ? error.layer : undefined,
    failures: error instanceof AllTargetsFailedError ? error.failures : undefined,
    region: usage?.target.region ?? context.route?.[0]?.region,
    modelId: usage?.target.modelId ?? context.route?.[0]?.modelId,
    stopReason: usage?.stopReason,
    totalTokens: usage?.usage.totalTokens,
    cached: context.response?.cached,
    durationMs: Math.round(context.services.now() - startedAt),
  };
  if (error === undefined) {
    context.logger.info('Gateway stream succeeded', fields);
  } else if (error instanceof StreamCancelledError) {
    context.logger.info('Gateway stream cancelled by its reader', fields);
  } else if (error.statusCode < 500) {
    context.logger.warn('Gateway stream rejected', fields, error);
  } else {
    context.logger.error('Gateway stream failed', fields, error);
  }
}

/**
 * Runs one gateway request and writes its events to `writable` as they are
 * generated (see GatewayStreamEvent for their order). Typed errors become
 * an `error` event, so the promise rejects only on a bug. A Writable that is
 * destroyed midway aborts the Bedrock call, and the usage is still recorded.
 */
export async function streamGatewayRequest(
  event: unknown,
  writable: Writable,
  deps: GatewayStreamDeps,
): Promise<void> {
  const { services, lambdaContext } = deps;
  const writer = new StreamEventWriter(writable);
  const startedAt = services.now();
  const payload = withoutStreamFlag(event);
  const requestId = readId(payload, 'requestId') ?? lambdaContext?.awsRequestId ?? 'unknown';
  const logger = deps.logger.child({
    requestId,
    agent: readId(payload, 'agent'),
    user: readId(payload, 'userId'),
    session: readId(payload, 'sessionId'),
  });
  const remainingMs = lambdaContext?.getRemainingTimeInMillis?.();
  const deadline = requestDeadline(startedAt, remainingMs, services.clientSettings.requestDeadlineMs);
  const context: StreamGatewayContext = { event: payload, requestId, deadline, services, logger };
  const recordUsage = createBudgetUsageRecorder(services, deps.recordUsage ?? logStreamUsage);
  const streamStep = createConverseStreamStep(writer, recordUsage);

  try {
    await runSteps([...(deps.steps ?? DEFAULT_STREAM_STEPS), streamStep], context);
    if (!writer.hasStarted && context.response !== undefined) {
      await writeResponse(writer, context.response);
    }
    logOutcome(context, startedAt);
  } catch (error) {
    if (!(error instanceof AgentStackError)) {
      logger.error('Gateway stream failed with an unexpected error', {}, error);
      throw error;
    }
    logOutcome(context, startedAt, error);
    const usage = writer.hasStarted ? context.streamUsage?.usage : undefined;
    await writer.write({ type: 'error', requestId, error: errorBodyOf(error), usage });
  }
  // After the last event, so that the reader is not kept waiting, and before
  // the end, so that Lambda does not freeze the environment with records queued.
  await flushAudit(services, logger);
  await writer.end();
}

/**
 * Creates a handler that streams gateway requests. It validates the
 * configuration once and keeps one Bedrock client per region, like
 * createGatewayHandler.
 */
export function createGatewayStreamHandler(
  options: GatewayStreamHandlerOptions,
): GatewayStreamHandler {
  const services: GatewayServices =
    options.services ??
    createGatewayServices(options, 'createGatewayStreamHandler options.config');
  const logger = options.logger ?? new Logger();
  return (event, writable, lambdaContext) =>
    streamGatewayRequest(event, writable, {
      services,
      logger,
      steps: options.steps,
      recordUsage: options.recordUsage,
      lambdaContext,
    });
}
