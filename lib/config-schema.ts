import { z } from 'zod';
import { approvalsSchema } from './approvals-config-schema';
import { auditSchema } from './audit-config-schema';
import { agentBudgetSchema, budgetSchema } from './budget-config-schema';
import { firewallSchema } from './firewall-config-schema';
import { gatewaySchema, guardrailSchema } from './gateway-config-schema';
import { observabilitySchema } from './observability-config-schema';
import { historySchema } from './history-config-schema';
import { responseCacheSchema } from './response-cache-config-schema';

/**
 * Schema of `agent-stack.config.json`. Every default written here is the
 * default the README documents, and `test/config.test.ts` pins them.
 */

/** Maximum visibility timeout SQS accepts: 12 hours. */
export const MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200;

/**
 * Seconds a background message stays invisible beyond the task timeout, so
 * that a task finishing at its deadline can still delete its message.
 */
export const VISIBILITY_MARGIN_SECONDS = 60;

/** Maximum task timeout of a realtime agent, below the ALB idle timeout maximum of 4000 s. */
export const MAX_REALTIME_TASK_TIMEOUT_SECONDS = 3_600;

const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/;
const NAME = /^[a-z][a-z0-9-]{0,29}$/;
// Bedrock Converse tool names: letters, digits, `_` and `-`, at most 64 characters.
const TOOL_NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,63}$/;

const positiveInt = (max: number) => z.number().int().min(1).max(max);

export const targetSchema = z.strictObject({
  /** Region the call is sent to. */
  region: z.string().regex(REGION, 'expected an AWS region such as us-east-1'),
  /** Model id (`anthropic.claude-...`) or inference profile id (`us.anthropic...`). */
  modelId: z.string().min(1).max(256),
});

const jwtAuthSchema = z.strictObject({
  type: z.literal('jwt'),
  issuer: z.url({ protocol: /^https$/ }),
  audience: z.array(z.string().min(1)).min(1),
  jwksUri: z.url({ protocol: /^https$/ }),
  userClaim: z.string().min(1).default('sub'),
});

const cognitoAuthSchema = z.strictObject({
  type: z.literal('cognito'),
  userPoolArn: z.string().regex(/^arn:aws[a-z-]*:cognito-idp:/, 'expected a Cognito user pool ARN'),
  userPoolClientId: z.string().min(1),
  userPoolDomain: z.string().min(1),
  userClaim: z.string().min(1).default('sub'),
});

const oidcAuthSchema = z.strictObject({
  type: z.literal('oidc'),
  issuer: z.url({ protocol: /^https$/ }),
  authorizationEndpoint: z.url({ protocol: /^https$/ }),
  tokenEndpoint: z.url({ protocol: /^https$/ }),
  userInfoEndpoint: z.url({ protocol: /^https$/ }),
  clientId: z.string().min(1),
  /** Secrets Manager ARN of the client secret, so the secret never enters the template. */
  clientSecretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, 'expected a Secrets Manager secret ARN'),
  userClaim: z.string().min(1).default('sub'),
});

const noAuthSchema = z.strictObject({ type: z.literal('none') });

export const authSchema = z.discriminatedUnion('type', [
  jwtAuthSchema,
  cognitoAuthSchema,
  oidcAuthSchema,
  noAuthSchema,
]);

const policyStatementSchema = z.strictObject({
  actions: z.array(z.string().regex(/^[a-z0-9-]+:[A-Za-z0-9*]+$/, 'expected service:Action')).min(1),
  resources: z.array(z.string().min(1)).min(1),
  /**
   * Reason the statement needs a `*` in an action or a resource. Required
   * for such a statement, and recorded as the cdk-nag acknowledgement of
   * each wildcard, where reviewers and the review report read it.
   */
  reason: z.string().min(1).optional(),
});

