/**
 * The budget ledger against DynamoDB Local through the real SDK: limits
 * under concurrency, idempotent settles, reclaimed leases, window rollover,
 * rate limits, identity and an unreachable ledger.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import {
  BudgetLedger,
  priceCall,
  worstCasePriceUsd,
  type BudgetLedgerOptions,
  type TransactionRetry,
} from '../lambda/gateway/budget';
import { LimitOverrideStore } from '../lambda/gateway/budget/overrides';
import type { GatewayBudgetConfig } from '../lambda/shared/contracts';
import {
  BudgetExceededError,
  BudgetUnavailableError,
  RateLimitedError,
  UnauthorizedError,
} from '../lambda/shared/errors';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import { startConflictProxy } from './support/dynamodb-conflict-proxy';
import {
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  freePort,
  interceptedClient,
  namedError,
  startDynamoDbLocal,
  type DynamoDbLocal,
} from './support/dynamodb-local';

const TABLE = 'budget-ledger';
const PROFILE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const PRICE = {
  inputPerMillion: 3,
  outputPerMillion: 15,
  cacheReadPerMillion: 0.3,
  cacheWritePerMillion: 3.75,
};
const DEC_4_NOON = Date.UTC(2026, 11, 4, 12, 0, 0);

let dynamo: DynamoDbLocal;
let agentCounter = 0;
const extraClients: DynamoDBClient[] = [];

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
});

afterAll(async () => {
  extraClients.forEach((client) => client.destroy());
  await dynamo?.stop();
});

/** Returns an agent name no other test uses, so that counters do not collide. */
function uniqueAgent(): string {
  agentCounter += 1;
  return `agent-${agentCounter}`;
}

function budgetConfig(overrides: Partial<GatewayBudgetConfig> = {}): GatewayBudgetConfig {
  return {
    table: TABLE,
    leaseSeconds: 300,
    failOpen: false,
    allowAnonymous: false,
    agents: {},
    prices: { [PROFILE]: PRICE },
    ...overrides,
  };
}

/** Creates a document client for `endpoint` that makes one attempt per call. */
function documentClient(endpoint: string): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  extraClients.push(client);
  return DynamoDBDocumentClient.from(client);
}

function ledgerFor(config: GatewayBudgetConfig, options: Partial<BudgetLedgerOptions> = {}) {
  const metricLines: Array<Record<string, any>> = [];
  const logLines: Array<Record<string, any>> = [];
  const ledger = new BudgetLedger({
    client: dynamo.documentClient,
    config,
    metrics: new MetricsWriter({ sink: (line) => metricLines.push(JSON.parse(line)) }),
    logger: new Logger({}, { sink: (line) => logLines.push(JSON.parse(line)) }),
    ...options,
  });
  return { ledger, metricLines, logLines };
}

async function readItem(pk: string, sk: string): Promise<Record<string, any> | undefined> {
  const { Item } = await dynamo.documentClient.send(
    new GetCommand({ TableName: TABLE, Key: { pk, sk }, ConsistentRead: true }),
  );
  return Item;
}

function reserveRequest(agent: string, requestId: string, tokens: number, userId = 'alice') {
  return {
    requestId,
    agent,
    userId,
    estimatedInputTokens: tokens / 2,
    maxTokens: tokens / 2,
    priceUsd: 0.01,
  };
}

function concurrentReserves(ledger: BudgetLedger, agent: string, count: number, tokens: number) {
  return Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      ledger.reserve(reserveRequest(agent, `${agent}-${i}`, tokens)),
    ),
  );
}

const USAGE = { inputTokens: 30, outputTokens: 20 };

