/**
 * Wire contracts shared by the constructs, the gateway Lambda and the worker
 * container. The constructs write these environment variables and the
 * runtime reads them, so a name changed here changes both sides at once.
 */

import type { GuardrailLayer, LimitDetails, SuspensionDetails, TargetFailure } from './errors';

/** Environment variables of the ModelGateway Lambda function. */
export const GATEWAY_ENV = {
  /** JSON of {@link GatewayRuntimeConfig}. */
  config: 'AGENT_GATEWAY_CONFIG',
} as const;

/** Environment variables of the kill switch Lambda function. */
export const KILL_SWITCH_ENV = {
  /** JSON of {@link KillSwitchConfig}. */
  config: 'KILL_SWITCH_CONFIG',
} as const;

/** Configuration of the kill switch, as the TokenBudget construct writes it. */
export interface KillSwitchConfig {
  /** Name of the budget ledger table. */
  readonly table: string;
  /** Lease of a reservation in seconds, as the gateway uses it. */
  readonly leaseSeconds: number;
  /** Budget settings per agent, of which the kill switch checks only the agent-wide daily and monthly caps. */
  readonly agents: Readonly<Record<string, AgentBudgetConfig>>;
}

/** Environment variables of the feedback Lambda function. */
export const FEEDBACK_ENV = {
  /** JSON of {@link FeedbackRuntimeConfig}. */
  config: 'AGENT_FEEDBACK_CONFIG',
} as const;

/** Path of the feedback route on the agents' load balancer. */
export const FEEDBACK_PATH = '/feedback';

/**
 * Key attributes of the feedback table. The table keeps one item per rated
 * request and user, so the key is the rated request's id and the user id.
 */
export const FEEDBACK_TABLE_KEY = {
  partitionKey: 'requestId',
  sortKey: 'userId',
} as const;

/** Configuration of the feedback function, as the AgentFeedback construct writes it. */
export interface FeedbackRuntimeConfig {
  /** Name of the feedback table. */
  readonly table: string;
  /** Names of the agents, realtime and background, whose responses users may rate. */
  readonly agents: readonly string[];
  /** Authentication of callers, the same that the realtime agents apply. */
  readonly auth: WorkerAuthConfig;
}

/** Environment variables of every agent worker container. */
export const WORKER_ENV = {
  /** JSON of {@link WorkerRuntimeConfig}. */
  config: 'AGENT_WORKER_CONFIG',
  /** Name or ARN of the ModelGateway function. */
  gatewayFunction: 'AGENT_GATEWAY_FUNCTION',
  /** Name of the AgentMemory table. */
  memoryTable: 'AGENT_MEMORY_TABLE',
  /** URL of the task queue; set for background agents only. */
  queueUrl: 'AGENT_QUEUE_URL',
  /** TCP port of the HTTP server; realtime agents only. */
  port: 'PORT',
} as const;

/** One Bedrock target: a region and a model id or inference profile id. */
export interface ModelTarget {
  readonly region: string;
  readonly modelId: string;
}

/** Per-agent settings the gateway enforces. */
export interface GatewayAgentConfig {
  /** Ordered targets; the first is the primary. */
  readonly route: ModelTarget[];
  /** Ceiling for `maxTokens` on one model call. */
  readonly maxTokensPerCall: number;
  /**
   * Checks of tool results before they go back to the model: the
   * prompt-injection patterns, and ApplyGuardrail when a guardrail is set.
   * Without it no tool result is checked. The ModelGateway construct sets
   * it for every agent unless the agent turns the checks off.
   */
  readonly toolResultChecks?: ToolResultChecks;
  /**
   * When the gateway adds Bedrock prompt cache points to the agent's calls.
   * Absent means `auto`.
   */
  readonly promptCache?: PromptCacheMode;
  /**
   * Calls with the same tool definitions and system prompt that the agent
   * is expected to make in 5 minutes, all gateway instances together. In
   * mode `auto` the gateway uses the larger of this and the count one
   * instance observes. Absent means 0.
   */
  readonly expectedCallsPer5Minutes?: number;
  /** Exact-match response cache of the agent. Without it no response is cached. */
  readonly responseCache?: ResponseCacheSettings;
  /**
   * Agent whose suspension, budgets and rate limits the calls count
   * against, such as the agent that a history summary entry serves.
   * Absent means the entry's own name.
   */
  readonly budgetAgent?: string;
}

