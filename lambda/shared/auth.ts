/**
 * Caller authentication of the realtime agents and the feedback endpoint.
 * The user id that budgets, memory, audit and feedback use comes only from
 * a verified token, never from the request body or an unsigned header.
 */
import { IncomingHttpHeaders } from 'http';
import { UnauthorizedError } from './errors';
import { Logger } from './logger';

/** User id of every caller when authentication is off. */
export const ANONYMOUS_USER = 'anonymous';

/** Message of every rejected credential, so that a response reveals nothing about the cause. */
export const UNAUTHORIZED_MESSAGE = 'Authentication failed: send a valid, unexpired token.';

/** Resolves the verified user id of a request, or raises UnauthorizedError. */
export interface Authenticator {
  authenticate(headers: IncomingHttpHeaders, requestId: string, log: Logger): Promise<string>;
}

/** Raises the uniform 401 and logs the actual reason for operators. */
export function reject(requestId: string, log: Logger, reason: string, error?: unknown): never {
  log.warn('authentication failed', { reason }, error);
  throw new UnauthorizedError(UNAUTHORIZED_MESSAGE, requestId);
}

/** Reads a non-empty string claim, which becomes the user id. */
export function userIdFrom(
  claims: Record<string, unknown>,
  claim: string,
  requestId: string,
  log: Logger,
): string {
  const value = claims[claim];
  if (typeof value !== 'string' || value === '') {
    reject(requestId, log, `token has no string claim ${claim}`);
  }
  return value;
}

/** Accepts every caller as {@link ANONYMOUS_USER}. */
export class NoAuthenticator implements Authenticator {
  async authenticate(): Promise<string> {
    return ANONYMOUS_USER;
  }
}