describe('reserve under concurrency', () => {
  test('admits exactly the requests that fit', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 2_000 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });

    const results = await concurrentReserves(ledger, agent, 50, 100);

    const rejected = results.filter((result) => result.status === 'rejected');
    expect(results.length - rejected.length).toBe(20);
    for (const result of rejected) {
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(BudgetExceededError);
    }
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.usedTokens).toBe(2_000);
    expect(item?.reservedTokens).toBe(2_000);
  });

  test('never passes limit when requests do not fit', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_050 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });

    const results = await concurrentReserves(ledger, agent, 50, 100);

    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(10);
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.usedTokens).toBe(1_000);
  });

  test('retries transaction conflicts', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({
      stack: { daily: { tokens: 1_000_000 } },
      agents: { [agent]: { agent: { daily: { tokens: 200 } } } },
    });
    // Every third transaction is cancelled as if another writer held its items.
    const proxy = await startConflictProxy(dynamo.endpoint, (call) => call % 3 === 0);
    const retries: TransactionRetry[] = [];
    const { ledger } = ledgerFor(config, {
      client: documentClient(proxy.endpoint),
      now: () => DEC_4_NOON,
      onTransactionRetry: (retry) => retries.push(retry),
    });
    try {
      const results = await concurrentReserves(ledger, agent, 50, 10);

      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(20);
      expect(proxy.conflicts()).toBeGreaterThan(0);
      expect(retries).toHaveLength(proxy.conflicts());
      expect(retries[0].operation).toBe('reserve');
      const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
      expect(item?.usedTokens).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  test('gives up after bounded attempts', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 200 } } } } });
    const proxy = await startConflictProxy(dynamo.endpoint, () => true);
    const retries: TransactionRetry[] = [];
    const { ledger } = ledgerFor(config, {
      client: documentClient(proxy.endpoint),
      maxTransactionAttempts: 3,
      onTransactionRetry: (retry) => retries.push(retry),
    });
    try {
      const reserving = ledger.reserve(reserveRequest(agent, `${agent}-a`, 10));

      await expect(reserving).rejects.toThrow(BudgetUnavailableError);
      await expect(reserving).rejects.toThrow(/cancelled 3 times by concurrent writes/);
      expect(retries).toHaveLength(2);
    } finally {
      await proxy.close();
    }
  });
});

describe('settle', () => {
  test('moves reserved to spent once', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    let nowMs = DEC_4_NOON;
    const { ledger } = ledgerFor(config, { now: () => nowMs });
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 400));

    const first = await ledger.settle({ requestId: `${agent}-1`, usage: USAGE, costUsd: 0.0004 });
    nowMs += 3_600_000;
    const replay = await ledger.settle({ requestId: `${agent}-1`, usage: USAGE, costUsd: 0.0004 });

    expect(first).toBe('settled');
    expect(replay).toBe('already-settled');
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.reservedTokens).toBe(0);
    expect(item?.spentTokens).toBe(50);
    expect(item?.usedTokens).toBe(50);
    expect(item?.spentNanoUsd).toBe(400_000);
    expect(item?.reservedNanoUsd).toBe(0);
    const record = await ledger.readReservation(`${agent}-1`);
    expect(record?.state).toBe('settled');
  });

  test('concurrent settles apply once', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 400));

    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () =>
        ledger.settle({ requestId: `${agent}-1`, usage: USAGE, costUsd: 0.0004 }),
      ),
    );

    expect(outcomes.filter((outcome) => outcome === 'settled')).toHaveLength(1);
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.spentTokens).toBe(50);
    expect(item?.reservedTokens).toBe(0);
  });
});

describe('reclaim', () => {
  test('releases a crashed reservation after lease', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });
    await ledger.reserve(reserveRequest(agent, `${agent}-crash`, 400));

    const early = await ledger.reclaimExpired(DEC_4_NOON + 299_000);
    const late = await ledger.reclaimExpired(DEC_4_NOON + 300_000);
    const again = await ledger.reclaimExpired(DEC_4_NOON + 400_000);

    // Other tests' reservations share the table, so only this one is checked.
    expect(early).not.toContain(`${agent}-crash`);
    expect(late).toContain(`${agent}-crash`);
    expect(again).not.toContain(`${agent}-crash`);
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.reservedTokens).toBe(0);
    expect(item?.usedTokens).toBe(0);
    expect((await ledger.readReservation(`${agent}-crash`))?.state).toBe('reclaimed');
  });

  test('late settle after reclaim spends once', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });
    await ledger.reserve(reserveRequest(agent, `${agent}-slow`, 400));
    await ledger.reclaimExpired(DEC_4_NOON + 301_000);

    const settled = await ledger.settle({ requestId: `${agent}-slow`, usage: USAGE, costUsd: 0 });
    const replay = await ledger.settle({ requestId: `${agent}-slow`, usage: USAGE, costUsd: 0 });

    expect(settled).toBe('settled');
    expect(replay).toBe('already-settled');
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.reservedTokens).toBe(0);
    expect(item?.spentTokens).toBe(50);
  });
});