/** Scope of an agent's cached responses, which sets the users who share them. */
export type ResponseCacheScope = 'user' | 'agent';

/** Exact-match response cache of one agent. */
export interface ResponseCacheSettings {
  /** Seconds a stored response is served before it expires. */
  readonly ttlSeconds: number;
  /**
   * `user`: a response is served only to the user whose request stored it.
   * `agent`: every user of the agent shares the responses, which is safe
   * only for prompts that carry no user's data.
   */
  readonly scope: ResponseCacheScope;
  /**
   * Cache requests whose messages contain toolUse or toolResult blocks.
   * Never true with scope `agent`, because tool results carry one user's data.
   */
  readonly cacheToolTurns: boolean;
}

/**
 * Attributes of the response cache table. The partition key is the agent,
 * so that purging an agent or one of its users is a Query. The sort key is
 * `user#<user>#<hash>` or `agent#<hash>`, with `#` and `%` in the user id
 * escaped as `%23` and `%25`. `expiresAt` is the TTL attribute in epoch seconds.
 */
export const RESPONSE_CACHE_TABLE_KEY = {
  partitionKey: 'pk',
  sortKey: 'sk',
  timeToLive: 'expiresAt',
} as const;

/**
 * When the gateway adds Bedrock prompt cache points: `auto` where the
 * prefix reaches the model's minimum and the agent's expected calls make a
 * cache write pay off, `always` where the prefix reaches the minimum, and
 * `off` never.
 */
export type PromptCacheMode = 'auto' | 'off' | 'always';

/** Selection of the tool results that the gateway checks for instructions from outside data. */
export interface ToolResultChecks {
  /**
   * Tools whose results are not checked, because they return only data the
   * stack controls. Every other result is checked, also one whose tool use
   * the request does not contain.
   * @default - none: every tool result is checked
   */
  readonly trustedTools?: string[];
}

/**
 * Timeouts and retries of the gateway's Bedrock clients. Each bounds one
 * attempt on one target, so that a slow or failing target hands over to
 * the next one instead of holding the request.
 */
export interface GatewayClientSettings {
  /** Time to open a TCP and TLS connection. */
  readonly connectTimeoutMs: number;
  /** Time from sending a request to the first byte of the response. */
  readonly firstByteTimeoutMs: number;
  /** Time one buffered attempt may take in total. */
  readonly attemptTimeoutMs: number;
  /** Attempts the SDK makes on one target before the gateway fails over. */
  readonly sdkMaxAttempts: number;
  /** Time one gateway request may take across every target. */
  readonly requestDeadlineMs: number;
}

/** Circuit breaker per target, shared by all gateway instances. */
export interface GatewayBreakerSettings {
  /** Consecutive failures that open a target's breaker. */
  readonly failureThreshold: number;
  /** Time an open breaker skips its target before one probe may try it. */
  readonly cooldownSeconds: number;
  /** Time an instance trusts breaker state it read from the state table. */
  readonly cacheTtlMs: number;
}

/** A Bedrock guardrail the gateway applies to user input and model output. */
export interface GatewayGuardrail {
  readonly id: string;
  readonly version: string;
  /**
   * Region the guardrail exists in. Bedrock finds a guardrail only in its own
   * region, so calls to targets elsewhere check content with ApplyGuardrail here.
   */
  readonly region: string;
}

/** Configuration of the gateway function, passed as JSON in its environment. */
export interface GatewayRuntimeConfig {
  readonly agents: Record<string, GatewayAgentConfig>;
  /** Defaults apply to every field left out. */
  readonly client?: Partial<GatewayClientSettings>;
  /** Defaults apply to every field left out. */
  readonly breaker?: Partial<GatewayBreakerSettings>;
  /** Name of the DynamoDB table with breaker state; without it each instance keeps its own. */
  readonly stateTable?: string;
  /** Guardrail applied to every call; without it no guardrail is applied. */
  readonly guardrail?: GatewayGuardrail;
  /** Spending and rate limits; without it the gateway reserves nothing. */
  readonly budget?: GatewayBudgetConfig;
  /** Name of the response cache table, set when any agent has `responseCache`. */
  readonly responseCacheTable?: string;
}

