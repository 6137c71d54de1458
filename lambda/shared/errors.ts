/**
 * Errors a caller of the gateway or an agent can see. Each has a stable
 * `name` that clients match on, a message naming the value and the limit,
 * and the request id.
 */

/** Base class of every runtime error this package raises on purpose. */
export abstract class AgentStackError extends Error {
  /** HTTP status the worker responds with when this error ends a request. */
  public abstract readonly statusCode: number;

  constructor(
    message: string,
    public readonly requestId?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Plain object for logs and response bodies; never includes the cause's stack. */
  toJSON(): { name: string; message: string; requestId?: string } {
    return { name: this.name, message: this.message, requestId: this.requestId };
  }
}

/** The request is malformed: a missing field, a wrong type, a value out of range. */
export class InvalidRequestError extends AgentStackError {
  public override readonly name = 'InvalidRequestError';
  public readonly statusCode = 400;
}

/** The caller presented no credentials, or credentials that failed verification. */
export class UnauthorizedError extends AgentStackError {
  public override readonly name = 'UnauthorizedError';
  public readonly statusCode = 401;
}

/** The request body is larger than the agent accepts. */
export class PayloadTooLargeError extends AgentStackError {
  public override readonly name = 'PayloadTooLargeError';
  public readonly statusCode = 413;
}

/** No route or resource matches the request. */
export class NotFoundError extends AgentStackError {
  public override readonly name = 'NotFoundError';
  public readonly statusCode = 404;
}

/** The path exists but does not accept the request's method. */
export class MethodNotAllowedError extends AgentStackError {
  public override readonly name = 'MethodNotAllowedError';
  public readonly statusCode = 405;
}

/** A dependency the request needs, such as the identity provider's keys, is unreachable. */
export class ServiceUnavailableError extends AgentStackError {
  public override readonly name = 'ServiceUnavailableError';
  public readonly statusCode = 503;
}

/** An unexpected error; the response carries no detail of it. */
export class InternalError extends AgentStackError {
  public override readonly name = 'InternalError';
  public readonly statusCode = 500;
}

/** The model call failed and no target could serve it. */
export class ModelCallError extends AgentStackError {
  // Typed as string so that AllTargetsFailedError can narrow the error with its own name.
  public override readonly name: string = 'ModelCallError';
  public readonly statusCode = 502;

  constructor(
    message: string,
    requestId: string | undefined,
    /** Name of the underlying Bedrock exception, such as `ThrottlingException`. */
    public readonly errorCode: string,
    options?: { cause?: unknown },
  ) {
    super(message, requestId, options);
  }
}

/** One target of a route that did not serve a model call, with the reason. */
export interface TargetFailure {
  readonly region: string;
  readonly modelId: string;
  /** Error name and message, or the reason the target was skipped. */
  readonly cause: string;
}

/**
 * Every target of the route failed or was skipped. `errorCode` is the code
 * of the last target that was called, or `BreakerOpen` when every target was
 * skipped, and `failures` lists each target.
 */
export class AllTargetsFailedError extends ModelCallError {
  public override readonly name = 'AllTargetsFailedError';

  constructor(
    message: string,
    requestId: string | undefined,
    errorCode: string,
    public readonly failures: readonly TargetFailure[],
    options?: { cause?: unknown },
  ) {
    super(message, requestId, errorCode, options);
  }
}

/**
 * Layer at which a guardrail blocked content. `guardrail` means that the
 * Converse guardrail intervened and its trace does not show on which side.
 */
export type GuardrailLayer =
  | 'pattern'
  | 'guardrail input'
  | 'guardrail output'
  | 'tool result'
  | 'guardrail';

/**
 * A guardrail blocked the content. The content, not the service, is the
 * problem, so sending it again unchanged is blocked again.
 */
export class GuardrailBlockedError extends AgentStackError {
  public override readonly name = 'GuardrailBlockedError';
  public readonly statusCode = 400;

