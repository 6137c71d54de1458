/**
 * The structured final answer of an agent with `confidence`: a tool the
 * model calls to end its turn with the answer text and a confidence from 0
 * to 1. A model that answers in plain text instead still ends the task, and
 * then no confidence is reported. A streamed realtime response carries the
 * answer only in its `done` event, because the model writes it as tool
 * input, which the gateway streams as one `toolUse` event once it is complete.
 */
import { ContentBlock, FINAL_ANSWER_TOOL, WorkerRuntimeConfig } from '../shared/contracts';
import { ToolUse, toolResultBlock } from './tools';

/** Definition of the final answer tool, in the form the Converse `toolConfig` expects. */
export const FINAL_ANSWER_SPEC = {
  name: FINAL_ANSWER_TOOL,
  description:
    'Give your final answer to the user and end your turn. Call this tool once, on its own, ' +
    'when you have the answer; the user sees only the answer text.',
  inputSchema: {
    type: 'object',
    properties: {
      answer: { type: 'string', description: 'The complete answer the user sees.' },
      confidence: {
        type: 'number',
        minimum: 0,
        maximum: 1,
        description:
          'How likely the answer is correct and complete, from 0 (a guess) to 1 (certain).',
      },
    },
    required: ['answer', 'confidence'],
    additionalProperties: false,
  },
} as const;

/** Text appended to the system prompt of an agent with `confidence`. */
export const FINAL_ANSWER_INSTRUCTION =
  `When you are ready to answer, end your turn by calling the ${FINAL_ANSWER_TOOL} tool ` +
  'with the full answer text and your confidence from 0 to 1 that the answer is correct ' +
  `and complete. Do not write the answer outside the ${FINAL_ANSWER_TOOL} call.`;

/** Result text of a valid final answer call, which memory stores after it. */
export const FINAL_ANSWER_DELIVERED = 'The answer was delivered to the user.';

/** Returns the system prompt the model receives, with the final answer instruction when enabled. */
export function systemPromptOf(config: WorkerRuntimeConfig): string {
  return config.confidence
    ? `${config.systemPrompt}\n\n${FINAL_ANSWER_INSTRUCTION}`
    : config.systemPrompt;
}

/** A final answer call whose answer text is usable. */
export interface FinalAnswer {
  readonly ok: true;
  readonly answer: string;
  /** The reported confidence, when it is a number from 0 to 1. */
  readonly confidence?: number;
  /** Reason the reported confidence was not used, such as `outside 0 to 1`. */
  readonly confidenceProblem?: string;
  /** The reported confidence as sent, for the log line of a rejected one. */
  readonly reportedConfidence?: unknown;
}

/** A final answer call without usable answer text. */
export interface InvalidFinalAnswer {
  readonly ok: false;
  /** Error message for the model, naming what to fix. */
  readonly error: string;
}

/**
 * Reads the input of a final answer call. The answer text must be a
 * non-empty string, or the call is invalid and the model is asked to call
 * again. A confidence that is missing, not a number or outside 0 to 1 does
 * not invalidate the answer: it is left out and its problem returned.
 */
export function readFinalAnswer(input: unknown): FinalAnswer | InvalidFinalAnswer {
  const fields =
    typeof input === 'object' && input !== null && !Array.isArray(input)
      ? (input as Record<string, unknown>)
      : {};
  const { answer, confidence } = fields;
  if (typeof answer !== 'string' || answer.trim() === '') {
    return {
      ok: false,
      error:
        `The input of ${FINAL_ANSWER_TOOL} is invalid: answer must be a non-empty string. ` +
        `Call ${FINAL_ANSWER_TOOL} again with the answer text and a confidence from 0 to 1.`,
    };
  }
  if (typeof confidence !== 'number' || !Number.isFinite(confidence)) {
    const confidenceProblem = confidence === undefined ? 'missing' : 'not a number';
    return { ok: true, answer, confidenceProblem, reportedConfidence: confidence };
  }
  if (confidence < 0 || confidence > 1) {
    return {
      ok: true,
      answer,
      confidenceProblem: 'outside 0 to 1',
      reportedConfidence: confidence,
    };
  }
  return { ok: true, answer, confidence };
}

/**
 * Returns the tool results for the turn that ended the task with a final
 * answer: success for the final answer call, and an error for any other
 * tool the model requested in the same turn, which does not run. Stored in
 * memory, these results keep the next task's conversation valid, because
 * Converse rejects a `toolUse` that no `toolResult` follows.
 */
export function finalAnswerResults(
  uses: readonly ToolUse[],
  finalAnswerUseId: string,
): ContentBlock[] {
  return uses.map((use) =>
    use.toolUseId === finalAnswerUseId
      ? toolResultBlock(use.toolUseId, { status: 'success', content: FINAL_ANSWER_DELIVERED })
      : toolResultBlock(use.toolUseId, {
          status: 'error',
          content: `Tool call not run: the turn ended with ${FINAL_ANSWER_TOOL}.`,
        }),
  );
}
