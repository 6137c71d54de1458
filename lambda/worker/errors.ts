/**
 * Errors that only the worker raises. They extend the shared error family,
 * so the HTTP server maps them to a status code like every other error.
 */
import { AgentStackError } from '../shared/errors';

/** No route matches the request's path. */
export class NotFoundError extends AgentStackError {
  public override readonly name = 'NotFoundError';
  public readonly statusCode = 404;
}

/** The path exists but does not accept the request's method. */
export class MethodNotAllowedError extends AgentStackError {
  public override readonly name = 'MethodNotAllowedError';
  public readonly statusCode = 405;
}

/** Another request appended to the same session while this one ran. */
export class SessionConflictError extends AgentStackError {
  public override readonly name = 'SessionConflictError';
  public readonly statusCode = 409;
}

/** A dependency the request needs, such as the identity provider's keys, is unreachable. */
export class ServiceUnavailableError extends AgentStackError {
  public override readonly name = 'ServiceUnavailableError';
  public readonly statusCode = 503;
}

/**
 * The task was cancelled before it finished, because the worker is shutting
 * down or the caller went away. Nothing of the task is saved to memory.
 */
export class TaskAbortedError extends AgentStackError {
  public override readonly name = 'TaskAbortedError';
  public readonly statusCode = 503;
}

/** An error the worker did not expect; the response carries no detail of it. */
export class InternalError extends AgentStackError {
  public override readonly name = 'InternalError';
  public readonly statusCode = 500;
}

/** Checks whether `error` comes from an aborted signal rather than a failure. */
export function isAbortError(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.name === 'AbortError' || error.name === 'TimeoutError') &&
    !(error instanceof AgentStackError)
  );
}
