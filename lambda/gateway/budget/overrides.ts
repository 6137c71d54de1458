import {
  BatchGetCommand,
  GetCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type {
  AgentBudgetConfig,
  GatewayBudgetConfig,
  RateLimits,
  SpendLimits,
  WindowLimits,
} from '../../shared/contracts';
import { keyPart } from './windows';

/** Sort key of every limit override item. */
export const LIMIT_OVERRIDE_SORT_KEY = 'limits';

/** Limits an operator can set for one agent, named by their path in the agent's budget settings. */
export const AGENT_LIMIT_PATHS = [
  'agent.daily.tokens',
  'agent.daily.usd',
  'agent.monthly.tokens',
  'agent.monthly.usd',
  'perUser.daily.tokens',
  'perUser.daily.usd',
  'perUser.monthly.tokens',
  'perUser.monthly.usd',
  'agentRate.requestsPerMinute',
  'agentRate.tokensPerMinute',
  'perUserRate.requestsPerMinute',
  'perUserRate.tokensPerMinute',
] as const;

/** Limits an operator can set for the whole stack. */
export const STACK_LIMIT_PATHS = [
  'stack.daily.tokens',
  'stack.daily.usd',
  'stack.monthly.tokens',
  'stack.monthly.usd',
] as const;

export type AgentLimitPath = (typeof AGENT_LIMIT_PATHS)[number];
export type StackLimitPath = (typeof STACK_LIMIT_PATHS)[number];
export type LimitPath = AgentLimitPath | StackLimitPath;

/** Returns true when `path` names a limit an operator can set. */
export function isLimitPath(path: string): path is LimitPath {
  return (AGENT_LIMIT_PATHS as readonly string[]).includes(path) || (STACK_LIMIT_PATHS as readonly string[]).includes(path);
}

/** Partition key of the override item of `agent`, or of the stack when `agent` is undefined. */
export function limitOverrideKey(agent: string | undefined): string {
  return agent === undefined ? 'limits#stack' : `limits#agent#${keyPart(agent)}`;
}

/** Limit values an operator set at runtime, by limit path. A path left out keeps the configured limit. */
export interface LimitOverrides {
  readonly agent: Readonly<Partial<Record<AgentLimitPath, number>>>;
  readonly stack: Readonly<Partial<Record<StackLimitPath, number>>>;
}

/** Overrides that change nothing. */
export const NO_OVERRIDES: LimitOverrides = { agent: {}, stack: {} };

/**
 * Checks a limit value for `path` and returns a description of the problem,
 * or undefined when it is valid. Dollar limits take any finite amount of
 * zero or more, and token and request limits whole numbers of zero or more.
 * A limit of zero rejects every call.
 */
export function checkLimitValue(path: LimitPath, value: number): string | undefined {
  const isUsd = path.endsWith('.usd');
  if (!Number.isFinite(value) || value < 0 || (!isUsd && !Number.isInteger(value))) {
    const expected = isUsd ? 'a dollar amount of 0 or more' : 'a whole number of 0 or more';
    return `${path} must be ${expected} (got ${value})`;
  }
  return undefined;
}

function pickOverrides<P extends LimitPath>(
  item: Record<string, unknown> | undefined,
  paths: readonly P[],
): Partial<Record<P, number>> {
  const picked: Partial<Record<P, number>> = {};
  for (const path of paths) {
    const value = item?.[path];
    // A value that is not a valid limit is ignored, so a bad write cannot lift a configured limit.
    if (typeof value === 'number' && checkLimitValue(path, value) === undefined) {
      picked[path] = value;
    }
  }
  return picked;
}

function withSpend(
  limits: WindowLimits | undefined,
  overrides: Readonly<Record<string, number>>,
  prefix: string,
): WindowLimits | undefined {
  const windows: Record<string, SpendLimits> = {};
  for (const window of ['daily', 'monthly'] as const) {
    const merged: SpendLimits = {
      ...limits?.[window],
      ...(overrides[`${prefix}.${window}.tokens`] === undefined ? {} : { tokens: overrides[`${prefix}.${window}.tokens`] }),
      ...(overrides[`${prefix}.${window}.usd`] === undefined ? {} : { usd: overrides[`${prefix}.${window}.usd`] }),
    };
    if (merged.tokens !== undefined || merged.usd !== undefined) {
      windows[window] = merged;
    }
  }
  return Object.keys(windows).length === 0 ? undefined : windows;
}

function withRate(
  limits: RateLimits | undefined,
  overrides: Readonly<Record<string, number>>,
  prefix: string,
): RateLimits | undefined {
  const requests = overrides[`${prefix}.requestsPerMinute`];
  const tokens = overrides[`${prefix}.tokensPerMinute`];
  const merged: RateLimits = {
    ...limits,
    ...(requests === undefined ? {} : { requestsPerMinute: requests }),
    ...(tokens === undefined ? {} : { tokensPerMinute: tokens }),
  };
  return merged.requestsPerMinute === undefined && merged.tokensPerMinute === undefined ? undefined : merged;
}

/** Returns the budget settings of `agent` with `overrides` applied. */
export function effectiveAgentBudget(
  configured: AgentBudgetConfig | undefined,
  overrides: LimitOverrides['agent'],
): AgentBudgetConfig {
  const values = overrides as Readonly<Record<string, number>>;
  return {
    agent: withSpend(configured?.agent, values, 'agent'),
    perUser: withSpend(configured?.perUser, values, 'perUser'),
    agentRate: withRate(configured?.agentRate, values, 'agentRate'),
    perUserRate: withRate(configured?.perUserRate, values, 'perUserRate'),
  };
}

/**
 * Returns `config` with the overrides of `agent` and of the stack applied,
 * so that counters are planned against the limits in force.
 */
export function applyOverrides(
  config: GatewayBudgetConfig,
  agent: string,
  overrides: LimitOverrides,
): GatewayBudgetConfig {
  if (Object.keys(overrides.agent).length === 0 && Object.keys(overrides.stack).length === 0) {
    return config;
  }
  const configured = Object.hasOwn(config.agents, agent) ? config.agents[agent] : undefined;
  return {
    ...config,
    stack: withSpend(config.stack, overrides.stack as Readonly<Record<string, number>>, 'stack'),
    agents: { ...config.agents, [agent]: effectiveAgentBudget(configured, overrides.agent) },
  };
}

/** Settings of {@link LimitOverrideStore}. */
export interface LimitOverrideStoreOptions {
  readonly client: DynamoDBDocumentClient;
  /** Name of the ledger table. */
  readonly table: string;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /**
   * Milliseconds a read is reused. A change therefore takes effect on a
   * warm gateway instance up to this long after it is written.
   * @default 2000
   */
  readonly cacheTtlMs?: number;
}

/** A change to one limit: a value sets it, `undefined` removes the override so the configured limit applies again. */
export interface LimitChange {
  /** Agent whose limit changes; leave out for a stack limit. */
  readonly agent?: string;
  readonly path: LimitPath;
  readonly value: number | undefined;
  /** Name of the operator, kept on the item. */
  readonly changedBy: string;
}

/**
 * Limits set at runtime in the budget ledger table: one item per agent and
 * one for the stack, each with one attribute per overridden limit path. The
 * gateway reads both items of an agent in one round trip and reuses the read
 * for a short time.
 */
export class LimitOverrideStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly now: () => number;
  private readonly cacheTtlMs: number;
  private readonly cache = new Map<string, { overrides: LimitOverrides; readAt: number }>();
  /** Reads in flight per agent, shared by concurrent calls so that a burst costs one read. */
  private readonly pending = new Map<string, Promise<LimitOverrides>>();

  constructor(options: LimitOverrideStoreOptions) {
    this.client = options.client;
    this.table = options.table;
    this.now = options.now ?? Date.now;
    this.cacheTtlMs = options.cacheTtlMs ?? 2_000;
  }

  /** Returns the overrides that apply to calls of `agent`: its own and the stack's. */
  async get(agent: string): Promise<LimitOverrides> {
    const nowMs = this.now();
    const cached = this.cache.get(agent);
    if (cached !== undefined && nowMs - cached.readAt < this.cacheTtlMs) {
      return cached.overrides;
    }
    let read = this.pending.get(agent);
    if (read === undefined) {
      read = this.readOverrides(agent).finally(() => this.pending.delete(agent));
      this.pending.set(agent, read);
    }
    const overrides = await read;
    this.cache.set(agent, { overrides, readAt: nowMs });
    return overrides;
  }

  private async readOverrides(agent: string): Promise<LimitOverrides> {
    const agentKey = { pk: limitOverrideKey(agent), sk: LIMIT_OVERRIDE_SORT_KEY };
    const stackKey = { pk: limitOverrideKey(undefined), sk: LIMIT_OVERRIDE_SORT_KEY };
    let keys: Record<string, unknown>[] = [agentKey, stackKey];
    const items: Record<string, unknown>[] = [];
    // BatchGetItem may return some keys unprocessed under load, so those keys are requested again.
    for (let attempt = 0; keys.length > 0; attempt++) {
      if (attempt === 5) {
        throw new Error(
          `Reading the limit overrides of agent ${agent} from table ${this.table} failed: keys were ` +
            'still unprocessed after 5 attempts, which means the table is throttled. Retry later.',
        );
      }
      const result = await this.client.send(
        new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }),
      );
      items.push(...(result.Responses?.[this.table] ?? []));
      keys = result.UnprocessedKeys?.[this.table]?.Keys ?? [];
    }
    return {
      agent: pickOverrides(items.find((item) => item.pk === agentKey.pk), AGENT_LIMIT_PATHS),
      stack: pickOverrides(items.find((item) => item.pk === stackKey.pk), STACK_LIMIT_PATHS),
    };
  }

  /** Returns the raw override item of `agent`, or of the stack when `agent` is undefined, for display. */
  async read(agent: string | undefined): Promise<Record<string, unknown> | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({
        TableName: this.table,
        Key: { pk: limitOverrideKey(agent), sk: LIMIT_OVERRIDE_SORT_KEY },
        ConsistentRead: true,
      }),
    );
    return Item;
  }

  /** Sets or removes one override in a single update, and records who changed it and when. */
  async change(change: LimitChange): Promise<void> {
    const { agent, path, value } = change;
    const isStackPath = (STACK_LIMIT_PATHS as readonly string[]).includes(path);
    if (isStackPath !== (agent === undefined)) {
      throw new Error(
        isStackPath
          ? `Limit ${path} applies to the whole stack, so it takes no agent (got agent ${agent}).`
          : `Limit ${path} applies to one agent; name the agent.`,
      );
    }
    if (value !== undefined) {
      const problem = checkLimitValue(path, value);
      if (problem !== undefined) {
        throw new Error(`Invalid limit: ${problem}.`);
      }
    }
    const changedAt = new Date(this.now()).toISOString();
    await this.client.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: limitOverrideKey(agent), sk: LIMIT_OVERRIDE_SORT_KEY },
        UpdateExpression:
          value === undefined
            ? 'SET changedBy = :by, changedAt = :at REMOVE #path'
            : 'SET #path = :value, changedBy = :by, changedAt = :at',
        ExpressionAttributeNames: { '#path': path },
        ExpressionAttributeValues: {
          ':by': change.changedBy,
          ':at': changedAt,
          ...(value === undefined ? {} : { ':value': value }),
        },
      }),
    );
    this.cache.clear();
  }
}
