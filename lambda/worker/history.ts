/**
 * Keeps a conversation in the shape Converse accepts: it starts with a user
 * turn, roles alternate, and every `toolUse` is followed by its `toolResult`
 * in the next user turn.
 */
import { ContentBlock, ConverseMessage } from '../shared/contracts';
import { ToolUse, toolResultBlock } from './tools';

/** Returns the `toolUse` blocks of a message. */
export function toolUses(message: ConverseMessage): ToolUse[] {
  return message.content
    .map((block) => block.toolUse as ToolUse | undefined)
    .filter((use): use is ToolUse => use !== undefined);
}

/** Joins the text blocks of a message. */
export function textOf(message: ConverseMessage | undefined): string {
  if (!message) return '';
  return message.content
    .map((block) => (typeof block.text === 'string' ? block.text : ''))
    .filter((text) => text !== '')
    .join('\n');
}

/** A message with the sequence number of the first stored turn it contains. */
export interface NumberedMessage {
  readonly message: ConverseMessage;
  readonly seq: number;
}

/**
 * Returns `messages` ready for a Converse request. Leading turns that are
 * not a plain user message are dropped, because the turns they belonged to
 * may have expired from memory. Consecutive turns of one role are merged,
 * because a task that stopped after tool results ends on a user turn and
 * the next task starts with another.
 */
export function normalizeHistory(messages: readonly ConverseMessage[]): ConverseMessage[] {
  return normalizeNumbered(messages.map((message, seq) => ({ message, seq }))).map((turn) => turn.message);
}

/**
 * Normalizes like {@link normalizeHistory}, keeping each message's sequence
 * number; a merged message keeps the number of its first turn.
 */
export function normalizeNumbered(turns: readonly NumberedMessage[]): NumberedMessage[] {
  const start = turns.findIndex(
    ({ message }) => message.role === 'user' && !message.content.some((block) => 'toolResult' in block),
  );
  if (start < 0) return [];

  const result: NumberedMessage[] = [];
  for (const { message, seq } of turns.slice(start)) {
    const last = result[result.length - 1];
    if (last && last.message.role === message.role) {
      const content = [...last.message.content, ...message.content];
      result[result.length - 1] = { message: { role: last.message.role, content }, seq: last.seq };
    } else {
      result.push({ message: { role: message.role, content: [...message.content] }, seq });
    }
  }
  return result;
}

/**
 * Returns a user turn with an error result for each `toolUse` of `message`,
 * for a task that stops before it runs the tools. Without it the saved
 * history would contain a `toolUse` with no result, which Converse rejects.
 */
export function unansweredToolResults(
  message: ConverseMessage,
  reason: string,
): ConverseMessage | undefined {
  const uses = toolUses(message);
  if (message.role !== 'assistant' || uses.length === 0) return undefined;
  const content: ContentBlock[] = uses.map((use) =>
    toolResultBlock(use.toolUseId, { status: 'error', content: `Tool call not run: ${reason}.` }),
  );
  return { role: 'user', content };
}
