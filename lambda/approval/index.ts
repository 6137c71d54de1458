import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createAuditSinkFromEnv } from '../shared/audit-firehose';
import { createApprovalHandler, loadApprovalConfigFromEnv, type ApprovalHandler, type ApprovalLambdaContext } from './handler';

export * from './api';
export * from './continuation';
export * from './handler';
export * from './sweep';
export * from './url-event';

let handle: ApprovalHandler | undefined;

/** Lambda entry point; the handler is built on the first invocation and reused while the instance lives. */
export async function handler(event: unknown, context?: ApprovalLambdaContext) {
  handle ??= createApprovalHandler({
    config: loadApprovalConfigFromEnv(),
    client: DynamoDBDocumentClient.from(new DynamoDBClient({})),
    sqs: new SQSClient({}),
    // The sink is NO_AUDIT when the function has no audit stream in its environment.
    audit: createAuditSinkFromEnv().sink,
  });
  return handle(event, context);
}
