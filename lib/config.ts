import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { agentBudgetIssues, windowLimitIssues } from '../constructs/budget-settings';
import { guardrailSettingsIssues } from '../constructs/gateway-guardrail-checks';
import { breakerSettingsIssues, clientSettingsIssues, SettingsIssue } from '../constructs/gateway-settings';
import { foundationModelOf, priceTarget } from '../constructs/model-prices';
import {
  AgentStackConfig,
  configSchema,
  MAX_REALTIME_TASK_TIMEOUT_SECONDS,
  MAX_VISIBILITY_TIMEOUT_SECONDS,
  VISIBILITY_MARGIN_SECONDS,
} from './config-schema';

/** One problem found in a config, with the JSON path of the field. */
export interface ConfigIssue {
  /** JSON path such as `$.agents[1].scaling.minTasks`. */
  readonly path: string;
  readonly message: string;
  /** The rejected value, when there is one. */
  readonly value?: unknown;
}

/** Raised when a config fails validation. It lists every problem at once. */
export class ConfigError extends Error {
  public override readonly name = 'ConfigError';

  constructor(
    public readonly issues: ConfigIssue[],
    public readonly source = 'config',
  ) {
    super(
      `Invalid ${source}:\n` +
        issues.map((i) => `  ${i.path}: ${i.message}${formatValue(i.value)}`).join('\n'),
    );
  }
}

function formatValue(value: unknown): string {
  if (value === undefined) return '';
  const text = JSON.stringify(value);
  const truncated = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return ` (got ${truncated})`;
}

function jsonPath(segments: ReadonlyArray<PropertyKey>): string {
  let result = '$';
  for (const segment of segments) {
    if (typeof segment === 'number') result += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(String(segment))) result += `.${String(segment)}`;
    else result += `[${JSON.stringify(String(segment))}]`;
  }
  return result;
}

function fromZodIssue(issue: z.core.$ZodIssue): ConfigIssue[] {
  // One issue per unknown key, at the path of the key itself.
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: jsonPath([...issue.path, key]),
      message: 'unknown key; remove it or check its spelling',
    }));
  }
  // Zod reports a bad discriminator with the whole object as input, so the
  // issue shows the discriminator value and the allowed values instead.
  if (issue.code === 'invalid_union' && issue.discriminator !== undefined && 'options' in issue) {
    const allowed = (issue.options ?? []).map((option) => JSON.stringify(option)).join(', ');
    const input = issue.input as Record<string, unknown> | undefined;
    return [{ path: jsonPath(issue.path), message: `expected one of ${allowed}`, value: input?.[issue.discriminator] }];
  }
  return [{ path: jsonPath(issue.path), message: issue.message, value: issue.input }];
}

/** Fargate memory sizes in MiB allowed for each CPU setting. */
function allowedFargateMemory(cpu: number): { min: number; max: number; step: number } {
  switch (cpu) {
    case 256:
      return { min: 512, max: 2_048, step: 512 };
    case 512:
      return { min: 1_024, max: 4_096, step: 1_024 };
    case 1024:
      return { min: 2_048, max: 8_192, step: 1_024 };
    case 2048:
      return { min: 4_096, max: 16_384, step: 1_024 };
    case 4096:
      return { min: 8_192, max: 30_720, step: 1_024 };
    case 8192:
      return { min: 16_384, max: 61_440, step: 4_096 };
    default:
      return { min: 32_768, max: 122_880, step: 8_192 };
  }
}