/** Spending caps over one window; a cap left out is unlimited. */
export interface SpendLimits {
  readonly tokens?: number;
  readonly usd?: number;
}

/** Spending caps per UTC day and per calendar month (UTC). */
export interface WindowLimits {
  readonly daily?: SpendLimits;
  readonly monthly?: SpendLimits;
}

/** Per-minute rate limits; a limit left out is unlimited. */
export interface RateLimits {
  readonly requestsPerMinute?: number;
  readonly tokensPerMinute?: number;
}

/** List price of a model in US dollars per million tokens. */
export interface ModelPrice {
  readonly inputPerMillion: number;
  readonly outputPerMillion: number;
  readonly cacheReadPerMillion: number;
  readonly cacheWritePerMillion: number;
}

/** Limits of one agent. */
export interface AgentBudgetConfig {
  /** Caps on the agent's total spend, all users together. */
  readonly agent?: WindowLimits;
  /** Caps on each user's spend with this agent. */
  readonly perUser?: WindowLimits;
  /** Rate limits on the agent as a whole. */
  readonly agentRate?: RateLimits;
  /** Rate limits on each user of this agent. */
  readonly perUserRate?: RateLimits;
}

/** Budget ledger settings of the gateway. */
export interface GatewayBudgetConfig {
  /** Name of the DynamoDB ledger table (partition key `pk`, sort key `sk`, TTL `expiresAt`). */
  readonly table: string;
  /** Time after which an unsettled reservation may be reclaimed. */
  readonly leaseSeconds: number;
  /** Serve calls without a reservation when the ledger cannot be reached; every such call is counted. */
  readonly failOpen: boolean;
  /** Accept requests without a user identity, counted against the `anonymous` scope. */
  readonly allowAnonymous: boolean;
  /** Caps on the whole stack's spend. */
  readonly stack?: WindowLimits;
  readonly agents: Record<string, AgentBudgetConfig>;
  /** Price per model id or inference profile id of every configured target. */
  readonly prices: Record<string, ModelPrice>;
}

/** Environment variables of the ApprovalGate decision function. */
export const APPROVAL_ENV = {
  /** JSON of {@link ApprovalRuntimeConfig}. */
  config: 'AGENT_APPROVAL_CONFIG',
} as const;

/**
 * Attributes of the approvals table. Each item is one approval request,
 * keyed by its id. A pending request also carries `pendingAgent`, which
 * puts it in the sparse index of pending requests, sorted by its deadline
 * in epoch milliseconds. `expiresAt` is the TTL attribute in epoch seconds.
 */
export const APPROVALS_TABLE_KEY = {
  partitionKey: 'approvalId',
  pendingIndex: 'pending-by-agent',
  pendingPartitionKey: 'pendingAgent',
  pendingSortKey: 'deadlineMs',
  timeToLive: 'expiresAt',
} as const;

/** Configuration of the decision function, as the ApprovalGate construct writes it. */
export interface ApprovalRuntimeConfig {
  /** Name of the approvals table. */
  readonly table: string;
}

/** Approval settings of a worker, as the ApprovalGate construct writes them. */
export interface WorkerApprovalConfig {
  /** Name of the approvals table. */
  readonly table: string;
  /** ARN of the SNS topic on which approvers are notified of each request. */
  readonly topicArn: string;
  /** Seconds a request waits for a decision before it expires, which counts as a denial. */
  readonly expirySeconds: number;
}

/** A tool in the worker's runtime configuration. */
export interface WorkerToolConfig {
  readonly name: string;
  readonly description: string;
  /** JSON Schema of the tool's input, as given to the model. */
  readonly inputSchema: Record<string, unknown>;
  /** `high` tools need a person's approval before they run. */
  readonly impact: 'low' | 'high';
  /** ARN or name of the Lambda function that runs the tool. */
  readonly functionName: string;
}

/**
 * Name of the tool that a worker with `confidence` offers the model, whose
 * call ends the task with an answer and a confidence from 0 to 1. An agent
 * with `confidence` cannot have a tool of its own with this name.
 */
export const FINAL_ANSWER_TOOL = 'final_answer';

