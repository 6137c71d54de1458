import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { AgentStackError, ModelCallError } from '../lambda/shared/errors';
import { SessionConflictError, TaskAbortedError } from '../lambda/worker/errors';
import { partitionKey, sortKey } from '../lambda/worker/memory';
import { errorResponse, textResponse, toolUseResponse } from './support/bedrock-server';
import {
  AGENT,
  MAX_TOKENS_PER_CALL,
  WorkerHarness,
  startWorkerHarness,
  workerConfig,
} from './support/worker-harness';

type Block = Record<string, any>;
type ConverseBody = {
  messages: Array<{ role: string; content: Block[] }>;
  inferenceConfig?: { maxTokens?: number };
  toolConfig?: { tools: Array<{ toolSpec: { name: string } }> };
};

let harness: WorkerHarness;

beforeAll(async () => {
  harness = await startWorkerHarness();
});

afterAll(async () => {
  await harness?.close();
});

beforeEach(() => {
  harness.bedrock.reset();
  harness.lambda.invocations.length = 0;
  harness.logs.length = 0;
  harness.metricLines.length = 0;
});

function converseBodies(): ConverseBody[] {
  return harness.bedrock.requests.map((request) => request.body as ConverseBody);
}

/** Returns the toolResult blocks of the last user turn of the `index`-th model request. */
function toolResultsSent(index: number): Block[] {
  const messages = converseBodies()[index].messages;
  const last = messages[messages.length - 1];
  expect(last.role).toBe('user');
  return last.content.filter((block) => 'toolResult' in block).map((block) => block.toolResult);
}

function invocationsOf(functionName: string) {
  return harness.lambda.invocations.filter((call) => call.functionName === functionName);
}

