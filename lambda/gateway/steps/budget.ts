import type { ModelTarget, Usage } from '../../shared/contracts';
import type { Logger } from '../../shared/logger';
import { AgentStackError, BudgetUnavailableError } from '../../shared/errors';
import type { SettlementHandle } from '../budget/items';
import { estimateInputTokens, priceCall, priceOf, worstCasePriceUsd } from '../budget/pricing';
import { suspendedError } from '../budget/suspension';
import { AGENT_METRICS } from '../../shared/metric-catalog';
import { budgetReason, recordBudgetDecision } from '../audit';
import { callUsageOf } from '../call-metrics';
import {
  requireField,
  type GatewayContext,
  type GatewayServices,
  type GatewayStep,
  type ResolvedGatewayRequest,
} from '../pipeline';
import type { StreamGatewayContext } from '../stream/stream-step';
import type { StreamUsageRecorder } from '../stream/usage';

/** Milliseconds to wait before each retry of a failed settle. A settle is idempotent, so a retry cannot count twice. */
export const SETTLE_RETRY_DELAYS_MS = [50, 250] as const;

/**
 * Settles a call's usage at the price of the target that served it, in one
 * ledger round trip when `settlement` is given, and retries a failed settle.
 * A final failure is logged with the usage and counted as `SettleFailed`
 * rather than raised, because the response is already made.
 */
export async function settleUsage(
  services: GatewayServices,
  requestId: string,
  target: ModelTarget | undefined,
  usage: Usage,
  logger: Logger,
  settlement?: SettlementHandle,
  agent?: string,
): Promise<void> {
  const ledger = services.budget;
  if (ledger === undefined) {
    return;
  }
  // Cache reads and writes are priced at their own rates, so they reach the ledger apart from input.
  const callUsage = callUsageOf(usage);
  const costUsd =
    target === undefined ? 0 : priceCall(priceOf(services.config.budget!.prices, target.modelId), callUsage);
  for (let attempt = 0; ; attempt++) {
    try {
      const outcome = await ledger.settle({ requestId, usage: callUsage, costUsd, settlement });
      logger.debug('Budget settled', { outcome, totalTokens: usage.totalTokens, costUsd, attempts: attempt + 1 });
      return;
    } catch (error) {
      const delayMs = SETTLE_RETRY_DELAYS_MS[attempt];
      if (delayMs !== undefined) {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        continue;
      }
      // NOTE: the reclaimer releases the reservation after its lease without this usage, so
      // the counters miss the call's spend. The log line keeps the usage and cost for reconciliation.
      logger.error(
        'Settling the budget reservation failed',
        { usage: callUsage, costUsd, modelId: target?.modelId, attempts: attempt + 1 },
        error,
      );
      if (agent !== undefined) {
        services.metrics.put(
          { Agent: agent },
          { [AGENT_METRICS.settleFailed.name]: { value: 1, unit: AGENT_METRICS.settleFailed.unit } },
          { requestId },
        );
      }
      return;
    }
  }
}

const NO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };

/** Returns the agent whose suspension and limits a request counts against: the entry's `budgetAgent`, or the entry itself. */
export function budgetAgentOf(context: GatewayContext, request: ResolvedGatewayRequest): string {
  return context.agentConfig?.budgetAgent ?? request.agent;
}

/**
 * Raises AgentSuspendedError when the kill switch suspended `agent`. A
 * failed read raises BudgetUnavailableError, unless the budget fails open,
 * in which case the call is served and the failure logged.
 */