/** Checks that span several fields, run after the schema has passed. */
function crossFieldIssues(config: AgentStackConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (p: Array<string | number>, message: string, value?: unknown) =>
    issues.push({ path: jsonPath(p), message, value });

  if (config.account !== undefined && config.availabilityZones === undefined) {
    add(['availabilityZones'], 'required when account is set, because the stack never looks zones up; list at least two zones of the region');
  }
  for (const [i, zone] of (config.availabilityZones ?? []).entries()) {
    if (!zone.startsWith(config.region)) add(['availabilityZones', i], `expected a zone of region ${config.region}`, zone);
  }
  if (config.availabilityZones && config.availabilityZones.length < config.network.maxAzs) {
    add(['network', 'maxAzs'], `is larger than the ${config.availabilityZones.length} zones listed in availabilityZones`, config.network.maxAzs);
  }

  const seenAgents = new Map<string, number>();
  config.agents.forEach((agent, a) => {
    const at = (...rest: Array<string | number>) => ['agents', a, ...rest];
    const first = seenAgents.get(agent.name);
    if (first !== undefined) add(at('name'), `duplicate agent name; agents[${first}] already uses it`, agent.name);
    seenAgents.set(agent.name, a);

    if (!(agent.route in config.routes)) {
      add(at('route'), `no such route; expected one of ${Object.keys(config.routes).join(', ') || '(none defined)'}`, agent.route);
    }
    if (agent.history && !(agent.history.summaryRoute in config.routes)) {
      add(at('history', 'summaryRoute'), `no such route; expected one of ${Object.keys(config.routes).join(', ') || '(none defined)'}`, agent.history.summaryRoute);
    }

    const seenTools = new Map<string, number>();
    agent.tools.forEach((tool, t) => {
      const previous = seenTools.get(tool.name);
      if (previous !== undefined) add(at('tools', t, 'name'), `tool named twice in this agent; tools[${previous}] already uses it`, tool.name);
      seenTools.set(tool.name, t);
      if ('functionArn' in tool.handler && tool.policyStatements.length > 0) {
        add(at('tools', t, 'policyStatements'), 'applies only to bundled tools (handler.entry); grant an existing function its permissions where it is defined');
      }
      tool.policyStatements.forEach((statement, p) => {
        const wildcards = [...statement.actions, ...statement.resources].filter((value) => value.includes('*'));
        if (wildcards.length > 0 && statement.reason === undefined) {
          add(
            at('tools', t, 'policyStatements', p),
            `uses the wildcard ${wildcards.join(', ')}, which cdk-nag rule AwsSolutions-IAM5 rejects unless a reason is recorded; narrow it, or add "reason" saying why the tool needs it`,
          );
        }
      });
    });

    const memory = allowedFargateMemory(agent.limits.cpu);
    const mem = agent.limits.memoryMiB;
    if (mem < memory.min || mem > memory.max || mem % memory.step !== 0) {
      add(at('limits', 'memoryMiB'), `not valid with cpu ${agent.limits.cpu}; Fargate allows ${memory.min} to ${memory.max} in steps of ${memory.step}`, mem);
    }
    if (agent.limits.maxTokensPerCall > agent.limits.maxTokensPerTask) {
      add(at('limits', 'maxTokensPerCall'), `exceeds maxTokensPerTask (${agent.limits.maxTokensPerTask})`, agent.limits.maxTokensPerCall);
    }

    const minTasks = agent.scaling.minTasks ?? (agent.mode === 'realtime' ? 1 : 0);
    if (minTasks > agent.scaling.maxTasks) {
      add(at('scaling', 'minTasks'), `exceeds maxTasks (${agent.scaling.maxTasks})`, minTasks);
    }
    agent.scaling.warmWindows.forEach((w, i) => {
      if (w.minTasks > agent.scaling.maxTasks) add(at('scaling', 'warmWindows', i, 'minTasks'), `exceeds maxTasks (${agent.scaling.maxTasks})`, w.minTasks);
    });

    if (agent.mode === 'realtime') {
      if (minTasks === 0) {
        add(at('scaling', 'minTasks'), 'must be at least 1 for a realtime agent: with no task behind the load balancer there is no request metric to scale out on', 0);
      }
      if (agent.limits.taskTimeoutSeconds > MAX_REALTIME_TASK_TIMEOUT_SECONDS) {
        add(at('limits', 'taskTimeoutSeconds'), `must be at most ${MAX_REALTIME_TASK_TIMEOUT_SECONDS} for a realtime agent, which answers within one HTTP request; use mode background for longer work`, agent.limits.taskTimeoutSeconds);
      }
    } else if (agent.limits.taskTimeoutSeconds + VISIBILITY_MARGIN_SECONDS > MAX_VISIBILITY_TIMEOUT_SECONDS) {
      add(at('limits', 'taskTimeoutSeconds'), `must be at most ${MAX_VISIBILITY_TIMEOUT_SECONDS - VISIBILITY_MARGIN_SECONDS}, so that the queue visibility timeout (task timeout plus ${VISIBILITY_MARGIN_SECONDS} s) stays within the SQS maximum of 12 hours`, agent.limits.taskTimeoutSeconds);
    }
  });

  const realtime = config.agents.filter((a) => a.mode === 'realtime');
  if (realtime.length > 0 && config.endpoint === undefined) {
    add(['endpoint'], `required because agent ${realtime[0].name} is realtime; set endpoint.auth`);
  }
  const idleTimeout = config.endpoint?.idleTimeoutSeconds;
  if (idleTimeout !== undefined && realtime.length > 0) {
    const longest = Math.max(...realtime.map((agent) => agent.limits.taskTimeoutSeconds));
    if (idleTimeout < longest + 5) {
      add(['endpoint', 'idleTimeoutSeconds'], `would cut off buffered responses of realtime agents whose taskTimeoutSeconds is ${longest}; use at least ${longest + 5} or leave it unset`, idleTimeout);
    }
  }
  const auth = config.endpoint?.auth;
  if (auth && (auth.type === 'cognito' || auth.type === 'oidc') && !config.endpoint?.certificateArn) {
    add(['endpoint', 'certificateArn'], `required with auth type ${auth.type}, because the load balancer authenticates only on HTTPS listeners`);
  }
  if (auth && auth.type !== 'none' && realtime.length > 0 && config.network.natGateways === 0) {
    add(['network', 'natGateways'], `must be at least 1 with auth type ${auth.type}: realtime tasks fetch the token signing keys over the internet`, 0);
  }
  if (config.gateway.inVpc && config.network.natGateways === 0) {
    add(['network', 'natGateways'], 'must be at least 1 with gateway.inVpc, because Bedrock in other regions is reached through NAT', 0);
  }

  // The gateway's client timeouts, breaker and guardrail, checked by the
  // same functions the ModelGateway construct uses.
  const addAll = (prefix: Array<string | number>, found: SettingsIssue[]) =>
    found.forEach((issue) => add([...prefix, ...issue.path], issue.message, issue.value));
  const timeoutMs = config.gateway.timeoutSeconds * 1_000;
  addAll(['gateway', 'client'], clientSettingsIssues(config.gateway.client, timeoutMs, 'gateway.timeoutSeconds'));
  addAll(['gateway', 'breaker'], breakerSettingsIssues(config.gateway.breaker));
  if (!('existing' in config.guardrail)) addAll(['guardrail'], guardrailSettingsIssues(config.guardrail));

  issues.push(...budgetIssues(config));
  issues.push(...observabilityIssues(config));
  issues.push(...auditIssues(config));
  return issues;
}

