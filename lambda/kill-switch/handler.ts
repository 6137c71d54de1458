import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { KILL_SWITCH_ENV, type KillSwitchConfig, type SpendLimits } from '../shared/contracts';
import type { BudgetWindow } from '../shared/errors';
import { Logger } from '../shared/logger';
import { AGENT_METRICS } from '../shared/metric-catalog';
import { MetricsWriter } from '../shared/metrics';
import { effectiveAgentBudget, LimitOverrideStore } from '../gateway/budget/overrides';
import { BudgetLedger } from '../gateway/budget/ledger';
import { NANO_USD_PER_USD } from '../gateway/budget/pricing';
import { SuspensionStore, type Suspension } from '../gateway/budget/suspension';
import { spendCounterKey, windowAt } from '../gateway/budget/windows';
import { parseKillSwitchEvent, type AlarmChange, type OperatorCommand } from './events';

/** One decision of the kill switch, as it logs and returns it. */
export interface KillSwitchDecision {
  readonly decision:
    | 'suspended'
    | 'already-suspended'
    | 'resumed'
    | 'not-suspended'
    | 'within-budget'
    | 'ignored'
    | 'no-agent';
  readonly agent?: string;
  readonly reason?: string;
  /** ISO 8601 time at which the suspension lapses. */
  readonly until?: string;
  readonly alarmName?: string;
  readonly window?: BudgetWindow;
}

/** Result of one invocation. */
export interface KillSwitchResult {
  readonly decisions: readonly KillSwitchDecision[];
  /** Request ids of the reservations the scheduled run reclaimed. */
  readonly reclaimed?: readonly string[];
}

/** Settings of {@link createKillSwitchHandler}. */
export interface KillSwitchOptions {
  readonly config: KillSwitchConfig;
  readonly client: DynamoDBDocumentClient;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** @default - a Logger writing to stdout */
  readonly logger?: Logger;
  /** @default - a MetricsWriter writing to stdout */
  readonly metrics?: MetricsWriter;
}

function describe(suspension: Suspension): Pick<KillSwitchDecision, 'agent' | 'reason' | 'until'> {
  return {
    agent: suspension.agent,
    reason: suspension.reason,
    ...(suspension.until === undefined ? {} : { until: new Date(suspension.until).toISOString() }),
  };
}

/** Spend of one agent-wide window against its limits. */
interface WindowUse {
  readonly window: BudgetWindow;
  readonly endMs: number;
  /** Spent share of the tightest limit, in percent; 100 or more means the window is spent. */
  readonly percent: number;
}

// NOTE: a window counts as spent only when settled spend reaches the cap. The
// gateway's reservation rejects a call whose worst case does not fit, so spend
// reaches the cap only through calls that use their whole worst case or late settles.
function usePercent(counter: Record<string, unknown> | undefined, limits: SpendLimits): number {
  const shares: number[] = [];
  if (limits.tokens !== undefined) {
    const spent = Number(counter?.spentTokens ?? 0);
    shares.push(limits.tokens === 0 ? 100 : (100 * spent) / limits.tokens);
  }
  if (limits.usd !== undefined) {
    const limit = Math.round(limits.usd * NANO_USD_PER_USD);
    const spent = Number(counter?.spentNanoUsd ?? 0);
    shares.push(limit === 0 ? 100 : (100 * spent) / limit);
  }
  return Math.max(0, ...shares);
}

/**
 * Builds the kill switch handler. It suspends an agent when a CloudWatch
 * alarm on it enters ALARM, until an operator resumes it. It suspends and
 * resumes agents on an operator's command. On its schedule it suspends every
 * agent whose daily or monthly budget is spent until that window rolls
 * over, and reclaims reservations whose lease ended. Each decision is one
 * JSON log line.
 */
