/**
 * Runs the built worker bundle as a child process, as the container does,
 * with AWS_ENDPOINT_URL_* pointing its SDK clients at the loopback servers.
 */
import { ChildProcess, spawn } from 'child_process';
import { existsSync } from 'fs';
import { join } from 'path';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { WORKER_ENV, WorkerRuntimeConfig } from '../lambda/shared/contracts';
import { partitionKey } from '../lambda/worker/memory';
import {
  ALB_PUBLIC_KEYS_URL_ENV,
  ECS_AGENT_URI_ENV,
  LISTEN_HOST_ENV,
} from '../lambda/worker/settings';
import { textResponse, toolUseResponse } from './support/bedrock-server';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './support/dynamodb-local';
import { EcsAgentServer, startEcsAgentServer } from './support/ecs-agent-server';
import { httpRequest } from './support/http-client';
import {
  IdentityServer,
  TEST_AUDIENCE,
  TEST_ISSUER,
  startIdentityServer,
} from './support/jwks-server';
import { SqsServer, startSqsServer } from './support/sqs-server';
import {
  AGENT,
  GATEWAY_FUNCTION,
  WorkerHarness,
  startWorkerHarness,
  workerConfig,
} from './support/worker-harness';

const BUNDLE = join(__dirname, '..', 'dist', 'assets', 'worker', 'index.js');

type LogLine = Record<string, unknown>;

interface WorkerProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  /** Raw stdout lines, to check that every one is JSON. */
  readonly rawLines: string[];
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  exited: Promise<number | null>;
}

let harness: WorkerHarness;
let identity: IdentityServer;
let sqs: SqsServer;
let ecsAgent: EcsAgentServer;
const children: ChildProcess[] = [];

beforeAll(async () => {
  [harness, identity, sqs, ecsAgent] = await Promise.all([
    startWorkerHarness(),
    startIdentityServer(),
    startSqsServer(),
    startEcsAgentServer(),
  ]);
});

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  }
  await Promise.all([harness?.close(), identity?.close(), sqs?.stop(), ecsAgent?.close()]);
});

function startWorker(config: WorkerRuntimeConfig, extraEnv: Record<string, string>): WorkerProcess {
  // Only what the container would get: no inherited AWS settings or profiles.
  const env = {
    PATH: process.env.PATH ?? '',
    [WORKER_ENV.config]: JSON.stringify(config),
    [WORKER_ENV.gatewayFunction]: GATEWAY_FUNCTION,
    [WORKER_ENV.memoryTable]: harness.dynamo.tableName,
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_LAMBDA: harness.lambda.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: harness.dynamo.endpoint,
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    ...extraEnv,
  };
  const child = spawn(process.execPath, [BUNDLE], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: LogLine[] = [];
  const rawLines: string[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const complete = buffered.split('\n');
    buffered = complete.pop() ?? '';
    for (const raw of complete) {
      rawLines.push(raw);
      try {
        lines.push(JSON.parse(raw));
      } catch {
        // Checked by the test through rawLines.
      }
    }
    waiters.forEach((wake) => wake());
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );

  return {
    child,
    lines,
    rawLines,
    exited,
    waitForLog(predicate, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find(predicate);
          if (!found) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`No matching log line within ${timeoutMs} ms; got:\n${rawLines.join('\n')}`),
          );
        }, timeoutMs);
        const onExit = () => {
          cleanup();
          reject(
            new Error(`Worker exited before the log line appeared; got:\n${rawLines.join('\n')}`),
          );
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', onExit);
        };
        waiters.add(check);
        child.once('exit', onExit);
        check();
      });
    },
  };
}

async function storedTurns(userId: string, sessionId: string) {
  const output = await harness.dynamo.documentClient.send(
    new QueryCommand({
      TableName: harness.dynamo.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': partitionKey({ agent: AGENT, userId, sessionId }) },
    }),
  );
  return (output.Items ?? []).map((item) => ({
    role: item.role,
    content: JSON.parse(item.content),
  }));
}

test('the worker bundle exists', () => {
  expect(existsSync(BUNDLE)).toBe(true);
});