/**
 * Creates a ledger whose client records the DynamoDB operation of every
 * HTTP request it sends. The middleware sits at step finalizeRequest,
 * inside the SDK's retry middleware, so that each attempt counts.
 */
function countingLedger(config: GatewayBudgetConfig) {
  const operations: string[] = [];
  const client = new DynamoDBClient({
    endpoint: dynamo.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  extraClients.push(client);
  client.middlewareStack.add(
    (next) => async (args) => {
      const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
      const target = headers['x-amz-target'] ?? 'unknown';
      operations.push(target.slice(target.lastIndexOf('.') + 1));
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'countLedgerRoundTrips' },
  );
  const { ledger } = ledgerFor(config, {
    client: DynamoDBDocumentClient.from(client),
    now: () => DEC_4_NOON,
  });
  return { ledger, operations };
}

describe('settle with a handle', () => {
  test('round trips per call', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({
      agents: { [agent]: { agent: { daily: { tokens: 1_000 } }, perUserRate: { requestsPerMinute: 5 } } },
    });
    const { ledger, operations } = countingLedger(config);

    const reservation = await ledger.reserve(reserveRequest(agent, `${agent}-1`, 400));
    const reserveTrips = operations.splice(0);
    if (!reservation.guarded) {
      throw new Error('The reservation should be guarded.');
    }
    const { settlement } = reservation;
    const settled = await ledger.settle({ requestId: `${agent}-1`, usage: USAGE, costUsd: 0, settlement });
    const settleTrips = operations.splice(0);
    await ledger.reserve(reserveRequest(agent, `${agent}-2`, 400));
    operations.length = 0;
    const settledById = await ledger.settle({ requestId: `${agent}-2`, usage: USAGE, costUsd: 0 });
    const settleByIdTrips = operations.splice(0);

    expect(reserveTrips).toEqual(['TransactWriteItems']);
    expect(settled).toBe('settled');
    expect(settleTrips).toEqual(['TransactWriteItems']);
    expect(settledById).toBe('settled');
    expect(settleByIdTrips).toEqual(['GetItem', 'TransactWriteItems']);
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.reservedTokens).toBe(0);
    expect(item?.spentTokens).toBe(100);
    const rate = await readItem(`rate#user#${agent}#alice`, 'minute#2026-12-04T12:00');
    expect(rate?.requests).toBe(2);
    expect(rate?.tokens).toBe(100);
  });

  test('replay changes nothing', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });
    const reservation = await ledger.reserve(reserveRequest(agent, `${agent}-1`, 400));
    const settlement = reservation.guarded ? reservation.settlement : undefined;
    const request = { requestId: `${agent}-1`, usage: USAGE, costUsd: 0.0004, settlement };

    const outcomes = await Promise.all([ledger.settle(request), ledger.settle(request), ledger.settle(request)]);
    const replay = await ledger.settle(request);

    expect(settlement).toBeDefined();
    expect(outcomes.filter((outcome) => outcome === 'settled')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'already-settled')).toHaveLength(2);
    expect(replay).toBe('already-settled');
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.reservedTokens).toBe(0);
    expect(item?.spentTokens).toBe(50);
    expect(item?.usedTokens).toBe(50);
    expect(item?.spentNanoUsd).toBe(400_000);
    const lease = reservation.guarded ? reservation.settlement : undefined;
    expect(await readItem(lease!.leasePk, lease!.leaseSk)).toBeUndefined();
  });

  test('late settle after reclaim spends once', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });
    const reservation = await ledger.reserve(reserveRequest(agent, `${agent}-slow`, 400));
    const settlement = reservation.guarded ? reservation.settlement : undefined;
    await ledger.reclaimExpired(DEC_4_NOON + 301_000);
    const request = { requestId: `${agent}-slow`, usage: USAGE, costUsd: 0, settlement };

    const settled = await ledger.settle(request);
    const replay = await ledger.settle(request);

    expect(settlement).toBeDefined();
    expect(settled).toBe('settled');
    expect(replay).toBe('already-settled');
    const item = await readItem(`budget#agent#${agent}`, 'day#2026-12-04');
    expect(item?.reservedTokens).toBe(0);
    expect(item?.spentTokens).toBe(50);
    expect(item?.usedTokens).toBe(50);
  });

  test('handle of another request is rejected', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });
    const reservation = await ledger.reserve(reserveRequest(agent, `${agent}-1`, 400));
    const settlement = reservation.guarded ? reservation.settlement : undefined;

    const settle = ledger.settle({ requestId: `${agent}-2`, usage: USAGE, costUsd: 0, settlement });

    await expect(settle).rejects.toThrow(`belongs to request ${agent}-1`);
    expect((await ledger.readReservation(`${agent}-1`))?.state).toBe('reserved');
  });
});

