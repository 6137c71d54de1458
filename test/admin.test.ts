/**
 * The operator command against DynamoDB Local: what it writes is what the
 * gateway's ledger and suspension reads see, and what it reports is what
 * the ledger recorded.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { runAdmin } from '../lambda/admin/cli';
import { BudgetLedger, LimitOverrideStore, SuspensionStore } from '../lambda/gateway/budget';
import type { GatewayBudgetConfig } from '../lambda/shared/contracts';
import { BudgetExceededError } from '../lambda/shared/errors';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';

const TABLE = 'admin-ledger';
const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);
const YESTERDAY = NOW - 24 * 3_600_000;

let dynamo: DynamoDbLocal;
let agentCounter = 0;

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
});

afterAll(async () => {
  await dynamo?.stop();
});

function uniqueAgent(): string {
  agentCounter += 1;
  return `admin-agent-${agentCounter}`;
}

/** Runs the command in process and returns its exit code and output. */
async function admin(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runAdmin(['--table', TABLE, '--by', 'ops-alice', ...argv], {
    env: {},
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    client: dynamo.documentClient,
    now: () => NOW,
  });
  return { code, stdout, stderr };
}

function ledger(agents: GatewayBudgetConfig['agents'], nowMs = NOW): BudgetLedger {
  return new BudgetLedger({
    client: dynamo.documentClient,
    config: { table: TABLE, leaseSeconds: 300, failOpen: false, allowAnonymous: false, agents, prices: {} },
    now: () => nowMs,
    logger: new Logger({}, { sink: () => undefined }),
    metrics: new MetricsWriter({ sink: () => undefined }),
    overrides: new LimitOverrideStore({ client: dynamo.documentClient, table: TABLE, cacheTtlMs: 0 }),
  });
}

async function settledCall(
  target: BudgetLedger,
  agent: string,
  userId: string,
  requestId: string,
  tokens: number,
  costUsd: number,
) {
  await target.reserve({ requestId, agent, userId, estimatedInputTokens: tokens, maxTokens: 100, priceUsd: 0.01 });
  await target.settle({ requestId, usage: { inputTokens: tokens, outputTokens: 0 }, costUsd });
}

describe('admin spend', () => {
  test('reports agents and users', async () => {
    const agent = uniqueAgent();
    const agents = { [agent]: { agent: { daily: { tokens: 100_000 } } } };
    await settledCall(ledger(agents), agent, 'alice', `${agent}-1`, 100, 0.5);
    await settledCall(ledger(agents), agent, 'alice', `${agent}-2`, 50, 0.25);
    await settledCall(ledger(agents), agent, 'bob', `${agent}-3`, 10, 0.125);
    await ledger(agents).reserve({ requestId: `${agent}-4`, agent, userId: 'bob', estimatedInputTokens: 20, maxTokens: 30, priceUsd: 0 });
    // A call of the day before is outside the reported window.
    await settledCall(ledger(agents, YESTERDAY), agent, 'alice', `${agent}-0`, 1_000, 5);

    const { code, stdout } = await admin('spend', '--agent', agent, '--json');

    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.start).toBe('2026-12-04T00:00:00.000Z');
    expect(report.agents).toEqual([
      { agent, calls: 4, settled: 3, inFlight: 1, reclaimed: 0, tokens: 160, usd: 0.875, reservedTokens: 50 },
    ]);
    expect(report.users.map((line: any) => [line.userId, line.calls, line.tokens])).toEqual([
      ['alice', 2, 150],
      ['bob', 2, 10],
    ]);
    expect(report.counters).toEqual([
      { counter: `budget#agent#${agent}`, spentTokens: 160, spentUsd: 0.875, reservedTokens: 50, reservedUsd: 0 },
    ]);
  });

  test('month window includes earlier days', async () => {
    const agent = uniqueAgent();
    await settledCall(ledger({}, YESTERDAY), agent, 'carol', `${agent}-1`, 70, 0.1);
    await settledCall(ledger({}), agent, 'carol', `${agent}-2`, 30, 0.1);

    const { stdout } = await admin('spend', '--agent', agent, '--window', 'month', '--json');

    expect(JSON.parse(stdout).agents[0]).toMatchObject({ calls: 2, tokens: 100 });
  });

  test('text output lists each agent', async () => {
    const agent = uniqueAgent();
    await settledCall(ledger({}), agent, 'dave', `${agent}-1`, 40, 0.02);

    const { code, stdout } = await admin('spend', '--agent', agent);

    expect(code).toBe(0);
    expect(stdout).toContain('Spend from 2026-12-04T00:00:00.000Z to 2026-12-05T00:00:00.000Z (day)');
    expect(stdout).toMatch(new RegExp(`${agent}\\s+1\\s+40\\s+\\$0\\.0200`));
    expect(stdout).toMatch(/dave/);
  });
});