describe('agent loop', () => {
  test('runs a multi-step tool conversation', async () => {
    harness.bedrock.script(
      toolUseResponse({
        toolUseId: 'call-1',
        name: 'lookup_order',
        input: { orderId: 'ORD-10002' },
        usage: { inputTokens: 120, outputTokens: 30 },
      }),
      toolUseResponse({
        toolUseId: 'call-2',
        name: 'search_knowledge_base',
        input: { query: 'shipping times', limit: 2 },
        usage: { inputTokens: 300, outputTokens: 40 },
      }),
      textResponse('Order ORD-10002 has shipped and arrives within 5 business days.', {
        usage: { inputTokens: 500, outputTokens: 25 },
      }),
    );

    const result = await harness.run({ message: 'Where is my order ORD-10002?' });

    expect(result.stopReason).toBe('end_turn');
    expect(result.iterations).toBe(3);
    expect(result.toolCalls).toBe(2);
    expect(result.output).toBe('Order ORD-10002 has shipped and arrives within 5 business days.');
    expect(result.usage).toEqual({ inputTokens: 920, outputTokens: 95, totalTokens: 1015 });

    const [order] = toolResultsSent(1);
    expect(order.toolUseId).toBe('call-1');
    expect(order.status).toBe('success');
    expect(order.content[0].json.order.status).toBe('shipped');
    const [search] = toolResultsSent(2);
    expect(search.toolUseId).toBe('call-2');
    expect(search.content[0].json.passages[0].sourceId).toBe('kb-shipping-002');
    expect(invocationsOf('lookup-order')[0].payload).toEqual({ orderId: 'ORD-10002' });

    const bodies = converseBodies();
    expect(bodies[0].toolConfig?.tools.map((tool) => tool.toolSpec.name)).toContain('lookup_order');
    for (const body of bodies) {
      expect(body.inferenceConfig?.maxTokens).toBeLessThanOrEqual(MAX_TOKENS_PER_CALL);
    }
  });

  test('stops at end_turn after one call', async () => {
    harness.bedrock.script(textResponse('Hello! How can I help?'));
    const result = await harness.run({ message: 'Hi' });
    expect(result.stopReason).toBe('end_turn');
    expect(result.iterations).toBe(1);
    expect(result.toolCalls).toBe(0);
  });

  test('stops at the iteration cap without running the last tools', async () => {
    const config = workerConfig({ limits: { maxIterations: 2 } });
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'a', name: 'lookup_order', input: { orderId: 'ORD-10001' } }),
      toolUseResponse({ toolUseId: 'b', name: 'lookup_order', input: { orderId: 'ORD-10003' } }),
      textResponse('never sent'),
    );

    const result = await harness.run({ message: 'Check two orders' }, config);

    expect(result.stopReason).toBe('max_iterations');
    expect(result.iterations).toBe(2);
    expect(harness.bedrock.requests).toHaveLength(2);
    expect(invocationsOf('lookup-order')).toHaveLength(1);
  });

  test('stops at the task token cap and shrinks maxTokens', async () => {
    const config = workerConfig({ limits: { maxTokensPerTask: 1_000 } });
    harness.bedrock.script(
      toolUseResponse({
        toolUseId: 'a',
        name: 'lookup_order',
        input: { orderId: 'ORD-10001' },
        usage: { inputTokens: 600, outputTokens: 100 },
      }),
      toolUseResponse({
        toolUseId: 'b',
        name: 'lookup_order',
        input: { orderId: 'ORD-10002' },
        usage: { inputTokens: 250, outputTokens: 60 },
      }),
    );

    const result = await harness.run({ message: 'Check my orders' }, config);

    expect(result.stopReason).toBe('max_tokens_per_task');
    expect(result.iterations).toBe(2);
    expect(result.usage.totalTokens).toBe(1_010);
    const [first, second] = converseBodies();
    expect(first.inferenceConfig?.maxTokens).toBe(1_000);
    expect(second.inferenceConfig?.maxTokens).toBe(300);
    expect(invocationsOf('lookup-order')).toHaveLength(1);
  });

  test('stops on a third identical tool call', async () => {
    // Key order differs between the calls; the input is still the same.
    harness.bedrock.script(
      toolUseResponse({
        toolUseId: 'a',
        name: 'search_knowledge_base',
        input: { query: 'refund', limit: 1 },
      }),
      toolUseResponse({
        toolUseId: 'b',
        name: 'search_knowledge_base',
        input: { limit: 1, query: 'refund' },
      }),
      toolUseResponse({
        toolUseId: 'c',
        name: 'search_knowledge_base',
        input: { query: 'refund', limit: 1 },
      }),
      textResponse('never sent'),
    );

    const result = await harness.run({ message: 'How do refunds work?' });

    expect(result.stopReason).toBe('repeated_tool_call');
    expect(result.iterations).toBe(3);
    expect(invocationsOf('search-knowledge-base')).toHaveLength(2);
  });

  test('stops at the task timeout', async () => {
    const config = workerConfig({ limits: { taskTimeoutSeconds: 1 } });
    harness.bedrock.script(textResponse('too late', { delayMs: 2_500 }));

    const started = Date.now();
    const result = await harness.run({ message: 'Hi' }, config);

    expect(result.stopReason).toBe('timeout');
    expect(result.output).toBe('');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test('raises TaskAbortedError and saves nothing when cancelled', async () => {
    harness.bedrock.script(textResponse('too late', { delayMs: 2_000 }));
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(), 200);

    const run = harness.run(
      { message: 'Hi', sessionId: 'cancelled-session' },
      undefined,
      cancel.signal,
    );

    await expect(run).rejects.toBeInstanceOf(TaskAbortedError);
    const stored = await harness.dynamo.documentClient.send(
      new QueryCommand({
        TableName: harness.dynamo.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: {
          ':pk': partitionKey({ agent: AGENT, userId: 'user-1', sessionId: 'cancelled-session' }),
        },
      }),
    );
    expect(stored.Items).toEqual([]);
  });

  test('writes one log line per task with its ids', async () => {
    harness.bedrock.script(textResponse('Hi there'));
    await harness.run({
      message: 'Hi',
      requestId: 'req-log-1',
      userId: 'user-7',
      sessionId: 'session-log',
    });

    const line = harness.logs.find((entry) => entry.message === 'task finished');
    expect(line).toMatchObject({
      level: 'info',
      requestId: 'req-log-1',
      agent: AGENT,
      user: 'user-7',
      session: 'session-log',
      stopReason: 'end_turn',
      iterations: 1,
    });
    expect(line).not.toHaveProperty('_aws');
  });

  test('writes one metric line per task', async () => {
    harness.bedrock.script(textResponse('Hi there', { usage: { inputTokens: 40, outputTokens: 2 } }));
    await harness.run({ message: 'Hi', requestId: 'req-metrics-1' });

    expect(harness.metricLines).toHaveLength(1);
    const [line] = harness.metricLines;
    expect(line).toMatchObject({
      requestId: 'req-metrics-1',
      Agent: AGENT,
      Reason: 'end_turn',
      LoopIterations: 1,
      TaskTokens: 42,
      StopReason: 1,
    });
    expect(line).not.toHaveProperty('Confidence');
    expect((line._aws as any).CloudWatchMetrics[0].Namespace).toBe('AgentStack');
  });
});

