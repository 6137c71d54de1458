/**
 * Hostile and unlucky task messages against the queue consumer, run against
 * fauxqs, the loopback ECS agent and the real agent loop.
 */
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { runAgentTask } from '../lambda/worker/agent-loop';
import { QueueConsumer } from '../lambda/worker/queue-consumer';
import { TaskProtection } from '../lambda/worker/task-protection';
import { textResponse } from './support/bedrock-server';
import { EcsAgentServer, startEcsAgentServer } from './support/ecs-agent-server';
import { SqsServer, startSqsServer } from './support/sqs-server';
import { WorkerHarness, startWorkerHarness, workerConfig } from './support/worker-harness';

let harness: WorkerHarness;
let sqs: SqsServer;
let ecsAgent: EcsAgentServer;
let queueCount = 0;
const consumers: QueueConsumer[] = [];

beforeAll(async () => {
  [harness, sqs, ecsAgent] = await Promise.all([
    startWorkerHarness(),
    startSqsServer(),
    startEcsAgentServer(),
  ]);
});

afterAll(async () => {
  await Promise.all(consumers.map((consumer) => consumer.stop()));
  await Promise.all([harness?.close(), sqs?.stop(), ecsAgent?.close()]);
});

beforeEach(() => {
  harness.bedrock.reset();
  harness.logs.length = 0;
  ecsAgent.requests.length = 0;
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const INVALID_TASK_MESSAGE = 'message is not a valid task; returning it for the dead-letter queue';

function logged(message: string) {
  return harness.logs.filter((line) => line.message === message);
}

function startConsumer(
  queueUrl: string,
  options: { concurrency: number; heartbeatSeconds?: number },
): QueueConsumer {
  const config = workerConfig({ mode: 'background', concurrency: options.concurrency });
  const deps = harness.deps(config);
  const consumer = new QueueConsumer({
    sqs: sqs.client,
    queueUrl,
    config,
    runTask: (task, signal) => runAgentTask(task, deps, signal),
    protection: new TaskProtection(ecsAgent.uri, 5, harness.logger),
    logger: harness.logger,
    heartbeatSeconds: options.heartbeatSeconds,
    waitTimeSeconds: 1,
  });
  consumers.push(consumer);
  void consumer.start();
  return consumer;
}

async function send(queueUrl: string, body: string): Promise<void> {
  await sqs.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
}

describe('queue consumer attacks', () => {
  test.each([
    ['not JSON', '{"message": "Hi", "userId": '],
    ['JSON null', 'null'],
    ['a JSON string', '"Hi"'],
    ['missing userId', JSON.stringify({ message: 'Hi' })],
    ['an empty userId', JSON.stringify({ message: 'Hi', userId: '' })],
    ['a numeric userId', JSON.stringify({ message: 'Hi', userId: 7 })],
    ['a prototype userId', '{"message": "Hi", "__proto__": {"userId": "admin"}}'],
    ['a session id with #', JSON.stringify({ message: 'Hi', userId: 'u', sessionId: 'a#b' })],
  ])('sends a message with %s to the dead-letter queue', async (_case, body) => {
    queueCount += 1;
    const { queueUrl, dlqUrl } = await sqs.createQueueWithDlq(`attack-${queueCount}`, {
      maxReceiveCount: 1,
      visibilityTimeoutSeconds: 30,
    });
    await send(queueUrl, body);

    const consumer = startConsumer(queueUrl, { concurrency: 1 });
    await waitFor(() => logged(INVALID_TASK_MESSAGE).length > 0);
    await consumer.stop();

    // fauxqs moves a message past maxReceiveCount on the next receive.
    const source = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 0 }),
    );
    expect(source.Messages ?? []).toEqual([]);
    const dead = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: dlqUrl, WaitTimeSeconds: 2 }),
    );
    expect(dead.Messages?.map((message) => message.Body)).toEqual([body]);
    expect(harness.bedrock.requests).toHaveLength(0);
  });

  test('keeps protection while a redelivered copy runs', async () => {
    // No heartbeat within the 1 s visibility timeout, so SQS hands the
    // message out again while its first task is still running.
    queueCount += 1;
    const { queueUrl } = await sqs.createQueueWithDlq(`attack-${queueCount}`, {
      maxReceiveCount: 5,
      visibilityTimeoutSeconds: 1,
    });
    harness.bedrock.script(
      textResponse('First copy.', { delayMs: 1_500 }),
      textResponse('Second copy.', { delayMs: 4_000 }),
    );
    await send(queueUrl, JSON.stringify({ message: 'Slow task', userId: 'producer-user' }));

    const consumer = startConsumer(queueUrl, { concurrency: 2, heartbeatSeconds: 60 });
    await waitFor(() => logged('task finished for message').length === 1);
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(harness.bedrock.requests.length).toBeGreaterThanOrEqual(2);
    expect(ecsAgent.requests.at(-1)?.ProtectionEnabled).toBe(true);

    const stopping = Date.now();
    await consumer.stop();
    expect(Date.now() - stopping).toBeLessThan(1_500);
    // A third copy may have started once the first task freed its slot.
    expect(
      logged('task cancelled because the worker is stopping; returning the message').length,
    ).toBeGreaterThanOrEqual(1);
    expect(ecsAgent.requests.at(-1)).toEqual({ ProtectionEnabled: false });
  });
});
