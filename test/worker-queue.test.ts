import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { InvokeCommand } from '@aws-sdk/client-lambda';
import { GatewayErrorResponse, GatewayRequest } from '../lambda/shared/contracts';
import { runAgentTask } from '../lambda/worker/agent-loop';
import { GatewayModelClient, ModelClient, decodePayload } from '../lambda/worker/model-client';
import { QueueConsumer } from '../lambda/worker/queue-consumer';
import { TaskProtection } from '../lambda/worker/task-protection';
import { errorResponse, textResponse } from './support/bedrock-server';
import { EcsAgentServer, startEcsAgentServer } from './support/ecs-agent-server';
import { SqsServer, startSqsServer } from './support/sqs-server';
import {
  AGENT,
  GATEWAY_FUNCTION,
  WorkerHarness,
  startWorkerHarness,
  workerConfig,
} from './support/worker-harness';

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

async function waitFor<T>(
  read: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function newQueue(options: { maxReceiveCount: number; visibilityTimeoutSeconds: number }) {
  queueCount += 1;
  return sqs.createQueueWithDlq(`tasks-${queueCount}`, options);
}

function startConsumer(
  queueUrl: string,
  options: {
    concurrency?: number;
    heartbeatSeconds?: number;
    visibilityTimeoutSeconds?: number;
    /** Counts the tasks running at once. */
    running?: { now: number; max: number };
    /** Replaces the client of the harness's gateway function. */
    model?: ModelClient;
    minSuspensionPauseSeconds?: number;
  } = {},
): QueueConsumer {
  const config = workerConfig({ mode: 'background', concurrency: options.concurrency ?? 1 });
  const deps = { ...harness.deps(config), ...(options.model && { model: options.model }) };
  const consumer = new QueueConsumer({
    sqs: sqs.client,
    queueUrl,
    config,
    runTask: async (task, signal) => {
      const running = options.running ?? { now: 0, max: 0 };
      running.now += 1;
      running.max = Math.max(running.max, running.now);
      try {
        return await runAgentTask(task, deps, signal);
      } finally {
        running.now -= 1;
      }
    },
    protection: new TaskProtection(ecsAgent.uri, 5, harness.logger),
    logger: harness.logger,
    heartbeatSeconds: options.heartbeatSeconds,
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
    waitTimeSeconds: 1,
    minSuspensionPauseSeconds: options.minSuspensionPauseSeconds,
  });
  consumers.push(consumer);
  void consumer.start();
  return consumer;
}

async function send(queueUrl: string, body: unknown): Promise<void> {
  await sqs.client.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  );
}

async function queueDepth(queueUrl: string): Promise<{ visible: number; inFlight: number }> {
  const output = await sqs.client.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(output.Attributes?.ApproximateNumberOfMessages),
    inFlight: Number(output.Attributes?.ApproximateNumberOfMessagesNotVisible),
  };
}

function receiveNow(queueUrl: string) {
  return sqs.client.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      WaitTimeSeconds: 0,
      MessageSystemAttributeNames: ['ApproximateReceiveCount'],
    }),
  );
}

function logged(message: string) {
  return harness.logs.filter((line) => line.message === message);
}