describe('tool calls', () => {
  test('rejects invalid input without invoking the tool', async () => {
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'bad', name: 'lookup_order', input: { orderId: 'not an id!' } }),
      textResponse('Could you check the order id?'),
    );

    const result = await harness.run({ message: 'Look up order "not an id!"' });

    expect(result.stopReason).toBe('end_turn');
    const [rejected] = toolResultsSent(1);
    expect(rejected.status).toBe('error');
    expect(rejected.content[0].text).toMatch(
      /input for tool lookup_order is invalid: \/orderId must match pattern/,
    );
    expect(invocationsOf('lookup-order')).toHaveLength(0);
  });

  test('reports a throwing tool as an error result', async () => {
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'inv', name: 'check_inventory', input: { sku: 'KB-204' } }),
      textResponse('I cannot check stock right now.'),
    );

    const result = await harness.run({ message: 'Is KB-204 in stock?' });

    expect(result.stopReason).toBe('end_turn');
    const [failed] = toolResultsSent(1);
    expect(failed.status).toBe('error');
    expect(failed.content[0].text).toBe(
      'Tool check_inventory failed: inventory service is unavailable',
    );
    expect(invocationsOf('check-inventory')[0].functionError).toBe('Unhandled');
  });

  test('does not run a high-impact tool', async () => {
    harness.bedrock.script(
      toolUseResponse({
        toolUseId: 'refund',
        name: 'issue_refund',
        input: { orderId: 'ORD-10001', amountUsd: 39.5, reason: 'Mouse arrived broken' },
      }),
      textResponse('A person has to approve this refund.'),
    );

    await harness.run({ message: 'Refund the mouse of ORD-10001' });

    const [refused] = toolResultsSent(1);
    expect(refused.status).toBe('error');
    expect(refused.content[0].text).toMatch(/needs a person's approval/);
    expect(refused.content[0].text).toMatch(/no approval mechanism is configured/);
    expect(invocationsOf('issue-refund')).toHaveLength(0);
  });

  test('answers an unknown tool with an error result', async () => {
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'x', name: 'delete_account', input: {} }),
      textResponse('I cannot do that.'),
    );
    await harness.run({ message: 'Delete my account' });
    const [unknown] = toolResultsSent(1);
    expect(unknown.status).toBe('error');
    expect(unknown.content[0].text).toMatch(/^Tool delete_account does not exist/);
  });

  test('counts an unknown tool as unknown', async () => {
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'x', name: 'delete_account', input: {} }),
      textResponse('I cannot do that.'),
    );
    await harness.run({ message: 'Delete my account', requestId: 'req-unknown-tool' });

    const toolLines = harness.metricLines.filter((line) => 'ToolCalls' in line);
    expect(toolLines).toHaveLength(1);
    expect(toolLines[0]).toMatchObject({
      requestId: 'req-unknown-tool',
      Agent: AGENT,
      Tool: 'unknown',
      ToolCalls: 1,
      ToolFailures: 1,
    });
  });
});

