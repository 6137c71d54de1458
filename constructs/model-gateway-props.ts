import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { ModelTarget, PromptCacheMode, ResponseCacheScope } from '../lambda/shared/contracts';
import type { ExistingGuardrail, GatewayGuardrailSettings } from './gateway-guardrail-settings';
import type { AuditLog } from './audit-log';
import type { TokenBudget } from './token-budget';

/** One agent the gateway serves. */
export interface ModelGatewayAgent {
  /** Agent name, as the worker sends it. */
  readonly name: string;
  /** Ordered Bedrock targets; the first is the primary. */
  readonly route: ModelTarget[];
  /** Largest `maxTokens` one call may request. */
  readonly maxTokensPerCall: number;

  /**
   * Check the agent's tool results before they go back to the model, with
   * the prompt-injection patterns and with ApplyGuardrail on the gateway's
   * guardrail, because a guardrail on the model call does not evaluate them.
   * A result that a check blocks ends the call with GuardrailBlockedError.
   *
   * @default true
   */
  readonly checkToolResults?: boolean;

  /**
   * Tools whose results are not checked, because they return only data the
   * stack controls. It has no effect when `checkToolResults` is false.
   *
   * @default - none: the result of every tool is checked
   */
  readonly trustedTools?: string[];

  /**
   * When the gateway adds Bedrock prompt cache points after the agent's
   * tool definitions and system prompt. A cache point goes only into a
   * field that the target's model accepts and where the prefix reaches the
   * model's minimum tokens per cache point, so a failover target gets only
   * the points its model accepts. `auto` adds them only when the expected
   * calls within the cache's 5-minute lifetime make a cache write, which
   * costs more than plain input, pay off. `always` skips that check and
   * `off` adds none.
   *
   * @default 'auto'
   */
  readonly promptCache?: PromptCacheMode;

  /**
   * Calls with the same tool definitions and system prompt that the agent
   * is expected to make in 5 minutes, across all gateway instances. With
   * `promptCache: 'auto'` the gateway uses the larger of this and the count
   * one instance observes, which undercounts when Lambda spreads the calls
   * over several instances.
   *
   * @default - none: only the observed count
   */
  readonly expectedCallsPer5Minutes?: number;

  /**
   * Agent whose suspension, budgets and rate limits this entry's calls
   * count against, such as the agent whose history summaries it writes.
   *
   * @default - the entry's own name
   */
  readonly budgetAgent?: string;

  /**
   * Exact-match response cache: a request equal to an earlier one in
   * every part that reaches the model gets the stored response instead of
   * a model call. The hit reserves and spends no tokens, but
   * still counts against the request rate limits, has its output redacted
   * and is audited. The gateway creates the response cache table when any
   * agent sets this.
   *
   * @default - no response cache
   */
  readonly responseCache?: ModelGatewayResponseCache;
}

/** Exact-match response cache of one agent. */
export interface ModelGatewayResponseCache {
  /** Time a stored response is served, in whole seconds from 1 second to 365 days. */
  readonly ttl: Duration;

  /**
   * Scope of the cached responses, which sets who shares them. With
   * `user` a response is served only to the user whose request stored it.
   * With `agent` every user of the agent gets the responses that any
   * user's requests stored, which suits only prompts that carry no user's
   * data, such as questions about public documentation. `agent` cannot be
   * combined with `cacheToolTurns`.
   *
   * @default 'user'
   */
  readonly scope?: ResponseCacheScope;

  /**
   * Cache requests whose conversation contains a tool call or a tool
   * result. Tool results carry data fetched for one user at one time, so
   * such a response is only as fresh as the TTL allows.
   *
   * @default false
   */
  readonly cacheToolTurns?: boolean;
}

/**
 * Timeouts and retries of the gateway's Bedrock clients. Each bounds one
 * attempt on one target, so that a slow or failing target hands over to
 * the next one instead of holding the request. They must nest:
 * connect <= first byte <= attempt <= request deadline < Lambda timeout.
 * A default is lowered to the next wider bound when that bound is shorter.
 */
export interface GatewayClientOptions {
  /**
   * Time to open a TCP and TLS connection, in milliseconds.
   *
   * @default 1000
   */
  readonly connectTimeoutMs?: number;

  /**
   * Time from sending a request to the first byte of the response, in
   * milliseconds.
   *
   * @default 10000
   */
  readonly firstByteTimeoutMs?: number;

  /**
   * Time one buffered attempt may take in total, in milliseconds.
   *
   * @default 60000
   */
  readonly attemptTimeoutMs?: number;

  /**
   * Attempts the SDK makes on one target, the first included, before the
   * gateway fails over. It applies to every route; each retry of a throttle
   * first waits a random 0 to 1000 ms of SDK backoff.
   *
   * @default 1
   */
  readonly sdkMaxAttempts?: number;

