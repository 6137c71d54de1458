/**
 * The worker's estimate of a model call's input tokens, made before the
 * call. History compression compares it with the agent's input budget, and
 * the task's metrics compare it with the usage the gateway reports.
 */
import type { GatewayRequest, Usage } from '../shared/contracts';

/**
 * Characters per token of the estimate. Four is a rule of thumb for English
 * text, and it is the rule of the gateway's budget reservation too, so the
 * worker's estimate equals the input the gateway reserves for.
 */
export const ESTIMATE_CHARS_PER_TOKEN = 4;

/**
 * Share added to an estimate before it is compared with a budget, because
 * JSON, code and languages other than English take more tokens per
 * character than prose does.
 */
// NOTE: 25 % is a guess, not a figure measured against Bedrock's reported
// usage. The InputTokenEstimateError metric shows whether it holds.
export const ESTIMATE_MARGIN = 0.25;

/** The parts of a request that count as input. */
export type PromptInput = Pick<GatewayRequest, 'system' | 'messages' | 'tools'>;

/**
 * Estimates the input tokens of a request as the characters of its system
 * prompt, its messages and its tool definitions (both as JSON) divided by
 * {@link ESTIMATE_CHARS_PER_TOKEN}, rounded up.
 */
export function estimateInputTokens(request: PromptInput): number {
  const chars =
    (request.system?.length ?? 0) +
    JSON.stringify(request.messages).length +
    (request.tools === undefined ? 0 : JSON.stringify(request.tools).length);
  return Math.ceil(chars / ESTIMATE_CHARS_PER_TOKEN);
}

/** Returns `tokens` raised by {@link ESTIMATE_MARGIN}, rounded up. */
export function withMargin(tokens: number): number {
  return Math.ceil(tokens * (1 + ESTIMATE_MARGIN));
}

/**
 * Returns the input tokens a call reported: uncached input plus the tokens
 * read from and written to the prompt cache, which together are the prompt.
 */
export function reportedInputTokens(usage: Usage): number {
  return usage.inputTokens + (usage.cacheReadInputTokens ?? 0) + (usage.cacheWriteInputTokens ?? 0);
}

/** Estimated and reported input tokens of the calls of one task. */
export class EstimateTally {
  private estimated = 0;
  private reported = 0;

  /**
   * Adds one call. A call that reported no input tokens, such as one the
   * gateway's response cache served, is left out.
   */
  add(estimatedTokens: number, usage: Usage): void {
    const reported = reportedInputTokens(usage);
    if (reported <= 0) return;
    this.estimated += estimatedTokens;
    this.reported += reported;
  }

  /**
   * Returns the error of the estimates in percent of the reported input
   * tokens: positive when the estimate was too high. Undefined when no call
   * reported input tokens.
   */
  errorPercent(): number | undefined {
    if (this.reported === 0) return undefined;
    return ((this.estimated - this.reported) / this.reported) * 100;
  }
}
