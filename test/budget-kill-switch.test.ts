/**
 * Agent suspensions and the kill switch handler against DynamoDB Local
 * through the real SDK: suspend and resume, lapse by the clock, the
 * scheduled budget check and reclaim, and alarm events from SNS and
 * EventBridge.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { BudgetLedger, SuspensionStore, suspensionKey } from '../lambda/gateway/budget';
import { LimitOverrideStore } from '../lambda/gateway/budget/overrides';
import { createKillSwitchHandler, parseKillSwitchEvent } from '../lambda/kill-switch';
import type { KillSwitchConfig } from '../lambda/shared/contracts';
import { InvalidRequestError } from '../lambda/shared/errors';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import { interceptedClient, namedError, startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';

const TABLE = 'kill-switch';
const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);
const NEXT_DAY = Date.UTC(2026, 11, 5);
const PROFILE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const PRICE = { inputPerMillion: 3, outputPerMillion: 15, cacheReadPerMillion: 0.3, cacheWritePerMillion: 3.75 };

let dynamo: DynamoDbLocal;
let agentCounter = 0;

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
});

afterAll(async () => {
  await dynamo?.stop();
});

/** Returns an agent name no other test uses, so that suspensions do not collide. */
function uniqueAgent(): string {
  agentCounter += 1;
  return `ks-agent-${agentCounter}`;
}

function store(now: () => number = () => NOW): SuspensionStore {
  return new SuspensionStore({ client: dynamo.documentClient, table: TABLE, now });
}

function killSwitch(config: Partial<KillSwitchConfig> = {}, now = NOW, client = dynamo.documentClient) {
  const lines: Array<Record<string, any>> = [];
  const metricLines: Array<Record<string, any>> = [];
  const logger = new Logger({}, { sink: (line) => lines.push(JSON.parse(line)) });
  const handle = createKillSwitchHandler({
    config: { table: TABLE, leaseSeconds: 300, agents: {}, ...config },
    client,
    now: () => now,
    logger,
    metrics: new MetricsWriter({ sink: (line) => metricLines.push(JSON.parse(line)), now: () => now }),
  });
  return { handle, lines, metricLines };
}

/** Reserves and settles one call of `agent` that spends `tokens` tokens. */
async function spend(agent: string, agents: KillSwitchConfig['agents'], requestId: string, tokens: number) {
  const ledger = new BudgetLedger({
    client: dynamo.documentClient,
    config: { table: TABLE, leaseSeconds: 300, failOpen: false, allowAnonymous: true, agents, prices: {} },
    now: () => NOW,
    logger: new Logger({}, { sink: () => undefined }),
    metrics: new MetricsWriter({ sink: () => undefined }),
  });
  await ledger.reserve({ requestId, agent, userId: 'u', estimatedInputTokens: tokens, maxTokens: 0, priceUsd: 0 });
  await ledger.settle({ requestId, usage: { inputTokens: tokens, outputTokens: 0 }, costUsd: 0 });
}

function snsAlarm(alarm: Record<string, unknown>) {
  return {
    Records: [
      {
        EventSource: 'aws:sns',
        Sns: { Type: 'Notification', Subject: 'ALARM', Message: JSON.stringify(alarm) },
      },
    ],
  };
}

function eventBridgeAlarm(alarmName: string, state: string, dimensions: Record<string, string>) {
  return {
    version: '0',
    source: 'aws.cloudwatch',
    'detail-type': 'CloudWatch Alarm State Change',
    detail: {
      alarmName,
      state: { value: state, reason: 'Threshold Crossed' },
      configuration: {
        metrics: [
          {
            id: 'm1',
            metricStat: { metric: { namespace: 'AgentStack', name: 'TotalTokens', dimensions }, period: 300, stat: 'Sum' },
          },
        ],
      },
    },
  };
}

