/**
 * The final answer tool of an agent with `confidence`: the agent loop runs
 * against the real gateway and the loopback Bedrock server, and stores its
 * turns in DynamoDB Local.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import {
  FINAL_ANSWER_DELIVERED,
  FINAL_ANSWER_INSTRUCTION,
  finalAnswerResults,
  readFinalAnswer,
} from '../lambda/worker/final-answer';
import { partitionKey } from '../lambda/worker/memory';
import { textResponse, toolUseResponse } from './support/bedrock-server';
import { AGENT, WorkerHarness, startWorkerHarness, workerConfig } from './support/worker-harness';

type Block = Record<string, any>;
type ConverseBody = {
  system?: Array<{ text: string }>;
  messages: Array<{ role: string; content: Block[] }>;
  toolConfig?: { tools: Array<{ toolSpec: { name: string; inputSchema: { json: Block } } }> };
};

const CONFIDENT = workerConfig({ confidence: true });

let harness: WorkerHarness;

beforeAll(async () => {
  harness = await startWorkerHarness();
});

afterAll(async () => {
  await harness?.close();
});

beforeEach(() => {
  harness.bedrock.reset();
  harness.logs.length = 0;
  harness.metricLines.length = 0;
});

function converseBodies(): ConverseBody[] {
  return harness.bedrock.requests.map((request) => request.body as ConverseBody);
}

function toolNames(body: ConverseBody): string[] {
  return (body.toolConfig?.tools ?? []).map((tool) => tool.toolSpec.name);
}

function finalAnswer(input: unknown, toolUseId = 'final-1') {
  return toolUseResponse({ toolUseId, name: 'final_answer', input });
}

/** Returns the one metric line of the task, which carries the task's metrics. */
function taskMetricLine(): Record<string, unknown> {
  const lines = harness.metricLines.filter((line) => 'StopReason' in line);
  expect(lines).toHaveLength(1);
  return lines[0];
}