describe('model errors', () => {
  test.each([
    [400, 'ValidationException', 'InvalidRequestError', 400],
    [500, 'InternalServerException', 'AllTargetsFailedError', 502],
  ])('a Bedrock %i %s reaches the caller as %s', async (status, errorType, name, statusCode) => {
    harness.bedrock.script(errorResponse(status, errorType));
    const sessionId = `error-${status}`;

    const error = await harness
      .run({ message: 'Hi', requestId: `req-${status}`, sessionId })
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(AgentStackError);
    expect((error as AgentStackError).name).toBe(name);
    expect((error as AgentStackError).statusCode).toBe(statusCode);
    // The id of the failed model call: the task's request id and the iteration.
    expect((error as AgentStackError).requestId).toBe(`req-${status}-1`);
    const stored = await harness.dynamo.documentClient.send(
      new QueryCommand({
        TableName: harness.dynamo.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: {
          ':pk': partitionKey({ agent: AGENT, userId: 'user-1', sessionId }),
        },
      }),
    );
    expect(stored.Items).toEqual([]);
  });

  test('keeps the Bedrock error code on ModelCallError', async () => {
    harness.bedrock.script(errorResponse(503, 'ServiceUnavailableException'));
    const error = await harness.run({ message: 'Hi' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ModelCallError);
    expect((error as ModelCallError).errorCode).toBe('ServiceUnavailableException');
  });
});

describe('memory', () => {
  const nowSeconds = () => Math.floor(Date.now() / 1000);

  test('round-trips turns and ignores expired items', async () => {
    const session = { agent: AGENT, userId: 'user-mem', sessionId: 'memory-session' };
    for (const [seq, role, text] of [
      [0, 'user', 'My code is 1234'],
      [1, 'assistant', 'Noted'],
    ] as const) {
      await harness.dynamo.documentClient.send(
        new PutCommand({
          TableName: harness.dynamo.tableName,
          Item: {
            pk: partitionKey(session),
            sk: sortKey(seq),
            role,
            content: JSON.stringify([{ text }]),
            expiresAt: nowSeconds() - 10,
          },
        }),
      );
    }
    harness.bedrock.script(textResponse('Hello Ann.'), textResponse('Your name is Ann.'));

    await harness.run({ message: 'I am Ann', userId: 'user-mem', sessionId: 'memory-session' });
    await harness.run({
      message: 'What is my name?',
      userId: 'user-mem',
      sessionId: 'memory-session',
    });

    const [first, second] = converseBodies();
    expect(first.messages).toEqual([{ role: 'user', content: [{ text: 'I am Ann' }] }]);
    expect(second.messages).toEqual([
      { role: 'user', content: [{ text: 'I am Ann' }] },
      { role: 'assistant', content: [{ text: 'Hello Ann.' }] },
      { role: 'user', content: [{ text: 'What is my name?' }] },
    ]);

    // New turns follow the expired ones instead of overwriting them.
    const turn = await harness.dynamo.documentClient.send(
      new GetCommand({
        TableName: harness.dynamo.tableName,
        Key: { pk: partitionKey(session), sk: sortKey(2) },
      }),
    );
    expect(JSON.parse(turn.Item?.content)).toEqual([{ text: 'I am Ann' }]);
    const ttlDays = workerConfig().memoryTtlDays;
    expect(turn.Item?.expiresAt).toBeGreaterThan(nowSeconds() + ttlDays * 86_400 - 60);
    expect(turn.Item?.expiresAt).toBeLessThanOrEqual(nowSeconds() + ttlDays * 86_400);
  });

  test('keeps sessions of different users apart', async () => {
    harness.bedrock.script(textResponse('Noted, Bob.'), textResponse('I do not know your name.'));
    await harness.run({ message: 'I am Bob', userId: 'user-bob', sessionId: 'shared-id' });
    await harness.run({ message: 'What is my name?', userId: 'user-eve', sessionId: 'shared-id' });

    expect(converseBodies()[1].messages).toEqual([
      { role: 'user', content: [{ text: 'What is my name?' }] },
    ]);
  });

  test('continues a session that stopped after tool results', async () => {
    const config = workerConfig({ limits: { maxIterations: 1 } });
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'cap', name: 'lookup_order', input: { orderId: 'ORD-10001' } }),
      textResponse('Order ORD-10001 was delivered.'),
    );
    await harness.run({ message: 'Status of ORD-10001?', sessionId: 'capped' }, config);
    const result = await harness.run({ message: 'And now?', sessionId: 'capped' }, config);

    expect(result.stopReason).toBe('end_turn');
    const messages = converseBodies()[1].messages;
    expect(messages.map((message) => message.role)).toEqual(['user', 'assistant', 'user']);
    const last = messages[2].content;
    expect(last[0].toolResult.toolUseId).toBe('cap');
    expect(last[0].toolResult.status).toBe('error');
    expect(last[0].toolResult.content[0].text).toMatch(/limit of 1 model calls/);
    expect(last[1]).toEqual({ text: 'And now?' });
  });

  test('rejects a concurrent append to the same turn', async () => {
    const memory = harness.deps().memory;
    const session = { agent: AGENT, userId: 'user-race', sessionId: 'race' };
    const turn = [{ role: 'user' as const, content: [{ text: 'first' }] }];
    await memory.append(session, 0, turn, 'req-a');

    const second = memory.append(session, 0, turn, 'req-b');

    await expect(second).rejects.toBeInstanceOf(SessionConflictError);
    await expect(second).rejects.toThrow(/Session race was changed by another request/);
  });
});
