/** Errors that only the feedback endpoint raises, in the shared error family. */
import { AgentStackError } from '../shared/errors';

/** The user already rated this request, and the first score is kept. */
export class DuplicateFeedbackError extends AgentStackError {
  public override readonly name = 'DuplicateFeedbackError';
  public readonly statusCode = 409;
}

/** The request body has a media type or content coding the endpoint does not read. */
export class UnsupportedMediaTypeError extends AgentStackError {
  public override readonly name = 'UnsupportedMediaTypeError';
  public readonly statusCode = 415;
}
