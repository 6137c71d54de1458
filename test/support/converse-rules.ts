/**
 * The conversation rules that Bedrock enforces on a Converse or
 * ConverseStream request, checked the way Bedrock checks them, so that the
 * loopback server rejects what Bedrock rejects with the same
 * ValidationException message. This module imports nothing from `lambda/`,
 * so a bug in the runtime cannot hide the same bug in its check.
 *
 * Sources of the rules and message texts:
 * - A ToolResultBlock has a required `content` and an optional `status` of
 *   `success` or `error`:
 *   https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolResultBlock.html
 * - A ValidationException is HTTP 400 with a `message` member:
 *   https://docs.aws.amazon.com/botocore/latest/reference/services/bedrock-runtime/client/exceptions/ValidationException.html
 * - The message texts are the ones Bedrock returned in these public reports:
 *   first role https://github.com/langgenius/dify/issues/12340,
 *   alternation https://github.com/langchain-ai/langchain-aws/issues/130,
 *   empty content https://github.com/earendil-works/pi/pull/3443,
 *   blank text https://github.com/Just-Curieous/Curie/issues/14,
 *   missing toolConfig https://github.com/langgenius/dify/issues/17545,
 *   missing tool results https://github.com/agno-agi/agno/issues/6698,
 *   extra tool results https://github.com/Just-Curieous/Curie/issues/16,
 *   error result without content
 *   https://github.com/aws-samples/sample-multi-agent-orchestration-chat-on-agentcore/issues/15,
 *   reasoning not first https://github.com/aws/bedrock-agentcore-sdk-python/pull/419,
 *   reasoning missing in the tool loop https://github.com/langchain-ai/langchain-aws/issues/844,
 *   altered reasoning https://github.com/openclaw/openclaw/issues/88020.
 */
import { createHmac } from 'node:crypto';

/** A conversation rule of Converse that the loopback server enforces. */
export type ConverseRule =
  | 'content-not-empty'
  | 'text-not-blank'
  | 'first-message-user'
  | 'roles-alternate'
  | 'tool-config-present'
  | 'tool-results-not-extra'
  | 'tool-uses-answered'
  | 'error-result-has-content'
  | 'reasoning-block-first'
  | 'reasoning-in-tool-loop'
  | 'reasoning-signature-valid';

/** The first rule a request breaks, with the message Bedrock returns for it. */
export interface ConverseRuleViolation {
  readonly rule: ConverseRule;
  /** Message of the ValidationException, in the words Bedrock uses. */
  readonly message: string;
}

/** Settings of {@link findConverseViolation}. */
export interface ConverseRuleOptions {
  /**
   * Check the request as if extended thinking were enabled for the model,
   * which the gateway does not set per request. A request that sets
   * `additionalModelRequestFields.thinking.type` to `enabled` is checked so
   * regardless.
   * @default false
   */
  readonly thinking?: boolean;
}

type Block = Record<string, unknown>;

interface WireMessage {
  readonly role: unknown;
  readonly content: unknown;
}

/**
 * Key of the loopback signature of a reasoning block. Real signatures are
 * opaque to the caller, and the code under test has no access to this key,
 * so it cannot forge one.
 */
const SIGNATURE_KEY = 'loopback-reasoning-signature';

/** Signs reasoning text as the loopback server does when it sends a reasoning block. */
export function signReasoning(text: string): string {
  return createHmac('sha256', SIGNATURE_KEY).update(text).digest('base64');
}

/** Name of a content block's type as Anthropic's messages name it, for the reasoning messages. */
function anthropicType(block: Block): string {
  if ('toolUse' in block) return 'tool_use';
  if ('toolResult' in block) return 'tool_result';
  if ('reasoningContent' in block) return 'thinking';
  return Object.keys(block)[0] ?? 'unknown';
}

function blocksOf(message: WireMessage): Block[] {
  return Array.isArray(message.content) ? (message.content as Block[]) : [];
}

