/**
 * High-impact tool calls end to end, in process. The realtime server and
 * the queue consumer run the real agent loop, gateway handler, loopback
 * Bedrock server and example tool handlers. DynamoDB Local keeps memory
 * and approvals, fauxqs carries the SNS notification and the continuation
 * queue, and the decision function's handler records the approver's decision.
 */
import { randomUUID } from 'crypto';
import type { Server } from 'http';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { createApprovalHandler, type ApprovalHandler } from '../lambda/approval';
import type { FunctionUrlResult } from '../lambda/approval/url-event';
import { ApprovalStore } from '../lambda/shared/approvals';
import { createAuthenticator } from '../lambda/shared/auth-factory';
import type { WorkerRuntimeConfig } from '../lambda/shared/contracts';
import { runAgentTask, type AgentLoopDeps } from '../lambda/worker/agent-loop';
import { ToolApprovals } from '../lambda/worker/approvals';
import { startRealtimeServer } from '../lambda/worker/http-server';
import { partitionKey } from '../lambda/worker/memory';
import { QueueConsumer } from '../lambda/worker/queue-consumer';
import { TaskProtection } from '../lambda/worker/task-protection';
import { APPROVER_ARN, createApprovalsTable, MemoryAuditSink, urlEvent } from './support/approvals';
import { textResponse, toolUseResponse } from './support/bedrock-server';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './support/dynamodb-local';
import { httpRequest, type HttpResult } from './support/http-client';
import { startSqsServer, type SqsServer } from './support/sqs-server';
import { AGENT, startWorkerHarness, workerConfig, type WorkerHarness } from './support/worker-harness';

type Block = Record<string, any>;

const APPROVALS_TABLE = 'approvals';
const EXPIRY_SECONDS = 3_600;
const REFUND = { orderId: 'ORD-10001', amountUsd: 39.5, reason: 'Mouse arrived broken' };

let harness: WorkerHarness;
let sqs: SqsServer;
let sns: SNSClient;
let topicArn: string;
let notificationQueueUrl: string;
let server: Server;
let port: number;
let decide: ApprovalHandler;
let clock = Date.now();
const audit = new MemoryAuditSink();
const consumers: QueueConsumer[] = [];

function approvalsFor(queueUrl?: string): ToolApprovals {
  return new ToolApprovals({
    store: new ApprovalStore({ client: harness.dynamo.documentClient, table: APPROVALS_TABLE, now: () => clock }),
    sns,
    topicArn,
    expirySeconds: EXPIRY_SECONDS,
    queueUrl,
    now: () => clock,
  });
}

function config(mode: WorkerRuntimeConfig['mode'] = 'realtime'): WorkerRuntimeConfig {
  return workerConfig({ mode, approvals: { table: APPROVALS_TABLE, topicArn, expirySeconds: EXPIRY_SECONDS } });
}

function deps(mode: WorkerRuntimeConfig['mode'] = 'realtime', queueUrl?: string): AgentLoopDeps {
  return { ...harness.deps(config(mode)), approvals: approvalsFor(queueUrl), audit };
}

beforeAll(async () => {
  [harness, sqs] = await Promise.all([startWorkerHarness(), startSqsServer()]);
  await createApprovalsTable(harness.dynamo.client, APPROVALS_TABLE);
  sns = new SNSClient({ endpoint: sqs.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  topicArn = (await sns.send(new CreateTopicCommand({ Name: 'approvals' }))).TopicArn!;
  notificationQueueUrl = (await sqs.createQueueWithDlq('approval-notifications', { maxReceiveCount: 5, visibilityTimeoutSeconds: 30 }))
    .queueUrl;
  const queueArn = await sqs.client.send(
    new GetQueueAttributesCommand({ QueueUrl: notificationQueueUrl, AttributeNames: ['QueueArn'] }),
  );
  await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: queueArn.Attributes!.QueueArn }));

  decide = createApprovalHandler({
    config: { table: APPROVALS_TABLE },
    client: harness.dynamo.documentClient,
    sqs: sqs.client,
    audit,
    now: () => clock,
    logger: harness.logger.child({ component: 'approval-gate' }),
  });
  const realtime = deps();
  ({ server, port } = await startRealtimeServer(
    {
      config: realtime.config,
      authenticator: createAuthenticator({ type: 'none' }),
      runTask: (task, signal, listener) => runAgentTask(task, realtime, signal, listener),
      logger: harness.logger,
    },
    0,
    '127.0.0.1',
  ));
});

