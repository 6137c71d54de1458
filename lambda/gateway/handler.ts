import type { GatewayErrorResponse, GatewayResponse } from '../shared/contracts';
import {
  AgentStackError,
  AllTargetsFailedError,
  AgentSuspendedError,
  BudgetExceededError,
  GuardrailBlockedError,
  ModelCallError,
  RateLimitedError,
} from '../shared/errors';
import { Logger } from '../shared/logger';
import {
  requireField,
  runSteps,
  type GatewayContext,
  type GatewayServices,
  type GatewayStep,
} from './pipeline';
import { flushAudit } from './audit';
import { putOutcomeMetric } from './failover-report';
import { recordGuardBlock } from './guard-verdicts';
import { redactOutputStep } from './output-redaction';
import { auditModelCallStep } from './steps/audit';
import { budgetStep } from './steps/budget';
import { inputGuardStep } from './steps/input-guard';
import { invokeModelStep } from './steps/invoke-model';
import { respondStep } from './steps/respond';
import { responseCacheStep } from './steps/response-cache';
import { resolveRouteStep } from './steps/route';
import { createGatewayServices, type GatewayServicesOptions } from './services';
import { validateStep } from './steps/validate';

/**
 * Milliseconds kept back from the Lambda's remaining time, so that the
 * handler can still log and return a TimeoutError after aborting the call.
 */
export const RESPONSE_MARGIN_MS = 1_000;

/** Steps of a gateway request, in order. */
export const DEFAULT_GATEWAY_STEPS: readonly GatewayStep[] = [
  validateStep,
  resolveRouteStep,
  inputGuardStep,
  responseCacheStep,
  budgetStep,
  auditModelCallStep,
  invokeModelStep,
  redactOutputStep,
  respondStep,
];

/** The parts of the Lambda context object that the gateway reads. */
export interface GatewayLambdaContext {
  readonly awsRequestId?: string;
  getRemainingTimeInMillis?(): number;
}

/** Lambda handler of the gateway. It validates the payload itself, so the payload is `unknown`. */
export type GatewayHandler = (
  event: unknown,
  lambdaContext?: GatewayLambdaContext,
) => Promise<GatewayResponse | GatewayErrorResponse>;

/**
 * Settings of {@link createGatewayHandler}: the shared services' settings,
 * whose `config` is validated when the handler is created, plus these.
 */
export interface GatewayHandlerOptions extends GatewayServicesOptions {
  /**
   * Logger for the line written per request.
   * @default - a Logger writing to stdout at the LOG_LEVEL environment variable's level
   */
  readonly logger?: Logger;
  /**
   * Steps every request runs through.
   * @default DEFAULT_GATEWAY_STEPS
   */
  readonly steps?: readonly GatewayStep[];
  /**
   * Services built with createGatewayServices, so that the buffered and the
   * streaming handler of one function share clients and circuit breakers.
   * When set, the other service settings are not read.
   * @default - built from the other settings
   */
  readonly services?: GatewayServices;
}

const MAX_LOGGED_ID_CHARS = 128;

/** Reads an id field from the raw payload for logging, before it is validated. */
function readId(event: unknown, field: string): string | undefined {
  if (event === null || typeof event !== 'object') {
    return undefined;
  }
  const value = (event as Record<string, unknown>)[field];
  return typeof value === 'string' ? value.slice(0, MAX_LOGGED_ID_CHARS) : undefined;
}

/** Writes the one line that summarizes a request, and counts its outcome as a metric. */
function logOutcome(context: GatewayContext, startedAt: number, error?: AgentStackError): void {
  const { request, result } = context;
  const outcome = error === undefined ? 'success' : error.name;
  // A block happens after validation, so the request and its agent are known.
  if (error instanceof GuardrailBlockedError && request !== undefined) {
    recordGuardBlock(context, request, error);
  }
  putOutcomeMetric({
    metrics: context.services.metrics,
    config: context.services.config,
    agent: request?.agent ?? readId(context.event, 'agent'),
    outcome,
    requestId: context.requestId,
    target: result?.target ?? context.route?.[0],
  });
  const fields = {
    outcome,
    errorCode: error instanceof ModelCallError ? error.errorCode : undefined,
    layer: error instanceof GuardrailBlockedError ? error.layer : undefined,
    failures: error instanceof AllTargetsFailedError ? error.failures : undefined,
    region: result?.target.region ?? context.route?.[0]?.region,
    modelId: result?.target.modelId ?? context.route?.[0]?.modelId,
    maxTokens: request?.maxTokens,
    stopReason: result?.stopReason,
    inputTokens: result?.usage.inputTokens,
    outputTokens: result?.usage.outputTokens,
    totalTokens: result?.usage.totalTokens,
    cacheReadInputTokens: result?.usage.cacheReadInputTokens,
    cacheWriteInputTokens: result?.usage.cacheWriteInputTokens,
    latencyMs: result?.latencyMs,
    cached: context.response?.cached,
    durationMs: Math.round(context.services.now() - startedAt),
  };
  if (error === undefined) {
    context.logger.info('Gateway request succeeded', fields);
  } else if (error.statusCode < 500) {
    context.logger.warn('Gateway request rejected', fields, error);
  } else {
    context.logger.error('Gateway request failed', fields, error);
  }
}