describe('suspension store', () => {
  test('suspend then resume', async () => {
    const agent = uniqueAgent();
    const suspensions = store();

    const outcome = await suspensions.suspend({ agent, reason: 'operator', suspendedBy: 'alice' });

    expect(outcome.applied).toBe(true);
    const read = await store().getSuspension(agent);
    expect(read).toEqual({ agent, reason: 'operator', suspendedBy: 'alice', suspendedAt: NOW });
    const removed = await suspensions.resume(agent);
    expect(removed?.reason).toBe('operator');
    expect(await store().getSuspension(agent)).toBeUndefined();
    expect(await suspensions.resume(agent)).toBeUndefined();
  });

  test('lapses when until passes', async () => {
    const agent = uniqueAgent();
    let nowMs = NOW;
    const suspensions = store(() => nowMs);
    await suspensions.suspend({ agent, reason: 'budget-exhausted', until: NOW + 60_000, suspendedBy: 'test' });

    expect((await suspensions.getSuspension(agent))?.until).toBe(NOW + 60_000);
    nowMs = NOW + 60_000;
    // The cached read is still fresh, and its `until` is compared with the clock.
    expect(await suspensions.getSuspension(agent)).toBeUndefined();
    expect(await store(() => nowMs).getSuspension(agent)).toBeUndefined();
    const { Item } = await dynamo.documentClient.send(
      new GetCommand({ TableName: TABLE, Key: { pk: suspensionKey(agent), sk: 'suspension' } }),
    );
    expect(Item?.until).toBe(NOW + 60_000);
  });

  test('budget keeps operator suspension', async () => {
    const agent = uniqueAgent();
    const suspensions = store();
    await suspensions.suspend({ agent, reason: 'operator', suspendedBy: 'alice' });

    const outcome = await suspensions.suspend({ agent, reason: 'budget-exhausted', until: NEXT_DAY, suspendedBy: 'test' });

    expect(outcome.applied).toBe(false);
    expect(outcome.suspension.reason).toBe('operator');
    expect((await store().getSuspension(agent))?.until).toBeUndefined();
  });

  test('later until replaces earlier', async () => {
    const agent = uniqueAgent();
    const suspensions = store();
    await suspensions.suspend({ agent, reason: 'budget-exhausted', until: NOW + 1_000, suspendedBy: 'test' });

    const outcome = await suspensions.suspend({ agent, reason: 'budget-exhausted', until: NEXT_DAY, suspendedBy: 'test' });

    expect(outcome.applied).toBe(true);
    expect((await store().getSuspension(agent))?.until).toBe(NEXT_DAY);
  });

  test('past until is rejected', async () => {
    await expect(
      store().suspend({ agent: uniqueAgent(), reason: 'operator', until: NOW, suspendedBy: 'test' }),
    ).rejects.toThrow('which is not in the future');
  });
});