export const toolSchema = z.strictObject({
  name: z.string().regex(TOOL_NAME, 'expected letters, digits, _ or -, starting with a letter, at most 64 characters'),
  description: z.string().min(1).max(1_000),
  /** `high` tools need a person's approval before they run. */
  impact: z.enum(['low', 'high']),
  /** JSON Schema of the tool input. The model receives it and the worker validates against it. */
  inputSchema: z.looseObject({ type: z.literal('object') }),
  handler: z.union(
    [
      z.strictObject({ entry: z.string().regex(/\.(ts|js|mjs)$/, 'expected a .ts, .js or .mjs file') }),
      z.strictObject({ functionArn: z.string().regex(/^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$/, 'expected a Lambda function ARN') }),
    ],
    { error: 'expected exactly one of { "entry": "<file>" } for a bundled tool or { "functionArn": "<arn>" } for an existing function' },
  ),
  timeoutSeconds: positiveInt(900).default(30),
  memoryMiB: z.number().int().min(128).max(10_240).default(256),
  /** Reserved concurrency: the most instances of the tool that run at once. */
  maxConcurrency: positiveInt(1_000).default(10),
  /** Extra permissions for a bundled tool's role, which otherwise can only write its logs. */
  policyStatements: z.array(policyStatementSchema).default([]),
  /**
   * The tool's result may carry text from outside the stack, such as a web
   * page, an email or a record that others write, so the gateway checks it
   * for prompt injection before it reaches the model. Set false for a tool
   * that returns only data the stack controls.
   */
  untrustedOutput: z.boolean().default(true),
});

const warmWindowSchema = z.strictObject({
  /** EventBridge cron expression in UTC, such as `cron(0 8 ? * MON-FRI *)`. */
  schedule: z.string().regex(/^cron\(.+\)$/, 'expected cron(...)'),
  minTasks: z.number().int().min(0).max(1_000),
});

export const agentSchema = z.strictObject({
  name: z.string().regex(NAME, 'expected lower-case letters, digits and -, starting with a letter, at most 30 characters'),
  mode: z.enum(['realtime', 'background']),
  systemPrompt: z.string().min(1).max(100_000),
  /** Name of an entry in `routes`. */
  route: z.string().min(1),
  tools: z.array(toolSchema).default([]),
  limits: z
    .strictObject({
      /** Fargate CPU units. */
      cpu: z.literal([256, 512, 1024, 2048, 4096, 8192, 16384]).default(512),
      memoryMiB: z.number().int().min(512).max(122_880).default(1_024),
      taskTimeoutSeconds: positiveInt(MAX_VISIBILITY_TIMEOUT_SECONDS).default(300),
      maxIterations: positiveInt(100).default(10),
      maxTokensPerTask: positiveInt(10_000_000).default(100_000),
      maxTokensPerCall: positiveInt(200_000).default(4_096),
      /** Largest request or message body the worker accepts. */
      maxBodyBytes: z.number().int().min(1_024).max(1_048_576).default(262_144),
    })
    .prefault({}),
  scaling: z
    .strictObject({
      /** Tasks kept running when idle: by default 1 for realtime and 0 for background agents. */
      minTasks: z.number().int().min(0).max(1_000).optional(),
      maxTasks: positiveInt(1_000).default(4),
      /** Realtime target: requests per task per minute. */
      requestsPerTarget: positiveInt(100_000).default(60),
      /** Background target: visible plus in-flight messages per task. */
      backlogPerTask: positiveInt(1_000).default(2),
      warmWindows: z.array(warmWindowSchema).default([]),
    })
    .prefault({}),
  queue: z
    .strictObject({
      /** Receives before a message moves to the dead-letter queue. */
      maxReceiveCount: positiveInt(1_000).default(3),
      retentionDays: positiveInt(14).default(14),
      /** Messages one task handles at once. */
      concurrency: positiveInt(10).default(1),
    })
    .prefault({}),
  /** Caps and rate limits of this agent; needs the top-level budget section. */
  budget: agentBudgetSchema.optional(),
  /**
   * Offer the model a `final_answer` tool with the answer and a confidence
   * from 0 to 1, end the task when the model calls it, and publish the
   * confidence as the `Confidence` metric.
   */
  confidence: z.boolean().default(false),
  /**
   * Check the results of this agent's tools with `untrustedOutput` against
   * the prompt-injection patterns and the guardrail before they reach the model.
   */
  checkToolResults: z.boolean().default(true),
  /**
   * When the gateway adds Bedrock prompt cache points after the agent's tool
   * definitions and system prompt: `auto` where the prefix reaches the
   * model's minimum and the expected calls make a cache write pay off,
   * `always` where the prefix reaches the minimum, `off` never.
   */
  promptCache: z.enum(['auto', 'off', 'always']).default('auto'),
  /**
   * Calls with the same tools and system prompt the agent is expected to
   * make in 5 minutes, the prompt cache's lifetime. `auto` uses the larger
   * of this and what one gateway instance observes.
   */
  expectedCallsPer5Minutes: z.number().int().min(0).max(1_000_000).optional(),
  /**
   * Exact-match response cache of this agent's model calls: a request equal
   * to an earlier one is answered with the stored response, without tokens.
   */
  responseCache: responseCacheSchema.optional(),
  /**
   * Compression of the history the agent sends: beyond an input budget the
   * oldest turns are replaced by a summary that the summary route writes.
   */
  history: historySchema.optional(),
});