/** Returns the error fields that buffered and streamed responses carry for `error`. */
export function errorBodyOf(error: AgentStackError): GatewayErrorResponse['error'] {
  const guardrail = error instanceof GuardrailBlockedError ? error : undefined;
  return {
    name: error.name,
    message: error.message,
    errorCode: error instanceof ModelCallError ? error.errorCode : undefined,
    layer: guardrail?.layer,
    policy: guardrail?.policy,
    failures: error instanceof AllTargetsFailedError ? error.failures : undefined,
    ...(error instanceof BudgetExceededError || error instanceof RateLimitedError
      ? { limit: error.details }
      : {}),
    ...(error instanceof AgentSuspendedError ? { suspension: error.details } : {}),
  };
}

function toErrorResponse(error: AgentStackError, requestId: string): GatewayErrorResponse {
  return { ok: false, requestId, error: errorBodyOf(error) };
}

/**
 * Returns the epoch milliseconds by which the request must end: the Lambda's
 * remaining time less a margin, or `requestDeadlineMs` when that is sooner.
 */
export function requestDeadline(
  startedAt: number,
  remainingMs: number | undefined,
  requestDeadlineMs: number | undefined,
): number | undefined {
  const candidates: number[] = [];
  if (remainingMs !== undefined) {
    candidates.push(startedAt + remainingMs - RESPONSE_MARGIN_MS);
  }
  if (requestDeadlineMs !== undefined) {
    candidates.push(startedAt + requestDeadlineMs);
  }
  return candidates.length === 0 ? undefined : Math.min(...candidates);
}

/**
 * Creates the gateway's Lambda handler. It returns typed errors as
 * `{ ok: false, error }` so that the caller matches on a stable name, and
 * throws only on a bug, which Lambda then reports as a function error.
 */
export function createGatewayHandler(options: GatewayHandlerOptions): GatewayHandler {
  const services =
    options.services ?? createGatewayServices(options, 'createGatewayHandler options.config');
  const { clientSettings, now } = services;
  const baseLogger = options.logger ?? new Logger();
  const steps = options.steps ?? DEFAULT_GATEWAY_STEPS;

  return async (event, lambdaContext) => {
    const startedAt = now();
    const requestId = readId(event, 'requestId') ?? lambdaContext?.awsRequestId ?? 'unknown';
    const logger = baseLogger.child({
      requestId,
      agent: readId(event, 'agent'),
      user: readId(event, 'userId'),
      session: readId(event, 'sessionId'),
    });
    const remainingMs = lambdaContext?.getRemainingTimeInMillis?.();
    const deadline = requestDeadline(startedAt, remainingMs, clientSettings.requestDeadlineMs);
    const context: GatewayContext = { event, requestId, deadline, services, logger };

    // Prompts may contain personal data, so they are logged only at debug level.
    const { system, messages } = (event ?? {}) as Record<string, unknown>;
    logger.debug('Gateway request prompt', { system, messages });

    try {
      await runSteps(steps, context);
      const response = requireField(context, 'response', 'handler');
      logOutcome(context, startedAt);
      return response;
    } catch (error) {
      if (error instanceof AgentStackError) {
        logOutcome(context, startedAt, error);
        return toErrorResponse(error, requestId);
      }
      logger.error('Gateway request failed with an unexpected error', {}, error);
      throw error;
    } finally {
      // Lambda may freeze the environment once the handler returns, so the
      // records of this request are delivered first.
      await flushAudit(services, logger);
    }
  };
}