describe('kill switch schedule', () => {
  test('suspends spent agent and reclaims', async () => {
    const spent = uniqueAgent();
    const within = uniqueAgent();
    const agents = {
      [spent]: { agent: { daily: { tokens: 100 } } },
      [within]: { agent: { daily: { tokens: 10_000 }, monthly: { usd: 100 } } },
    };
    const ledgerAt = (nowMs: number) =>
      new BudgetLedger({
        client: dynamo.documentClient,
        config: { table: TABLE, leaseSeconds: 300, failOpen: false, allowAnonymous: true, agents, prices: { [PROFILE]: PRICE } },
        now: () => nowMs,
        logger: new Logger({}, { sink: () => undefined }),
        metrics: new MetricsWriter({ sink: () => undefined }),
      });
    const call = { userId: 'u1', estimatedInputTokens: 60, maxTokens: 40, priceUsd: 0.001 };
    await ledgerAt(NOW).reserve({ ...call, requestId: 'ks-spent-1', agent: spent });
    await ledgerAt(NOW).settle({ requestId: 'ks-spent-1', usage: { inputTokens: 60, outputTokens: 40 }, costUsd: 0.0008 });
    // A reservation whose caller never settled; its lease ended five minutes ago.
    await ledgerAt(NOW - 600_000).reserve({ ...call, requestId: 'ks-abandoned-1', agent: within });
    const { handle, lines } = killSwitch({ agents });

    const result = await handle({ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} });

    expect(result.decisions).toContainEqual({
      decision: 'suspended',
      window: 'day',
      agent: spent,
      reason: 'budget-exhausted',
      until: new Date(NEXT_DAY).toISOString(),
    });
    expect(result.decisions).toContainEqual({ decision: 'within-budget', agent: within });
    expect(result.reclaimed).toContain('ks-abandoned-1');
    const suspension = await store().getSuspension(spent);
    expect(suspension?.until).toBe(NEXT_DAY);
    expect(suspension?.suspendedBy).toBe('kill-switch:schedule');
    expect(await store(() => NEXT_DAY).getSuspension(spent)).toBeUndefined();
    const decisionLines = lines.filter((line) => line.message === 'Kill switch decision');
    expect(decisionLines.map((line) => line.agent).sort()).toEqual([spent, within].sort());
    const counter = await dynamo.documentClient.send(
      new GetCommand({ TableName: TABLE, Key: { pk: `budget#agent#${within}`, sk: 'day#2026-12-04' } }),
    );
    expect(counter.Item?.reservedTokens).toBe(0);
  });

  test('second run keeps the suspension', async () => {
    const spent = uniqueAgent();
    const agents = { [spent]: { agent: { monthly: { tokens: 10 } } } };
    const ledger = new BudgetLedger({
      client: dynamo.documentClient,
      config: { table: TABLE, leaseSeconds: 300, failOpen: false, allowAnonymous: true, agents, prices: {} },
      now: () => NOW,
      metrics: new MetricsWriter({ sink: () => undefined }),
    });
    await ledger.reserve({ requestId: 'ks-month-1', agent: spent, userId: 'u', estimatedInputTokens: 5, maxTokens: 5, priceUsd: 0 });
    await ledger.settle({ requestId: 'ks-month-1', usage: { inputTokens: 5, outputTokens: 5 }, costUsd: 0 });
    const { handle } = killSwitch({ agents });
    const scheduled = { 'detail-type': 'Scheduled Event' };

    const first = await handle(scheduled);
    const second = await handle(scheduled);

    expect(first.decisions[0]).toMatchObject({ decision: 'suspended', window: 'month', until: '2027-01-01T00:00:00.000Z' });
    expect(second.decisions[0]).toMatchObject({ decision: 'already-suspended', until: '2027-01-01T00:00:00.000Z' });
  });
});

