/**
 * Tool-call audit records of the worker: one per call, with the task's user
 * and session, delivered by the real Firehose sink and client to a loopback
 * PutRecordBatch server before the task returns or raises.
 */
import { randomUUID } from 'node:crypto';
import type { AuditRecord } from '../lambda/shared/audit';
import { createFirehoseBatchSender, createFirehoseClient, FirehoseAuditSink } from '../lambda/shared/audit-firehose';
import { auditRecordProblems } from '../lambda/shared/audit-record';
import { canonicalSha256 } from '../lambda/shared/canonical';
import { Logger } from '../lambda/shared/logger';
import { runAgentTask, type AgentLoopDeps } from '../lambda/worker/agent-loop';
import { currentTask, runInTask } from '../lambda/worker/task-audit';
import { toolCallDecision, ToolRunner } from '../lambda/worker/tools';
import { errorResponse, textResponse, toolUseResponse } from './support/bedrock-server';
import { startFirehoseServer, type FirehoseServer } from './support/firehose-server';
import { LOCAL_CREDENTIALS } from './support/dynamodb-local';
import { startWorkerHarness, workerConfig, type WorkerHarness } from './support/worker-harness';

let harness: WorkerHarness;
let firehose: FirehoseServer;

beforeAll(async () => {
  [harness, firehose] = await Promise.all([startWorkerHarness(), startFirehoseServer()]);
});

afterAll(async () => {
  await harness?.close();
  await firehose?.close();
});

beforeEach(() => {
  harness.bedrock.reset();
  firehose.reset();
});

function auditedDeps(): AgentLoopDeps {
  const config = workerConfig();
  const client = createFirehoseClient({ region: 'us-east-1', endpoint: firehose.endpoint, credentials: LOCAL_CREDENTIALS });
  const audit = new FirehoseAuditSink({
    send: createFirehoseBatchSender(client, 'worker-audit'),
    logger: new Logger({}, { sink: () => undefined }),
    retryBaseDelayMs: 1,
    deliveryDelayMs: 60_000,
  });
  return {
    ...harness.deps(config),
    tools: new ToolRunner(config.agent, config.tools, harness.lambdaClient, harness.metrics, audit),
    audit,
  };
}

function runTask(message: string, deps = auditedDeps()) {
  return runAgentTask({ requestId: `task-${randomUUID()}`, userId: 'user-9', sessionId: `session-${randomUUID()}`, message }, deps);
}

function toolRecords(): AuditRecord[] {
  return firehose.accepted.map((line) => JSON.parse(line) as AuditRecord).filter((record) => record.kind === 'tool-call');
}

describe('worker tool-call records', () => {
  test('completed call is recorded', async () => {
    const input = { orderId: 'ORD-10002' };
    harness.bedrock.script(toolUseResponse({ toolUseId: 'call-1', name: 'lookup_order', input }), textResponse('It shipped.'));

    const result = await runTask('Where is ORD-10002?');

    const [record] = toolRecords();
    expect(toolRecords()).toHaveLength(1);
    expect(record).toMatchObject({
      requestId: result.requestId,
      agent: 'support',
      userId: 'user-9',
      sessionId: result.sessionId,
      decision: 'completed',
      tool: 'lookup_order',
    });
    expect(record.argumentsSha256).toBe(canonicalSha256(input));
    expect(firehose.accepted.join('')).not.toContain('ORD-10002');
    expect(auditRecordProblems(record)).toEqual([]);
  });

  test('failing function is recorded', async () => {
    harness.bedrock.script(toolUseResponse({ toolUseId: 'call-1', name: 'check_inventory', input: { sku: 'A-1' } }), textResponse('Sorry.'));

    await runTask('Is A-1 in stock?');

    expect(toolRecords()).toEqual([expect.objectContaining({ decision: 'failed', reason: 'function error', tool: 'check_inventory' })]);
  });

  test.each([
    ['unknown tool', { name: 'delete_everything', input: {} }],
    ['invalid input', { name: 'lookup_order', input: { order: 1 } }],
    ['approval needed', { name: 'issue_refund', input: { orderId: 'ORD-10002', amountUsd: 5, reason: 'late' } }],
  ])('%s is a rejection', async (reason, call) => {
    harness.bedrock.script(toolUseResponse({ toolUseId: 'call-1', ...call }), textResponse('Done.'));

    await runTask('Do it.');

    expect(toolRecords()).toEqual([expect.objectContaining({ decision: 'rejected', reason, tool: call.name })]);
  });

  test('failed task still delivers', async () => {
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'call-1', name: 'lookup_order', input: { orderId: 'ORD-10001' } }),
      errorResponse(400, 'ValidationException'),
    );

    await expect(runTask('Where is ORD-10001?')).rejects.toThrow();

    expect(toolRecords()).toEqual([expect.objectContaining({ decision: 'completed', tool: 'lookup_order' })]);
  });

  test('records arrive before the task returns', async () => {
    harness.bedrock.script(toolUseResponse({ toolUseId: 'call-1', name: 'lookup_order', input: { orderId: 'ORD-10003' } }), textResponse('Yes.'));
    const deps = auditedDeps();

    await runTask('Check ORD-10003', deps);

    expect(firehose.calls).toHaveLength(1);
    expect(firehose.calls[0].streamName).toBe('worker-audit');
  });
});

describe('task identity', () => {
  test('is set inside a task', async () => {
    const identity = { requestId: 'r', userId: 'u', sessionId: 's' };

    const seen = await runInTask(identity, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      return currentTask();
    });

    expect(seen).toEqual(identity);
    expect(currentTask()).toBeUndefined();
  });
});

describe('toolCallDecision', () => {
  test.each([
    [{ status: 'success' as const, content: {} }, 'completed'],
    [{ status: 'error' as const, content: 'x', reason: 'unknown tool' as const }, 'rejected'],
    [{ status: 'error' as const, content: 'x', reason: 'approval needed' as const }, 'rejected'],
    [{ status: 'error' as const, content: 'x', reason: 'invocation failed' as const }, 'failed'],
    [{ status: 'error' as const, content: 'x', reason: 'aborted' as const }, 'failed'],
    [{ status: 'error' as const, content: 'x' }, 'failed'],
  ])('%j is %s', (outcome, decision) => {
    expect(toolCallDecision(outcome)).toBe(decision);
  });
});