describe('windows', () => {
  test('day rollover starts a new counter', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 100 } } } } });
    let nowMs = Date.UTC(2026, 11, 4, 23, 59, 59);
    const { ledger } = ledgerFor(config, { now: () => nowMs });
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 100));
    const full = ledger.reserve(reserveRequest(agent, `${agent}-2`, 100));
    await expect(full).rejects.toThrow(BudgetExceededError);

    nowMs = Date.UTC(2026, 11, 5, 0, 0, 0);
    await ledger.reserve(reserveRequest(agent, `${agent}-3`, 100));

    expect((await readItem(`budget#agent#${agent}`, 'day#2026-12-04'))?.usedTokens).toBe(100);
    expect((await readItem(`budget#agent#${agent}`, 'day#2026-12-05'))?.usedTokens).toBe(100);
  });

  test('month rollover starts a new counter', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { monthly: { usd: 0.01 } } } } });
    let nowMs = Date.UTC(2026, 11, 31, 23, 0, 0);
    const { ledger } = ledgerFor(config, { now: () => nowMs });
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 10));
    const full = ledger.reserve(reserveRequest(agent, `${agent}-2`, 10));
    await expect(full).rejects.toThrow(/resets at 2027-01-01T00:00:00.000Z/);

    nowMs = Date.UTC(2027, 0, 1, 0, 0, 1);
    await ledger.reserve(reserveRequest(agent, `${agent}-3`, 10));

    const january = await readItem(`budget#agent#${agent}`, 'month#2027-01');
    expect(january?.usedNanoUsd).toBe(10_000_000);
  });
});

describe('rate limits', () => {
  const cases = [
    { name: 'agent requests', rate: { agentRate: { requestsPerMinute: 2 } }, tokens: 10, admitted: 2 },
    { name: 'agent tokens', rate: { agentRate: { tokensPerMinute: 50 } }, tokens: 20, admitted: 2 },
    { name: 'user requests', rate: { perUserRate: { requestsPerMinute: 3 } }, tokens: 10, admitted: 3 },
    { name: 'user tokens', rate: { perUserRate: { tokensPerMinute: 40 } }, tokens: 20, admitted: 2 },
  ];
  test.each(cases)('$name per minute', async ({ rate, tokens, admitted }) => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: rate } });
    let nowMs = DEC_4_NOON;
    const { ledger } = ledgerFor(config, { now: () => nowMs });

    const results = await concurrentReserves(ledger, agent, 6, tokens);
    nowMs += 60_000;
    const nextMinute = await ledger.reserve(reserveRequest(agent, `${agent}-next`, tokens));

    const rejected = results.filter((result) => result.status === 'rejected');
    expect(results.length - rejected.length).toBe(admitted);
    const error = (rejected[0] as PromiseRejectedResult).reason;
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error.statusCode).toBe(429);
    expect(error.message).toMatch(/resets at 2026-12-04T12:01:00.000Z/);
    expect(nextMinute.guarded).toBe(true);
  });
});