  constructor(
    message: string,
    requestId: string | undefined,
    public readonly layer: GuardrailLayer,
    /** The policy that intervened, such as `contentPolicy PROMPT_ATTACK`, when known. */
    public readonly policy?: string,
    options?: { cause?: unknown },
  ) {
    super(message, requestId, options);
  }
}

/** A tool failed or was refused; the agent loop reports it to the model as a tool error. */
export class ToolError extends AgentStackError {
  public override readonly name = 'ToolError';
  public readonly statusCode = 502;
}

/** A high-impact tool was requested and no approval exists for it. */
export class ApprovalRequiredError extends AgentStackError {
  public override readonly name = 'ApprovalRequiredError';
  public readonly statusCode = 403;
}

/**
 * A person denied a high-impact tool call, or its approval expired before
 * anyone decided it. The agent loop reports it to the model as a tool error.
 */
export class ApprovalDeniedError extends AgentStackError {
  public override readonly name = 'ApprovalDeniedError';
  public readonly statusCode = 403;
}

/**
 * The session waits for a decision on a high-impact tool call, so it takes
 * no new message until the call is resumed or its approval is denied or expires.
 */
export class ApprovalPendingError extends AgentStackError {
  public override readonly name = 'ApprovalPendingError';
  public readonly statusCode = 409;
}

/**
 * The approval is no longer in the state the request needs: a second
 * decision on a decided request, or a replay of an approval already used.
 */
export class ApprovalConflictError extends AgentStackError {
  public override readonly name = 'ApprovalConflictError';
  public readonly statusCode = 409;
}

/**
 * The approval was granted for a different call: another tool, other
 * arguments, or another agent, user or session.
 */
export class ApprovalMismatchError extends AgentStackError {
  public override readonly name = 'ApprovalMismatchError';
  public readonly statusCode = 403;
}

/** Work ran past its deadline. */
export class TimeoutError extends AgentStackError {
  public override readonly name = 'TimeoutError';
  public readonly statusCode = 504;
}

/** Scope of a budget or rate limit. */
export type BudgetScope = 'user' | 'agent' | 'stack';

/** Window a limit counts over: a UTC day, a calendar month in UTC, or a minute. */
export type BudgetWindow = 'day' | 'month' | 'minute';

/** The limit a request ran into, as the ledger read it. */
export interface LimitDetails {
  readonly scope: BudgetScope;
  /** Agent, `agent/user` or `stack`, the counter the limit applies to. */
  readonly subject: string;
  readonly window: BudgetWindow;
  /** Unit of the limit, such as `tokens`, `usd` or `requests`. */
  readonly unit: string;
  readonly limit: number;
  /** Amount spent, reserved included, in the current window when the request was rejected. */
  readonly spent: number;
  /** ISO 8601 time at which the window rolls over and the counter starts from zero. */
  readonly resetsAt: string;
}

/**
 * A spending limit in tokens or US dollars would be passed by this call's
 * worst case. Retrying before `resetsAt` is rejected again unless the
 * limit is raised or the request sets a lower `maxTokens`.
 */
export class BudgetExceededError extends AgentStackError {
  public override readonly name = 'BudgetExceededError';
  public readonly statusCode = 429;

  constructor(
    message: string,
    requestId: string | undefined,
    public readonly details: LimitDetails,
    options?: { cause?: unknown },
  ) {
    super(message, requestId, options);
  }
}

/** A per-minute request or token rate limit would be passed; retry after `resetsAt`. */
export class RateLimitedError extends AgentStackError {
  public override readonly name = 'RateLimitedError';
  public readonly statusCode = 429;

  constructor(
    message: string,
    requestId: string | undefined,
    public readonly details: LimitDetails,
    options?: { cause?: unknown },
  ) {
    super(message, requestId, options);
  }
}

/**
 * The budget ledger could not be read or written, so no reservation was
 * made and the call was not served. Retrying later may succeed.
 */
export class BudgetUnavailableError extends AgentStackError {
  public override readonly name = 'BudgetUnavailableError';
  public readonly statusCode = 503;
}

/** Why an agent is suspended: its budget ran out, its token use was anomalous, or an operator stopped it. */
export type SuspensionReason = 'budget-exhausted' | 'anomaly' | 'operator';

/** The suspension a request ran into. */
export interface SuspensionDetails {
  readonly agent: string;
  readonly reason: SuspensionReason;
  /** ISO 8601 time at which the suspension lapses, or missing when it lasts until an operator resumes the agent. */
  readonly until?: string;
}

/**
 * The agent is suspended by the kill switch, so the gateway makes no model
 * call for it. The status is 423 (Locked) rather than 429, because clients
 * and SDKs retry a 429 with backoff, and a suspension for an anomaly or by
 * an operator has no time after which a retry could succeed.
 */
export class AgentSuspendedError extends AgentStackError {
  public override readonly name = 'AgentSuspendedError';
  public readonly statusCode = 423;

  constructor(
    message: string,
    requestId: string | undefined,
    public readonly details: SuspensionDetails,
    options?: { cause?: unknown },
  ) {
    super(message, requestId, options);
  }
}

/**
 * Rebuilds a typed error from a gateway error response, so that the worker
 * raises the same class the gateway raised.
 */
export function errorFromResponse(
  error: {
    name: string;
    message: string;
    errorCode?: string;
    layer?: GuardrailLayer;
    policy?: string;
    failures?: readonly TargetFailure[];
    limit?: LimitDetails;
    suspension?: SuspensionDetails;
  },
  requestId: string,
): AgentStackError {
  switch (error.name) {
    case 'ModelCallError':
      return new ModelCallError(error.message, requestId, error.errorCode ?? error.name);
    case 'AllTargetsFailedError':
      return new AllTargetsFailedError(
        error.message,
        requestId,
        error.errorCode ?? error.name,
        error.failures ?? [],
      );
    case 'GuardrailBlockedError':
      return new GuardrailBlockedError(
        error.message,
        requestId,
        error.layer ?? 'guardrail',
        error.policy,
      );
    case 'InvalidRequestError':
      return new InvalidRequestError(error.message, requestId);
    case 'UnauthorizedError':
      return new UnauthorizedError(error.message, requestId);
    case 'TimeoutError':
      return new TimeoutError(error.message, requestId);
    case 'BudgetExceededError':
      return error.limit === undefined
        ? new ModelCallError(error.message, requestId, error.name)
        : new BudgetExceededError(error.message, requestId, error.limit);
    case 'RateLimitedError':
      return error.limit === undefined
        ? new ModelCallError(error.message, requestId, error.name)
        : new RateLimitedError(error.message, requestId, error.limit);
    case 'BudgetUnavailableError':
      return new BudgetUnavailableError(error.message, requestId);
    case 'AgentSuspendedError':
      return error.suspension === undefined
        ? new ModelCallError(error.message, requestId, error.name)
        : new AgentSuspendedError(error.message, requestId, error.suspension);
    default:
      return new ModelCallError(error.message, requestId, error.name);
  }
}
