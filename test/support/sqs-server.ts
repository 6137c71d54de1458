/**
 * Runs the `fauxqs` SQS emulator in a child process on a loopback port.
 *
 * A child process, because fauxqs ships only ES modules, which jest cannot
 * load on Node.js 20. Its buildApp() is used instead of startFauxqs(),
 * because startFauxqs() always listens on 0.0.0.0.
 */
import { ChildProcess, spawn } from 'child_process';
import { join } from 'path';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './dynamodb-local';

const CHILD_SOURCE = `
import { buildApp } from 'fauxqs';
const app = buildApp({ logger: false });
await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(JSON.stringify({ port: app.server.address().port }) + '\\n');
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
`;

export interface SqsServer {
  readonly endpoint: string;
  readonly client: SQSClient;
  /** Creates a queue that moves a message to a dead-letter queue after `maxReceiveCount` receives. */
  createQueueWithDlq(
    name: string,
    options: { maxReceiveCount: number; visibilityTimeoutSeconds: number },
  ): Promise<{ queueUrl: string; dlqUrl: string }>;
  stop(): Promise<void>;
}

export async function startSqsServer(): Promise<SqsServer> {
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', CHILD_SOURCE], {
    cwd: join(__dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n')) resolve(JSON.parse(line).port);
    });
    child.once('exit', (code) => reject(new Error(`fauxqs exited with code ${code}: ${stderr}`)));
  });

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new SQSClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  return {
    endpoint,
    client,
    async createQueueWithDlq(name, { maxReceiveCount, visibilityTimeoutSeconds }) {
      const dlq = await client.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
      const dlqArn = await client.send(
        new GetQueueAttributesCommand({
          QueueUrl: dlq.QueueUrl,
          AttributeNames: ['QueueArn'],
        }),
      );
      const queue = await client.send(
        new CreateQueueCommand({
          QueueName: name,
          Attributes: {
            VisibilityTimeout: String(visibilityTimeoutSeconds),
            RedrivePolicy: JSON.stringify({
              deadLetterTargetArn: dlqArn.Attributes!.QueueArn,
              maxReceiveCount: String(maxReceiveCount),
            }),
          },
        }),
      );
      return { queueUrl: queue.QueueUrl!, dlqUrl: dlq.QueueUrl! };
    },
    async stop() {
      client.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