describe('errors', () => {
  test('budget error names scope and reset', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({
      agents: { [agent]: { perUser: { daily: { usd: 0.015 } } } },
    });
    const { ledger, metricLines } = ledgerFor(config, { now: () => DEC_4_NOON });
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 10, 'bob'));

    const error = await ledger.reserve(reserveRequest(agent, `${agent}-2`, 10, 'bob')).catch((e) => e);

    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(error.name).toBe('BudgetExceededError');
    expect(error.statusCode).toBe(429);
    expect(error.requestId).toBe(`${agent}-2`);
    expect(error.details).toEqual({
      scope: 'user',
      subject: `${agent}/bob`,
      window: 'day',
      unit: 'usd',
      limit: 0.015,
      spent: 0.01,
      resetsAt: '2026-12-05T00:00:00.000Z',
    });
    expect(error.message).toContain(`user bob of agent ${agent}`);
    expect(error.message).toContain('daily limit of $0.015 has $0.01 spent or reserved');
    expect(error.message).toContain('resets at 2026-12-05T00:00:00.000Z');
    expect(metricLines.map((line) => line.BudgetRejected)).toEqual([1]);
  });

  test('call larger than the limit is rejected', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ stack: { monthly: { tokens: 50 } } });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });

    const error = await ledger.reserve(reserveRequest(agent, `${agent}-1`, 60)).catch((e) => e);

    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(error.details.scope).toBe('stack');
    expect(error.message).toContain('monthly limit of 50 tokens has 0 spent or reserved');
  });

  test('duplicate request id is rejected', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } });
    const { ledger } = ledgerFor(config);
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 10));

    const error = await ledger.reserve(reserveRequest(agent, `${agent}-1`, 10)).catch((e) => e);

    expect(error.name).toBe('InvalidRequestError');
    expect(error.message).toMatch(/already has a budget reservation/);
  });
});

