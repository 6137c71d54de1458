import { parseArgs } from 'node:util';
import { AUDIT_STREAM_ENV, NO_AUDIT, type AuditSink } from '../shared/audit';
import { createFirehoseBatchSender, createFirehoseClient, FirehoseAuditSink } from '../shared/audit-firehose';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  AGENT_LIMIT_PATHS,
  isLimitPath,
  LimitOverrideStore,
  STACK_LIMIT_PATHS,
} from '../gateway/budget/overrides';
import { isSuspensionReason, SuspensionStore, type Suspension } from '../gateway/budget/suspension';
import { purgeResponseCache } from '../gateway/response-cache';
import { ApprovalStore } from '../shared/approvals';
import {
  APPROVALS_TABLE_ENV,
  ApprovalsCommandError,
  ApprovalsUsageError,
  runApprovalsCommand,
} from './approvals-command';
import { readSpendReport, type SpendLine, type SpendReport } from './spend-report';

/** Environment variable that names the ledger table when `--table` is left out. */
export const LEDGER_TABLE_ENV = 'AGENT_STACK_LEDGER_TABLE';

/** Environment variable that names the response cache table when `--cache-table` is left out. */
export const RESPONSE_CACHE_TABLE_ENV = 'AGENT_STACK_RESPONSE_CACHE_TABLE';

export const USAGE = `Usage: agent-stack-admin <command> [options]

Reads and changes the budget ledger of a deployed AgentStack. The gateway
and the kill switch read the same items, so a change takes effect on every
gateway instance within 2 seconds. The approvals commands read and decide
the approval requests of high-impact tool calls, and the cache command
deletes responses from the gateway's response cache.

Commands:
  spend [--window day|month] [--at DATE] [--agent NAME]
      Spend per agent and per user in one UTC window, and the window's
      limit counters. DATE is an ISO 8601 date or time inside the window
      (default: now). Scans the ledger table.
  status --agent NAME
      The agent's suspension and the limits set at runtime for it and for
      the stack.
  suspend --agent NAME [--until TIME] [--reason operator|anomaly|budget-exhausted]
      Suspends the agent: the gateway rejects its calls and its background
      workers stop taking tasks. Without --until it lasts until a resume.
  resume --agent NAME
      Lifts the agent's suspension.
  set-limit (--agent NAME | --stack) --limit PATH --value NUMBER
      Overrides one configured limit at runtime; 0 rejects every call. A
      limit on a scope that had none counts spend from when it is set.
  clear-limit (--agent NAME | --stack) --limit PATH
      Removes an override, so that the configured limit applies again.
  approvals list --agent NAME
      Pending approval requests of the agent, soonest deadline first.
  approvals show --id ID
      One request: the tool, its exact arguments, the user, the session
      and the state.
  approvals approve --id ID [--reason TEXT]
  approvals deny --id ID [--reason TEXT]
      Decides a pending request before its deadline. The approver recorded
      is --by NAME with the ARN of your AWS credentials from STS, such as
      "ops-alice (arn:aws:sts::111122223333:assumed-role/Ops/alice)", or
      --by NAME alone when STS cannot be reached or --endpoint is set. A
      background agent is resumed through a message on its task queue.
  cache purge --agent NAME [--user ID]
      Deletes the agent's cached responses, or with --user only those of
      one user: the responses in the user's own scope and the shared
      responses that the user's requests stored.

Limit paths:
  agent:  ${AGENT_LIMIT_PATHS.join(', ')}
  stack:  ${STACK_LIMIT_PATHS.join(', ')}

Options:
  --table NAME       ledger table (default: $${LEDGER_TABLE_ENV}; the stack output LedgerTableName)
  --approvals-table NAME
                     approvals table (default: $${APPROVALS_TABLE_ENV}; the stack output ApprovalsTableName)
  --audit-stream NAME
                     Firehose stream of the audit log, which records approval decisions
                     (default: $${AUDIT_STREAM_ENV}; the stack output AuditStreamName)
  --cache-table NAME response cache table (default: $${RESPONSE_CACHE_TABLE_ENV}; the stack output ResponseCacheTableName)
  --user ID          user id, as the gateway receives it from the verified identity
  --id ID            approval id, from the notification or approvals list
  --region REGION    AWS region (default: $AWS_REGION)
  --endpoint URL     DynamoDB endpoint, for DynamoDB Local
  --by NAME          who makes the change or decision, kept on the item (default: $USER)
  --json             print JSON instead of tables
  --help             print this text
`;