/** Authentication of a realtime worker's callers. */
export type WorkerAuthConfig =
  | { readonly type: 'none' }
  | {
      readonly type: 'jwt';
      readonly issuer: string;
      readonly audience: string[];
      readonly jwksUri: string;
      /** Claim that contains the user id. */
      readonly userClaim: string;
    }
  | {
      /** The load balancer authenticated the caller and signed `x-amzn-oidc-data`. */
      readonly type: 'alb-oidc';
      /** Region of the load balancer, which selects its public key endpoint. */
      readonly region: string;
      /** ARN of the load balancer, which must match the token's `signer`. */
      readonly loadBalancerArn?: string;
      readonly userClaim: string;
    };

/** Configuration of one agent's worker, passed as JSON in its environment. */
export interface WorkerRuntimeConfig {
  readonly agent: string;
  readonly mode: 'realtime' | 'background';
  readonly systemPrompt: string;
  readonly tools: WorkerToolConfig[];
  readonly limits: {
    readonly maxIterations: number;
    readonly maxTokensPerTask: number;
    readonly maxTokensPerCall: number;
    readonly taskTimeoutSeconds: number;
    /** Largest request body the realtime server accepts. */
    readonly maxBodyBytes: number;
  };
  /** Days a memory item lives before it expires. */
  readonly memoryTtlDays: number;
  readonly auth: WorkerAuthConfig;
  /** Largest number of messages a background worker handles at once. */
  readonly concurrency: number;
  /**
   * Offer the model the {@link FINAL_ANSWER_TOOL} tool, end the task when
   * the model calls it, and publish the confidence it reports as the
   * `Confidence` metric. Absent means false.
   */
  readonly confidence?: boolean;
  /**
   * Approval settings for calls of `high` impact tools, which wait for a
   * person's decision. Without them the worker rejects every such call.
   */
  readonly approvals?: WorkerApprovalConfig;
  /** History compression. Without it every call sends the whole history. */
  readonly history?: WorkerHistoryConfig;
}

/**
 * Largest output of a call that summarizes earlier turns, and the
 * `maxTokensPerCall` of the gateway entry that serves those calls.
 */
export const SUMMARY_MAX_TOKENS = 1_024;

/**
 * Smallest input budget of history compression: four summaries' worth, so
 * that a summary, the system prompt, the tools and the latest turns fit.
 */
export const MIN_HISTORY_INPUT_TOKENS = 4 * SUMMARY_MAX_TOKENS;

/**
 * Returns the name of the gateway entry that serves an agent's summary
 * calls. It contains a `.`, which agent names cannot, so it never names
 * another agent.
 */
export function summaryAgentName(agent: string): string {
  return `${agent}.summary`;
}

/** History compression of one agent's worker. */
export interface WorkerHistoryConfig {
  /**
   * Input tokens, estimated with a margin, that one call's history may
   * take. Beyond it the oldest turns are replaced by a summary.
   */
  readonly maxInputTokens: number;
  /**
   * Gateway entry whose route writes the summaries, usually a cheaper
   * model: {@link summaryAgentName} of the agent.
   */
  readonly summaryAgent: string;
  /** Characters of one tool result beyond which it is cut, with a note saying so. */
  readonly maxToolResultChars: number;
}

/** Content block in the Converse message format, kept as plain JSON. */
export type ContentBlock = Record<string, unknown>;

/** One conversation turn in the Converse message format. */
export interface ConverseMessage {
  readonly role: 'user' | 'assistant';
  readonly content: ContentBlock[];
}

/** Payload the worker sends to the gateway for one model call. */
export interface GatewayRequest {
  readonly requestId: string;
  readonly agent: string;
  /** Verified user id, or `anonymous`. */
  readonly userId: string;
  readonly sessionId: string;
  readonly system?: string;
  readonly messages: ConverseMessage[];
  readonly tools?: Array<{
    readonly name: string;
    readonly description: string;
    readonly inputSchema: Record<string, unknown>;
  }>;
  readonly maxTokens?: number;
  readonly temperature?: number;
  /**
   * Caller's estimate of the input tokens, margin included. The gateway
   * reserves the larger of this and its own estimate, so a caller can
   * raise the reservation but never lower it.
   */
  readonly estimatedInputTokens?: number;
}

