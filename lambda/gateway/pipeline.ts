import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type {
  ConverseMessage,
  GatewayAgentConfig,
  GatewayRequest,
  GatewayResponse,
  GatewayRuntimeConfig,
  ModelTarget,
  Usage,
} from '../shared/contracts';
import type { AuditSink } from '../shared/audit';
import type { Logger } from '../shared/logger';
import type { MetricsWriter } from '../shared/metrics';
import type { BudgetLedger, Reservation } from './budget/ledger';
import type { SuspensionStore } from './budget/suspension';
import type { CircuitBreaker } from './breaker';
import type { PrefixTraffic } from './prompt-cache-planner';
import type { ResponseCacheStore } from './response-cache';
import type { ResolvedClientSettings } from './settings';

/** A validated request whose `maxTokens` is resolved against the agent's limit. */
export interface ResolvedGatewayRequest extends GatewayRequest {
  readonly maxTokens: number;
}

/** Result of one model call, before it becomes a response. */
export interface ModelCallResult {
  readonly output: ConverseMessage;
  readonly stopReason: string;
  readonly usage: Usage;
  readonly target: ModelTarget;
  readonly latencyMs: number;
  /** True when a guardrail masked part of the output, which must then never be cached. */
  readonly guardrailMasked?: boolean;
}

/** Dependencies that every step may use, built once per handler. */
export interface GatewayServices {
  readonly config: GatewayRuntimeConfig;
  readonly clientForRegion: (region: string) => BedrockRuntimeClient;
  /** Client settings with their defaults applied. */
  readonly clientSettings: ResolvedClientSettings;
  /** Circuit breakers of every target, shared by the requests of this instance. */
  readonly breaker: CircuitBreaker;
  /** Writer of the gateway's EMF metric lines. */
  readonly metrics: MetricsWriter;
  /** Clock in epoch milliseconds, used for latencies and the deadline. */
  readonly now: () => number;
  /** Budget ledger, set when the configuration has `budget`. */
  readonly budget?: BudgetLedger;
  /** Agent suspensions in the ledger table, set when the configuration has `budget`. */
  readonly suspensions?: SuspensionStore;
  /**
   * Destination of the gateway's audit records: model calls, budget
   * rejections and guard verdicts. The handlers flush it before a response
   * completes. NO_AUDIT when the function has no audit stream.
   */
  readonly audit: AuditSink;
  /** Keep prompt and output text in audit records, beside their hashes. */
  readonly auditFullText: boolean;
  /**
   * Recent calls per agent and prompt prefix, from which the gateway
   * estimates whether prompt cache points pay off. Without it only the
   * agents' `expectedCallsPer5Minutes` counts.
   */
  readonly promptCacheTraffic?: PrefixTraffic;
  /** Store of the response cache table, set when the configuration has `responseCacheTable`. */
  readonly responseCache?: ResponseCacheStore;
}

/**
 * State of one request as it moves through the steps. Each step fills the
 * fields it owns, and later steps read them through {@link requireField}.
 */
export interface GatewayContext {
  /** Raw Lambda payload, untrusted until the validate step has run. */
  readonly event: unknown;
  /** Request id from the payload, or the Lambda request id when it is missing. */
  readonly requestId: string;
  /** Epoch milliseconds after which the request can no longer finish in time. */
  readonly deadline?: number;
  readonly services: GatewayServices;
  /** Logger whose lines carry the request id, agent, user and session. */
  readonly logger: Logger;
  request?: ResolvedGatewayRequest;
  agentConfig?: GatewayAgentConfig;
  /** Targets to try, in order. */
  route?: readonly ModelTarget[];
  result?: ModelCallResult;
  /**
   * Target and usage of a model call that generated tokens and then failed,
   * such as one blocked by the output guardrail, so that its spend is still settled.
   */
  failedCall?: Pick<ModelCallResult, 'target' | 'usage'>;
  response?: GatewayResponse;
  /** Budget reserved for the call, set by the budget step. */
  reservation?: Reservation;
}

/**
 * One stage of the gateway. A step runs around the steps after it, like
 * middleware: work before `next()` runs on the way in and work after it on
 * the way out. That shape lets a budget step reserve before the call and
 * settle after it in a `finally`, and lets a cache step return a cached
 * response without calling `next()` at all.
 */
export interface GatewayStep {
  /** Name used in logs and internal errors. */
  readonly name: string;
  run(context: GatewayContext, next: () => Promise<void>): Promise<void>;
}

/** Runs `steps` in order, each around the rest. */
export async function runSteps(
  steps: readonly GatewayStep[],
  context: GatewayContext,
): Promise<void> {
  const runFrom = async (index: number): Promise<void> => {
    const step = steps[index];
    if (step === undefined) {
      return;
    }
    let nextCalled = false;
    await step.run(context, async () => {
      if (nextCalled) {
        throw new Error(`Gateway step ${step.name} called next() twice.`);
      }
      nextCalled = true;
      await runFrom(index + 1);
    });
  };
  await runFrom(0);
}

/**
 * Returns a context field that an earlier step must have set, and throws
 * when the steps are ordered wrongly, which is a bug in the step list.
 */
export function requireField<K extends keyof GatewayContext>(
  context: GatewayContext,
  field: K,
  step: string,
): NonNullable<GatewayContext[K]> {
  const value = context[field];
  if (value === undefined || value === null) {
    throw new Error(
      `Gateway step ${step} needs context.${String(field)}, which no earlier step set. ` +
        'Reorder the steps so that the step that sets it runs first.',
    );
  }
  return value as NonNullable<GatewayContext[K]>;
}
