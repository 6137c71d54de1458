/**
 * Redaction of secrets in the model's output before it reaches the caller
 * or the memory. It covers every text block and the strings of every
 * tool-use input, because a tool call can carry a secret out of the stack
 * as well as a text response can. lambda/shared/redact.ts lists the formats.
 * A tool that needs such a value should take a reference to it, such as the
 * name of a Secrets Manager secret, rather than the value.
 */
import type { ContentBlock, ConverseMessage, GatewayStreamEvent } from '../shared/contracts';
import {
  redactJsonStrings,
  redactSecrets,
  StreamRedactor,
  type SecretKind,
} from '../shared/redact';
import { recordRedaction } from './guard-verdicts';
import { requireField, type GatewayStep } from './pipeline';

/** A message with its secrets replaced, and the kind of each secret, in block order. */
export interface RedactedMessage {
  readonly message: ConverseMessage;
  readonly redacted: readonly SecretKind[];
}

interface ToolUseBlock {
  readonly toolUse: { readonly input?: unknown } & Record<string, unknown>;
}

function isToolUse(block: ContentBlock): block is ContentBlock & ToolUseBlock {
  return block.toolUse !== null && typeof block.toolUse === 'object';
}

/**
 * Replaces the secrets in the text blocks and tool-use inputs of `message`.
 * Blocks of other types are kept as they are.
 */
// NOTE: reasoning blocks are not redacted, because Bedrock checks their
// signature when the caller sends them back, and changed text fails that check.
export function redactMessage(message: ConverseMessage): RedactedMessage {
  const redacted: SecretKind[] = [];
  const content = message.content.map((block) => {
    if (typeof block.text === 'string') {
      const result = redactSecrets(block.text);
      redacted.push(...result.redacted);
      return { ...block, text: result.text };
    }
    if (isToolUse(block)) {
      const result = redactJsonStrings(block.toolUse.input);
      redacted.push(...result.redacted);
      return { ...block, toolUse: { ...block.toolUse, input: result.value } };
    }
    return block;
  });
  return { message: { ...message, content }, redacted };
}

/**
 * Replaces the secrets in the buffered model result before the response is
 * made, and records a `redaction` verdict when it replaced any.
 */
export const redactOutputStep: GatewayStep = {
  name: 'redact-output',
  async run(context, next) {
    const request = requireField(context, 'request', this.name);
    const result = requireField(context, 'result', this.name);
    const { message, redacted } = redactMessage(result.output);
    if (redacted.length > 0) {
      context.result = { ...result, output: message };
      recordRedaction(context, request, redacted, result.target);
    }
    await next();
  },
};

/**
 * Redacts the events of a streamed response before they are written. Each
 * text block has its own {@link StreamRedactor}, which holds back the end
 * of the text received until no secret can be cut there. A block's held text
 * is emitted before any event of another block and before `stop`, so the
 * events keep their order. Tool-use input arrives whole and is redacted at once.
 */
export class StreamOutputRedactor {
  private readonly textBlocks = new Map<number, StreamRedactor>();
  private readonly finished: SecretKind[] = [];

  /** Kind of each secret replaced so far, text held back included. */
  get redacted(): readonly SecretKind[] {
    const open = [...this.textBlocks.values()].flatMap((block) => block.redacted);
    return [...this.finished, ...open];
  }

  /** Returns the events to write for `event`, in order, possibly none. */
  accept(event: GatewayStreamEvent): GatewayStreamEvent[] {
    if (event.type === 'delta') {
      const out = this.flushBlocks(event.index);
      let block = this.textBlocks.get(event.index);
      if (block === undefined) {
        block = new StreamRedactor();
        this.textBlocks.set(event.index, block);
      }
      const text = block.push(event.text);
      if (text !== '') {
        out.push({ ...event, text });
      }
      return out;
    }
    const out = this.flushBlocks(undefined);
    if (event.type === 'toolUse') {
      const { value, redacted } = redactJsonStrings(event.input);
      this.finished.push(...redacted);
      out.push({ ...event, input: value });
      return out;
    }
    out.push(event);
    return out;
  }

  /**
   * Emits the held text of every text block except `keep`. Text still held
   * when a stream fails is never emitted, because the reader gets an error
   * event that marks the output incomplete.
   */
  private flushBlocks(keep: number | undefined): GatewayStreamEvent[] {
    const out: GatewayStreamEvent[] = [];
    for (const [index, block] of this.textBlocks) {
      if (index === keep) {
        continue;
      }
      const text = block.flush();
      this.finished.push(...block.redacted);
      this.textBlocks.delete(index);
      if (text !== '') {
        out.push({ type: 'delta', index, text });
      }
    }
    return out;
  }
}