/** Error in the command line; the CLI prints it with the usage hint and exits with 2. */
export class UsageError extends Error {
  public override readonly name = 'UsageError';
}

/** Output streams, environment and ledger client of one run; tests pass their own. */
export interface CliEnvironment {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** @default - a client for `--endpoint` or the region's DynamoDB endpoint */
  readonly client?: DynamoDBDocumentClient;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Client that sends continuation messages. @default - a client for the region */
  readonly sqs?: SQSClient;
  /**
   * Returns the ARN of the operator's AWS credentials, or undefined when it cannot be read.
   * @default - STS GetCallerIdentity, skipped when `--endpoint` is set
   */
  readonly callerArn?: () => Promise<string | undefined>;
  /**
   * Audit log that approval decisions are written to.
   * @default - a Firehose sink for `--audit-stream` or $AGENT_AUDIT_STREAM, else none
   */
  readonly audit?: AuditSink;
}

const OPTIONS = {
  table: { type: 'string' },
  region: { type: 'string' },
  endpoint: { type: 'string' },
  by: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean' },
  agent: { type: 'string' },
  stack: { type: 'boolean' },
  window: { type: 'string' },
  at: { type: 'string' },
  until: { type: 'string' },
  reason: { type: 'string' },
  limit: { type: 'string' },
  value: { type: 'string' },
  id: { type: 'string' },
  'approvals-table': { type: 'string' },
  'audit-stream': { type: 'string' },
  'cache-table': { type: 'string' },
  user: { type: 'string' },
} as const;

type Options = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function requireAgent(options: Options, command: string): string {
  if (options.agent === undefined || options.agent === '') {
    throw new UsageError(`${command} needs --agent NAME.`);
  }
  return options.agent;
}

function parseTime(value: string, option: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new UsageError(`${option} must be an ISO 8601 date or time such as 2026-12-04T18:00:00Z (got ${value}).`);
  }
  return ms;
}

/** Returns the agent for a limit command, or undefined for `--stack`, checking that the path fits. */
function limitTarget(options: Options, command: string): { agent: string | undefined; path: ReturnType<typeof limitPath> } {
  const path = limitPath(options, command);
  const isStackPath = (STACK_LIMIT_PATHS as readonly string[]).includes(path);
  if (options.stack === true && options.agent !== undefined) {
    throw new UsageError(`${command} takes --agent NAME or --stack, not both.`);
  }
  if (isStackPath && options.stack !== true) {
    throw new UsageError(`Limit ${path} applies to the whole stack; pass --stack instead of --agent.`);
  }
  if (!isStackPath && options.stack === true) {
    throw new UsageError(`Limit ${path} applies to one agent; pass --agent NAME instead of --stack.`);
  }
  return { agent: isStackPath ? undefined : requireAgent(options, command), path };
}

function limitPath(options: Options, command: string) {
  const path = options.limit;
  if (path === undefined || !isLimitPath(path)) {
    throw new UsageError(
      `${command} needs --limit PATH with one of: ${[...AGENT_LIMIT_PATHS, ...STACK_LIMIT_PATHS].join(', ')} ` +
        `(got ${path ?? 'none'}).`,
    );
  }
  return path;
}

function formatUsd(usd: number): string {
  return `$${usd.toFixed(4)}`;
}

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column].length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function spendRows(lines: readonly SpendLine[], withUser: boolean): string[][] {
  return lines.map((line) => [
    line.agent,
    ...(withUser ? [line.userId ?? ''] : []),
    String(line.calls),
    String(line.tokens),
    formatUsd(line.usd),
    String(line.inFlight),
    String(line.reservedTokens),
    String(line.reclaimed),
  ]);
}