describe('kill switch budget use', () => {
  test('writes BudgetUsePercent per window', async () => {
    const agent = uniqueAgent();
    const agents = { [agent]: { agent: { daily: { tokens: 200 }, monthly: { tokens: 1_000 } } } };
    await spend(agent, agents, `${agent}-1`, 50);
    const { handle, metricLines } = killSwitch({ agents });

    await handle({ 'detail-type': 'Scheduled Event' });

    const uses = metricLines.filter((line) => line.BudgetUsePercent !== undefined);
    expect(uses.map((line) => [line.Window, line.BudgetUsePercent])).toEqual([
      ['day', 25],
      ['month', 5],
    ]);
    expect(uses[0].Agent).toBe(agent);
    expect(uses[0]._aws.CloudWatchMetrics).toEqual([
      { Namespace: 'AgentStack', Dimensions: [['Agent', 'Window']], Metrics: [{ Name: 'BudgetUsePercent', Unit: 'None' }] },
    ]);
  });

  test('schedule applies lowered limits', async () => {
    const agent = uniqueAgent();
    const agents = { [agent]: { agent: { daily: { tokens: 10_000 } } } };
    await spend(agent, agents, `${agent}-1`, 100);
    await new LimitOverrideStore({ client: dynamo.documentClient, table: TABLE, now: () => NOW }).change({
      agent,
      path: 'agent.daily.tokens',
      value: 100,
      changedBy: 'test',
    });
    const { handle } = killSwitch({ agents });

    const result = await handle({ 'detail-type': 'Scheduled Event' });

    expect(result.decisions).toContainEqual(expect.objectContaining({ decision: 'suspended', agent, window: 'day' }));
  });

  test('budget alarm checks the budget', async () => {
    const spent = uniqueAgent();
    const within = uniqueAgent();
    const agents = { [spent]: { agent: { daily: { tokens: 100 } } }, [within]: { agent: { daily: { tokens: 1_000 } } } };
    await spend(spent, agents, `${spent}-1`, 100);
    await spend(within, agents, `${within}-1`, 900);
    const { handle } = killSwitch({ agents });
    const budgetAlarm = (agent: string) =>
      snsAlarm({
        AlarmName: `BudgetUse/agent/${agent}`,
        NewStateValue: 'ALARM',
        Trigger: { MetricName: 'BudgetUsePercent', Namespace: 'AgentStack', Dimensions: [{ value: agent, name: 'Agent' }] },
      });

    const spentResult = await handle(budgetAlarm(spent));
    const withinResult = await handle(budgetAlarm(within));

    expect(spentResult.decisions[0]).toMatchObject({ decision: 'suspended', agent: spent, reason: 'budget-exhausted' });
    expect((await store().getSuspension(spent))?.until).toBe(NEXT_DAY);
    expect((await store().getSuspension(spent))?.suspendedBy).toBe(`alarm:BudgetUse/agent/${spent}`);
    expect(withinResult.decisions[0]).toMatchObject({ decision: 'within-budget', agent: within });
    expect(await store().getSuspension(within)).toBeUndefined();
  });

  test('one failing agent spares others', async () => {
    const broken = uniqueAgent();
    const spent = uniqueAgent();
    const agents = { [broken]: { agent: { daily: { tokens: 100 } } }, [spent]: { agent: { daily: { tokens: 100 } } } };
    await spend(spent, agents, `${spent}-1`, 100);
    // A client that fails every read of the broken agent's counter, and passes everything else to DynamoDB Local.
    const failing = interceptedClient(dynamo.documentClient, (command, send) =>
      command.input?.Key?.pk === `budget#agent#${broken}`
        ? Promise.reject(namedError('InternalServerError', 'Simulated read failure'))
        : send(command),
    );
    const { handle, lines } = killSwitch({ agents }, NOW, failing);

    await expect(handle({ 'detail-type': 'Scheduled Event' })).rejects.toThrow(broken);

    expect((await store().getSuspension(spent))?.reason).toBe('budget-exhausted');
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', agent: broken }));
  });
});

