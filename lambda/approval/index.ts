import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NO_AUDIT } from '../shared/audit';
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
    // NOTE: no audit log sink is wired into this function yet, so decisions
    // and expiries are recorded only in the approvals table.
    audit: NO_AUDIT,
  });
  return handle(event, context);
}
