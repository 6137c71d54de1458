/**
 * `cache purge` of the operator command against DynamoDB Local: the items
 * it deletes are the ones the gateway's response cache store wrote, and
 * the gateway's reads no longer find them.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { RESPONSE_CACHE_TABLE_ENV, runAdmin, USAGE } from '../lambda/admin/cli';
import { ResponseCacheStore, responseCacheKey, type ResolvedGatewayRequest } from '../lambda/gateway';
import type { ResponseCacheSettings } from '../lambda/shared/contracts';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';

const TABLE = 'admin-response-cache';
// The real time, because DynamoDB Local deletes items whose TTL passed by the real clock.
const NOW = Date.now();
const ROUTE = [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }];

let dynamo: DynamoDbLocal;
let store: ResponseCacheStore;
let agentCounter = 0;

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
  store = new ResponseCacheStore({ client: dynamo.documentClient, table: TABLE, now: () => NOW });
});

afterAll(async () => {
  await dynamo?.stop();
});

function uniqueAgent(): string {
  agentCounter += 1;
  return `purge-agent-${agentCounter}`;
}

/** Runs the command in process and returns its exit code and output. */
async function admin(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runAdmin(argv, {
    env,
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    client: dynamo.documentClient,
    now: () => NOW,
  });
  return { code, stdout, stderr };
}

/** Stores one response as the gateway would for `userId`'s question in `scope`. */
async function storeResponse(agent: string, userId: string, question: string, scope: ResponseCacheSettings['scope'] = 'user') {
  const request: ResolvedGatewayRequest = {
    requestId: `req-${agent}-${userId}-${question}`,
    agent,
    userId,
    sessionId: 'session-1',
    messages: [{ role: 'user', content: [{ text: question }] }],
    maxTokens: 256,
  };
  const key = responseCacheKey(request, ROUTE, { ttlSeconds: 3_600, scope, cacheToolTurns: false }, undefined);
  await store.put(key, {
    response: {
      output: { role: 'assistant', content: [{ text: `An answer to ${question}` }] },
      stopReason: 'end_turn',
      usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15 },
      target: ROUTE[0],
      latencyMs: 100,
    },
    requestId: request.requestId,
    userId,
    ttlSeconds: 3_600,
  });
  return key;
}

/** Returns the sort keys of the agent's items, sorted, with each hash shortened to `<hash>`. */
async function sortKeys(agent: string): Promise<string[]> {
  const { Items } = await dynamo.documentClient.send(
    new QueryCommand({
      TableName: TABLE,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': agent },
      ConsistentRead: true,
    }),
  );
  return (Items ?? []).map((item) => String(item.sk).replace(/[0-9a-f]{64}$/, '<hash>')).sort();
}

