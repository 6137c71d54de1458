import { failedCallOutcome, recordModelCall } from '../audit';
import { requireField, type GatewayContext, type GatewayStep } from '../pipeline';
import type { StreamGatewayContext } from '../stream/stream-step';

/**
 * Queues one `model-call` audit record for the model call that the steps
 * after it make, buffered or streamed. A completed call is recorded with its
 * output's hash, and a blocked or failed one with the error name. Both carry
 * the tokens spent, when the target reported them or the stream estimated
 * them. A request served from the response cache never reaches this step,
 * and the cache step writes its record instead.
 */
export const auditModelCallStep: GatewayStep = {
  name: 'audit-model-call',
  async run(context: GatewayContext & Pick<StreamGatewayContext, 'streamUsage'>, next) {
    const request = requireField(context, 'request', this.name);
    const route = requireField(context, 'route', this.name);
    try {
      await next();
    } catch (error) {
      const spent = context.streamUsage ?? context.failedCall;
      const outcome = failedCallOutcome(error);
      const estimated = context.streamUsage?.usage.estimated === true;
      recordModelCall(context, request, {
        ...outcome,
        reason: estimated ? `${outcome.reason}; tokens estimated` : outcome.reason,
        // Without a target that served content, the record names the route's primary.
        target: spent?.target ?? route[0],
        usage: spent?.usage,
      });
      throw error;
    }
    const { result } = context;
    if (result === undefined) {
      return;
    }
    const estimated = context.streamUsage?.usage.estimated === true;
    recordModelCall(context, request, {
      decision: 'completed',
      reason: `stop reason ${result.stopReason}${estimated ? '; tokens estimated' : ''}`,
      target: result.target,
      usage: result.usage,
      output: result.output,
    });
  },
};