/**
 * Checks the order of the audit log's lifecycle: Glacier Instant Retrieval
 * after Standard-IA, and expiry after both the retention and the last move.
 */
function auditIssues(config: AgentStackConfig): ConfigIssue[] {
  const audit = config.audit;
  const issues: ConfigIssue[] = [];
  if (audit.instantRetrievalAfterDays <= audit.infrequentAccessAfterDays) {
    issues.push({
      path: jsonPath(['audit', 'instantRetrievalAfterDays']),
      message: `must exceed infrequentAccessAfterDays (${audit.infrequentAccessAfterDays}), because records move to Standard-IA first`,
      value: audit.instantRetrievalAfterDays,
    });
  }
  const minExpiry = Math.max(audit.retentionDays, audit.instantRetrievalAfterDays + 1);
  if (audit.expireAfterDays !== undefined && audit.expireAfterDays < minExpiry) {
    issues.push({
      path: jsonPath(['audit', 'expireAfterDays']),
      message:
        `must be at least ${minExpiry}: no less than retentionDays (${audit.retentionDays}) and after instantRetrievalAfterDays ` +
        `(${audit.instantRetrievalAfterDays}); raise it or leave it unset to keep records`,
      value: audit.expireAfterDays,
    });
  }
  return issues;
}

/**
 * Checks that an explicit oldest-message age exceeds every background
 * agent's task timeout. SQS counts messages in flight, so a lower
 * threshold would fire on every task that runs long.
 */
function observabilityIssues(config: AgentStackConfig): ConfigIssue[] {
  const age = config.observability.oldestMessageAgeSeconds;
  const background = config.agents.filter((agent) => agent.mode === 'background');
  if (age === undefined || background.length === 0) return [];
  const longest = background.reduce((found, agent) => (agent.limits.taskTimeoutSeconds > found.limits.taskTimeoutSeconds ? agent : found));
  if (age > longest.limits.taskTimeoutSeconds) return [];
  return [
    {
      path: jsonPath(['observability', 'oldestMessageAgeSeconds']),
      message:
        `must exceed the task timeout of background agent ${longest.name} (${longest.limits.taskTimeoutSeconds} s), because SQS counts ` +
        'messages in flight and the alarm would fire on every long task; raise it or leave it unset for twice each task timeout',
      value: age,
    },
  ];
}

