/**
 * `approvals list|show|approve|deny` of the operator command against
 * DynamoDB Local and fauxqs: its decisions are what the worker's consume
 * reads, the approver names the operator and the AWS caller, and a decision
 * resumes a background agent through its task queue.
 */
import type { AuditRecord, AuditSink } from '../lambda/shared/audit';
import { randomUUID } from 'crypto';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { runAdmin } from '../lambda/admin/cli';
import { approvalCallHash, ApprovalStore, type NewApproval } from '../lambda/shared/approvals';
import { createApprovalsTable } from './support/approvals';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';
import { startSqsServer, type SqsServer } from './support/sqs-server';

const TABLE = 'admin-approvals';
// Near the real time, because DynamoDB Local (2026-01-16) deletes items whose
// TTL attribute lies in the past.
const NOW = Date.now();
const CALLER = 'arn:aws:sts::111122223333:assumed-role/Ops/alice';

let dynamo: DynamoDbLocal;
let sqs: SqsServer;
let callerArn: string | undefined = CALLER;

beforeAll(async () => {
  [dynamo, sqs] = await Promise.all([startDynamoDbLocal(), startSqsServer()]);
  await createApprovalsTable(dynamo.client, TABLE);
});

afterAll(async () => {
  await Promise.all([dynamo?.stop(), sqs?.stop()]);
});

beforeEach(() => {
  callerArn = CALLER;
});

function store(): ApprovalStore {
  return new ApprovalStore({ client: dynamo.documentClient, table: TABLE, now: () => NOW });
}

function refund(overrides: Partial<NewApproval> = {}): NewApproval {
  return {
    approvalId: randomUUID(),
    agent: 'support',
    userId: 'user-1',
    sessionId: `session-${randomUUID()}`,
    requestId: 'request-1',
    tool: 'issue_refund',
    toolUseId: 'tooluse-1',
    input: { orderId: 'ORD-10001', amountUsd: 39.5, reason: 'Mouse arrived broken' },
    expirySeconds: 3_600,
    ...overrides,
  };
}

/** Runs the command in process and returns its exit code and output. */
/** Records the audit sink received, so tests can check what a decision wrote. */
const audited: AuditRecord[] = [];
let auditFailure: Error | undefined;
const auditSink: AuditSink = {
  record: (record) => audited.push(record),
  recordNow: async (record) => {
    if (auditFailure !== undefined) throw auditFailure;
    audited.push(record);
  },
  flush: async () => undefined,
};

async function admin(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runAdmin(['--approvals-table', TABLE, '--by', 'ops-alice', ...argv], {
    audit: auditSink,
    env: {},
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    client: dynamo.documentClient,
    sqs: sqs.client,
    callerArn: async () => callerArn,
    now: () => NOW,
  });
  return { code, stdout, stderr };
}