describe('admin limits', () => {
  test('set-limit reaches the gateway ledger', async () => {
    const agent = uniqueAgent();
    const agents = { [agent]: { perUser: { daily: { tokens: 10_000 } } } };
    await settledCall(ledger(agents), agent, 'erin', `${agent}-1`, 100, 0);

    const set = await admin('set-limit', '--agent', agent, '--limit', 'perUser.daily.tokens', '--value', '150');

    expect(set.code).toBe(0);
    expect(set.stdout).toContain(`Set perUser.daily.tokens to 150 for agent ${agent}`);
    await expect(
      ledger(agents).reserve({ requestId: `${agent}-2`, agent, userId: 'erin', estimatedInputTokens: 10, maxTokens: 100, priceUsd: 0 }),
    ).rejects.toThrow(BudgetExceededError);
  });

  test('clear-limit restores the config', async () => {
    const agent = uniqueAgent();
    const agents = { [agent]: { agent: { daily: { tokens: 10_000 } } } };
    await admin('set-limit', '--agent', agent, '--limit', 'agent.daily.tokens', '--value', '0');

    const cleared = await admin('clear-limit', '--agent', agent, '--limit', 'agent.daily.tokens');

    expect(cleared.code).toBe(0);
    await expect(
      ledger(agents).reserve({ requestId: `${agent}-1`, agent, userId: 'frank', estimatedInputTokens: 10, maxTokens: 10, priceUsd: 0 }),
    ).resolves.toMatchObject({ guarded: true });
  });

  test('status shows overrides and suspension', async () => {
    const agent = uniqueAgent();
    await admin('set-limit', '--agent', agent, '--limit', 'agentRate.requestsPerMinute', '--value', '30');
    await admin('suspend', '--agent', agent);

    const { stdout } = await admin('status', '--agent', agent, '--json');

    const status = JSON.parse(stdout);
    expect(status.agentLimits).toEqual({ 'agentRate.requestsPerMinute': 30 });
    expect(status.suspension).toMatchObject({ agent, reason: 'operator', suspendedBy: 'ops-alice' });
  });
});

describe('admin suspensions', () => {
  test('suspend and resume reach the gateway', async () => {
    const agent = uniqueAgent();
    const gatewayView = new SuspensionStore({ client: dynamo.documentClient, table: TABLE, now: () => NOW, cacheTtlMs: 0 });

    const suspended = await admin('suspend', '--agent', agent, '--until', '2026-12-04T18:00:00Z');

    expect(suspended.code).toBe(0);
    expect(suspended.stdout).toContain('suspended until 2026-12-04T18:00:00.000Z');
    expect((await gatewayView.getSuspension(agent))?.suspendedBy).toBe('ops-alice');

    const resumed = await admin('resume', '--agent', agent);

    expect(resumed.stdout).toContain(`Agent ${agent} is resumed`);
    expect(await gatewayView.getSuspension(agent)).toBeUndefined();
  });

  test('resume of a running agent', async () => {
    const { code, stdout } = await admin('resume', '--agent', uniqueAgent());

    expect(code).toBe(0);
    expect(stdout).toContain('was not suspended');
  });
});

describe('admin command line', () => {
  const cases: Array<{ name: string; argv: string[]; message: RegExp }> = [
    { name: 'unknown command', argv: ['explode'], message: /Unknown command explode/ },
    { name: 'missing agent', argv: ['suspend'], message: /suspend needs --agent NAME/ },
    { name: 'unknown limit path', argv: ['set-limit', '--agent', 'a', '--limit', 'agent.weekly.tokens', '--value', '1'], message: /needs --limit PATH/ },
    { name: 'stack path with agent', argv: ['set-limit', '--agent', 'a', '--limit', 'stack.daily.usd', '--value', '1'], message: /pass --stack/ },
    { name: 'agent path with stack', argv: ['set-limit', '--stack', '--limit', 'agent.daily.usd', '--value', '1'], message: /pass --agent NAME/ },
    { name: 'fractional token limit', argv: ['set-limit', '--agent', 'a', '--limit', 'agent.daily.tokens', '--value', '1.5'], message: /whole number of 0 or more \(got 1.5\)/ },
    { name: 'missing value', argv: ['set-limit', '--agent', 'a', '--limit', 'agent.daily.usd'], message: /needs --value NUMBER/ },
    { name: 'until in the past', argv: ['suspend', '--agent', 'a', '--until', '2026-12-01T00:00:00Z'], message: /not in the future/ },
    { name: 'bad reason', argv: ['suspend', '--agent', 'a', '--reason', 'bored'], message: /--reason must be/ },
    { name: 'bad window', argv: ['spend', '--window', 'week'], message: /--window must be day or month \(got week\)/ },
    { name: 'unknown option', argv: ['spend', '--weekly'], message: /Unknown option '--weekly'/ },
  ];

  test.each(cases)('$name exits 2', async ({ argv, message }) => {
    const { code, stderr, stdout } = await admin(...argv);

    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stdout).toBe('');
  });

  test('missing table exits 2', async () => {
    let stderr = '';
    const code = await runAdmin(['spend'], { env: {}, stdout: () => undefined, stderr: (text) => (stderr += text) });

    expect(code).toBe(2);
    expect(stderr).toContain('AGENT_STACK_LEDGER_TABLE');
  });

  test('npm script runs end to end', async () => {
    const agent = uniqueAgent();
    const root = path.resolve(__dirname, '..');
    const run = promisify(execFile);

    const { stdout } = await run(
      'npx',
      ['ts-node', '--transpile-only', 'bin/agent-stack-admin.ts', 'suspend', '--agent', agent, '--endpoint', dynamo.endpoint, '--json'],
      {
        cwd: root,
        env: {
          ...process.env,
          AGENT_STACK_LEDGER_TABLE: TABLE,
          AWS_REGION: LOCAL_REGION,
          AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
          USER: 'ops-bob',
        },
      },
    );

    expect(JSON.parse(stdout)).toMatchObject({ applied: true, suspension: { agent, suspendedBy: 'ops-bob' } });
  }, 60_000);
});