describe('runtime limits', () => {
  function overrideStore(cacheTtlMs = 0) {
    return new LimitOverrideStore({ client: dynamo.documentClient, table: TABLE, cacheTtlMs });
  }

  test('lowered limit rejects next call', async () => {
    const agent = uniqueAgent();
    const store = overrideStore();
    const { ledger } = ledgerFor(budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } }), {
      overrides: store,
    });
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 100));

    await store.change({ agent, path: 'agent.daily.tokens', value: 150, changedBy: 'test' });

    await expect(ledger.reserve(reserveRequest(agent, `${agent}-2`, 100))).rejects.toThrow(BudgetExceededError);
    await expect(ledger.reserve(reserveRequest(agent, `${agent}-3`, 50))).resolves.toMatchObject({ guarded: true });
  });

  test('raised limit admits more', async () => {
    const agent = uniqueAgent();
    const store = overrideStore();
    const { ledger } = ledgerFor(budgetConfig({ agents: { [agent]: { perUser: { daily: { usd: 0.01 } } } } }), {
      overrides: store,
    });
    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 100));
    await expect(ledger.reserve(reserveRequest(agent, `${agent}-2`, 100))).rejects.toThrow(BudgetExceededError);

    await store.change({ agent, path: 'perUser.daily.usd', value: 0.02, changedBy: 'test' });

    await expect(ledger.reserve(reserveRequest(agent, `${agent}-3`, 100))).resolves.toMatchObject({ guarded: true });
  });

  test('new limit on unlimited scope', async () => {
    const agent = uniqueAgent();
    const store = overrideStore();
    const { ledger } = ledgerFor(budgetConfig(), { overrides: store });

    await store.change({ agent, path: 'perUserRate.requestsPerMinute', value: 1, changedBy: 'test' });

    await ledger.reserve(reserveRequest(agent, `${agent}-1`, 10));
    await expect(ledger.reserve(reserveRequest(agent, `${agent}-2`, 10))).rejects.toThrow(RateLimitedError);
    await expect(ledger.reserve(reserveRequest(agent, `${agent}-3`, 10, 'bob'))).resolves.toMatchObject({ guarded: true });
  });

  test('stack limit applies to every agent', async () => {
    const first = uniqueAgent();
    const second = uniqueAgent();
    const store = overrideStore();
    // The stack item is shared by every test, so this test removes its override when done.
    await store.change({ path: 'stack.monthly.tokens', value: 0, changedBy: 'test' });
    try {
      const { ledger } = ledgerFor(budgetConfig(), { overrides: store });

      await expect(ledger.reserve(reserveRequest(first, `${first}-1`, 10))).rejects.toThrow(/the stack/);
      await expect(ledger.reserve(reserveRequest(second, `${second}-1`, 10))).rejects.toThrow(BudgetExceededError);
    } finally {
      await store.change({ path: 'stack.monthly.tokens', value: undefined, changedBy: 'test' });
    }
  });

  test('cleared override restores config', async () => {
    const agent = uniqueAgent();
    const store = overrideStore();
    const { ledger } = ledgerFor(budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } }), {
      overrides: store,
    });
    await store.change({ agent, path: 'agent.daily.tokens', value: 0, changedBy: 'test' });
    await expect(ledger.reserve(reserveRequest(agent, `${agent}-1`, 100))).rejects.toThrow(BudgetExceededError);

    await store.change({ agent, path: 'agent.daily.tokens', value: undefined, changedBy: 'test' });

    await expect(ledger.reserve(reserveRequest(agent, `${agent}-2`, 100))).resolves.toMatchObject({ guarded: true });
    const item = await store.read(agent);
    expect(item?.['agent.daily.tokens']).toBeUndefined();
    expect(item?.changedBy).toBe('test');
  });

  test('cached read applies until it expires', async () => {
    const agent = uniqueAgent();
    let nowMs = DEC_4_NOON;
    const reader = new LimitOverrideStore({ client: dynamo.documentClient, table: TABLE, now: () => nowMs, cacheTtlMs: 2_000 });
    expect(await reader.get(agent)).toEqual({ agent: {}, stack: {} });

    await overrideStore().change({ agent, path: 'agent.daily.usd', value: 5, changedBy: 'test' });

    expect((await reader.get(agent)).agent).toEqual({});
    nowMs += 2_000;
    expect((await reader.get(agent)).agent).toEqual({ 'agent.daily.usd': 5 });
  });

  test.each([
    { path: 'agent.daily.tokens', value: 1.5, agent: 'a', message: /whole number/ },
    { path: 'agent.daily.usd', value: -1, agent: 'a', message: /dollar amount/ },
    { path: 'agentRate.requestsPerMinute', value: Number.NaN, agent: 'a', message: /whole number/ },
    { path: 'stack.daily.usd', value: 1, agent: 'a', message: /takes no agent/ },
    { path: 'perUser.daily.tokens', value: 1, agent: undefined, message: /name the agent/ },
  ] as const)('rejects $path = $value', async ({ path, value, agent, message }) => {
    await expect(overrideStore().change({ agent, path, value, changedBy: 'test' })).rejects.toThrow(message);
  });
});

describe('identity', () => {
  test('anonymous rejected by default', async () => {
    const { ledger } = ledgerFor(budgetConfig());

    const error = await ledger.reserve(reserveRequest('a', 'anon-1', 10, 'anonymous')).catch((e) => e);

    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error.message).toMatch(/budget.allowAnonymous/);
    expect(error.requestId).toBe('anon-1');
  });

  test('anonymous counted when allowed', async () => {
    const agent = uniqueAgent();
    const config = budgetConfig({
      allowAnonymous: true,
      agents: { [agent]: { perUser: { daily: { tokens: 100 } } } },
    });
    const { ledger } = ledgerFor(config, { now: () => DEC_4_NOON });

    await ledger.reserve({ ...reserveRequest(agent, `${agent}-1`, 10), userId: undefined });

    const item = await readItem(`budget#user#${agent}#anonymous`, 'day#2026-12-04');
    expect(item?.usedTokens).toBe(10);
  });
});

