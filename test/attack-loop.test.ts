/**
 * Odd model behavior against the agent loop: tool-use turns without tool
 * blocks, hostile tool input, negative usage and unseen stop reasons, run
 * through the real gateway, tool runner and DynamoDB Local.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { partitionKey } from '../lambda/worker/memory';
import { textResponse, toolUseResponse } from './support/bedrock-server';
import { AGENT, WorkerHarness, startWorkerHarness, workerConfig } from './support/worker-harness';

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

function lookupOrderCalls() {
  return harness.lambda.invocations.filter((call) => call.functionName === 'lookup-order');
}

async function storedTurns(userId: string, sessionId: string) {
  const output = await harness.dynamo.documentClient.send(
    new QueryCommand({
      TableName: harness.dynamo.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': partitionKey({ agent: AGENT, userId, sessionId }) },
    }),
  );
  return output.Items ?? [];
}

describe('agent loop attacks', () => {
  test('ends on tool_use without tool blocks', async () => {
    harness.bedrock.script(textResponse('Let me check that.', { stopReason: 'tool_use' }));

    const result = await harness.run({ message: 'Where is my order?', sessionId: 'no-blocks' });

    expect(result.stopReason).toBe('tool_use');
    expect(result.iterations).toBe(1);
    expect(result.toolCalls).toBe(0);
    expect(result.output).toBe('Let me check that.');
    expect(harness.bedrock.requests).toHaveLength(1);
    const turns = await storedTurns('user-1', 'no-blocks');
    expect(turns.map((turn) => turn.role)).toEqual(['user', 'assistant']);
  });

  test('continues a session after tool_use without blocks', async () => {
    harness.bedrock.script(
      textResponse('Let me check that.', { stopReason: 'tool_use' }),
      textResponse('It shipped.'),
    );
    await harness.run({ message: 'Where is my order?', sessionId: 'no-blocks-2' });

    const result = await harness.run({ message: 'Well?', sessionId: 'no-blocks-2' });

    expect(result.stopReason).toBe('end_turn');
    const messages = (harness.bedrock.requests[1].body as any).messages;
    for (const message of messages) expect(message.content.length).toBeGreaterThan(0);
  });

  test.each([
    ['a string', 'ORD-10001'],
    ['an array', ['ORD-10001']],
    ['null', null],
    ['a nested object id', { orderId: { $ne: '' } }],
  ])('rejects tool input that is %s', async (_case, input) => {
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'bad-1', name: 'lookup_order', input }),
      textResponse('Sorry.'),
    );

    const result = await harness.run({ message: 'Look up my order' });

    expect(result.stopReason).toBe('end_turn');
    expect(lookupOrderCalls()).toHaveLength(0);
    const messages = (harness.bedrock.requests[1].body as any).messages;
    const toolResult = messages.at(-1).content[0].toolResult;
    expect(toolResult.status).toBe('error');
    expect(toolResult.content[0].text).toMatch(/The input for tool lookup_order is invalid/);
  });

  test('drops a prototype key from tool input', async () => {
    const input = JSON.parse('{"orderId":"ORD-10001","__proto__":{"admin":true}}');
    harness.bedrock.script(
      toolUseResponse({ toolUseId: 'proto-1', name: 'lookup_order', input }),
      textResponse('Found it.'),
    );

    await harness.run({ message: 'Look up my order' });

    expect(lookupOrderCalls().map((call) => call.payload)).toEqual([{ orderId: 'ORD-10001' }]);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  test('does not let negative usage lift the token cap', async () => {
    const config = workerConfig({ limits: { maxTokensPerTask: 1_000 } });
    harness.bedrock.script(
      toolUseResponse({
        toolUseId: 'a',
        name: 'lookup_order',
        input: { orderId: 'ORD-10001' },
        usage: { inputTokens: -50_000, outputTokens: 600 },
      }),
      toolUseResponse({
        toolUseId: 'b',
        name: 'lookup_order',
        input: { orderId: 'ORD-10002' },
        usage: { inputTokens: 500, outputTokens: 10 },
      }),
      textResponse('never sent'),
    );

    const result = await harness.run({ message: 'Check my orders' }, config);

    expect(result.stopReason).toBe('max_tokens_per_task');
    expect(result.usage.totalTokens).toBe(1_110);
    expect((harness.bedrock.requests[1].body as any).inferenceConfig.maxTokens).toBe(400);
    expect(harness.bedrock.requests).toHaveLength(2);
  });

  test('records an unseen stop reason', async () => {
    harness.bedrock.script(textResponse('Partial.', { stopReason: 'brand_new_reason' }));

    const result = await harness.run({ message: 'Hi' });

    expect(result.stopReason).toBe('brand_new_reason');
    const finished = harness.logs.find((line) => line.message === 'task finished');
    expect(finished?.stopReason).toBe('brand_new_reason');
    const taskLine = harness.metricLines.find((line) => 'StopReason' in line);
    expect(taskLine?.Reason).toBe('brand_new_reason');
  });
});
