/**
 * The parts of a request that the input guard checks: the text of the
 * user's messages, and the tool results in user turns with the name of the
 * tool that produced each. The system prompt and the assistant's turns are
 * not user input, so neither is returned.
 */
import type { ContentBlock, ConverseMessage } from '../shared/contracts';

/** Tool name used when the request has no toolUse block with a result's toolUseId. */
export const UNKNOWN_TOOL = '(unknown tool)';

/** Text of a user message, with the index of its message. */
export interface UserText {
  readonly messageIndex: number;
  readonly text: string;
}

/** One toolResult block of a user turn. */
export interface ToolResultEntry {
  readonly messageIndex: number;
  readonly toolUseId: string;
  /** Name of the tool, from the assistant's toolUse block, or {@link UNKNOWN_TOOL}. */
  readonly tool: string;
  /** Text blocks as they are, and JSON blocks as JSON text. */
  readonly texts: readonly string[];
  /** Every string in the result: the text blocks and each string inside a JSON block. */
  readonly strings: readonly string[];
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Returns the text of a block: a `text` block, or the text of a
 * `guardContent` block, which Converse also sends to the model.
 */
function textOf(block: ContentBlock): string | undefined {
  if (typeof block.text === 'string') {
    return block.text;
  }
  const guarded = asRecord(asRecord(block.guardContent)?.text)?.text;
  return typeof guarded === 'string' ? guarded : undefined;
}

/** Returns the text of every text and guardContent block in the user's messages. */
export function userTexts(messages: readonly ConverseMessage[]): UserText[] {
  const texts: UserText[] = [];
  messages.forEach((message, messageIndex) => {
    if (message.role !== 'user') {
      return;
    }
    for (const block of message.content) {
      const text = textOf(block);
      if (text !== undefined) {
        texts.push({ messageIndex, text });
      }
    }
  });
  return texts;
}

/** Collects every string inside a JSON value, keys excluded. */
function collectStrings(value: unknown, into: string[]): void {
  if (typeof value === 'string') {
    into.push(value);
  } else if (Array.isArray(value)) {
    value.forEach((item) => collectStrings(item, into));
  } else if (value !== null && typeof value === 'object') {
    Object.values(value).forEach((item) => collectStrings(item, into));
  }
}

/** Maps each toolUseId of the assistant's toolUse blocks to the tool's name. */
function toolNamesById(messages: readonly ConverseMessage[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const message of messages) {
    if (message.role !== 'assistant') {
      continue;
    }
    for (const block of message.content) {
      const toolUse = asRecord(block.toolUse);
      if (typeof toolUse?.toolUseId === 'string' && typeof toolUse.name === 'string') {
        names.set(toolUse.toolUseId, toolUse.name);
      }
    }
  }
  return names;
}

/**
 * Returns the toolResult blocks of the user's messages, in order. Image,
 * document and video blocks of a result are not text, so they are left out.
 */
// NOTE: the guard checks only text and JSON content, so instructions inside
// an image or a document of a tool result reach the model unchecked.
export function toolResults(messages: readonly ConverseMessage[]): ToolResultEntry[] {
  const names = toolNamesById(messages);
  const entries: ToolResultEntry[] = [];
  messages.forEach((message, messageIndex) => {
    if (message.role !== 'user') {
      return;
    }
    for (const block of message.content) {
      const result = asRecord(block.toolResult);
      if (result === undefined) {
        continue;
      }
      const toolUseId = typeof result.toolUseId === 'string' ? result.toolUseId : '';
      const texts: string[] = [];
      const strings: string[] = [];
      for (const item of Array.isArray(result.content) ? result.content : []) {
        const part = asRecord(item);
        if (typeof part?.text === 'string') {
          texts.push(part.text);
          strings.push(part.text);
        } else if (part !== undefined && part.json !== undefined) {
          texts.push(JSON.stringify(part.json));
          collectStrings(part.json, strings);
        }
      }
      entries.push({ messageIndex, toolUseId, tool: names.get(toolUseId) ?? UNKNOWN_TOOL, texts, strings });
    }
  });
  return entries;
}