describe('kill switch alarms', () => {
  test('SNS alarm suspends Agent dimension', async () => {
    const agent = uniqueAgent();
    const { handle, lines } = killSwitch();

    const result = await handle(
      snsAlarm({
        AlarmName: 'TokenAnomaly',
        NewStateValue: 'ALARM',
        Trigger: { MetricName: 'TotalTokens', Namespace: 'AgentStack', Dimensions: [{ value: agent, name: 'Agent' }] },
      }),
    );

    expect(result.decisions).toEqual([{ decision: 'suspended', alarmName: 'TokenAnomaly', agent, reason: 'anomaly' }]);
    const suspension = await store().getSuspension(agent);
    expect(suspension?.reason).toBe('anomaly');
    expect(suspension?.until).toBeUndefined();
    expect(suspension?.suspendedBy).toBe('alarm:TokenAnomaly');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ message: 'Kill switch decision', decision: 'suspended', agent });
  });

  test('SNS metric math alarm', () => {
    const parsed = parseKillSwitchEvent(
      snsAlarm({
        AlarmName: 'Anomaly',
        NewStateValue: 'ALARM',
        Trigger: {
          Metrics: [
            { Id: 'ad1', Expression: 'ANOMALY_DETECTION_BAND(m1, 2)' },
            { Id: 'm1', MetricStat: { Metric: { Dimensions: [{ value: 'billing', name: 'Agent' }] } } },
          ],
        },
      }),
    );

    expect(parsed).toEqual({
      kind: 'alarms',
      alarms: [{ source: 'sns', alarmName: 'Anomaly', state: 'ALARM', agent: 'billing', metricNames: [] }],
    });
  });

  test('EventBridge alarm suspends agent', async () => {
    const agent = uniqueAgent();
    const { handle } = killSwitch();

    const result = await handle(eventBridgeAlarm('TokenAnomaly', 'ALARM', { Agent: agent, Model: PROFILE }));

    expect(result.decisions[0]).toMatchObject({ decision: 'suspended', agent, reason: 'anomaly' });
    expect((await store().getSuspension(agent))?.reason).toBe('anomaly');
  });

  test('alarm name names the agent', async () => {
    const agent = uniqueAgent();
    const { handle } = killSwitch();

    const result = await handle(eventBridgeAlarm(`TokenAnomaly/agent/${agent}`, 'ALARM', {}));

    expect(result.decisions[0]).toMatchObject({ decision: 'suspended', agent });
  });

  test('OK state lifts nothing', async () => {
    const agent = uniqueAgent();
    const { handle } = killSwitch();
    await handle(eventBridgeAlarm('TokenAnomaly', 'ALARM', { Agent: agent }));

    const result = await handle(eventBridgeAlarm('TokenAnomaly', 'OK', { Agent: agent }));

    expect(result.decisions[0]).toMatchObject({ decision: 'ignored', agent });
    expect((await store().getSuspension(agent))?.reason).toBe('anomaly');
  });

  test('alarm without agent is logged', async () => {
    const { handle, lines } = killSwitch();

    const result = await handle(eventBridgeAlarm('StackCost', 'ALARM', {}));

    expect(result.decisions).toEqual([{ decision: 'no-agent', alarmName: 'StackCost' }]);
    expect(lines[0]).toMatchObject({ level: 'error', decision: 'no-agent', alarmName: 'StackCost' });
  });

  test('non-alarm SNS message is rejected', () => {
    expect(() => parseKillSwitchEvent({ Records: [{ Sns: { Message: 'hello' } }] })).toThrow(InvalidRequestError);
  });
});

describe('kill switch commands', () => {
  test('operator suspends and resumes', async () => {
    const agent = uniqueAgent();
    const { handle } = killSwitch();

    const suspended = await handle({ action: 'suspend', agent, by: 'alice', until: '2026-12-04T18:00:00Z' });
    const resumed = await handle({ action: 'resume', agent, by: 'alice' });
    const again = await handle({ action: 'resume', agent, by: 'alice' });

    expect(suspended.decisions[0]).toEqual({
      decision: 'suspended',
      agent,
      reason: 'operator',
      until: '2026-12-04T18:00:00.000Z',
    });
    expect(resumed.decisions[0]).toMatchObject({ decision: 'resumed', agent, reason: 'operator' });
    expect(again.decisions[0]).toEqual({ decision: 'not-suspended', agent });
    expect(await store().getSuspension(agent)).toBeUndefined();
  });

  test('invalid command names each problem', async () => {
    const { handle } = killSwitch();

    const attempt = handle({ action: 'pause', agent: '', reason: 'tired' });

    await expect(attempt).rejects.toThrow(InvalidRequestError);
    await expect(attempt).rejects.toThrow('action must be "suspend" or "resume" (got "pause")');
    await expect(attempt).rejects.toThrow('agent must be a non-empty agent name (got "")');
    await expect(attempt).rejects.toThrow('reason must be "operator", "anomaly" or "budget-exhausted" (got "tired")');
  });

  test('unknown event is rejected', async () => {
    const { handle } = killSwitch();

    await expect(handle({ hello: 'world' })).rejects.toThrow('cannot handle an event with keys hello');
  });
});
