/**
 * The approval store and the decision function against DynamoDB Local and
 * fauxqs: approve, deny, expiry, replay of a used approval, an approval
 * for different arguments, concurrent decisions on one request, the
 * IAM-verified approver, continuation messages and the expiry sweep.
 */
import { randomUUID } from 'crypto';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { createApprovalHandler, type ApprovalHandler } from '../lambda/approval';
import type { FunctionUrlResult } from '../lambda/approval/url-event';
import { approvalCallHash, ApprovalStore, type NewApproval } from '../lambda/shared/approvals';
import { Logger } from '../lambda/shared/logger';
import { APPROVER_ARN, createApprovalsTable, MemoryAuditSink, urlEvent } from './support/approvals';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';
import { startSqsServer, type SqsServer } from './support/sqs-server';

const TABLE = 'approvals';
// Near the real time, because DynamoDB Local (2026-01-16) deletes items whose
// TTL attribute lies in the past, so items written for a past clock can vanish.
const START = Math.floor(Date.now() / 1000) * 1000;

let dynamo: DynamoDbLocal;
let sqs: SqsServer;
let clock = START;
let queueCount = 0;

beforeAll(async () => {
  [dynamo, sqs] = await Promise.all([startDynamoDbLocal(), startSqsServer()]);
  await createApprovalsTable(dynamo.client, TABLE);
});

afterAll(async () => {
  await Promise.all([dynamo?.stop(), sqs?.stop()]);
});

beforeEach(() => {
  clock = START;
});