describe('worker bundle in realtime mode', () => {
  test('serves an authenticated invoke with a tool call', async () => {
    const config = workerConfig({
      auth: {
        type: 'jwt',
        issuer: TEST_ISSUER,
        audience: [TEST_AUDIENCE],
        jwksUri: identity.jwksUri,
        userClaim: 'sub',
      },
    });
    const worker = startWorker(config, {
      [WORKER_ENV.port]: '0',
      [LISTEN_HOST_ENV]: '127.0.0.1',
      [ALB_PUBLIC_KEYS_URL_ENV]: identity.albKeysUrl,
    });
    const listening = await worker.waitForLog(
      (line) => line.message === 'realtime server listening',
    );
    harness.bedrock.reset();
    harness.bedrock.script(
      toolUseResponse({
        toolUseId: 'e2e-1',
        name: 'lookup_order',
        input: { orderId: 'ORD-10003' },
      }),
      textResponse('Order ORD-10003 is still being processed.'),
    );
    const token = await identity.signJwt({ subject: 'e2e-user' });
    const secret = 'my private question about ORD-10003';

    const result = await httpRequest(`http://127.0.0.1:${listening.port}/agents/${AGENT}/invoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: secret, sessionId: 'e2e-session' }),
    });

    expect(result.status).toBe(200);
    expect(result.json).toMatchObject({
      sessionId: 'e2e-session',
      output: 'Order ORD-10003 is still being processed.',
      stopReason: 'end_turn',
      iterations: 2,
    });
    const turns = await storedTurns('e2e-user', 'e2e-session');
    expect(turns.map((turn) => turn.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(turns[2].content[0].toolResult.content[0].json.order.status).toBe('processing');

    const finished = await worker.waitForLog((line) => line.message === 'task finished');
    expect(finished).toMatchObject({
      level: 'info',
      requestId: result.json.requestId,
      agent: AGENT,
      user: 'e2e-user',
      session: 'e2e-session',
      stopReason: 'end_turn',
    });
    expect(typeof finished.timestamp).toBe('string');
    await worker.waitForLog((line) => line.message === 'request finished');
    for (const raw of worker.rawLines) {
      expect(() => JSON.parse(raw)).not.toThrow();
      expect(raw).not.toContain(secret);
    }

    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });
});

describe('worker bundle in background mode', () => {
  test('processes a queue message and hands one back on SIGTERM', async () => {
    const { queueUrl } = await sqs.createQueueWithDlq('e2e-tasks', {
      maxReceiveCount: 3,
      visibilityTimeoutSeconds: 60,
    });
    const config = workerConfig({ mode: 'background', concurrency: 1 });
    const worker = startWorker(config, {
      [WORKER_ENV.queueUrl]: queueUrl,
      [ECS_AGENT_URI_ENV]: ecsAgent.uri,
    });
    await worker.waitForLog((line) => line.message === 'queue consumer started');
    harness.bedrock.reset();
    harness.bedrock.script(
      textResponse('The return window is 30 days.'),
      textResponse('Too late.', { delayMs: 10_000 }),
    );

    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify({
          message: 'How long can I return items?',
          userId: 'producer-user',
          sessionId: 'bg-e2e',
        }),
      }),
    );
    await worker.waitForLog((line) => line.message === 'message deleted');
    const turns = await storedTurns('producer-user', 'bg-e2e');
    expect(turns.map((turn) => turn.content[0].text)).toEqual([
      'How long can I return items?',
      'The return window is 30 days.',
    ]);

    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify({
          message: 'Write a long report',
          userId: 'producer-user',
          sessionId: 'bg-e2e-2',
        }),
      }),
    );
    await worker.waitForLog(
      (line) => line.message === 'task started' && line.session === 'bg-e2e-2',
    );
    worker.child.kill('SIGTERM');

    expect(await worker.exited).toBe(0);
    const returned = await sqs.client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        WaitTimeSeconds: 0,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    expect(returned.Messages?.map((message) => JSON.parse(message.Body!).sessionId)).toEqual([
      'bg-e2e-2',
    ]);
    expect(returned.Messages![0].Attributes?.ApproximateReceiveCount).toBe('2');
    expect(await storedTurns('producer-user', 'bg-e2e-2')).toEqual([]);
    expect(ecsAgent.requests.some((request) => request.ProtectionEnabled)).toBe(true);
    expect(ecsAgent.requests.at(-1)).toEqual({ ProtectionEnabled: false });
    expect(worker.lines.at(-1)?.message).toBe('worker stopped');
  });
});