function formatSpend(report: SpendReport): string {
  const columns = ['calls', 'tokens', 'cost', 'in flight', 'reserved tokens', 'reclaimed'];
  const parts = [
    `Spend from ${report.start} to ${report.end} (${report.window}), settled calls only in tokens and cost:`,
    '',
    report.agents.length === 0 ? 'No calls in this window.' : table(['agent', ...columns], spendRows(report.agents, false)),
  ];
  if (report.users.length > 0) {
    parts.push('', table(['agent', 'user', ...columns], spendRows(report.users, true)));
  }
  if (report.counters.length > 0) {
    parts.push(
      '',
      'Limit counters of the window (spent plus reserved is what the next reservation is checked against):',
      table(
        ['counter', 'spent tokens', 'spent cost', 'reserved tokens', 'reserved cost'],
        report.counters.map((line) => [
          line.counter,
          String(line.spentTokens),
          formatUsd(line.spentUsd),
          String(line.reservedTokens),
          formatUsd(line.reservedUsd),
        ]),
      ),
    );
  }
  parts.push('', `Scanned ${report.scannedItems} ledger items.`);
  return parts.join('\n');
}

function describeSuspension(suspension: Suspension | undefined): string {
  if (suspension === undefined) {
    return 'not suspended';
  }
  const until = suspension.until === undefined ? 'until resumed' : `until ${new Date(suspension.until).toISOString()}`;
  return `suspended ${until} (reason ${suspension.reason}, by ${suspension.suspendedBy} at ${new Date(suspension.suspendedAt).toISOString()})`;
}

function overridesOf(item: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(item ?? {}).filter(([key]) => isLimitPath(key)));
}

function regionOf(options: Options, env: NodeJS.ProcessEnv): string {
  const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (region === undefined) {
    throw new UsageError('No AWS region: pass --region REGION or set AWS_REGION.');
  }
  return region;
}

function createClient(options: Options, env: NodeJS.ProcessEnv): DynamoDBDocumentClient {
  const region = regionOf(options, env);
  return DynamoDBDocumentClient.from(new DynamoDBClient({ region, ...(options.endpoint ? { endpoint: options.endpoint } : {}) }));
}

/** Returns the ARN of the operator's credentials, or undefined when STS cannot tell. */
async function stsCallerArn(options: Options, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  // A local DynamoDB endpoint usually comes with placeholder credentials that STS would reject.
  if (options.endpoint !== undefined) return undefined;
  const sts = new STSClient({ region: regionOf(options, env) });
  try {
    return (await sts.send(new GetCallerIdentityCommand({}))).Arn;
  } catch {
    return undefined;
  } finally {
    sts.destroy();
  }
}

/** Returns the audit sink for `--audit-stream` or the environment, or NO_AUDIT when neither names a stream. */
function auditSinkFor(options: Options, env: NodeJS.ProcessEnv): AuditSink {
  const streamName = options['audit-stream'] ?? env[AUDIT_STREAM_ENV];
  if (streamName === undefined || streamName === '') {
    return NO_AUDIT;
  }
  const client = createFirehoseClient({ region: regionOf(options, env) });
  return new FirehoseAuditSink({ send: createFirehoseBatchSender(client, streamName) });
}