function store(): ApprovalStore {
  return new ApprovalStore({ client: dynamo.documentClient, table: TABLE, now: () => clock });
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

function hashOf(request: NewApproval, input: unknown = request.input): string {
  return approvalCallHash({ ...request, input });
}

async function newQueue(): Promise<string> {
  queueCount += 1;
  const { queueUrl } = await sqs.createQueueWithDlq(`approval-continuations-${queueCount}`, {
    maxReceiveCount: 3,
    visibilityTimeoutSeconds: 30,
  });
  return queueUrl;
}

async function receiveBodies(queueUrl: string): Promise<unknown[]> {
  const output = await sqs.client.send(
    new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
  );
  return (output.Messages ?? []).map((message) => JSON.parse(message.Body!));
}

describe('call hash', () => {
  test('ignores key order', () => {
    const request = refund();
    const reordered = { reason: 'Mouse arrived broken', amountUsd: 39.5, orderId: 'ORD-10001' };

    expect(hashOf(request, reordered)).toBe(hashOf(request));
  });

  test('changes with each bound field', () => {
    const request = refund();
    const base = hashOf(request);

    expect(hashOf(request, { ...(request.input as object), amountUsd: 39.51 })).not.toBe(base);
    expect(approvalCallHash({ ...request, tool: 'lookup_order' })).not.toBe(base);
    expect(approvalCallHash({ ...request, agent: 'research' })).not.toBe(base);
    expect(approvalCallHash({ ...request, userId: 'user-2' })).not.toBe(base);
    expect(approvalCallHash({ ...request, sessionId: 'other-session' })).not.toBe(base);
  });
});

describe('approval store', () => {
  test('creates a pending request', async () => {
    const request = refund();

    const created = await store().create(request);
    const found = await store().find(request.approvalId);

    expect(created.state).toBe('pending');
    expect(found?.input).toEqual(request.input);
    expect(found?.callSha256).toBe(hashOf(request));
    expect(found?.deadlineMs).toBe(START + 3_600_000);
    expect(found?.expiresAt).toBeGreaterThan((START + 3_600_000) / 1000);
  });

  test('rejects a reused id', async () => {
    const request = refund();
    await store().create(request);

    await expect(store().create({ ...request, tool: 'lookup_order' })).rejects.toMatchObject({
      name: 'ConditionalCheckFailedException',
    });
    expect((await store().find(request.approvalId))?.tool).toBe('issue_refund');
  });

  test('approve then consume once', async () => {
    const request = refund();
    await store().create(request);

    const decided = await store().decide(request.approvalId, 'approved', APPROVER_ARN, 'Checked the order');
    const consumed = await store().consume(request.approvalId, hashOf(request), 'request-2');

    expect(decided).toMatchObject({ kind: 'decided', approval: { state: 'approved', decidedBy: APPROVER_ARN } });
    expect(consumed).toMatchObject({ kind: 'consumed', approval: { state: 'executed', executedBy: 'request-2' } });
  });

  test('rejects replay of a used approval', async () => {
    const request = refund();
    await store().create(request);
    await store().decide(request.approvalId, 'approved', APPROVER_ARN);
    await store().consume(request.approvalId, hashOf(request), 'request-2');

    const replay = await store().consume(request.approvalId, hashOf(request), 'request-3');

    expect(replay).toMatchObject({ kind: 'rejected', reason: 'used', approval: { executedBy: 'request-2' } });
  });

  test('rejects concurrent consumes but one', async () => {
    const request = refund();
    await store().create(request);
    await store().decide(request.approvalId, 'approved', APPROVER_ARN);

    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store().consume(request.approvalId, hashOf(request), `request-${i}`)),
    );

    expect(results.filter((result) => result.kind === 'consumed')).toHaveLength(1);
    expect(results.filter((result) => result.kind === 'rejected' && result.reason === 'used')).toHaveLength(7);
  });

  test('rejects an approval for different arguments', async () => {
    const request = refund();
    await store().create(request);
    await store().decide(request.approvalId, 'approved', APPROVER_ARN);
    const otherRefund = { ...(request.input as object), amountUsd: 3_950 };

    const mismatch = await store().consume(request.approvalId, hashOf(request, otherRefund), 'request-2');
    const after = await store().find(request.approvalId);
    const matching = await store().consume(request.approvalId, hashOf(request), 'request-3');

    expect(mismatch).toMatchObject({ kind: 'rejected', reason: 'mismatch' });
    expect(after?.state).toBe('approved');
    expect(matching.kind).toBe('consumed');
  });

  test('deny rejects the consume', async () => {
    const request = refund();
    await store().create(request);

    await store().decide(request.approvalId, 'denied', APPROVER_ARN, 'Order was never paid');
    const consumed = await store().consume(request.approvalId, hashOf(request), 'request-2');

    expect(consumed).toMatchObject({
      kind: 'rejected',
      reason: 'denied',
      approval: { state: 'denied', decisionReason: 'Order was never paid' },
    });
  });

  test('undecided consume reports pending', async () => {
    const request = refund();
    await store().create(request);

    const consumed = await store().consume(request.approvalId, hashOf(request), 'request-2');

    expect(consumed).toMatchObject({ kind: 'rejected', reason: 'pending', expiredNow: false });
  });

  test('expiry denies a late decision', async () => {
    const request = refund({ expirySeconds: 60 });
    await store().create(request);
    clock = START + 60_000;

    const late = await store().decide(request.approvalId, 'approved', APPROVER_ARN);
    const again = await store().decide(request.approvalId, 'approved', APPROVER_ARN);
    const consumed = await store().consume(request.approvalId, hashOf(request), 'request-2');

    expect(late).toMatchObject({ kind: 'conflict', expiredNow: true, approval: { state: 'expired' } });
    expect(again).toMatchObject({ kind: 'conflict', expiredNow: false, approval: { state: 'expired' } });
    expect(consumed).toMatchObject({ kind: 'rejected', reason: 'expired' });
  });

  test('expiry is recorded on read', async () => {
    const request = refund({ expirySeconds: 60 });
    await store().create(request);

    const before = await store().read(request.approvalId);
    clock = START + 60_001;
    const after = await store().read(request.approvalId);

    expect(before).toMatchObject({ expiredNow: false, approval: { state: 'pending' } });
    expect(after).toMatchObject({ expiredNow: true, approval: { state: 'expired' } });
    expect((await store().find(request.approvalId))?.state).toBe('expired');
  });

  test('reads ignore an item past its ttl', async () => {
    const request = refund({ expirySeconds: 60 });
    await store().create(request);
    const created = await store().find(request.approvalId);
    clock = created!.expiresAt * 1000;

    expect(await store().find(request.approvalId)).toBeUndefined();
    expect(await store().decide(request.approvalId, 'approved', APPROVER_ARN)).toEqual({ kind: 'not-found' });
  });

  test('concurrent decisions have one winner', async () => {
    const request = refund();
    await store().create(request);

    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store().decide(request.approvalId, i % 2 === 0 ? 'approved' : 'denied', `${APPROVER_ARN}-${i}`),
      ),
    );
    const winners = results.filter((result) => result.kind === 'decided');
    const stored = await store().find(request.approvalId);

    expect(winners).toHaveLength(1);
    expect(results.filter((result) => result.kind === 'conflict')).toHaveLength(9);
    expect(stored?.state).toBe(winners[0].kind === 'decided' ? winners[0].approval.state : undefined);
    expect(stored?.decidedBy).toBe(winners[0].kind === 'decided' ? winners[0].approval.decidedBy : undefined);
  });

  test('lists pending requests of one agent', async () => {
    const agent = `agent-${queueCount++}`;
    const open = refund({ agent });
    const decided = refund({ agent });
    const lapsed = refund({ agent, expirySeconds: 1 });
    const other = refund({ agent: `${agent}-other` });
    for (const request of [open, decided, lapsed, other]) await store().create(request);
    await store().decide(decided.approvalId, 'denied', APPROVER_ARN);
    clock = START + 1_000;

    const listed = await store().listPending(agent);

    expect(listed.map((approval) => approval.approvalId)).toEqual([open.approvalId]);
  });
});

