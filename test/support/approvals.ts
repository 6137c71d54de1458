/**
 * Helpers of the approval tests: the approvals table in DynamoDB Local,
 * function URL events as Lambda builds them for an IAM-signed request, and
 * an audit sink that keeps its records in memory.
 */
import { CreateTableCommand, UpdateTimeToLiveCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AuditRecord, AuditSink } from '../../lambda/shared/audit';
import { APPROVALS_TABLE_KEY } from '../../lambda/shared/contracts';
import type { FunctionUrlEvent } from '../../lambda/approval/url-event';

/** ARN of the approver in the test events. */
export const APPROVER_ARN = 'arn:aws:sts::111122223333:assumed-role/Approvers/alice';

/** Creates the approvals table with the key schema, sparse index and TTL that the ApprovalGate construct gives it. */
export async function createApprovalsTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const { partitionKey, pendingIndex, pendingPartitionKey, pendingSortKey, timeToLive } = APPROVALS_TABLE_KEY;
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: partitionKey, AttributeType: 'S' },
        { AttributeName: pendingPartitionKey, AttributeType: 'S' },
        { AttributeName: pendingSortKey, AttributeType: 'N' },
      ],
      KeySchema: [{ AttributeName: partitionKey, KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [
        {
          IndexName: pendingIndex,
          KeySchema: [
            { AttributeName: pendingPartitionKey, KeyType: 'HASH' },
            { AttributeName: pendingSortKey, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    }),
  );
  // DynamoDB Local 2026-01-16 acts on it and deletes items whose expiresAt has passed.
  await client.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: timeToLive, Enabled: true },
    }),
  );
}

/** Builds a function URL event of a request signed by `callerArn`; `null` leaves the identity out. */
export function urlEvent(options: {
  method: string;
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  callerArn?: string | null;
}): FunctionUrlEvent {
  const callerArn = options.callerArn === undefined ? APPROVER_ARN : options.callerArn;
  let body: string | undefined;
  if (typeof options.body === 'string') body = options.body;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  return {
    rawPath: options.path,
    rawQueryString: new URLSearchParams(options.query ?? {}).toString(),
    queryStringParameters: options.query,
    body,
    isBase64Encoded: false,
    requestContext: {
      requestId: 'url-request',
      http: { method: options.method },
      ...(callerArn === null
        ? {}
        : { authorizer: { iam: { userArn: callerArn, accountId: '111122223333', callerId: 'AROAEXAMPLE:alice' } } }),
    },
  };
}

/** Audit sink that keeps every record; `failRecordNow` makes `recordNow` reject like an unreachable log. */
export class MemoryAuditSink implements AuditSink {
  readonly records: AuditRecord[] = [];
  failRecordNow = false;
  /** Called when `recordNow` accepts a record, before it resolves. */
  onRecordNow?: (record: AuditRecord) => void;

  record(record: AuditRecord): void {
    this.records.push(record);
  }

  async recordNow(record: AuditRecord): Promise<void> {
    if (this.failRecordNow) throw new Error('audit stream is unavailable');
    this.onRecordNow?.(record);
    this.records.push(record);
  }

  async flush(): Promise<void> {}
}