describe('final answer tool', () => {
  test('offered only with confidence', async () => {
    harness.bedrock.script(textResponse('Hello.'), textResponse('Hello.'));

    await harness.run({ message: 'Hi' }, CONFIDENT);
    await harness.run({ message: 'Hi' }, workerConfig());

    const [withConfidence, without] = converseBodies();
    expect(toolNames(withConfidence)).toContain('final_answer');
    expect(withConfidence.system?.[0].text).toBe(
      `${CONFIDENT.systemPrompt}\n\n${FINAL_ANSWER_INSTRUCTION}`,
    );
    const schema = withConfidence.toolConfig!.tools.find(
      (tool) => tool.toolSpec.name === 'final_answer',
    )!.toolSpec.inputSchema.json;
    expect(schema.required).toEqual(['answer', 'confidence']);
    expect(toolNames(without)).not.toContain('final_answer');
    expect(without.system?.[0].text).toBe(CONFIDENT.systemPrompt);
  });

  test('ends the task with answer', async () => {
    harness.bedrock.script(
      finalAnswer({ answer: 'Order ORD-10002 has shipped.', confidence: 0.8 }),
    );

    const result = await harness.run({ message: 'Where is ORD-10002?' }, CONFIDENT);

    expect(result.stopReason).toBe('final_answer');
    expect(result.output).toBe('Order ORD-10002 has shipped.');
    expect(result.confidence).toBe(0.8);
    expect(result.iterations).toBe(1);
    expect(result.toolCalls).toBe(0);
    expect(harness.bedrock.requests).toHaveLength(1);
    const finished = harness.logs.find((line) => line.message === 'task finished');
    expect(finished?.confidence).toBe(0.8);
    const line = taskMetricLine();
    expect(line.Confidence).toBe(0.8);
    expect(line.Reason).toBe('final_answer');
  });

  test('next task continues the session', async () => {
    const sessionId = 'final-answer-session';
    harness.bedrock.script(
      finalAnswer({ answer: 'It ships on Monday.', confidence: 0.9 }, 'final-7'),
      textResponse('You are welcome.'),
    );

    await harness.run({ message: 'When does it ship?', sessionId }, CONFIDENT);
    const second = await harness.run({ message: 'Thanks!', sessionId }, CONFIDENT);

    expect(second.stopReason).toBe('end_turn');
    const messages = converseBodies()[1].messages;
    expect(messages.map((message) => message.role)).toEqual(['user', 'assistant', 'user']);
    expect(messages[1].content).toEqual([
      {
        toolUse: {
          toolUseId: 'final-7',
          name: 'final_answer',
          input: { answer: 'It ships on Monday.', confidence: 0.9 },
        },
      },
    ]);
    expect(messages[2].content).toEqual([
      {
        toolResult: {
          toolUseId: 'final-7',
          content: [{ text: FINAL_ANSWER_DELIVERED }],
          status: 'success',
        },
      },
      { text: 'Thanks!' },
    ]);

    const stored = await harness.dynamo.documentClient.send(
      new QueryCommand({
        TableName: harness.dynamo.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: {
          ':pk': partitionKey({ agent: AGENT, userId: 'user-1', sessionId }),
        },
      }),
    );
    expect(stored.Items?.map((item) => item.role)).toEqual([
      'user',
      'assistant',
      'user',
      'user',
      'assistant',
    ]);
  });

  test('text answer has no confidence', async () => {
    harness.bedrock.script(textResponse('It ships on Monday.'));

    const result = await harness.run({ message: 'When does it ship?' }, CONFIDENT);

    expect(result.stopReason).toBe('end_turn');
    expect(result.output).toBe('It ships on Monday.');
    expect(result.confidence).toBeUndefined();
    expect(taskMetricLine()).not.toHaveProperty('Confidence');
  });

  test.each<[string, Record<string, unknown>, string]>([
    ['above 1', { confidence: 1.5 }, 'outside 0 to 1'],
    ['below 0', { confidence: -0.1 }, 'outside 0 to 1'],
    ['a string', { confidence: '0.8' }, 'not a number'],
    ['null', { confidence: null }, 'not a number'],
    ['missing', {}, 'missing'],
  ])('confidence %s is not published', async (_case, fields, problem) => {
    harness.bedrock.script(finalAnswer({ answer: 'It ships on Monday.', ...fields }));

    const result = await harness.run({ message: 'When does it ship?' }, CONFIDENT);

    expect(result.stopReason).toBe('final_answer');
    expect(result.output).toBe('It ships on Monday.');
    expect(result.confidence).toBeUndefined();
    expect(taskMetricLine()).not.toHaveProperty('Confidence');
    const warning = harness.logs.find((line) => line.level === 'warn');
    expect(warning?.message).toBe(
      'final answer confidence is invalid, so no Confidence metric was written',
    );
    expect(warning?.confidenceProblem).toBe(problem);
    expect(warning?.reportedConfidence).toBe(JSON.stringify(fields.confidence) ?? 'undefined');
  });

  test('missing answer asks again', async () => {
    harness.bedrock.script(
      finalAnswer({ confidence: 0.5 }, 'final-a'),
      finalAnswer({ answer: 'It ships on Monday.', confidence: 0.5 }, 'final-b'),
    );

    const result = await harness.run({ message: 'When does it ship?' }, CONFIDENT);

    expect(result.stopReason).toBe('final_answer');
    expect(result.output).toBe('It ships on Monday.');
    expect(result.iterations).toBe(2);
    const messages = converseBodies()[1].messages;
    const [rejected] = messages[messages.length - 1].content;
    expect(rejected.toolResult.toolUseId).toBe('final-a');
    expect(rejected.toolResult.status).toBe('error');
    expect(rejected.toolResult.content[0].text).toMatch(
      /input of final_answer is invalid: answer must be a non-empty string/,
    );
  });

  test('other tools of the turn are not run', () => {
    const uses = [
      { toolUseId: 'lookup-1', name: 'lookup_order', input: { orderId: 'ORD-10002' } },
      { toolUseId: 'final-1', name: 'final_answer', input: { answer: 'x', confidence: 1 } },
    ];

    const results = finalAnswerResults(uses, 'final-1');

    expect(results).toEqual([
      {
        toolResult: {
          toolUseId: 'lookup-1',
          content: [{ text: 'Tool call not run: the turn ended with final_answer.' }],
          status: 'error',
        },
      },
      {
        toolResult: {
          toolUseId: 'final-1',
          content: [{ text: FINAL_ANSWER_DELIVERED }],
          status: 'success',
        },
      },
    ]);
  });

  test.each<[string, unknown]>([
    ['no input object', 'It ships on Monday.'],
    ['an empty answer', { answer: ' ', confidence: 0.5 }],
    ['a numeric answer', { answer: 42, confidence: 0.5 }],
  ])('%s is invalid', (_case, input) => {
    expect(readFinalAnswer(input).ok).toBe(false);
  });

  test.each([0, 0.25, 1])('confidence %d is kept', (confidence) => {
    expect(readFinalAnswer({ answer: 'yes', confidence })).toEqual({
      ok: true,
      answer: 'yes',
      confidence,
    });
  });
});