export function createKillSwitchHandler(options: KillSwitchOptions): (event: unknown) => Promise<KillSwitchResult> {
  const { config, client } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger ?? new Logger({}, { service: 'kill-switch' });
  // The cache is off, because each invocation must see the writes of the previous one.
  const store = new SuspensionStore({ client, table: config.table, now, cacheTtlMs: 0 });
  const limits = new LimitOverrideStore({ client, table: config.table, now, cacheTtlMs: 0 });
  const metrics = options.metrics ?? new MetricsWriter({ now });
  const ledger = new BudgetLedger({
    client,
    config: { table: config.table, leaseSeconds: config.leaseSeconds, failOpen: false, allowAnonymous: true, agents: {}, prices: {} },
    now,
    logger,
  });

  function record(decision: KillSwitchDecision, fields: Record<string, unknown> = {}): KillSwitchDecision {
    logger.info('Kill switch decision', { ...decision, ...fields });
    return decision;
  }

  async function suspend(
    agent: string,
    reason: Suspension['reason'],
    until: number | undefined,
    suspendedBy: string,
    extra: Partial<KillSwitchDecision>,
  ): Promise<KillSwitchDecision> {
    const outcome = await store.suspend({ agent, reason, until, suspendedBy });
    return record({
      decision: outcome.applied ? 'suspended' : 'already-suspended',
      ...extra,
      ...describe(outcome.suspension),
    });
  }

  async function onAlarm(alarm: AlarmChange): Promise<KillSwitchDecision> {
    const { alarmName, state } = alarm;
    if (alarm.agent === undefined) {
      // Logged as an error and not raised, because a retry of the same alarm cannot find an agent either.
      logger.error('Kill switch alarm names no agent', {
        decision: 'no-agent',
        alarmName,
        state,
        expected: 'an Agent dimension, or an alarm name ending with agent/<agent>',
      });
      return { decision: 'no-agent', alarmName };
    }
    if (state !== 'ALARM') {
      // An anomaly suspension lasts until an operator resumes the agent, so OK lifts nothing.
      return record({ decision: 'ignored', agent: alarm.agent, alarmName }, { state });
    }
    if (alarm.metricNames.includes(AGENT_METRICS.budgetUsePercent.name)) {
      // A budget alarm warns before the limit is reached, so it triggers a check and not a suspension of its own.
      return checkBudget(alarm.agent, now(), `alarm:${alarmName}`, { alarmName });
    }
    return suspend(alarm.agent, 'anomaly', undefined, `alarm:${alarmName}`, { alarmName });
  }

  async function onCommand(command: OperatorCommand): Promise<KillSwitchDecision> {
    if (command.action === 'resume') {
      const removed = await store.resume(command.agent);
      return record(
        removed === undefined
          ? { decision: 'not-suspended', agent: command.agent }
          : { ...describe(removed), decision: 'resumed' },
        { by: command.by },
      );
    }
    return suspend(command.agent, command.reason, command.until, command.by, {});
  }

  /** Reads the agent-wide windows of `agent` that have a limit, overrides applied, and writes their use as a metric. */
  async function readWindowUse(agent: string, nowMs: number): Promise<WindowUse[]> {
    const overrides = await limits.get(agent);
    const budget = effectiveAgentBudget(config.agents[agent], overrides.agent);
    const uses: WindowUse[] = [];
    for (const [window, windowLimits] of [
      ['day', budget.agent?.daily],
      ['month', budget.agent?.monthly],
    ] as const) {
      if (windowLimits === undefined) {
        continue;
      }
      const span = windowAt(window, nowMs);
      const { Item } = await client.send(
        new GetCommand({
          TableName: config.table,
          Key: { pk: spendCounterKey('agent', agent, ''), sk: span.key },
          ConsistentRead: true,
        }),
      );
      const percent = usePercent(Item, windowLimits);
      metrics.put(
        { Agent: agent, Window: window },
        { [AGENT_METRICS.budgetUsePercent.name]: { value: percent, unit: AGENT_METRICS.budgetUsePercent.unit } },
      );
      uses.push({ window, endMs: span.endMs, percent });
    }
    return uses;
  }

  /**
   * Suspends `agent` until the latest end of its spent agent-wide windows,
   * or reports it within budget.
   */
  async function checkBudget(
    agent: string,
    nowMs: number,
    suspendedBy: string,
    extra: Partial<KillSwitchDecision> = {},
  ): Promise<KillSwitchDecision> {
    const spent = (await readWindowUse(agent, nowMs)).filter((use) => use.percent >= 100);
    if (spent.length === 0) {
      return record({ decision: 'within-budget', agent, ...extra });
    }
    // Of two spent windows, the later end decides when the agent may run again.
    const { window, endMs } = spent.reduce((latest, use) => (use.endMs > latest.endMs ? use : latest));
    return suspend(agent, 'budget-exhausted', endMs, suspendedBy, { window, ...extra });
  }

  async function onSchedule(): Promise<KillSwitchResult> {
    const nowMs = now();
    const decisions: KillSwitchDecision[] = [];
    const failed: string[] = [];
    for (const agent of Object.keys(config.agents)) {
      try {
        decisions.push(await checkBudget(agent, nowMs, 'kill-switch:schedule'));
      } catch (error) {
        // One agent's failure must not leave the others unchecked, so the run goes on and fails at the end.
        logger.error('Kill switch budget check failed', { agent }, error);
        failed.push(agent);
      }
    }
    const reclaimed = await ledger.reclaimExpired(nowMs);
    logger.info('Kill switch reclaimed expired reservations', { reclaimed: reclaimed.length, requestIds: reclaimed });
    if (failed.length > 0) {
      throw new Error(
        `The kill switch could not check the budget of agents ${failed.join(', ')}; the log lines before ` +
          'this one name each cause. The next scheduled run checks them again.',
      );
    }
    return { decisions, reclaimed };
  }

  return async (event) => {
    const input = parseKillSwitchEvent(event);
    if (input.kind === 'schedule') {
      return onSchedule();
    }
    if (input.kind === 'command') {
      return { decisions: [await onCommand(input.command)] };
    }
    const decisions: KillSwitchDecision[] = [];
    for (const alarm of input.alarms) {
      decisions.push(await onAlarm(alarm));
    }
    return { decisions };
  };
}

/** Reads and checks the configuration in the `KILL_SWITCH_CONFIG` environment variable. */
export function loadKillSwitchConfigFromEnv(env: NodeJS.ProcessEnv = process.env): KillSwitchConfig {
  const text = env[KILL_SWITCH_ENV.config];
  if (text === undefined || text === '') {
    throw new Error(`${KILL_SWITCH_ENV.config} is not set; deploy the kill switch with the TokenBudget construct.`);
  }
  const config = JSON.parse(text) as Partial<KillSwitchConfig>;
  if (typeof config.table !== 'string' || typeof config.leaseSeconds !== 'number' || typeof config.agents !== 'object') {
    throw new Error(
      `${KILL_SWITCH_ENV.config} must contain table, leaseSeconds and agents (got ${text.slice(0, 120)}); ` +
        'deploy the kill switch with the TokenBudget construct.',
    );
  }
  return config as KillSwitchConfig;
}