describe('queue consumer', () => {
  test('deletes a message after its task succeeds', async () => {
    const { queueUrl, dlqUrl } = await newQueue({
      maxReceiveCount: 3,
      visibilityTimeoutSeconds: 30,
    });
    harness.bedrock.script(textResponse('Report written.'));
    await send(queueUrl, {
      message: 'Summarize the return policy',
      userId: 'producer-user',
      sessionId: 'bg-1',
    });

    const consumer = startConsumer(queueUrl);
    const done = await waitFor(() => logged('message deleted')[0]);
    await consumer.stop();

    expect(done.requestId).toEqual(expect.any(String));
    expect(await queueDepth(queueUrl)).toEqual({ visible: 0, inFlight: 0 });
    expect(await queueDepth(dlqUrl)).toEqual({ visible: 0, inFlight: 0 });
    expect(logged('task finished')[0]).toMatchObject({ user: 'producer-user', session: 'bg-1' });
    expect(ecsAgent.requests[0]).toEqual({ ProtectionEnabled: true, ExpiresInMinutes: 5 });
    expect(ecsAgent.requests.at(-1)).toEqual({ ProtectionEnabled: false });
  });

  test('returns failed messages until they reach the dead-letter queue', async () => {
    const { queueUrl, dlqUrl } = await newQueue({
      maxReceiveCount: 2,
      visibilityTimeoutSeconds: 30,
    });
    harness.bedrock.script(
      errorResponse(500, 'InternalServerException'),
      errorResponse(500, 'InternalServerException'),
    );
    await send(queueUrl, { message: 'Research topic', userId: 'producer-user' });

    const consumer = startConsumer(queueUrl);
    const dead = await waitFor(async () => (await receiveNow(dlqUrl)).Messages?.[0]);
    await consumer.stop();

    expect(JSON.parse(dead.Body!)).toEqual({ message: 'Research topic', userId: 'producer-user' });
    expect(harness.bedrock.requests).toHaveLength(2);
    expect(logged('task failed; returning the message for another attempt')).toHaveLength(2);
    expect(logged('message deleted')).toHaveLength(0);
    expect(await queueDepth(queueUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  test('leaves a poison message for the dead-letter queue', async () => {
    const { queueUrl, dlqUrl } = await newQueue({
      maxReceiveCount: 1,
      visibilityTimeoutSeconds: 30,
    });
    await send(queueUrl, 'this is not JSON');

    const consumer = startConsumer(queueUrl);
    const dead = await waitFor(async () => (await receiveNow(dlqUrl)).Messages?.[0]);
    await consumer.stop();

    expect(dead.Body).toBe('this is not JSON');
    expect(
      logged('message is not a valid task; returning it for the dead-letter queue')[0],
    ).toMatchObject({ level: 'error', reason: 'the body is not valid JSON' });
    expect(harness.bedrock.requests).toHaveLength(0);
  });

  test('extends visibility while a slow task runs', async () => {
    // Without the heartbeat the message would be visible again after 1 s.
    const { queueUrl } = await newQueue({ maxReceiveCount: 3, visibilityTimeoutSeconds: 1 });
    harness.bedrock.script(textResponse('Slow report.', { delayMs: 2_500 }));
    await send(queueUrl, { message: 'Slow research', userId: 'producer-user' });

    const consumer = startConsumer(queueUrl, {
      heartbeatSeconds: 0.3,
      visibilityTimeoutSeconds: 2,
    });
    await waitFor(() => harness.bedrock.requests.length > 0 || undefined);
    const seenByOthers: unknown[] = [];
    while (logged('message deleted').length === 0) {
      seenByOthers.push(...((await receiveNow(queueUrl)).Messages ?? []));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await consumer.stop();

    expect(seenByOthers).toEqual([]);
    expect(logged('message visibility extended').length).toBeGreaterThanOrEqual(5);
    expect(await queueDepth(queueUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  test('hands an in-flight message back when stopped', async () => {
    const { queueUrl } = await newQueue({ maxReceiveCount: 3, visibilityTimeoutSeconds: 60 });
    harness.bedrock.script(textResponse('Too late.', { delayMs: 5_000 }));
    await send(queueUrl, {
      message: 'Long research',
      userId: 'producer-user',
      sessionId: 'stopped',
    });

    const consumer = startConsumer(queueUrl);
    await waitFor(() => harness.bedrock.requests.length > 0 || undefined);
    const started = Date.now();
    await consumer.stop();

    expect(Date.now() - started).toBeLessThan(2_000);
    const returned = await receiveNow(queueUrl);
    expect(returned.Messages).toHaveLength(1);
    expect(returned.Messages![0].Attributes?.ApproximateReceiveCount).toBe('2');
    expect(
      logged('task cancelled because the worker is stopping; returning the message'),
    ).toHaveLength(1);
    expect(ecsAgent.requests.at(-1)).toEqual({ ProtectionEnabled: false });
  });

  test('pauses while the agent is suspended', async () => {
    const { queueUrl, dlqUrl } = await newQueue({
      maxReceiveCount: 3,
      visibilityTimeoutSeconds: 30,
    });
    // A gateway function that rejects its first call as the real gateway
    // does for a suspended agent, and forwards later calls to the real one.
    const suspensionMs = 3_000;
    let suspendedUntil = 0;
    harness.lambda.register('suspending-gateway', async (request: GatewayRequest) => {
      if (suspendedUntil === 0) {
        suspendedUntil = Date.now() + suspensionMs;
        const response: GatewayErrorResponse = {
          ok: false,
          requestId: request.requestId,
          error: {
            name: 'AgentSuspendedError',
            message: `Agent ${AGENT} is suspended because its budget is exhausted.`,
            suspension: {
              agent: AGENT,
              reason: 'budget-exhausted',
              until: new Date(suspendedUntil).toISOString(),
            },
          },
        };
        return response;
      }
      const forwarded = await harness.lambdaClient.send(
        new InvokeCommand({
          FunctionName: GATEWAY_FUNCTION,
          Payload: Buffer.from(JSON.stringify(request)),
        }),
      );
      return decodePayload(forwarded.Payload);
    });
    harness.bedrock.script(textResponse('First report.'), textResponse('Second report.'));
    await send(queueUrl, { message: 'First task', userId: 'producer-user' });

    const consumer = startConsumer(queueUrl, {
      model: new GatewayModelClient(harness.lambdaClient, 'suspending-gateway'),
      minSuspensionPauseSeconds: 1,
    });
    const paused = await waitFor(() => logged('agent is suspended; pausing the queue consumer')[0]);
    const handedBack = await waitFor(() => logged('agent is suspended; message handed back')[0]);
    const protectionAtPause = [...ecsAgent.requests];
    // A second message shows that the consumer receives nothing while paused.
    await send(queueUrl, { message: 'Second task', userId: 'producer-user' });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const depthDuringPause = await queueDepth(queueUrl);
    const bedrockCallsDuringPause = harness.bedrock.requests.length;
    const resumed = await waitFor(() =>
      logged('queue consumer resumed receiving after the suspension pause')[0],
    );
    const resumedAt = Date.now();
    await waitFor(() => logged('message deleted').length === 2 || undefined);
    await consumer.stop();

    expect(paused).toMatchObject({
      level: 'warn',
      agent: AGENT,
      reason: 'budget-exhausted',
      until: new Date(suspendedUntil).toISOString(),
    });
    expect(paused.pauseSeconds).toBe(Math.ceil(suspensionMs / 1000));
    expect(handedBack.visibilityTimeoutSeconds).toBe(paused.pauseSeconds);
    expect(logged('task failed; returning the message for another attempt')).toHaveLength(0);
    expect(protectionAtPause.at(-1)).toEqual({ ProtectionEnabled: false });
    expect(depthDuringPause).toEqual({ visible: 1, inFlight: 1 });
    expect(bedrockCallsDuringPause).toBe(0);
    expect(resumed.level).toBe('info');
    expect(resumedAt).toBeGreaterThanOrEqual(suspendedUntil - 1_000);
    expect(harness.bedrock.requests).toHaveLength(2);
    expect(logged('task finished for message').map((line) => line.receiveCount).sort()).toEqual([
      1, 2,
    ]);
    expect(await queueDepth(queueUrl)).toEqual({ visible: 0, inFlight: 0 });
    expect(await queueDepth(dlqUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  test('runs at most concurrency tasks at once', async () => {
    const { queueUrl } = await newQueue({ maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    harness.bedrock.script(
      ...[1, 2, 3, 4].map((n) => textResponse(`Report ${n}.`, { delayMs: 400 })),
    );
    for (const n of [1, 2, 3, 4])
      await send(queueUrl, { message: `Task ${n}`, userId: 'producer-user' });

    const running = { now: 0, max: 0 };
    const consumer = startConsumer(queueUrl, { concurrency: 2, running });
    await waitFor(() => logged('message deleted').length === 4 || undefined);
    await consumer.stop();

    expect(running.max).toBe(2);
  });
});