describe('admin cache purge', () => {
  test('by user keeps other users', async () => {
    const agent = uniqueAgent();
    const aliceKey = await storeResponse(agent, 'alice', 'q1');
    await storeResponse(agent, 'alice', 'q2');
    const bobKey = await storeResponse(agent, 'bob', 'q1');

    const { code, stdout } = await admin(['cache', 'purge', '--agent', agent, '--user', 'alice', '--cache-table', TABLE]);

    expect(code).toBe(0);
    expect(stdout).toBe(`Deleted 2 cached responses of user alice of agent ${agent}.\n`);
    expect(await sortKeys(agent)).toEqual(['user#bob#<hash>']);
    expect(await store.get(aliceKey)).toBeUndefined();
    expect(await store.get(bobKey)).toBeDefined();
  });

  test('by user removes shared responses the user stored', async () => {
    const agent = uniqueAgent();
    await storeResponse(agent, 'alice', 'q1', 'agent');
    await storeResponse(agent, 'bob', 'q2', 'agent');

    const { stdout } = await admin(['cache', 'purge', '--agent', agent, '--user', 'alice', '--cache-table', TABLE]);

    expect(stdout).toBe(`Deleted 1 cached response of user alice of agent ${agent}.\n`);
    expect(await sortKeys(agent)).toEqual(['agent#<hash>']);
  });

  test('user id with a separator', async () => {
    const agent = uniqueAgent();
    await storeResponse(agent, 'alice', 'q1');
    await storeResponse(agent, 'alice#admin', 'q1');

    const { stdout } = await admin(['cache', 'purge', '--agent', agent, '--user', 'alice', '--cache-table', TABLE]);

    expect(stdout).toContain('Deleted 1 cached response');
    expect(await sortKeys(agent)).toEqual(['user#alice%23admin#<hash>']);
  });

  test('by agent keeps other agents', async () => {
    const agent = uniqueAgent();
    const other = uniqueAgent();
    await storeResponse(agent, 'alice', 'q1');
    await storeResponse(agent, 'bob', 'q1');
    await storeResponse(agent, 'carol', 'q1', 'agent');
    await storeResponse(other, 'alice', 'q1');

    const { code, stdout } = await admin(['cache', 'purge', '--agent', agent, '--cache-table', TABLE]);

    expect(code).toBe(0);
    expect(stdout).toBe(`Deleted 3 cached responses of agent ${agent}.\n`);
    expect(await sortKeys(agent)).toEqual([]);
    expect(await sortKeys(other)).toEqual(['user#alice#<hash>']);
  });

  test('more items than one batch', async () => {
    const agent = uniqueAgent();
    for (let i = 0; i < 60; i++) {
      await storeResponse(agent, `user-${i % 3}`, `question ${i}`);
    }

    const { stdout } = await admin(['cache', 'purge', '--agent', agent, '--cache-table', TABLE]);

    expect(stdout).toBe(`Deleted 60 cached responses of agent ${agent}.\n`);
    expect(await sortKeys(agent)).toEqual([]);
  });

  test('json output', async () => {
    const agent = uniqueAgent();
    await storeResponse(agent, 'dave', 'q1');

    const { stdout } = await admin(['cache', 'purge', '--agent', agent, '--user', 'dave', '--cache-table', TABLE, '--json']);

    expect(JSON.parse(stdout)).toEqual({ agent, userId: 'dave', deleted: 1 });
  });

  test('table from the environment', async () => {
    const agent = uniqueAgent();
    await storeResponse(agent, 'erin', 'q1');

    const { code, stdout } = await admin(['cache', 'purge', '--agent', agent], { [RESPONSE_CACHE_TABLE_ENV]: TABLE });

    expect(code).toBe(0);
    expect(stdout).toContain('Deleted 1 cached response');
  });

  test('nothing to purge', async () => {
    const { code, stdout } = await admin(['cache', 'purge', '--agent', uniqueAgent(), '--cache-table', TABLE]);

    expect(code).toBe(0);
    expect(stdout).toMatch(/^Deleted 0 cached responses of agent purge-agent-\d+\.\n$/);
  });
});

describe('admin cache errors', () => {
  test.each([
    [['cache', 'purge', '--cache-table', TABLE], 'cache purge needs --agent NAME.'],
    [['cache', 'purge', '--agent', 'faq'], `No response cache table: pass --cache-table NAME or set ${RESPONSE_CACHE_TABLE_ENV}`],
    [['cache', 'list', '--agent', 'faq', '--cache-table', TABLE], 'cache needs the subcommand purge'],
    [['cache', '--agent', 'faq', '--cache-table', TABLE], 'cache needs the subcommand purge'],
    [['cache', 'purge', '--agent', 'faq', '--user', '', '--cache-table', TABLE], 'cache purge --user needs a user id'],
  ])('%j exits with 2', async (argv, message) => {
    const { code, stderr } = await admin(argv);

    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).toContain('Run with --help');
  });

  test('missing table exits with 1', async () => {
    const { code, stderr } = await admin(['cache', 'purge', '--agent', 'faq', '--cache-table', 'no-such-table']);

    expect(code).toBe(1);
    expect(stderr).toMatch(/^The cache command failed: ResourceNotFoundException: /);
  });

  test('help lists the command', () => {
    expect(USAGE).toContain('cache purge --agent NAME [--user ID]');
    expect(USAGE).toContain('--cache-table NAME');
  });
});
