/**
 * Requests and responses of an Application Load Balancer Lambda target. The
 * load balancer passes the request as JSON with the body as a string, and
 * sets `isBase64Encoded` when it encoded the body as base64. It sends at
 * most 1 MB of body to a Lambda function, see
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html
 */
import type { IncomingHttpHeaders } from 'http';
import { TextDecoder } from 'util';
import { FEEDBACK_PATH } from '../shared/contracts';
import { InvalidRequestError, MethodNotAllowedError, NotFoundError, PayloadTooLargeError } from '../shared/errors';
import { UnsupportedMediaTypeError } from './errors';

/** Event that the load balancer sends to a Lambda target. */
export interface AlbEvent {
  readonly httpMethod: string;
  readonly path: string;
  /** Header values by lower-case name, when the target group has multi-value headers off (the default). */
  readonly headers?: Record<string, string>;
  /** Header values by lower-case name, when the target group has multi-value headers on. */
  readonly multiValueHeaders?: Record<string, string[]>;
  readonly body?: string | null;
  readonly isBase64Encoded?: boolean;
  readonly requestContext?: { readonly elb?: { readonly targetGroupArn?: string } };
}

/** Response that a Lambda target returns to the load balancer. */
export interface AlbResult {
  readonly statusCode: number;
  readonly statusDescription: string;
  /** Set when the event had single-value headers. */
  readonly headers?: Record<string, string>;
  /** Set when the event had multi-value headers, because the load balancer then reads only these. */
  readonly multiValueHeaders?: Record<string, string[]>;
  readonly body: string;
  readonly isBase64Encoded: false;
}

/**
 * Maximum request body in bytes, after base64 decoding. A comment of the
 * maximum length fits even when every character is sent as a JSON escape
 * (12 bytes for a character outside the Basic Multilingual Plane).
 */
export const MAX_BODY_BYTES = 32_768;

/** Headers the endpoint reads. A multi-value event that repeats one of them is rejected. */
const READ_HEADERS = ['authorization', 'x-amzn-oidc-data', 'content-type', 'content-encoding'];

const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** A request that passed the checks of {@link readFeedbackRequest}. */
export interface FeedbackHttpRequest {
  readonly headers: IncomingHttpHeaders;
  /** The body decoded as UTF-8, not yet parsed. */
  readonly body: string;
}

/** Checks whether `event` has the fields of an {@link AlbEvent}. */
export function isAlbEvent(event: unknown): event is AlbEvent {
  if (!event || typeof event !== 'object') return false;
  const candidate = event as Record<string, unknown>;
  return typeof candidate.httpMethod === 'string' && typeof candidate.path === 'string';
}

/** Copies the headers with lower-case names, rejecting a repeated header that the endpoint reads. */
function singleValueHeaders(event: AlbEvent, requestId: string): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  if (event.multiValueHeaders) {
    for (const [name, values] of Object.entries(event.multiValueHeaders)) {
      const key = name.toLowerCase();
      if (values.length > 1 && READ_HEADERS.includes(key)) {
        throw new InvalidRequestError(`Header ${key} appears ${values.length} times; send it once.`, requestId);
      }
      if (values.length > 0) headers[key] = values[0];
    }
    return headers;
  }
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    headers[name.toLowerCase()] = value;
  }
  return headers;
}

/** Accepts `application/json` with no charset or with charset UTF-8, in any letter case. */
function checkContentType(headers: IncomingHttpHeaders, requestId: string): void {
  const contentType = headers['content-type'];
  const [mediaType, ...parameters] = (contentType ?? '').split(';').map((part) => part.trim().toLowerCase());
  const charsets = parameters.filter((parameter) => parameter.startsWith('charset='));
  const utf8 = charsets.every((charset) => ['charset=utf-8', 'charset="utf-8"'].includes(charset));
  if (mediaType !== 'application/json' || !utf8) {
    throw new UnsupportedMediaTypeError(
      `Content-Type ${contentType === undefined ? 'is missing' : `${JSON.stringify(contentType)} is not accepted`}; ` +
        'send the body as application/json in UTF-8.',
      requestId,
    );
  }
  const encoding = headers['content-encoding']?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
    throw new UnsupportedMediaTypeError(
      `Content-Encoding ${JSON.stringify(encoding)} is not accepted; send the body uncompressed.`,
      requestId,
    );
  }
}

function tooLarge(requestId: string): PayloadTooLargeError {
  return new PayloadTooLargeError(
    `The request body is larger than the limit of ${MAX_BODY_BYTES} bytes; send a shorter comment.`,
    requestId,
  );
}

/** Decodes the body, checking its size before anything parses it. */
function decodeBody(event: AlbEvent, requestId: string): string {
  const text = event.body ?? '';
  let bytes: Buffer;
  if (event.isBase64Encoded) {
    // Base64 takes 4 characters for every 3 bytes, so a longer text decodes to too many bytes.
    if (text.length > Math.ceil(MAX_BODY_BYTES / 3) * 4) throw tooLarge(requestId);
    if (text.length % 4 !== 0 || !BASE64_PATTERN.test(text)) {
      throw new InvalidRequestError('The request body is marked as base64 but is not valid base64.', requestId);
    }
    bytes = Buffer.from(text, 'base64');
  } else {
    if (Buffer.byteLength(text, 'utf8') > MAX_BODY_BYTES) throw tooLarge(requestId);
    bytes = Buffer.from(text, 'utf8');
  }
  if (bytes.length > MAX_BODY_BYTES) throw tooLarge(requestId);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidRequestError('The request body is not valid UTF-8; send JSON text in UTF-8.', requestId);
  }
}

/**
 * Checks the path, method, content type and body size of a feedback
 * request, in that order, and returns its headers and decoded body.
 */
export function readFeedbackRequest(event: AlbEvent, requestId: string): FeedbackHttpRequest {
  if (event.path !== FEEDBACK_PATH) {
    throw new NotFoundError(`No route for ${event.path}; this function serves POST ${FEEDBACK_PATH}.`, requestId);
  }
  if (event.httpMethod !== 'POST') {
    throw new MethodNotAllowedError(`Use POST on ${FEEDBACK_PATH}, not ${event.httpMethod}.`, requestId);
  }
  const headers = singleValueHeaders(event, requestId);
  checkContentType(headers, requestId);
  return { headers, body: decodeBody(event, requestId) };
}

/**
 * Builds a JSON response in the header format of `event`. A 405 carries
 * `Allow: POST`, as RFC 9110 section 15.5.6 requires.
 */
export function jsonResult(event: AlbEvent | undefined, statusCode: number, body: unknown, requestId: string): AlbResult {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-request-id': requestId,
    ...(statusCode === 405 ? { allow: 'POST' } : {}),
  };
  const base = {
    statusCode,
    statusDescription: `${statusCode} ${STATUS_TEXT[statusCode] ?? 'Error'}`,
    body: JSON.stringify(body),
    isBase64Encoded: false as const,
  };
  if (event?.multiValueHeaders) {
    return {
      ...base,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
    };
  }
  return { ...base, headers };
}
