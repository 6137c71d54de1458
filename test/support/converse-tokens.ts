/**
 * Token accounting of the loopback Bedrock server: a deterministic count of
 * the tokens of a Converse request and of a response, for tests that do not
 * script the usage. It imports nothing from `lambda/`, so the runtime's own
 * estimates are measured against a count they do not share.
 *
 * The count is the loopback server's rule, not a model's tokenizer, and
 * every figure derived from it is simulated:
 * - Text: each run of letters is one token per 6 letters or part of it,
 *   each run of digits one token per 3 digits or part of it, and every other
 *   character that is not white space one token. English prose comes out
 *   near 4.5 characters per token, and JSON, whose punctuation counts one
 *   token a character, comes out denser, as byte-pair tokenizers behave.
 * - Each message adds {@link MESSAGE_OVERHEAD_TOKENS} for its role markers,
 *   and each toolUse and toolResult block adds {@link TOOL_BLOCK_OVERHEAD_TOKENS}.
 * - A request with tools adds the tool definitions as JSON text and the
 *   system prompt that enables tool use. Anthropic documents that tool use
 *   adds tokens for the tool definitions, the tool_use and tool_result
 *   blocks and a tool-use system prompt, which is 159 tokens for Claude 3
 *   Sonnet with tool choice auto:
 *   https://docs.anthropic.com/es/docs/tool-use-pricing-and-tokens
 */

/** Role markers of one message. */
export const MESSAGE_OVERHEAD_TOKENS = 3;

/** Markers around one toolUse or toolResult block. */
export const TOOL_BLOCK_OVERHEAD_TOKENS = 3;

/** The tool-use system prompt of Claude 3 Sonnet with tool choice auto, per Anthropic's table. */
export const TOOL_USE_SYSTEM_PROMPT_TOKENS = 159;

const LETTERS_PER_TOKEN = 6;
const DIGITS_PER_TOKEN = 3;
const PIECE = /\p{L}+|\p{N}+|[^\s\p{L}\p{N}]/gu;

/** Counts the tokens of `text` by the rule in this module's header. */
export function countTextTokens(text: string): number {
  let tokens = 0;
  for (const [piece] of text.matchAll(PIECE)) {
    if (/^\p{L}/u.test(piece)) tokens += Math.ceil(piece.length / LETTERS_PER_TOKEN);
    else if (/^\p{N}/u.test(piece)) tokens += Math.ceil(piece.length / DIGITS_PER_TOKEN);
    else tokens += 1;
  }
  return tokens;
}

function jsonTokens(value: unknown): number {
  return countTextTokens(JSON.stringify(value) ?? 'null');
}

type Block = Record<string, unknown>;

/** Counts the tokens of one content block of a message or of a response. */
export function countBlockTokens(block: Block): number {
  if (typeof block.text === 'string') return countTextTokens(block.text);
  if ('cachePoint' in block) return 0;
  if ('toolUse' in block) {
    const use = block.toolUse as { name?: unknown; input?: unknown };
    return TOOL_BLOCK_OVERHEAD_TOKENS + countTextTokens(String(use.name ?? '')) + jsonTokens(use.input ?? {});
  }
  if ('toolResult' in block) {
    const content = (block.toolResult as { content?: unknown }).content;
    const parts = Array.isArray(content) ? (content as Block[]) : [];
    return TOOL_BLOCK_OVERHEAD_TOKENS + parts.reduce((sum, part) => sum + countBlockTokens(part), 0);
  }
  if ('json' in block) return jsonTokens(block.json);
  if ('reasoningContent' in block) {
    const reasoning = (block.reasoningContent as { reasoningText?: { text?: unknown } }).reasoningText;
    return countTextTokens(String(reasoning?.text ?? ''));
  }
  // Images, documents and other members are counted by their JSON text.
  return jsonTokens(block);
}

/**
 * One part of the prompt in the order the model reads it: tool
 * definitions, then system blocks, then each content block of each message.
 * A `cachePoint` block is a part of its own with no tokens, so prompt-cache
 * accounting can sum the tokens before each cache point.
 */
export interface PromptPart {
  /** Where the part sits in the request, such as `messages.2.content.1` or `toolConfig`. */
  readonly path: string;
  readonly tokens: number;
  /** True for a `cachePoint` block. */
  readonly cachePoint: boolean;
}

/** Splits a Converse request body into the parts of {@link PromptPart}, with their tokens. */
export function promptParts(body: unknown): PromptPart[] {
  const request = (body ?? {}) as Record<string, unknown>;
  const parts: PromptPart[] = [];
  const tools = (request.toolConfig as { tools?: unknown[] } | undefined)?.tools ?? [];
  for (const [i, tool] of tools.entries()) {
    const isCachePoint = typeof tool === 'object' && tool !== null && 'cachePoint' in tool;
    parts.push({ path: `toolConfig.tools.${i}`, tokens: isCachePoint ? 0 : jsonTokens(tool), cachePoint: isCachePoint });
  }
  if (tools.length > 0) {
    parts.push({ path: 'toolConfig', tokens: TOOL_USE_SYSTEM_PROMPT_TOKENS, cachePoint: false });
  }
  const system = Array.isArray(request.system) ? (request.system as Block[]) : [];
  for (const [i, block] of system.entries()) {
    parts.push({ path: `system.${i}`, tokens: countBlockTokens(block), cachePoint: 'cachePoint' in block });
  }
  const messages = Array.isArray(request.messages) ? (request.messages as Block[]) : [];
  for (const [i, message] of messages.entries()) {
    parts.push({ path: `messages.${i}`, tokens: MESSAGE_OVERHEAD_TOKENS, cachePoint: false });
    const content = Array.isArray(message.content) ? (message.content as Block[]) : [];
    for (const [j, block] of content.entries()) {
      parts.push({
        path: `messages.${i}.content.${j}`,
        tokens: countBlockTokens(block),
        cachePoint: 'cachePoint' in block,
      });
    }
  }
  return parts;
}

/** Counts the input tokens of a Converse request body. */
export function countInputTokens(body: unknown): number {
  return promptParts(body).reduce((sum, part) => sum + part.tokens, 0);
}

/** Counts the output tokens of the content blocks of a response message. */
export function countOutputTokens(content: readonly Block[]): number {
  return content.reduce((sum, block) => sum + countBlockTokens(block), 0);
}