describe('admin approvals', () => {
  test('list shows pending requests', async () => {
    const agent = `agent-${randomUUID().slice(0, 8)}`;
    const request = refund({ agent });
    await store().create(request);

    const result = await admin('approvals', 'list', '--agent', agent);

    expect(result.code).toBe(0);
    expect(result.stdout).toContain(request.approvalId);
    expect(result.stdout).toContain('issue_refund');
  });

  test('show prints the exact arguments', async () => {
    const request = refund();
    await store().create(request);

    const result = await admin('approvals', 'show', '--id', request.approvalId, '--json');
    const shown = JSON.parse(result.stdout);

    expect(result.code).toBe(0);
    expect(shown.approval).toMatchObject({ state: 'pending', arguments: request.input, tool: 'issue_refund' });
  });

  test('approve records the operator and caller', async () => {
    const request = refund();
    await store().create(request);

    const result = await admin('approvals', 'approve', '--id', request.approvalId, '--reason', 'Order checked');
    const consumed = await store().consume(request.approvalId, approvalCallHash(request), 'request-2');

    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`is approved by ops-alice (${CALLER})`);
    expect(consumed).toMatchObject({ kind: 'consumed', approval: { decidedBy: `ops-alice (${CALLER})`, decisionReason: 'Order checked' } });
  });

  test('approve writes an audit record', async () => {
    const request = refund();
    await store().create(request);
    audited.length = 0;

    await admin('approvals', 'approve', '--id', request.approvalId, '--reason', 'Order checked');

    expect(audited).toHaveLength(1);
    expect(audited[0]).toMatchObject({ kind: 'approval', decision: 'approved', approvalId: request.approvalId, agent: request.agent });
    expect(audited[0].reason).toContain('Order checked');
  });

  test('failed audit write is reported', async () => {
    const request = refund();
    await store().create(request);
    auditFailure = new Error('Simulated stream outage');
    try {
      const result = await admin('approvals', 'deny', '--id', request.approvalId);

      expect(result.code).toBe(0);
      expect(result.stdout).toContain('Writing the decision to the audit log failed (Simulated stream outage)');
      expect((await store().find(request.approvalId))?.state).toBe('denied');
    } finally {
      auditFailure = undefined;
    }
  });

  test('approve without sts names operator', async () => {
    callerArn = undefined;
    const request = refund();
    await store().create(request);

    const result = await admin('approvals', 'approve', '--id', request.approvalId);

    expect(result.code).toBe(0);
    expect((await store().find(request.approvalId))?.decidedBy).toBe('ops-alice');
  });

  test('deny blocks the consume', async () => {
    const request = refund();
    await store().create(request);

    const result = await admin('approvals', 'deny', '--id', request.approvalId, '--reason', 'Not refundable');
    const consumed = await store().consume(request.approvalId, approvalCallHash(request), 'request-2');

    expect(result.code).toBe(0);
    expect(consumed).toMatchObject({ kind: 'rejected', reason: 'denied' });
  });

  test('second decision fails with 1', async () => {
    const request = refund();
    await store().create(request);
    await admin('approvals', 'deny', '--id', request.approvalId);

    const result = await admin('approvals', 'approve', '--id', request.approvalId);

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/is denied \(decided by ops-alice/);
    expect((await store().find(request.approvalId))?.state).toBe('denied');
  });

  test('background decision sends a continuation', async () => {
    const { queueUrl } = await sqs.createQueueWithDlq(`admin-continuations-${randomUUID().slice(0, 8)}`, {
      maxReceiveCount: 3,
      visibilityTimeoutSeconds: 30,
    });
    const request = refund({ queueUrl });
    await store().create(request);

    const result = await admin('approvals', 'approve', '--id', request.approvalId);
    const received = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 1 }));

    expect(result.stdout).toContain('A continuation message resumes the background agent.');
    expect((received.Messages ?? []).map((message) => JSON.parse(message.Body!))).toEqual([
      { resume: request.approvalId, sessionId: request.sessionId, userId: request.userId },
    ]);
  });

  test('rejects invalid command lines', async () => {
    const noSubcommand = await admin('approvals');
    const noId = await admin('approvals', 'approve');
    const notUuid = await admin('approvals', 'approve', '--id', 'approval-42');
    const unknown = await admin('approvals', 'cancel', '--id', randomUUID());
    const missing = await admin('approvals', 'show', '--id', randomUUID());
    let stderr = '';
    const noTable = await runAdmin(['approvals', 'list', '--agent', 'support'], {
      env: {},
      stdout: () => undefined,
      stderr: (text) => (stderr += text),
      client: dynamo.documentClient,
    });

    expect(noSubcommand.code).toBe(2);
    expect(noId.code).toBe(2);
    expect(noId.stderr).toMatch(/needs --id ID/);
    expect(notUuid.code).toBe(2);
    expect(notUuid.stderr).toMatch(/Invalid --id approval-42: expected a lower-case UUID/);
    expect(unknown.code).toBe(2);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/does not exist/);
    expect(noTable).toBe(2);
    expect(stderr).toMatch(/No approvals table/);
  });
});
