import type { AuditDecision } from '../shared/audit';
import { auditTokensOf, buildAuditRecord } from '../shared/audit-record';
import type { ModelTarget, Usage } from '../shared/contracts';
import {
  AgentStackError,
  AgentSuspendedError,
  BudgetExceededError,
  GuardrailBlockedError,
  ModelCallError,
  RateLimitedError,
} from '../shared/errors';
import type { Logger } from '../shared/logger';
import { callCostUsd } from './call-metrics';
import type { GatewayContext, GatewayServices, ResolvedGatewayRequest } from './pipeline';

/**
 * Returns what a model call's prompt hash covers: the system prompt, the
 * messages and the tool definitions, as the gateway received them.
 */
export function promptOf(request: ResolvedGatewayRequest): unknown {
  return { system: request.system, messages: request.messages, tools: request.tools };
}

/** Outcome of one model call, as {@link recordModelCall} writes it. */
export interface ModelCallOutcome {
  readonly decision: AuditDecision;
  readonly reason?: string;
  /** Target that served the call, or the route's primary when no target served content. */
  readonly target?: ModelTarget;
  /** Tokens Bedrock reported, or the stream's estimate. */
  readonly usage?: Usage;
  /** Output message of a completed call. */
  readonly output?: unknown;
  /** Guard layer that blocked the call. */
  readonly layer?: GuardrailBlockedError['layer'];
}

/**
 * Queues one `model-call` audit record with the request's ids, the target,
 * the tokens and their list price, and the hashes of prompt and output.
 */
export function recordModelCall(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  outcome: ModelCallOutcome,
): void {
  const { services } = context;
  const { target, usage } = outcome;
  services.audit.record(
    buildAuditRecord(
      {
        requestId: context.requestId,
        agent: request.agent,
        userId: request.userId,
        sessionId: request.sessionId,
        kind: 'model-call',
        decision: outcome.decision,
        reason: outcome.reason,
        model: target?.modelId,
        region: target?.region,
        tokens: usage === undefined ? undefined : auditTokensOf(usage),
        costUsd: target === undefined || usage === undefined ? undefined : callCostUsd(services.config, target, usage),
        prompt: promptOf(request),
        output: outcome.output,
        layer: outcome.layer,
      },
      { fullText: services.auditFullText },
    ),
  );
}

/** Returns the outcome of a model call that raised `error`. */
export function failedCallOutcome(error: unknown): Pick<ModelCallOutcome, 'decision' | 'reason' | 'layer'> {
  if (error instanceof GuardrailBlockedError) {
    const policy = error.policy === undefined ? '' : ` (${error.policy})`;
    return { decision: 'blocked', reason: `${error.name}: ${error.layer}${policy}`, layer: error.layer };
  }
  if (error instanceof ModelCallError && error.errorCode !== undefined) {
    return { decision: 'failed', reason: `${error.name}: ${error.errorCode}` };
  }
  return { decision: 'failed', reason: error instanceof Error ? error.name : 'UnknownError' };
}

/** Returns the reason of a budget rejection: the error name and the limit or suspension behind it. */
export function budgetReason(error: AgentStackError): string {
  if (error instanceof BudgetExceededError || error instanceof RateLimitedError) {
    const { scope, subject, window, unit, limit, spent } = error.details;
    return `${error.name}: ${scope} ${subject} ${window} limit of ${limit} ${unit}, ${spent} spent`;
  }
  if (error instanceof AgentSuspendedError) {
    const until = error.details.until === undefined ? '' : ` until ${error.details.until}`;
    return `${error.name}: ${error.details.reason}${until}`;
  }
  return error.name;
}

/** Queues one `budget` audit record for a decision of the budget step. */
export function recordBudgetDecision(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  decision: AuditDecision,
  reason: string,
): void {
  const { services } = context;
  services.audit.record(
    buildAuditRecord(
      {
        requestId: context.requestId,
        agent: request.agent,
        userId: request.userId,
        sessionId: request.sessionId,
        kind: 'budget',
        decision,
        reason,
      },
      { fullText: services.auditFullText },
    ),
  );
}

/**
 * Delivers the queued audit records. A Lambda handler awaits this before its
 * response completes, because a frozen execution environment keeps nothing
 * it queued. A failure is logged rather than raised, because the call it
 * records has already happened, and the sink logs the request ids it lost.
 */
export async function flushAudit(services: GatewayServices, logger: Logger): Promise<void> {
  try {
    await services.audit.flush();
  } catch (error) {
    logger.error('Delivering the audit records of the request failed', {}, error);
  }
}
