import { GuardrailBlockedError, TimeoutError } from '../../shared/errors';
import { findInjection } from '../../shared/injection-patterns';
import { recordGuardBlock } from '../guard-verdicts';
import { requireField, type GatewayContext, type GatewayStep, type ResolvedGatewayRequest } from '../pipeline';
import { findGuardrailToolResultBlock } from '../tool-result-guardrail';
import { toolResults, userTexts, type ToolResultEntry } from '../tool-results';

/** Raises a `pattern` block for the first text of a user message that matches an injection pattern. */
function checkUserTexts(request: ResolvedGatewayRequest, requestId: string): void {
  for (const { messageIndex, text } of userTexts(request.messages)) {
    const pattern = findInjection(text);
    if (pattern !== undefined) {
      throw new GuardrailBlockedError(
        `The text of messages[${messageIndex}] matches the prompt-injection pattern ${pattern}, so ` +
          `request ${requestId} was not sent to a model. Rephrase the message without instructions ` +
          'that address the model; if the match is wrong, report the pattern id.',
        requestId,
        'pattern',
        `injection pattern ${pattern}`,
      );
    }
  }
}

/** Returns a `tool result` block for the first result whose strings match an injection pattern. */
function findToolResultInjection(
  entries: readonly ToolResultEntry[],
  requestId: string,
): { error: GuardrailBlockedError; entry: ToolResultEntry } | undefined {
  for (const entry of entries) {
    for (const text of entry.strings) {
      const pattern = findInjection(text);
      if (pattern === undefined) {
        continue;
      }
      const error = new GuardrailBlockedError(
        `The result of tool ${entry.tool} (toolUseId ${entry.toolUseId}) in messages[${entry.messageIndex}] ` +
          `matches the prompt-injection pattern ${pattern}, so request ${requestId} was not sent to a ` +
          'model. The result may carry instructions from outside data: leave it out of the conversation ' +
          "or report the tool's failure to the model instead. If the tool returns only data the stack " +
          'controls, mark it trusted (untrustedOutput: false).',
        requestId,
        'tool result',
        `injection pattern ${pattern}`,
      );
      return { error, entry };
    }
  }
  return undefined;
}

/** Returns the signal that bounds the ApplyGuardrail calls: one attempt, and no later than the deadline. */
function guardrailSignal(context: GatewayContext): { signal: AbortSignal; timeoutMs: number } {
  const { clientSettings, now } = context.services;
  const untilDeadline = context.deadline === undefined ? Infinity : context.deadline - now();
  const timeoutMs = Math.max(0, Math.min(clientSettings.attemptTimeoutMs, untilDeadline));
  return { signal: AbortSignal.timeout(timeoutMs), timeoutMs };
}

/**
 * Checks the tool results of the last message with ApplyGuardrail, and
 * raises TimeoutError when the calls do not finish within one attempt's time.
 */
async function checkToolResultsWithGuardrail(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  entries: readonly ToolResultEntry[],
): Promise<void> {
  const { config, clientForRegion } = context.services;
  const guardrail = config.guardrail;
  if (guardrail === undefined || entries.length === 0) {
    return;
  }
  const route = requireField(context, 'route', inputGuardStep.name);
  const { signal, timeoutMs } = guardrailSignal(context);
  let block;
  try {
    block = await findGuardrailToolResultBlock({
      client: clientForRegion(guardrail.region),
      guardrail,
      entries,
      target: route[0],
      requestId: context.requestId,
      signal,
    });
  } catch (error) {
    if (signal.aborted) {
      throw new TimeoutError(
        `ApplyGuardrail on the tool results of request ${context.requestId} with guardrail ${guardrail.id} ` +
          `in ${guardrail.region} did not finish within ${timeoutMs} ms, so no model was called. Retry ` +
          "the call; if it persists, raise the gateway's attemptTimeoutMs or requestDeadlineMs.",
        context.requestId,
        { cause: error },
      );
    }
    throw error;
  }
  if (block !== undefined) {
    const tools = [...new Set(block.entries.map((entry) => entry.tool))].join(', ');
    recordGuardBlock(context, request, block.error, { tool: tools });
    throw block.error;
  }
}

/**
 * Checks the request before anything is reserved or spent on it. The text
 * of every user message is matched against the prompt-injection patterns.
 * With the agent's `toolResultChecks`, so is every string of each tool
 * result whose tool is not trusted, and when a guardrail is configured, the
 * untrusted results of the last message also go to ApplyGuardrail. The
 * system prompt is the operator's, not user input, and is never checked.
 * A match raises GuardrailBlockedError with layer `pattern` for user text
 * and `tool result` for a tool result.
 */
// NOTE: only the last message's tool results go to ApplyGuardrail, because
// the call that first carried an earlier result checked it. A caller that
// builds its history without the gateway could put unchecked results earlier.
export const inputGuardStep: GatewayStep = {
  name: 'input-guard',
  async run(context, next) {
    const request = requireField(context, 'request', this.name);
    const agentConfig = requireField(context, 'agentConfig', this.name);
    checkUserTexts(request, context.requestId);

    const checks = agentConfig.toolResultChecks;
    if (checks !== undefined) {
      const trusted = new Set(checks.trustedTools ?? []);
      const untrusted = toolResults(request.messages).filter((entry) => !trusted.has(entry.tool));
      const found = findToolResultInjection(untrusted, context.requestId);
      if (found !== undefined) {
        recordGuardBlock(context, request, found.error, { tool: found.entry.tool });
        throw found.error;
      }
      const last = request.messages.length - 1;
      const newResults = untrusted.filter((entry) => entry.messageIndex === last);
      await checkToolResultsWithGuardrail(context, request, newResults);
    }
    await next();
  },
};