export const configSchema = z.strictObject({
  /** Name of the CloudFormation stack. */
  stackName: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/).default('AgentStack'),
  region: z.string().regex(REGION, 'expected an AWS region such as us-east-1'),
  account: z.string().regex(/^\d{12}$/, 'expected a 12-digit account id').optional(),
  /** Required with `account`, because nothing in the stack looks zones up. */
  availabilityZones: z.array(z.string().min(1)).min(2).optional(),
  network: z
    .strictObject({
      vpcCidr: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/(1[6-9]|2[0-4])$/, 'expected an IPv4 CIDR from /16 to /24').default('10.0.0.0/16'),
      maxAzs: z.number().int().min(2).max(6).default(2),
      /** NAT gateways for egress, which agent tasks need only to fetch identity provider keys. */
      natGateways: z.number().int().min(0).max(6).default(0),
      flowLogRetentionDays: positiveInt(3_653).default(365),
    })
    .prefault({}),
  endpoint: z
    .strictObject({
      /** ACM certificate ARN for the HTTPS listener. Without it the listener is HTTP. */
      certificateArn: z.string().regex(/^arn:aws[a-z-]*:acm:/, 'expected an ACM certificate ARN').optional(),
      auth: authSchema,
      idleTimeoutSeconds: z.number().int().min(1).max(4_000).optional(),
    })
    .optional(),
  routes: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,63}$/), z.array(targetSchema).min(1, 'a route needs at least one target')),
  gateway: gatewaySchema,
  guardrail: guardrailSchema,
  /** Spending caps, rate limits and prices; without it the gateway reserves nothing. */
  budget: budgetSchema.optional(),
  /** Alarm thresholds, the alarm topic and its email subscriptions. */
  observability: observabilitySchema,
  /** Expiry, approvers and notification of the approvals of high-impact tool calls. */
  approvals: approvalsSchema,
  /** The WAF web ACL in front of the realtime endpoint and the realtime workers' body size limit. */
  firewall: firewallSchema,
  /** Object Lock retention, full text and storage classes of the audit log. */
  audit: auditSchema,
  memory: z.strictObject({ ttlDays: positiveInt(3_650).default(30) }).prefault({}),
  logRetentionDays: positiveInt(3_653).default(90),
  agents: z.array(agentSchema).min(1),
});

export type AgentStackConfigInput = z.input<typeof configSchema>;
export type AgentStackConfig = z.output<typeof configSchema>;
export type AgentConfig = z.output<typeof agentSchema>;
export type ToolConfig = z.output<typeof toolSchema>;
export type ModelTargetConfig = z.output<typeof targetSchema>;
export type AuthConfig = z.output<typeof authSchema>;
export type { GatewayConfig, GuardrailConfig } from './gateway-config-schema';
export type { BudgetConfig } from './budget-config-schema';
export type { ObservabilityConfig } from './observability-config-schema';
export type { ApprovalsConfig } from './approvals-config-schema';
export type { FirewallConfig } from './firewall-config-schema';
export type { AuditConfig } from './audit-config-schema';
export type { HistoryConfig } from './history-config-schema';