describe('decision function', () => {
  const logs: Array<Record<string, unknown>> = [];
  const audit = new MemoryAuditSink();
  let handler: ApprovalHandler;

  function handlerFor(table: string): ApprovalHandler {
    return createApprovalHandler({
      config: { table },
      client: dynamo.documentClient,
      sqs: sqs.client,
      audit,
      now: () => clock,
      logger: new Logger({}, { sink: (line) => logs.push(JSON.parse(line)) }),
    });
  }

  beforeAll(() => {
    handler = handlerFor(TABLE);
  });

  async function call(event: ReturnType<typeof urlEvent>): Promise<{ status: number; body: any }> {
    const result = (await handler(event, { awsRequestId: randomUUID() })) as FunctionUrlResult;
    return { status: result.statusCode, body: JSON.parse(result.body) };
  }

  beforeEach(() => {
    logs.length = 0;
    audit.records.length = 0;
  });

  test('approver is the iam caller', async () => {
    const request = refund();
    await store().create(request);

    const response = await call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/approve` }));

    expect(response.status).toBe(200);
    expect(response.body.approval).toMatchObject({ state: 'approved', decidedBy: APPROVER_ARN, arguments: request.input });
    expect(response.body.continuation).toBe('none');
    expect(audit.records).toEqual([
      expect.objectContaining({ kind: 'approval', decision: 'approved', approver: APPROVER_ARN, approvalId: request.approvalId }),
    ]);
  });

  test('rejects an approver in the body', async () => {
    const request = refund();
    await store().create(request);

    const response = await call(
      urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/approve`, body: { approver: 'mallory' } }),
    );

    expect(response.status).toBe(400);
    expect(response.body.error.message).toMatch(/accepts only reason/);
    expect((await store().find(request.approvalId))?.state).toBe('pending');
  });

  test('rejects a request without iam identity', async () => {
    const request = refund();
    await store().create(request);

    const response = await call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/approve`, callerArn: null }));

    expect(response.status).toBe(401);
    expect((await store().find(request.approvalId))?.state).toBe('pending');
  });

  test('deny keeps the reason', async () => {
    const request = refund();
    await store().create(request);

    const response = await call(
      urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/deny`, body: { reason: 'Refund exceeds the order total' } }),
    );

    expect(response.status).toBe(200);
    expect(response.body.approval).toMatchObject({ state: 'denied', decisionReason: 'Refund exceeds the order total' });
    expect(audit.records[0]).toMatchObject({ decision: 'denied', reason: 'Refund exceeds the order total' });
  });

  test('second decision gets 409', async () => {
    const request = refund();
    await store().create(request);
    await call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/deny` }));

    const response = await call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/approve` }));

    expect(response.status).toBe(409);
    expect(response.body.error.name).toBe('ApprovalConflictError');
    expect(response.body.error.message).toMatch(/is denied/);
  });

  test('concurrent api decisions have one winner', async () => {
    const request = refund();
    await store().create(request);

    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/${i % 2 === 0 ? 'approve' : 'deny'}` })),
      ),
    );

    expect(responses.filter((response) => response.status === 200)).toHaveLength(1);
    expect(responses.filter((response) => response.status === 409)).toHaveLength(5);
    expect(audit.records.filter((record) => record.kind === 'approval')).toHaveLength(1);
  });

  test('lists and shows requests', async () => {
    const agent = `listed-${queueCount++}`;
    const request = refund({ agent });
    await store().create(request);

    const list = await call(urlEvent({ method: 'GET', path: '/approvals', query: { agent } }));
    const one = await call(urlEvent({ method: 'GET', path: `/approvals/${request.approvalId}` }));

    expect(list.status).toBe(200);
    expect(list.body.approvals.map((approval: { approvalId: string }) => approval.approvalId)).toEqual([request.approvalId]);
    expect(one.body.approval).toMatchObject({ approvalId: request.approvalId, state: 'pending', deadline: new Date(START + 3_600_000).toISOString() });
  });

  test('show records an expiry', async () => {
    const request = refund({ expirySeconds: 60 });
    await store().create(request);
    clock = START + 120_000;

    const one = await call(urlEvent({ method: 'GET', path: `/approvals/${request.approvalId}` }));

    expect(one.body.approval.state).toBe('expired');
    expect(audit.records).toEqual([expect.objectContaining({ decision: 'expired', approvalId: request.approvalId })]);
  });

  test('rejects unknown routes and methods', async () => {
    const unknown = await call(urlEvent({ method: 'GET', path: '/approvals/not-an-id' }));
    const wrongMethod = await call(urlEvent({ method: 'GET', path: `/approvals/${randomUUID()}/approve` }));
    const missing = await call(urlEvent({ method: 'GET', path: `/approvals/${randomUUID()}` }));
    const noAgent = await call(urlEvent({ method: 'GET', path: '/approvals' }));

    expect(unknown.status).toBe(404);
    expect(wrongMethod.status).toBe(405);
    expect(missing.status).toBe(404);
    expect(noAgent.status).toBe(400);
  });

  test('background decision sends a continuation', async () => {
    const queueUrl = await newQueue();
    const request = refund({ queueUrl });
    await store().create(request);

    const response = await call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/approve` }));
    const bodies = await receiveBodies(queueUrl);

    expect(response.body.continuation).toBe('sent');
    expect(bodies).toEqual([{ resume: request.approvalId, sessionId: request.sessionId, userId: request.userId }]);
  });

  test('continue sends the message again', async () => {
    const queueUrl = await newQueue();
    const request = refund({ queueUrl });
    await store().create(request);
    await call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/deny` }));
    await receiveBodies(queueUrl);

    const response = await call(urlEvent({ method: 'POST', path: `/approvals/${request.approvalId}/continue` }));
    const bodies = await receiveBodies(queueUrl);

    expect(response.body.continuation).toBe('sent');
    expect(bodies).toEqual([{ resume: request.approvalId, sessionId: request.sessionId, userId: request.userId }]);
  });

  test('sweep expires unanswered requests', async () => {
    // A table of its own, so that requests of other tests are not due.
    const table = `approvals-sweep-${randomUUID()}`;
    await createApprovalsTable(dynamo.client, table);
    const sweepStore = new ApprovalStore({ client: dynamo.documentClient, table, now: () => clock });
    const sweepHandler = handlerFor(table);
    const queueUrl = await newQueue();
    const lapsedBackground = refund({ expirySeconds: 60, queueUrl });
    const lapsedRealtime = refund({ expirySeconds: 60 });
    const open = refund({ expirySeconds: 3_600 });
    const decided = refund({ expirySeconds: 60 });
    for (const request of [lapsedBackground, lapsedRealtime, open, decided]) await sweepStore.create(request);
    await sweepStore.decide(decided.approvalId, 'approved', APPROVER_ARN);
    clock = START + 61_000;

    const result = await sweepHandler({ source: 'aws.events', 'detail-type': 'Scheduled Event' }, { awsRequestId: 'sweep-1' });
    const bodies = await receiveBodies(queueUrl);
    const expiredIds = audit.records.filter((record) => record.decision === 'expired').map((record) => record.approvalId);

    expect(result).toMatchObject({ expired: 2 });
    expect((await sweepStore.find(lapsedBackground.approvalId))?.state).toBe('expired');
    expect((await sweepStore.find(lapsedRealtime.approvalId))?.state).toBe('expired');
    expect((await sweepStore.find(open.approvalId))?.state).toBe('pending');
    expect((await sweepStore.find(decided.approvalId))?.state).toBe('approved');
    expect(expiredIds.sort()).toEqual([lapsedBackground.approvalId, lapsedRealtime.approvalId].sort());
    expect(bodies).toEqual([{ resume: lapsedBackground.approvalId, sessionId: lapsedBackground.sessionId, userId: lapsedBackground.userId }]);
  });
});