export async function rejectIfSuspended(context: GatewayContext, request: ResolvedGatewayRequest): Promise<void> {
  const agent = budgetAgentOf(context, request);
  const { suspensions, config } = context.services;
  if (suspensions === undefined) {
    return;
  }
  let suspension;
  try {
    suspension = await suspensions.getSuspension(agent);
  } catch (error) {
    if (!config.budget?.failOpen) {
      const cause = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new BudgetUnavailableError(
        `Reading the suspension of agent ${agent} from the budget ledger table ${config.budget?.table} ` +
          `failed (${cause}), so request ${context.requestId} was not sent to a model. Retry later; ` +
          "if it persists, check the table and the gateway's network access to DynamoDB.",
        context.requestId,
        { cause: error },
      );
    }
    context.logger.error('Reading the agent suspension failed; serving the call', { agent }, error);
    recordBudgetDecision(context, request, 'allowed', 'suspension read failed, so served because the budget fails open');
    return;
  }
  if (suspension !== undefined) {
    context.services.metrics.put(
      { Agent: agent },
      { [AGENT_METRICS.suspendedRejected.name]: { value: 1, unit: AGENT_METRICS.suspendedRejected.unit } },
      { requestId: context.requestId, reason: suspension.reason },
    );
    throw suspendedError(suspension, context.requestId);
  }
}

/**
 * Rejects a call of a suspended agent, then reserves the call's worst case before the model call and settles the
 * actual usage after it, when the configuration has `budget`. The worst case
 * is the estimated input (characters of system prompt, messages and tools
 * divided by four) plus `maxTokens`, priced at the route's most expensive
 * target. A streamed call settles through the stream's usage recorder
 * instead (see createBudgetUsageRecorder), so this step settles it only
 * when no content was generated. Each rejection, and each call served
 * without a reservation because the budget fails open, gets a `budget`
 * audit record.
 */
export const budgetStep: GatewayStep = {
  name: 'budget',
  async run(context: GatewayContext & Pick<StreamGatewayContext, 'streamUsage'>, next) {
    const { budget: ledger, config } = context.services;
    if (ledger === undefined || config.budget === undefined) {
      await next();
      return;
    }
    const request = requireField(context, 'request', this.name);
    const route = requireField(context, 'route', this.name);
    // The caller's estimate carries its margin and may only raise the reservation.
    const estimatedInputTokens = Math.max(estimateInputTokens(request), request.estimatedInputTokens ?? 0);
    try {
      // Checked before the reservation, so that a suspended agent writes nothing to the ledger.
      await rejectIfSuspended(context, request);
      context.reservation = await ledger.reserve(
        {
          requestId: context.requestId,
          agent: budgetAgentOf(context, request),
          userId: request.userId,
          estimatedInputTokens,
          maxTokens: request.maxTokens,
          priceUsd: worstCasePriceUsd(config.budget.prices, route, estimatedInputTokens, request.maxTokens),
        },
        context.logger,
      );
    } catch (error) {
      if (error instanceof AgentStackError) {
        recordBudgetDecision(context, request, 'rejected', budgetReason(error));
      }
      throw error;
    }
    if (!context.reservation.guarded) {
      recordBudgetDecision(context, request, 'allowed', 'ledger unreachable, so served without a reservation because the budget fails open');
      await next();
      return;
    }
    const { settlement } = context.reservation;
    try {
      await next();
    } finally {
      if (context.streamUsage === undefined) {
        // A call that generated and then failed, such as one blocked by the
        // output guardrail, settles the usage Bedrock reported for it.
        const spent = context.result ?? context.failedCall;
        const { services, requestId, logger } = context;
        await settleUsage(services, requestId, spent?.target, spent?.usage ?? NO_USAGE, logger, settlement, request.agent);
      }
    }
  },
};

/**
 * Wraps a stream usage recorder so that it settles the budget first, with
 * the usage of what the stream generated, failed and cancelled streams included.
 */
export function createBudgetUsageRecorder(
  services: GatewayServices,
  inner: StreamUsageRecorder,
): StreamUsageRecorder {
  if (services.budget === undefined) {
    return inner;
  }
  return async (record, logger) => {
    await settleUsage(services, record.requestId, record.target, record.usage, logger, record.settlement, record.agent);
    await inner(record, logger);
  };
}
