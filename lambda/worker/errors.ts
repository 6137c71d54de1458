/**
 * Errors that only the worker raises. They extend the shared error family,
 * so the HTTP server maps them to a status code like every other error.
 */
import { AgentStackError } from '../shared/errors';

// The feedback Lambda raises these HTTP errors too, so they live in the
// shared family. The re-export keeps the worker's imports as they were.
export {
  InternalError,
  MethodNotAllowedError,
  NotFoundError,
  ServiceUnavailableError,
} from '../shared/errors';

/** Another request appended to the same session while this one ran. */
export class SessionConflictError extends AgentStackError {
  public override readonly name = 'SessionConflictError';
  public readonly statusCode = 409;
}

/**
 * The task was cancelled before it finished, because the worker is shutting
 * down or the caller went away. Nothing of the task is saved to memory.
 */
export class TaskAbortedError extends AgentStackError {
  public override readonly name = 'TaskAbortedError';
  public readonly statusCode = 503;
}

/** Checks whether `error` comes from an aborted signal rather than a failure. */
export function isAbortError(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.name === 'AbortError' || error.name === 'TimeoutError') &&
    !(error instanceof AgentStackError)
  );
}
