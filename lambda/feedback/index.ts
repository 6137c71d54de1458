import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AlbResult } from './alb-event';
import { createFeedbackHandler, loadFeedbackConfigFromEnv, type FeedbackContext, type FeedbackHandler } from './handler';

export * from './alb-event';
export * from './errors';
export * from './feedback-body';
export * from './handler';
export * from './store';

let handle: FeedbackHandler | undefined;

/** Lambda entry point; the handler is built on the first invocation and reused while the instance lives. */
export async function handler(event: unknown, context?: FeedbackContext): Promise<AlbResult> {
  handle ??= createFeedbackHandler({
    config: loadFeedbackConfigFromEnv(),
    client: DynamoDBDocumentClient.from(new DynamoDBClient({})),
  });
  return handle(event, context);
}
