/** The JSON body of `POST /feedback` and its validation. */
import { InvalidRequestError } from '../shared/errors';
import { SESSION_ID_PATTERN } from '../worker/memory';

/** Body of `POST /feedback`: a user's score for one response of an agent. */
export interface FeedbackBody {
  /** Name of a configured agent. */
  readonly agent: string;
  /** Session of the rated response, as the agent returned it. */
  readonly sessionId: string;
  /** Request id of the rated response, as the agent returned it. */
  readonly requestId: string;
  /** Integer from {@link MIN_SCORE} to {@link MAX_SCORE}. */
  readonly score: number;
  /** Free text of at most {@link MAX_COMMENT_LENGTH} code points. */
  readonly comment?: string;
}

export const MIN_SCORE = 1;
export const MAX_SCORE = 5;

/** Maximum comment length in Unicode code points. */
export const MAX_COMMENT_LENGTH = 2_000;

/**
 * Request ids the endpoint accepts. The agents issue UUIDs, and the pattern
 * is the one session ids follow, so neither contains the `#` of composite keys.
 */
export const REQUEST_ID_PATTERN = SESSION_ID_PATTERN;

const FIELDS = ['agent', 'sessionId', 'requestId', 'score', 'comment'];

/**
 * Control characters other than tab, line feed and carriage return, and
 * lone UTF-16 surrogates, which are not text and are not valid UTF-8.
 */
const NOT_TEXT = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]|\p{Cs}/u;

/** Shows a caller's value in a message, shortened so that a message stays small. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

function checkId(body: Record<string, unknown>, field: 'sessionId' | 'requestId', requestId: string): string {
  const value = body[field];
  if (value === undefined) {
    throw new InvalidRequestError(`Field ${field} is missing; send the ${field} that the agent's response carried.`, requestId);
  }
  if (typeof value !== 'string' || !REQUEST_ID_PATTERN.test(value)) {
    throw new InvalidRequestError(
      `Field ${field} must be 1 to 128 letters, digits, _ or - (got ${show(value)}); ` +
        `send the ${field} that the agent's response carried.`,
      requestId,
    );
  }
  return value;
}

function checkScore(value: unknown, requestId: string): number {
  if (value === undefined) {
    throw new InvalidRequestError(`Field score is missing; send an integer from ${MIN_SCORE} to ${MAX_SCORE}.`, requestId);
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_SCORE || value > MAX_SCORE) {
    throw new InvalidRequestError(
      `Field score must be an integer from ${MIN_SCORE} to ${MAX_SCORE} (got ${show(value)}).`,
      requestId,
    );
  }
  return value;
}

function checkComment(value: unknown, requestId: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InvalidRequestError(
      `Field comment must be a non-empty string (got ${show(value)}); omit it to send only a score.`,
      requestId,
    );
  }
  const length = Array.from(value).length;
  if (length > MAX_COMMENT_LENGTH) {
    throw new InvalidRequestError(
      `Field comment has ${length} characters, more than the limit of ${MAX_COMMENT_LENGTH}; shorten it.`,
      requestId,
    );
  }
  if (NOT_TEXT.test(value)) {
    throw new InvalidRequestError(
      'Field comment contains control characters or unpaired surrogates; send plain text.',
      requestId,
    );
  }
  return value;
}

/** Parses and validates the body text. The agent name is checked against the configuration later. */
export function parseFeedbackBody(text: string, requestId: string): FeedbackBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidRequestError(
      'The request body is not valid JSON; send {"agent", "sessionId", "requestId", "score"} and optionally "comment".',
      requestId,
    );
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidRequestError(
      'The request body must be a JSON object with agent, sessionId, requestId, score and optionally comment.',
      requestId,
    );
  }
  const body = parsed as Record<string, unknown>;
  const unknownFields = Object.keys(body).filter((field) => !FIELDS.includes(field));
  if (unknownFields.length > 0) {
    throw new InvalidRequestError(
      `Unknown field(s) ${unknownFields.map(show).join(', ')}; the body accepts only ${FIELDS.join(', ')}.`,
      requestId,
    );
  }
  if (body.agent === undefined) {
    throw new InvalidRequestError('Field agent is missing; send the name of the agent that responded.', requestId);
  }
  if (typeof body.agent !== 'string' || body.agent === '') {
    throw new InvalidRequestError(`Field agent must be an agent name (got ${show(body.agent)}).`, requestId);
  }
  const comment = checkComment(body.comment, requestId);
  return {
    agent: body.agent,
    sessionId: checkId(body, 'sessionId', requestId),
    requestId: checkId(body, 'requestId', requestId),
    score: checkScore(body.score, requestId),
    ...(comment === undefined ? {} : { comment }),
  };
}
