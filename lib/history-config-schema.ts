import { z } from 'zod';
import { MIN_HISTORY_INPUT_TOKENS } from '../lambda/shared/contracts';

/**
 * Schema of an agent's `history` section: compression of the conversation
 * history the agent sends with each model call. Without the section every
 * call sends the whole history.
 */
export const historySchema = z.strictObject({
  /**
   * Input tokens one call may take, estimated with a 25 % margin. Beyond
   * it the oldest turns are replaced by a summary. The floor, 4,096, leaves
   * room for a summary of up to 1,024 tokens beside the system prompt and tools.
   */
  maxInputTokens: z.number().int().min(MIN_HISTORY_INPUT_TOKENS).max(1_000_000),
  /** Name of an entry in `routes` whose model writes the summaries, usually a cheaper one. */
  summaryRoute: z.string().min(1),
  /**
   * Characters of one tool result beyond which it is cut inside its
   * toolResult, with a note saying so. The stored turn keeps the whole result.
   */
  maxToolResultChars: z.number().int().min(200).max(1_000_000).default(20_000),
});

export type HistoryConfig = z.output<typeof historySchema>;