function toolUseIds(message: WireMessage): string[] {
  return blocksOf(message)
    .map((block) => (block.toolUse as { toolUseId?: unknown } | undefined)?.toolUseId)
    .filter((id): id is string => typeof id === 'string');
}

function toolResultsOf(message: WireMessage): Array<{ index: number; result: Record<string, unknown> }> {
  return blocksOf(message).flatMap((block, index) =>
    block.toolResult !== undefined && block.toolResult !== null
      ? [{ index, result: block.toolResult as Record<string, unknown> }]
      : [],
  );
}

function thinkingEnabled(body: Record<string, unknown>, options: ConverseRuleOptions): boolean {
  const fields = body.additionalModelRequestFields as { thinking?: { type?: unknown } } | undefined;
  return options.thinking === true || fields?.thinking?.type === 'enabled';
}

function violation(rule: ConverseRule, message: string): ConverseRuleViolation {
  return { rule, message };
}

/** Checks that every message has content and that no text block is blank. */
function checkContent(messages: readonly WireMessage[]): ConverseRuleViolation | undefined {
  for (const [i, message] of messages.entries()) {
    const blocks = blocksOf(message);
    if (blocks.length === 0) {
      return violation(
        'content-not-empty',
        `The content field in the Message object at messages.${i} is empty. ` +
          'Add a ContentBlock object to the content field and try again.',
      );
    }
    for (const [j, block] of blocks.entries()) {
      if (typeof block.text === 'string' && block.text.trim() === '') {
        return violation(
          'text-not-blank',
          `The text field in the ContentBlock object at messages.${i}.content.${j} is blank. ` +
            'Add text to the text field, and try again.',
        );
      }
    }
  }
  return undefined;
}

/** Checks that the conversation starts with a user message and that roles alternate. */
function checkRoles(messages: readonly WireMessage[]): ConverseRuleViolation | undefined {
  if (messages.length === 0 || messages[0].role !== 'user') {
    return violation(
      'first-message-user',
      'A conversation must start with a user message. Try again with a conversation that starts with a user message.',
    );
  }
  for (let i = 1; i < messages.length; i++) {
    if (messages[i].role === messages[i - 1].role) {
      return violation(
        'roles-alternate',
        'A conversation must alternate between user and assistant roles. Make sure the conversation ' +
          'alternates between user and assistant roles and try again.',
      );
    }
  }
  return undefined;
}

/**
 * Checks that tool blocks come with a toolConfig, that each user message
 * carries exactly one toolResult for every toolUse of the assistant message
 * before it, and that an error result has content.
 */
function checkToolBlocks(
  body: Record<string, unknown>,
  messages: readonly WireMessage[],
): ConverseRuleViolation | undefined {
  const usesTools = messages.some((message) =>
    blocksOf(message).some((block) => 'toolUse' in block || 'toolResult' in block),
  );
  const tools = (body.toolConfig as { tools?: unknown } | undefined)?.tools;
  if (usesTools && (!Array.isArray(tools) || tools.length === 0)) {
    return violation(
      'tool-config-present',
      'The toolConfig field must be defined when using toolUse and toolResult content blocks.',
    );
  }

  for (const [i, message] of messages.entries()) {
    if (message.role !== 'user') continue;
    const previous = i > 0 && messages[i - 1].role === 'assistant' ? messages[i - 1] : undefined;
    const uses = previous === undefined ? [] : toolUseIds(previous);
    const results = toolResultsOf(message);
    if (results.length > uses.length) {
      return violation(
        'tool-results-not-extra',
        `The number of toolResult blocks at messages.${i}.content exceeds the number of toolUse blocks of previous turn.`,
      );
    }
    const answered = new Set(results.map(({ result }) => result.toolUseId));
    const missing = uses.filter((id) => !answered.has(id));
    if (missing.length > 0) {
      return violation(
        'tool-uses-answered',
        `Expected toolResult blocks at messages.${i}.content for the following Ids: ${missing.join(', ')}`,
      );
    }
    for (const { index, result } of results) {
      const content = result.content;
      if (result.status === 'error' && (!Array.isArray(content) || content.length === 0)) {
        return violation(
          'error-result-has-content',
          `The content field at messages.${i}.content.${index}.toolResult cannot be empty when status value is error.`,
        );
      }
    }
  }
  // A toolUse in the last message has no user message after it, and this
  // check leaves it alone.
  return undefined;
}