/** Runs `approvals <subcommand>` against the approvals table. */
async function runApprovals(subcommands: readonly string[], options: Options, environment: CliEnvironment): Promise<void> {
  const { env } = environment;
  if (subcommands.length !== 1) {
    throw new UsageError('approvals needs one of list, show, approve or deny, such as: approvals list --agent support.');
  }
  const tableName = options['approvals-table'] ?? env[APPROVALS_TABLE_ENV];
  if (tableName === undefined || tableName === '') {
    throw new UsageError(
      `No approvals table: pass --approvals-table NAME or set ${APPROVALS_TABLE_ENV} (the stack output ApprovalsTableName).`,
    );
  }
  const client = environment.client ?? createClient(options, env);
  const now = environment.now ?? Date.now;
  let sqs = environment.sqs;
  try {
    await runApprovalsCommand({
      subcommand: subcommands[0],
      store: new ApprovalStore({ client, table: tableName, now }),
      sqs: () => (sqs ??= new SQSClient({ region: regionOf(options, env) })),
      by: options.by ?? env.USER ?? 'operator',
      callerArn: environment.callerArn ?? (() => stsCallerArn(options, env)),
      audit: environment.audit ?? auditSinkFor(options, env),
      agent: options.agent,
      id: options.id,
      reason: options.reason,
      now,
      print: (text, json) => environment.stdout(`${options.json === true ? JSON.stringify(json, null, 2) : text}\n`),
    });
  } catch (error) {
    if (error instanceof ApprovalsUsageError) throw new UsageError(error.message);
    throw error;
  }
}

/** Runs `cache purge` against the response cache table. */
async function runCache(subcommands: readonly string[], options: Options, environment: CliEnvironment): Promise<void> {
  const { env } = environment;
  if (subcommands.length !== 1 || subcommands[0] !== 'purge') {
    throw new UsageError('cache needs the subcommand purge, such as: cache purge --agent support --user alice.');
  }
  const agent = requireAgent(options, 'cache purge');
  if (options.user === '') {
    throw new UsageError('cache purge --user needs a user id; leave --user out to purge every user of the agent.');
  }
  const tableName = options['cache-table'] ?? env[RESPONSE_CACHE_TABLE_ENV];
  if (tableName === undefined || tableName === '') {
    throw new UsageError(
      `No response cache table: pass --cache-table NAME or set ${RESPONSE_CACHE_TABLE_ENV} (the stack output ResponseCacheTableName).`,
    );
  }
  const client = environment.client ?? createClient(options, env);
  const userId = options.user;
  const deleted = await purgeResponseCache({ client, table: tableName, agent, userId });
  const noun = deleted === 1 ? 'response' : 'responses';
  const subject = userId === undefined ? `agent ${agent}` : `user ${userId} of agent ${agent}`;
  const text = `Deleted ${deleted} cached ${noun} of ${subject}.`;
  environment.stdout(`${options.json === true ? JSON.stringify({ agent, userId: userId ?? null, deleted }, null, 2) : text}\n`);
}

/**
 * Runs one admin command with `argv` (the arguments after the program name)
 * and returns the exit code: 0 on success, 1 when the ledger call failed and
 * 2 for an invalid command line.
 */
