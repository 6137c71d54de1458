import type { ModelTarget, StreamUsage, Usage } from '../../shared/contracts';
import type { Logger } from '../../shared/logger';
import type { SettlementHandle } from '../budget/items';
import type { ResolvedGatewayRequest } from '../pipeline';

/**
 * Characters per token for estimating usage that Bedrock did not report.
 * Four is a common rule of thumb for English text, so the estimate may be
 * off by a wide margin for other languages or for code.
 */
export const ESTIMATED_CHARS_PER_TOKEN = 4;

/** Outcome of a streamed call. */
export type StreamOutcome = 'completed' | 'failed' | 'cancelled';

/** Tokens one streamed call spent, recorded once per call that reached a target's content. */
export interface StreamUsageRecord {
  readonly requestId: string;
  readonly agent: string;
  readonly userId: string;
  readonly sessionId: string;
  readonly target: ModelTarget;
  readonly outcome: StreamOutcome;
  readonly usage: StreamUsage;
  /** Converse stop reason, when the stream reached messageStop. */
  readonly stopReason?: string;
  /** Name of the error that ended a failed or cancelled stream. */
  readonly errorName?: string;
  /** Milliseconds from sending the call to the end of the stream. */
  readonly latencyMs: number;
  /** Handle of the call's budget reservation, missing when the budget step reserved nothing. */
  readonly settlement?: SettlementHandle;
}

/**
 * Receives the usage of each streamed call, also when the stream failed or
 * the reader went away midway. Budget settlement hooks in here: a recorder
 * that settles the reservation with `settlement` wraps the default one.
 */
export type StreamUsageRecorder = (
  record: StreamUsageRecord,
  logger: Logger,
) => Promise<void> | void;

/** Default {@link StreamUsageRecorder}: writes one JSON log line with the token counts. */
export const logStreamUsage: StreamUsageRecorder = (record, logger) => {
  logger.info('Gateway stream usage', {
    outcome: record.outcome,
    region: record.target.region,
    modelId: record.target.modelId,
    inputTokens: record.usage.inputTokens,
    outputTokens: record.usage.outputTokens,
    totalTokens: record.usage.totalTokens,
    cacheReadInputTokens: record.usage.cacheReadInputTokens,
    cacheWriteInputTokens: record.usage.cacheWriteInputTokens,
    usageEstimated: record.usage.estimated,
    stopReason: record.stopReason,
    errorName: record.errorName,
    latencyMs: record.latencyMs,
  });
};

function estimateTokens(chars: number): number {
  return Math.ceil(chars / ESTIMATED_CHARS_PER_TOKEN);
}

/**
 * Returns the usage Bedrock reported, or an estimate when it reported none
 * because the stream ended early. The estimate counts the whole prompt as
 * input, because Bedrock had read it before it generated the first token.
 */
export function streamUsageOf(
  reported: Usage | undefined,
  request: ResolvedGatewayRequest,
  outputChars: number,
): StreamUsage {
  if (reported !== undefined) {
    return { ...reported, estimated: false };
  }
  const promptChars =
    (request.system?.length ?? 0) +
    JSON.stringify(request.messages).length +
    (request.tools === undefined ? 0 : JSON.stringify(request.tools).length);
  const inputTokens = estimateTokens(promptChars);
  const outputTokens = estimateTokens(outputChars);
  return { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens, estimated: true };
}