  /**
   * Time one gateway request may take across every target, in
   * milliseconds. It must be below the Lambda timeout.
   *
   * @default - the Lambda timeout minus 5 s, or minus a tenth of it when
   * the timeout is under 50 s
   */
  readonly requestDeadlineMs?: number;
}

/** Circuit breaker per target, shared by all gateway instances through the state table. */
export interface GatewayBreakerOptions {
  /**
   * Consecutive failures that open a target's breaker.
   *
   * @default 5
   */
  readonly failureThreshold?: number;

  /**
   * Time an open breaker skips its target before one probe may try it, in
   * seconds.
   *
   * @default 30
   */
  readonly cooldownSeconds?: number;

  /**
   * Time an instance trusts breaker state it read from the state table, in
   * milliseconds. It must be below the cooldown.
   *
   * @default 2000
   */
  readonly cacheTtlMs?: number;
}

export interface ModelGatewayProps {
  /** Agents the gateway serves, with their routes. */
  readonly agents: ModelGatewayAgent[];

  /**
   * Key that encrypts the function's environment, its log group, the state
   * table and the guardrail the gateway creates.
   *
   * @default - AWS managed keys
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Memory of the gateway function.
   *
   * @default 1024
   */
  readonly memorySize?: number;

  /**
   * Timeout of one gateway invocation.
   *
   * @default Duration.minutes(2)
   */
  readonly timeout?: Duration;

  /**
   * Retention of the gateway's logs.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Place the gateway in this VPC. Its subnets then need NAT egress, since
   * interface endpoints serve only their own region and the gateway calls
   * Bedrock in several.
   *
   * @default - outside any VPC
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Subnets for the gateway when `vpc` is set.
   *
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Timeouts and retries of the Bedrock clients.
   *
   * @default - every default of GatewayClientOptions
   */
  readonly client?: GatewayClientOptions;

  /**
   * Circuit breaker settings.
   *
   * @default - every default of GatewayBreakerOptions
   */
  readonly breaker?: GatewayBreakerOptions;

  /**
   * The guardrail applied to every model call: settings for a guardrail the
   * gateway creates, or `{ guardrailId, guardrailVersion }` of an existing
   * one. The gateway is granted `bedrock:ApplyGuardrail` on it either way.
   * An existing guardrail must be in the stack's account, and in the
   * stack's region unless `guardrailRegion` names another. When a customer
   * managed key encrypts it, grant the gateway role `kms:Decrypt` on that
   * key yourself.
   *
   * A guardrail exists in one region, and a Converse call to a target in
   * another region that names it fails with a ValidationException (the
   * guardrail "does not exist"). The gateway therefore names the guardrail
   * only in calls to targets in its region, and checks the input and output
   * of other calls with ApplyGuardrail in the guardrail's region.
   *
   * @default - a guardrail with HIGH content filters on prompts and
   * responses and HIGH prompt-attack filtering on prompts
   */
  readonly guardrail?: GatewayGuardrailSettings | ExistingGuardrail;

  /**
   * Execution environments kept initialized, so that requests skip the
   * cold start. With a value above 0 the gateway publishes a version and an
   * alias `live` that carries the provisioned concurrency, and callers
   * invoke the alias.
   *
   * Cost: provisioned concurrency is billed for every hour it is
   * configured, whether or not requests arrive, at
   * `provisionedConcurrency x memory in GB x hours x price per GB-hour`,
   * plus the usual request and duration charges. For the gateway's Arm
   * architecture in us-east-1 the price is about $0.0000033334 per
   * GB-second ($0.012 per GB-hour), so 2 environments of 1024 MB cost
   * about 2 x 1 x 730 x $0.012 = $17.52 a month.
   * Source: https://aws.amazon.com/lambda/pricing/
   *
   * NOTE: the per-GB-second price is an estimate as of 2026, taken from
   * https://awsnegotiations.com/lambda-provisioned-concurrency-cost.html;
   * prices differ per region, so check the pricing page.
   *
   * @default 0
   */
  readonly provisionedConcurrency?: number;

  /**
   * The budget ledger and limits the gateway enforces. The gateway is
   * granted the ledger actions, and its environment receives the limits
   * and a price for every target of every agent. The lease of the budget
   * must be longer than `timeout`, so that no reservation is reclaimed
   * while its call still runs.
   *
   * @default - no budget: the gateway reserves nothing
   */
  readonly budget?: TokenBudget;

  /**
   * Audit log of model calls, budget rejections and guard verdicts. The
   * function gets the log's environment and may put records on its stream.
   *
   * @default - none, so the gateway records nothing
   */
  readonly auditLog?: AuditLog;
}