export async function runAdmin(argv: readonly string[], environment: CliEnvironment): Promise<number> {
  const { stdout, stderr, env } = environment;
  const now = environment.now ?? Date.now;
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    stderr(`${(error as Error).message}\nRun with --help for the commands and options.\n`);
    return 2;
  }
  const { values: options, positionals } = parsed;
  const [command, ...extra] = positionals;
  if (options.help === true || command === undefined) {
    (command === undefined && options.help !== true ? stderr : stdout)(USAGE);
    return command === undefined && options.help !== true ? 2 : 0;
  }
  try {
    if (command === 'approvals') {
      await runApprovals(extra, options, environment);
      return 0;
    }
    if (command === 'cache') {
      await runCache(extra, options, environment);
      return 0;
    }
    if (extra.length > 0) {
      throw new UsageError(`Unexpected arguments after ${command}: ${extra.join(' ')}.`);
    }
    const tableName = options.table ?? env[LEDGER_TABLE_ENV];
    if (tableName === undefined || tableName === '') {
      throw new UsageError(`No ledger table: pass --table NAME or set ${LEDGER_TABLE_ENV} (the stack output LedgerTableName).`);
    }
    const client = environment.client ?? createClient(options, env);
    const by = options.by ?? env.USER ?? 'operator';
    const suspensions = new SuspensionStore({ client, table: tableName, now, cacheTtlMs: 0 });
    const limits = new LimitOverrideStore({ client, table: tableName, now, cacheTtlMs: 0 });
    const print = (text: string, json: unknown) => stdout(`${options.json === true ? JSON.stringify(json, null, 2) : text}\n`);

    switch (command) {
      case 'spend': {
        const window = options.window ?? 'day';
        if (window !== 'day' && window !== 'month') {
          throw new UsageError(`--window must be day or month (got ${window}).`);
        }
        const at = options.at === undefined ? now() : parseTime(options.at, '--at');
        const report = await readSpendReport({ client, table: tableName, window, at, agent: options.agent });
        print(formatSpend(report), report);
        return 0;
      }
      case 'status': {
        const agent = requireAgent(options, command);
        const suspension = await suspensions.getSuspension(agent);
        const agentLimits = overridesOf(await limits.read(agent));
        const stackLimits = overridesOf(await limits.read(undefined));
        const text = [
          `Agent ${agent}: ${describeSuspension(suspension)}`,
          `Limits set at runtime for the agent: ${Object.keys(agentLimits).length === 0 ? 'none' : JSON.stringify(agentLimits)}`,
          `Limits set at runtime for the stack: ${Object.keys(stackLimits).length === 0 ? 'none' : JSON.stringify(stackLimits)}`,
          'Every other limit is the one in the config.',
        ].join('\n');
        print(text, { agent, suspension: suspension ?? null, agentLimits, stackLimits });
        return 0;
      }
      case 'suspend': {
        const agent = requireAgent(options, command);
        const reason = options.reason ?? 'operator';
        if (!isSuspensionReason(reason)) {
          throw new UsageError(`--reason must be operator, anomaly or budget-exhausted (got ${reason}).`);
        }
        const until = options.until === undefined ? undefined : parseTime(options.until, '--until');
        if (until !== undefined && until <= now()) {
          throw new UsageError(`--until ${options.until} is not in the future; pass a later time, or none to suspend until a resume.`);
        }
        const outcome = await suspensions.suspend({ agent, reason, until, suspendedBy: by });
        const text = outcome.applied
          ? `Agent ${agent} is now ${describeSuspension(outcome.suspension)}.`
          : `Agent ${agent} was already ${describeSuspension(outcome.suspension)}, which lasts at least as long, so it was kept.`;
        print(text, outcome);
        return 0;
      }
      case 'resume': {
        const agent = requireAgent(options, command);
        const removed = await suspensions.resume(agent);
        print(
          removed === undefined ? `Agent ${agent} was not suspended.` : `Agent ${agent} is resumed; it was ${describeSuspension(removed)}.`,
          { agent, resumed: removed !== undefined, suspension: removed ?? null },
        );
        return 0;
      }
      case 'set-limit':
      case 'clear-limit': {
        const { agent, path } = limitTarget(options, command);
        let value: number | undefined;
        if (command === 'set-limit') {
          if (options.value === undefined || options.value.trim() === '') {
            throw new UsageError('set-limit needs --value NUMBER.');
          }
          value = Number(options.value);
        }
        try {
          await limits.change({ agent, path, value, changedBy: by });
        } catch (error) {
          if ((error as Error).message.startsWith('Invalid limit')) {
            throw new UsageError((error as Error).message);
          }
          throw error;
        }
        const subject = agent === undefined ? 'the stack' : `agent ${agent}`;
        print(
          value === undefined
            ? `Removed the runtime override of ${path} for ${subject}; the configured limit applies again.`
            : `Set ${path} to ${value} for ${subject}. Gateway instances apply it within 2 seconds.`,
          { agent: agent ?? null, path, value: value ?? null, changedBy: by },
        );
        return 0;
      }
      default:
        throw new UsageError(`Unknown command ${command}.`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      stderr(`${error.message}\nRun with --help for the commands and options.\n`);
      return 2;
    }
    if (error instanceof ApprovalsCommandError) {
      stderr(`${error.message}\n`);
      return 1;
    }
    const cause = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    stderr(`The ${command} command failed: ${cause}\nCheck the table name, the region and your AWS credentials.\n`);
    return 1;
  }
}
