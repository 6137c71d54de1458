/**
 * Requests and responses of a Lambda function URL (payload format 2.0).
 * With AuthType AWS_IAM, Lambda verifies the SigV4 signature before it
 * invokes the function and writes the caller's identity to
 * `requestContext.authorizer.iam`, so the caller cannot set it:
 * https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html
 */
import { InvalidRequestError, PayloadTooLargeError, UnauthorizedError } from '../shared/errors';

/** The fields of a function URL event that the decision API reads. */
export interface FunctionUrlEvent {
  readonly rawPath: string;
  readonly rawQueryString?: string;
  readonly queryStringParameters?: Record<string, string>;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly requestContext: {
    readonly requestId?: string;
    readonly http: { readonly method: string };
    readonly authorizer?: {
      readonly iam?: {
        readonly userArn?: string;
        readonly accountId?: string;
        readonly callerId?: string;
      };
    };
  };
}

/** Response of a function URL handler. */
export interface FunctionUrlResult {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Maximum request body in bytes, because a decision body contains at most a short reason. */
export const MAX_DECISION_BODY_BYTES = 8_192;

/** Checks whether `event` has the fields of a {@link FunctionUrlEvent}. */
export function isFunctionUrlEvent(event: unknown): event is FunctionUrlEvent {
  if (!event || typeof event !== 'object') return false;
  const candidate = event as Record<string, unknown>;
  const context = candidate.requestContext as Record<string, unknown> | undefined;
  const http = context?.http as Record<string, unknown> | undefined;
  return typeof candidate.rawPath === 'string' && typeof http?.method === 'string';
}

/**
 * Returns the ARN of the verified IAM caller. A missing identity means that
 * the URL does not use AuthType AWS_IAM, so the request is rejected rather
 * than decided by an unknown person.
 */
export function callerArn(event: FunctionUrlEvent, requestId: string): string {
  const arn = event.requestContext.authorizer?.iam?.userArn;
  if (typeof arn !== 'string' || arn === '') {
    throw new UnauthorizedError(
      'The request carries no verified IAM identity; the decision URL must use AuthType AWS_IAM and requests must be SigV4-signed.',
      requestId,
    );
  }
  return arn;
}

/** Returns the body parsed as a JSON object, or an empty object for an empty body. */
export function jsonBody(event: FunctionUrlEvent, requestId: string): Record<string, unknown> {
  const raw = event.body ?? '';
  const text = event.isBase64Encoded === true ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  if (Buffer.byteLength(text) > MAX_DECISION_BODY_BYTES) {
    throw new PayloadTooLargeError(`The body is larger than ${MAX_DECISION_BODY_BYTES} bytes; send a shorter reason.`, requestId);
  }
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidRequestError('The body is not valid JSON; send {"reason": "..."} or no body.', requestId);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidRequestError('The body must be a JSON object such as {"reason": "..."}.', requestId);
  }
  return value as Record<string, unknown>;
}

/** Builds a JSON response that must not be cached. */
export function jsonResult(statusCode: number, body: unknown, requestId: string): FunctionUrlResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-request-id': requestId },
    body: JSON.stringify(body),
  };
}