/** Token counts of one model call. */
export interface Usage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly totalTokens: number;
  /** Input tokens read from the prompt cache, present when Bedrock reported them. */
  readonly cacheReadInputTokens?: number;
  /** Input tokens written to the prompt cache, present when Bedrock reported them. */
  readonly cacheWriteInputTokens?: number;
}

/** Successful gateway result. */
export interface GatewayResponse {
  readonly ok: true;
  readonly requestId: string;
  readonly output: ConverseMessage;
  /** Converse stop reason: `end_turn`, `tool_use`, `max_tokens`, ... */
  readonly stopReason: string;
  readonly usage: Usage;
  readonly target: ModelTarget;
  readonly latencyMs: number;
  /**
   * True when the response cache returned the response. `usage` is then
   * zero, `target` is the target that generated it, and `latencyMs` is the
   * time of the cache read.
   */
  readonly cached?: true;
}

/** Failed gateway result; `name` is the stable error name. */
export interface GatewayErrorResponse {
  readonly ok: false;
  readonly requestId: string;
  readonly error: {
    readonly name: string;
    readonly message: string;
    /** For `ModelCallError`: the Bedrock exception name, such as `ThrottlingException`. */
    readonly errorCode?: string;
    /** For `GuardrailBlockedError`: where the block happened, such as `guardrail input`. */
    readonly layer?: GuardrailLayer;
    /** For `GuardrailBlockedError`: the policy that intervened, when known. */
    readonly policy?: string;
    /** For `AllTargetsFailedError`: each target with the reason it did not serve the call. */
    readonly failures?: readonly TargetFailure[];
    /** For `BudgetExceededError` and `RateLimitedError`: the limit, the amount spent and the reset time. */
    readonly limit?: LimitDetails;
    /** For `AgentSuspendedError`: the agent, the reason and when the suspension lapses. */
    readonly suspension?: SuspensionDetails;
  };
}

/** Content type of a streamed gateway response: one JSON event per line. */
export const GATEWAY_STREAM_CONTENT_TYPE = 'application/x-ndjson';

/**
 * Payload of a streamed model call, sent with Lambda InvokeWithResponseStream.
 * The gateway responds with {@link GatewayStreamEvent} lines. Without
 * `stream: true` the gateway returns one {@link GatewayResponse} as before.
 */
export interface GatewayStreamRequest extends GatewayRequest {
  readonly stream: true;
}

/** Token counts of a streamed call. */
export interface StreamUsage extends Usage {
  /**
   * True when Bedrock reported no usage, because the stream ended early, so
   * the counts are estimates from the length of the prompt and the output.
   */
  readonly estimated: boolean;
}

/**
 * One line of a streamed gateway response, which is newline-delimited JSON
 * in UTF-8. A successful stream is one `start`, then `delta` and `toolUse`
 * events in the order the model generates them, one `stop`, and `usage` as
 * the last line. A failed stream ends with one `error` line instead. An
 * `error` without a `start` before it means that nothing was generated, and
 * the gateway already tried every target it could. An `error` after `start`
 * means that the content so far is incomplete.
 */
export type GatewayStreamEvent =
  | {
      readonly type: 'start';
      readonly requestId: string;
      /** The target that generates the content; failover happens only before this event. */
      readonly target: ModelTarget;
      /** True when the response cache returned the content, which then spent no tokens. */
      readonly cached?: true;
    }
  | {
      readonly type: 'delta';
      /** Content block index in the output message. */
      readonly index: number;
      readonly text: string;
    }
  | {
      /** A complete toolUse block, sent when its block ends, with the input parsed. */
      readonly type: 'toolUse';
      readonly index: number;
      readonly toolUseId: string;
      readonly name: string;
      readonly input: unknown;
    }
  | {
      readonly type: 'stop';
      /** Converse stop reason: `end_turn`, `tool_use`, `max_tokens`, ... */
      readonly stopReason: string;
    }
  | {
      readonly type: 'usage';
      readonly usage: StreamUsage;
      /** Milliseconds from sending the call to the end of the stream. */
      readonly latencyMs: number;
    }
  | {
      readonly type: 'error';
      readonly requestId: string;
      readonly error: GatewayErrorResponse['error'];
      /** Tokens spent before the failure, when content was generated. */
      readonly usage?: StreamUsage;
    };