/** Checks the budget section, the agents' budgets and that every route target has a price. */
function budgetIssues(config: AgentStackConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (p: Array<string | number>, message: string, value?: unknown) =>
    issues.push({ path: jsonPath(p), message, value });
  const budget = config.budget;

  if (budget === undefined) {
    config.agents.forEach((agent, a) => {
      if (agent.budget !== undefined) {
        add(['agents', a, 'budget'], 'has no effect without the top-level budget section, which turns the ledger on; add "budget": {} or remove this');
      }
    });
    return issues;
  }

  if (budget.leaseSeconds <= config.gateway.timeoutSeconds) {
    add(
      ['budget', 'leaseSeconds'],
      `must be longer than gateway.timeoutSeconds (${config.gateway.timeoutSeconds}), or a reservation could be reclaimed while its call still runs; raise leaseSeconds or lower gateway.timeoutSeconds`,
      budget.leaseSeconds,
    );
  }
  windowLimitIssues(budget.stack).forEach((issue) => add(['budget', 'stack', ...issue.path], issue.message, issue.value));
  config.agents.forEach((agent, a) => {
    if (agent.budget) agentBudgetIssues(agent.budget).forEach((issue) => add(['agents', a, 'budget', ...issue.path], issue.message, issue.value));
  });

  // Every target needs a price, or the gateway could not reserve for it.
  const options = { overrides: budget.prices, regionalPremiumPercent: budget.regionalPremiumPercent };
  for (const [route, targets] of Object.entries(config.routes)) {
    targets.forEach((target, t) => {
      if (priceTarget(target.modelId, options) === undefined) {
        const model = foundationModelOf(target.modelId);
        add(
          ['routes', route, t, 'modelId'],
          `has no price: the built-in table does not list ${model}; add budget.prices["${model}"] with inputPerMillion, outputPerMillion, cacheReadPerMillion and cacheWritePerMillion in US dollars`,
          target.modelId,
        );
      }
    });
  }
  return issues;
}

/**
 * Validates a config object, applies the documented defaults and returns
 * the result. Raises {@link ConfigError} listing every problem.
 *
 * @param source names the input in the error message, such as a file path.
 */
export function validateConfig(input: unknown, source = 'config'): AgentStackConfig {
  const parsed = configSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.flatMap(fromZodIssue), source);
  }
  const issues = crossFieldIssues(parsed.data);
  if (issues.length > 0) throw new ConfigError(issues, source);
  return parsed.data;
}

/**
 * Reads a JSON config file and validates it. Relative tool entries are
 * resolved against the folder of the file.
 */
export function loadConfig(file: string): AgentStackConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (error) {
    throw new ConfigError([{ path: '$', message: `cannot read file: ${(error as Error).message}` }], absolute);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([{ path: '$', message: `invalid JSON: ${(error as Error).message}` }], absolute);
  }
  const config = validateConfig(json, absolute);
  return resolveToolEntries(config, path.dirname(absolute), absolute);
}

/**
 * Returns a copy of the config whose relative tool entry paths are
 * absolute. Raises {@link ConfigError} for an entry file that does not exist.
 *
 * @param source names the input in the error message, such as a file path.
 */
export function resolveToolEntries(config: AgentStackConfig, baseDir: string, source = 'config'): AgentStackConfig {
  const issues: ConfigIssue[] = [];
  const agents = config.agents.map((agent, a) => ({
    ...agent,
    tools: agent.tools.map((tool, t) => {
      if (!('entry' in tool.handler)) return tool;
      const entry = path.resolve(baseDir, tool.handler.entry);
      if (!fs.existsSync(entry)) {
        issues.push({
          path: jsonPath(['agents', a, 'tools', t, 'handler', 'entry']),
          message: `file not found at ${entry}; paths are relative to ${baseDir}`,
          value: tool.handler.entry,
        });
      }
      return { ...tool, handler: { entry } };
    }),
  }));
  if (issues.length > 0) throw new ConfigError(issues, source);
  return { ...config, agents };
}

/** Queue visibility timeout for a background agent, derived from its task timeout. */
export function visibilityTimeoutSeconds(taskTimeoutSeconds: number): number {
  return taskTimeoutSeconds + VISIBILITY_MARGIN_SECONDS;
}

export type {
  AgentConfig,
  AgentStackConfig,
  BudgetConfig,
  AgentStackConfigInput,
  AuthConfig,
  GatewayConfig,
  GuardrailConfig,
  ModelTargetConfig,
  ToolConfig,
} from './config-schema';
