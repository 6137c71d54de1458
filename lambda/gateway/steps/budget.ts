import type { ModelTarget, Usage } from '../../shared/contracts';
import type { Logger } from '../../shared/logger';
import { BudgetUnavailableError } from '../../shared/errors';
import type { SettlementHandle } from '../budget/items';
import { estimateInputTokens, priceCall, priceOf, worstCasePriceUsd } from '../budget/pricing';
import { suspendedError } from '../budget/suspension';
import { callUsageOf } from '../call-metrics';
import {
  requireField,
  type GatewayContext,
  type GatewayServices,
  type GatewayStep,
} from '../pipeline';
import type { StreamGatewayContext } from '../stream/stream-step';
import type { StreamUsageRecorder } from '../stream/usage';

/**
 * Settles a call's usage at the price of the target that served it, in one
 * ledger round trip when `settlement` is given. A failure is logged rather
 * than raised, because the response is already made, and the reservation
 * is then released by the reclaimer after its lease.
 */
export async function settleUsage(
  services: GatewayServices,
  requestId: string,
  target: ModelTarget | undefined,
  usage: Usage,
  logger: Logger,
  settlement?: SettlementHandle,
): Promise<void> {
  const ledger = services.budget;
  if (ledger === undefined) {
    return;
  }
  try {
    // Cache reads and writes are priced at their own rates, so they reach the ledger apart from input.
    const callUsage = callUsageOf(usage);
    const costUsd =
      target === undefined ? 0 : priceCall(priceOf(services.config.budget!.prices, target.modelId), callUsage);
    const outcome = await ledger.settle({ requestId, usage: callUsage, costUsd, settlement });
    logger.debug('Budget settled', { outcome, totalTokens: usage.totalTokens, costUsd });
  } catch (error) {
    // NOTE: the reclaimer releases the reservation later without the usage,
    // so the counters miss this call's spend.
    logger.error('Settling the budget reservation failed', { totalTokens: usage.totalTokens }, error);
  }
}

const NO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };

/**
 * Raises AgentSuspendedError when the kill switch suspended `agent`. A
 * failed read raises BudgetUnavailableError, unless the budget fails open,
 * in which case the call is served and the failure logged.
 */
async function rejectIfSuspended(context: GatewayContext, agent: string): Promise<void> {
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
    return;
  }
  if (suspension !== undefined) {
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
 * when no content was generated.
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
    // Checked before the reservation, so that a suspended agent writes nothing to the ledger.
    await rejectIfSuspended(context, request.agent);
    const estimatedInputTokens = estimateInputTokens(request);
    context.reservation = await ledger.reserve(
      {
        requestId: context.requestId,
        agent: request.agent,
        userId: request.userId,
        estimatedInputTokens,
        maxTokens: request.maxTokens,
        priceUsd: worstCasePriceUsd(config.budget.prices, route, estimatedInputTokens, request.maxTokens),
      },
      context.logger,
    );
    if (!context.reservation.guarded) {
      await next();
      return;
    }
    const { settlement } = context.reservation;
    try {
      await next();
    } finally {
      if (context.streamUsage === undefined) {
        // NOTE: a buffered call that failed after generating, such as one
        // blocked by the output guardrail, reports no usage and settles as zero.
        const usage = context.result?.usage ?? NO_USAGE;
        const { services, requestId, result, logger } = context;
        await settleUsage(services, requestId, result?.target, usage, logger, settlement);
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
    await settleUsage(services, record.requestId, record.target, record.usage, logger, record.settlement);
    await inner(record, logger);
  };
}