describe('unreachable ledger', () => {
  test('fails closed by default', async () => {
    const closedPort = await freePort();
    const config = budgetConfig({ stack: { daily: { tokens: 100 } } });
    const { ledger } = ledgerFor(config, { client: documentClient(`http://127.0.0.1:${closedPort}`) });

    const error = await ledger.reserve(reserveRequest('a', 'down-1', 10)).catch((e) => e);

    expect(error).toBeInstanceOf(BudgetUnavailableError);
    expect(error.statusCode).toBe(503);
    expect(error.message).toContain(`table ${TABLE} could not reserve request down-1`);
  });

  test('reserve that committed after a timeout is released', async () => {
    const agent = uniqueAgent();
    // The reserve transaction reaches DynamoDB Local and commits, but the caller sees a timeout.
    const late = interceptedClient(dynamo.documentClient, async (command, send) => {
      const result = await send(command);
      if (command.input?.TransactItems?.some((item: any) => item.Put?.Item?.state === 'reserved')) {
        throw namedError('TimeoutError', 'Simulated request timeout');
      }
      return result;
    });
    const { ledger, logLines } = ledgerFor(budgetConfig({ agents: { [agent]: { agent: { daily: { tokens: 1_000 } } } } }), {
      client: late,
    });

    await expect(ledger.reserve(reserveRequest(agent, `${agent}-1`, 100))).rejects.toThrow(BudgetUnavailableError);

    expect((await readItem(`reservation#${agent}-1`, 'reservation'))?.state).toBe('reclaimed');
    const today = new Date().toISOString().slice(0, 10);
    const counter = await readItem(`budget#agent#${agent}`, `day#${today}`);
    expect(counter?.reservedTokens).toBe(0);
    expect(counter?.usedTokens).toBe(0);
    expect(logLines.some((line) => line.message.startsWith('Released a reservation whose reserve call failed'))).toBe(true);
  });

  test('fails open with metric when configured', async () => {
    const closedPort = await freePort();
    const config = budgetConfig({ failOpen: true, stack: { daily: { tokens: 100 } } });
    const { ledger, metricLines, logLines } = ledgerFor(config, {
      client: documentClient(`http://127.0.0.1:${closedPort}`),
    });

    const reservation = await ledger.reserve(reserveRequest('a', 'down-2', 10));

    expect(reservation.guarded).toBe(false);
    expect(metricLines).toHaveLength(1);
    expect(metricLines[0]).toMatchObject({ Agent: 'a', UnguardedCall: 1, requestId: 'down-2' });
    // The release of the failed reservation fails first, against the same unreachable table.
    expect(logLines.map((line) => line.level)).toEqual(['warn', 'error']);
    expect(logLines[1].message).toBe('Budget ledger unreachable; serving the call without a reservation');
  });
});

describe('pricing', () => {
  test('prices a profile id from config', () => {
    const cost = priceCall(PRICE, {
      inputTokens: 1_000,
      outputTokens: 500,
      cacheReadTokens: 2_000,
      cacheWriteTokens: 100,
    });

    expect(cost).toBeCloseTo((3_000 + 7_500 + 600 + 375) / 1_000_000, 12);
  });

  test('reserves at the most expensive target', () => {
    const prices = { [PROFILE]: PRICE, 'amazon.nova-micro-v1:0': { ...PRICE, outputPerMillion: 1 } };
    const route = [
      { region: 'us-east-1', modelId: 'amazon.nova-micro-v1:0' },
      { region: 'us-west-2', modelId: PROFILE },
    ];

    const worst = worstCasePriceUsd(prices, route, 1_000, 100);

    expect(worst).toBeCloseTo((1_000 * 3.75 + 100 * 15) / 1_000_000, 12);
  });

  test('missing price names the model', () => {
    const route = [{ region: 'us-east-1', modelId: 'unknown.model-v1:0' }];

    expect(() => worstCasePriceUsd({}, route, 1, 1)).toThrow(
      /No price configured for model unknown.model-v1:0/,
    );
  });
});