afterAll(async () => {
  await Promise.all(consumers.map((consumer) => consumer.stop()));
  await new Promise((resolve) => server?.close(resolve));
  sns?.destroy();
  await Promise.all([harness?.close(), sqs?.stop()]);
});

beforeEach(() => {
  clock = Date.now();
  harness.bedrock.reset();
  harness.lambda.invocations.length = 0;
  harness.logs.length = 0;
  audit.records.length = 0;
  audit.failRecordNow = false;
  audit.onRecordNow = undefined;
});

function invoke(body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<HttpResult> {
  return httpRequest(`http://127.0.0.1:${port}/agents/${AGENT}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function decideVia(verb: 'approve' | 'deny', approvalId: string, body?: unknown): Promise<{ status: number; body: any }> {
  const result = (await decide(urlEvent({ method: 'POST', path: `/approvals/${approvalId}/${verb}`, body }), {
    awsRequestId: randomUUID(),
  })) as FunctionUrlResult;
  return { status: result.statusCode, body: JSON.parse(result.body) };
}

function refundInvocations() {
  return harness.lambda.invocations.filter((call) => call.functionName === 'issue-refund');
}

/** Returns the toolResult blocks of the last user turn of the `index`-th model request. */
function toolResultsSent(index: number): Block[] {
  const messages = (harness.bedrock.requests[index].body as { messages: Array<{ role: string; content: Block[] }> }).messages;
  const last = messages[messages.length - 1];
  return last.content.filter((block) => 'toolResult' in block).map((block) => block.toolResult);
}

/** Starts a realtime task whose model requests the refund, and returns its response body. */
async function requestRefund(toolUseId = 'refund-1', input: unknown = REFUND): Promise<any> {
  harness.bedrock.script(toolUseResponse({ toolUseId, name: 'issue_refund', input }));
  const response = await invoke({ message: 'Please refund the broken mouse of order ORD-10001.' });
  expect(response.status).toBe(200);
  return response.json;
}

async function waitFor<T>(read: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('realtime approval', () => {
  test('refund waits for approval', async () => {
    const body = await requestRefund();

    expect(body.stopReason).toBe('awaiting_approval');
    expect(body.approvalId).toMatch(/^[0-9a-f-]{36}$/);
    expect(refundInvocations()).toHaveLength(0);
    expect(audit.records).toEqual([
      expect.objectContaining({ kind: 'approval', decision: 'pending', approvalId: body.approvalId, tool: 'issue_refund' }),
    ]);
  });

  test('approvers are notified on the topic', async () => {
    const body = await requestRefund();

    const received = await waitFor(async () => {
      const output = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl: notificationQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
      );
      const envelopes = (output.Messages ?? []).map((message) => JSON.parse(message.Body!));
      return envelopes.find((envelope) => envelope.MessageAttributes?.approvalId?.Value === body.approvalId);
    });

    expect(received.Subject).toBe(`Approval needed: issue_refund for agent ${AGENT}`);
    expect(received.Message).toContain(`Approval id:  ${body.approvalId}`);
    expect(received.Message).toContain('"amountUsd": 39.5');
    expect(received.MessageAttributes.tool.Value).toBe('issue_refund');
  });

  test('approved refund runs once', async () => {
    const { approvalId, sessionId } = await requestRefund();
    let invocationsAtAudit: number | undefined;
    audit.onRecordNow = () => (invocationsAtAudit = refundInvocations().length);

    const decision = await decideVia('approve', approvalId, { reason: 'Order checked' });
    harness.bedrock.script(textResponse('The refund of 39.50 USD for order ORD-10001 is issued.'));
    const resumed = await invoke({ sessionId, resume: approvalId });

    expect(decision.status).toBe(200);
    expect(resumed.status).toBe(200);
    expect(resumed.json.stopReason).toBe('end_turn');
    expect(resumed.json.output).toBe('The refund of 39.50 USD for order ORD-10001 is issued.');
    expect(resumed.json.approvalId).toBeUndefined();
    expect(refundInvocations()).toHaveLength(1);
    expect(refundInvocations()[0].payload).toEqual(REFUND);
    expect(invocationsAtAudit).toBe(0);
    const [result] = toolResultsSent(1);
    expect(result.toolUseId).toBe('refund-1');
    expect(result.status).toBe('success');
    expect(result.content[0].json).toMatchObject({ orderId: 'ORD-10001', amountUsd: 39.5, status: 'issued' });
    expect(audit.records).toContainEqual(
      expect.objectContaining({ kind: 'tool-call', decision: 'allowed', approvalId, approver: APPROVER_ARN, tool: 'issue_refund' }),
    );
  });

  test('replayed resume does not run again', async () => {
    const { approvalId, sessionId } = await requestRefund();
    await decideVia('approve', approvalId);
    harness.bedrock.script(textResponse('Refund issued.'));
    await invoke({ sessionId, resume: approvalId });

    const replay = await invoke({ sessionId, resume: approvalId });

    expect(replay.status).toBe(409);
    expect(replay.json.error.name).toBe('ApprovalConflictError');
    expect(refundInvocations()).toHaveLength(1);
  });

  test('resume before the decision gets 409', async () => {
    const { approvalId, sessionId } = await requestRefund();

    const early = await invoke({ sessionId, resume: approvalId });
    const message = await invoke({ sessionId, message: 'Is it done yet?' });

    expect(early.status).toBe(409);
    expect(early.json.error.name).toBe('ApprovalPendingError');
    expect(message.status).toBe(409);
    expect(message.json.error.name).toBe('ApprovalPendingError');
    expect(message.json.error.message).toContain(`"resume": "${approvalId}"`);
    expect(harness.bedrock.requests).toHaveLength(1);
    expect(refundInvocations()).toHaveLength(0);
  });

  test('denied refund becomes tool error', async () => {
    const { approvalId, sessionId } = await requestRefund();

    await decideVia('deny', approvalId, { reason: 'Refund exceeds policy' });
    harness.bedrock.script(textResponse('A person declined the refund.'));
    const resumed = await invoke({ sessionId, resume: approvalId });

    expect(resumed.json.stopReason).toBe('end_turn');
    const [result] = toolResultsSent(1);
    expect(result.status).toBe('error');
    expect(result.content[0].text).toMatch(/^ApprovalDeniedError: Tool issue_refund was not run: .*Approvers\/alice denied/);
    expect(result.content[0].text).toContain('Refund exceeds policy');
    expect(refundInvocations()).toHaveLength(0);
  });

  test('expired refund becomes tool error', async () => {
    const { approvalId, sessionId } = await requestRefund();
    clock += (EXPIRY_SECONDS + 1) * 1000;

    harness.bedrock.script(textResponse('Nobody approved the refund in time.'));
    const resumed = await invoke({ sessionId, resume: approvalId });

    expect(resumed.json.stopReason).toBe('end_turn');
    const [result] = toolResultsSent(1);
    expect(result.status).toBe('error');
    expect(result.content[0].text).toMatch(/^ApprovalDeniedError: .*expired/);
    expect(audit.records).toContainEqual(expect.objectContaining({ decision: 'expired', approvalId }));
    expect(refundInvocations()).toHaveLength(0);
  });

  test('new message after denial continues', async () => {
    const { approvalId, sessionId } = await requestRefund();
    await decideVia('deny', approvalId);

    harness.bedrock.script(textResponse('The refund was declined; anything else?'));
    const next = await invoke({ sessionId, message: 'Never mind, thanks.' });

    expect(next.status).toBe(200);
    const messages = (harness.bedrock.requests[1].body as { messages: Array<{ role: string; content: Block[] }> }).messages;
    const last = messages[messages.length - 1];
    expect(last.content[0].toolResult.status).toBe('error');
    expect(last.content[1].text).toBe('Never mind, thanks.');
  });

  test("approval does not resume another session", async () => {
    const first = await requestRefund('refund-a');
    const second = await requestRefund('refund-b');
    await decideVia('approve', first.approvalId);

    const crossed = await invoke({ sessionId: second.sessionId, resume: first.approvalId });

    expect(crossed.status).toBe(409);
    expect(crossed.json.error.name).toBe('ApprovalConflictError');
    expect(refundInvocations()).toHaveLength(0);
  });

  test('changed arguments are not run', async () => {
    const { approvalId, sessionId } = await requestRefund();
    await decideVia('approve', approvalId);
    // Rewrite the stored toolUse, as a process with write access to memory could.
    const key = partitionKey({ agent: AGENT, userId: 'anonymous', sessionId });
    const items = await harness.dynamo.documentClient.send(
      new QueryCommand({ TableName: harness.dynamo.tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': key } }),
    );
    const turn = items.Items!.find((item) => item.approvalId === approvalId)!;
    const content = JSON.parse(turn.content) as Block[];
    content.find((block) => block.toolUse)!.toolUse.input.amountUsd = 3_950;
    await harness.dynamo.documentClient.send(
      new UpdateCommand({
        TableName: harness.dynamo.tableName,
        Key: { pk: turn.pk, sk: turn.sk },
        UpdateExpression: 'SET content = :content',
        ExpressionAttributeValues: { ':content': JSON.stringify(content) },
      }),
    );

    harness.bedrock.script(textResponse('The refund could not be issued.'));
    const resumed = await invoke({ sessionId, resume: approvalId });

    expect(resumed.status).toBe(200);
    const [result] = toolResultsSent(1);
    expect(result.status).toBe('error');
    expect(result.content[0].text).toMatch(/^ApprovalMismatchError: /);
    expect(refundInvocations()).toHaveLength(0);
  });

  test('unaudited call is not run', async () => {
    const { approvalId, sessionId } = await requestRefund();
    await decideVia('approve', approvalId);
    audit.failRecordNow = true;

    harness.bedrock.script(textResponse('The refund could not be issued.'));
    const resumed = await invoke({ sessionId, resume: approvalId });

    expect(resumed.status).toBe(200);
    const [result] = toolResultsSent(1);
    expect(result.status).toBe('error');
    expect(result.content[0].text).toMatch(/audit record could not be written/);
    expect(refundInvocations()).toHaveLength(0);
  });

  test('invalid arguments skip approval', async () => {
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'refund-1', name: 'issue_refund', input: { orderId: 'ORD-10001' } }),
      textResponse('I need a reason for the refund.'),
    );

    const response = await invoke({ message: 'Refund ORD-10001.' });

    expect(response.json.stopReason).toBe('end_turn');
    expect(response.json.approvalId).toBeUndefined();
    const [result] = toolResultsSent(1);
    expect(result.content[0].text).toMatch(/^The input for tool issue_refund is invalid/);
    expect(audit.records).toHaveLength(0);
  });

  test('streamed response carries the approval id', async () => {
    harness.bedrock.script(toolUseResponse({ toolUseId: 'refund-1', name: 'issue_refund', input: REFUND }));

    const response = await invoke({ message: 'Refund ORD-10001.' }, { accept: 'application/x-ndjson' });
    const events = response.text.trim().split('\n').map((line) => JSON.parse(line));
    const done = events[events.length - 1];

    expect(done.type).toBe('done');
    expect(done.stopReason).toBe('awaiting_approval');
    expect(done.approvalId).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('resume needs a session id', async () => {
    const response = await invoke({ resume: randomUUID() });

    expect(response.status).toBe(400);
    expect(response.json.error.message).toMatch(/sessionId is required with resume/);
  });
});

describe('background approval', () => {
  test('continuation message resumes the agent', async () => {
    const { queueUrl } = await sqs.createQueueWithDlq('support-tasks', { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    const background = deps('background', queueUrl);
    const consumer = new QueueConsumer({
      sqs: sqs.client,
      queueUrl,
      config: background.config,
      runTask: (task, signal) => runAgentTask(task, background, signal),
      protection: new TaskProtection(undefined, 5, harness.logger),
      logger: harness.logger,
      waitTimeSeconds: 1,
    });
    consumers.push(consumer);
    void consumer.start();
    const sessionId = `bg-${randomUUID()}`;
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'refund-bg', name: 'issue_refund', input: REFUND }),
      textResponse('Refund issued for ORD-10001.'),
    );

    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify({ message: 'Refund the broken mouse of ORD-10001.', userId: 'user-7', sessionId }),
      }),
    );
    const waiting = await waitFor(() =>
      harness.logs.find((line) => line.message === 'task finished for message' && line.stopReason === 'awaiting_approval'),
    );
    const approvalId = waiting.approvalId as string;
    const decision = await decideVia('approve', approvalId);
    const resumed = await waitFor(() =>
      harness.logs.find((line) => line.message === 'task finished for message' && line.resume === approvalId),
    );

    expect(decision.body.continuation).toBe('sent');
    expect(resumed.stopReason).toBe('end_turn');
    expect(refundInvocations()).toHaveLength(1);
    expect(refundInvocations()[0].payload).toEqual(REFUND);
    const [result] = toolResultsSent(1);
    expect(result).toMatchObject({ toolUseId: 'refund-bg', status: 'success' });
    const stored = await harness.dynamo.documentClient.send(
      new QueryCommand({
        TableName: harness.dynamo.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': partitionKey({ agent: AGENT, userId: 'user-7', sessionId }) },
      }),
    );
    const last = stored.Items![stored.Items!.length - 1];
    expect(JSON.parse(last.content)).toEqual([{ text: 'Refund issued for ORD-10001.' }]);
  });
});