/**
 * Checks reasoning blocks: one that an assistant message carries comes
 * first in it and keeps the signature the server gave it, and with thinking
 * enabled the assistant message that opened the active tool loop starts
 * with one. The active tool loop is the run of messages after the last user
 * message that carries more than tool results, when the conversation ends
 * with tool results.
 */
function checkReasoning(
  messages: readonly WireMessage[],
  thinking: boolean,
): ConverseRuleViolation | undefined {
  for (const [i, message] of messages.entries()) {
    if (message.role !== 'assistant') continue;
    const blocks = blocksOf(message);
    const firstReasoning = blocks.findIndex((block) => 'reasoningContent' in block);
    if (firstReasoning > 0) {
      return violation(
        'reasoning-block-first',
        `If an assistant message contains any thinking blocks, the first block must be thinking. Found ${anthropicType(blocks[0])}`,
      );
    }
    for (const [j, block] of blocks.entries()) {
      const reasoning = (block.reasoningContent as { reasoningText?: { text?: unknown; signature?: unknown } })
        ?.reasoningText;
      if (reasoning === undefined) continue;
      if (typeof reasoning.text !== 'string' || reasoning.signature !== signReasoning(reasoning.text)) {
        return violation(
          'reasoning-signature-valid',
          `The model returned the following errors: messages.${i}.content.${j}: Invalid signature in thinking block`,
        );
      }
    }
  }

  const last = messages[messages.length - 1];
  if (!thinking || last?.role !== 'user' || toolResultsOf(last).length === 0) return undefined;
  let loopStart = messages.length - 1;
  while (loopStart > 0) {
    const message = messages[loopStart];
    const onlyResults = message.role === 'user' && blocksOf(message).every((block) => 'toolResult' in block);
    if (message.role === 'user' && !onlyResults) break;
    loopStart -= 1;
  }
  const opener = messages[loopStart + 1];
  const firstBlock = opener === undefined ? undefined : blocksOf(opener)[0];
  if (opener?.role === 'assistant' && firstBlock !== undefined && !('reasoningContent' in firstBlock)) {
    return violation(
      'reasoning-in-tool-loop',
      `The model returned the following errors: messages.${loopStart + 1}.content.0.type: Expected \`thinking\` ` +
        `or \`redacted_thinking\`, but found \`${anthropicType(firstBlock)}\`. When \`thinking\` is enabled, a final ` +
        '`assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and ' +
        '`tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this ' +
        'requirement, disable `thinking`. Please consult our documentation at ' +
        'https://docs.claude.com/en/docs/build-with-claude/extended-thinking',
    );
  }
  return undefined;
}

/**
 * Returns the first conversation rule that a Converse request body breaks,
 * or undefined when it breaks none. The checks run in this order: content,
 * roles, tool blocks, reasoning.
 */
// NOTE: which message Bedrock reports for a request that breaks several
// rules is not documented, so this order is a guess.
export function findConverseViolation(
  body: unknown,
  options: ConverseRuleOptions = {},
): ConverseRuleViolation | undefined {
  const request = (body ?? {}) as Record<string, unknown>;
  const messages = Array.isArray(request.messages) ? (request.messages as WireMessage[]) : [];
  return (
    checkContent(messages) ??
    checkRoles(messages) ??
    checkToolBlocks(request, messages) ??
    checkReasoning(messages, thinkingEnabled(request, options))
  );
}
