import { z } from 'zod';
import type { GatewayAgentConfig, GatewayRequest } from '../../shared/contracts';
import { InvalidRequestError } from '../../shared/errors';
import type { GatewayStep } from '../pipeline';

// A content block is one member of the Converse ContentBlock union, such as
// {"text": "..."} or {"toolResult": {...}}, and Bedrock validates the member itself.
const contentBlockSchema = z
  .record(z.string(), z.unknown())
  .refine((block) => Object.keys(block).length > 0, {
    error: 'must be a content block such as {"text": "..."}',
  });

const messageSchema = z.strictObject({
  role: z.enum(['user', 'assistant']),
  content: z.array(contentBlockSchema).min(1, 'must contain at least one content block'),
});

const toolSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().min(1),
  inputSchema: z.record(z.string(), z.unknown()),
});

const MAX_TOKENS_RULE = "must be a positive integer no larger than the agent's maxTokensPerCall";

/** Shape of a {@link GatewayRequest}. Unknown fields are rejected, which catches typos. */
export const gatewayRequestSchema = z.strictObject({
  requestId: z.string().min(1),
  agent: z.string().min(1),
  userId: z.string().min(1),
  sessionId: z.string().min(1),
  system: z.string().min(1).optional(),
  messages: z.array(messageSchema).min(1, 'must contain at least one message'),
  tools: z.array(toolSchema).optional(),
  maxTokens: z
    .number({ error: MAX_TOKENS_RULE })
    .int(MAX_TOKENS_RULE)
    .positive(MAX_TOKENS_RULE)
    .optional(),
  // The upper bound depends on the model, so Bedrock checks it and a value
  // out of range comes back as a ValidationException.
  temperature: z.number().min(0).optional(),
  estimatedInputTokens: z.number().int().positive().optional(),
});

/** Object schema that validates the value at `path`, for listing its accepted fields. */
function schemaAt(path: readonly PropertyKey[]): { shape: object } {
  if (path[0] === 'messages') {
    return messageSchema;
  }
  if (path[0] === 'tools') {
    return toolSchema;
  }
  return gatewayRequestSchema;
}

const MAX_VALUE_CHARS = 60;

/** Formats a zod path as `messages[1].role`. */
function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    text += typeof key === 'number' ? `[${key}]` : `${text === '' ? '' : '.'}${String(key)}`;
  }
  return text === '' ? 'request' : text;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') {
      return undefined;
    }
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** Renders a request value for an error message, shortened so that prompts stay out of it. */
export function describeValue(value: unknown): string {
  if (value === undefined) {
    return 'no value';
  }
  const json = JSON.stringify(value) ?? String(value);
  return json.length > MAX_VALUE_CHARS ? `${json.slice(0, MAX_VALUE_CHARS)}...` : json;
}

/**
 * Describes a value by its type and size only, because values under
 * `messages` and `system` carry prompt text, which stays out of messages and logs.
 */
function describeShape(value: unknown): string {
  if (typeof value === 'string') {
    return `a string of ${value.length} characters`;
  }
  if (Array.isArray(value)) {
    return `an array of ${value.length} items`;
  }
  if (value !== null && typeof value === 'object') {
    return `an object with keys ${describeValue(Object.keys(value))}`;
  }
  return describeValue(value);
}

function holdsPromptText(path: readonly PropertyKey[]): boolean {
  const inPrompt = path[0] === 'messages' || path[0] === 'system';
  return inPrompt && path[path.length - 1] !== 'role';
}

function describeIssue(issue: z.core.$ZodIssue, event: unknown): string {
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length === 0 ? 'the request' : formatPath(issue.path);
    const accepted = Object.keys(schemaAt(issue.path).shape).join(', ');
    const unknown = issue.keys.join(', ');
    return `Unknown field ${unknown} in ${where}. Accepted fields there: ${accepted}.`;
  }
  const received = valueAt(event, issue.path);
  const value = holdsPromptText(issue.path) ? describeShape(received) : describeValue(received);
  const subject =
    issue.path.length === 0 ? 'Invalid request' : `Invalid request field ${formatPath(issue.path)}`;
  return `${subject}: ${issue.message}. Received ${value}.`;
}

/**
 * Words zod's type errors as `expected string` alone, because describeIssue
 * adds the value received. Other issues keep zod's message.
 */
function describeExpectedType(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'invalid_type') {
    return undefined;
  }
  return `expected ${issue.expected === 'record' ? 'object' : issue.expected}`;
}

/** Looks an agent up by own key, so that `constructor` is not found on the prototype. */
function findAgent(
  agents: Record<string, GatewayAgentConfig>,
  name: string,
): GatewayAgentConfig | undefined {
  return Object.hasOwn(agents, name) ? agents[name] : undefined;
}

function describeUnknownAgent(agent: string, agents: Record<string, GatewayAgentConfig>): string {
  const known = Object.keys(agents).join(', ') || 'none';
  return (
    `Invalid request field agent: agent ${describeValue(agent)} is not configured ` +
    `in this gateway. Configured agents: ${known}.`
  );
}

/**
 * Checks what the schema cannot: the conversation starts with a user turn
 * and alternates, and `maxTokens` fits the agent's limit. Returns the message
 * of the first failure.
 */
function findSemanticError(
  request: GatewayRequest,
  agentConfig: GatewayAgentConfig,
): string | undefined {
  const first = request.messages[0];
  if (first.role !== 'user') {
    return (
      `Invalid request field messages[0].role: a conversation must start with a user ` +
      `message. Received ${describeValue(first.role)}.`
    );
  }

  for (let i = 1; i < request.messages.length; i++) {
    const role = request.messages[i].role;
    if (role === request.messages[i - 1].role) {
      return (
        `Invalid request field messages[${i}].role: roles must alternate between user and ` +
        `assistant, but messages[${i - 1}] and messages[${i}] are both ${describeValue(role)}. ` +
        'Merge consecutive turns of one role into one message.'
      );
    }
  }

  const limit = agentConfig.maxTokensPerCall;
  if (request.maxTokens !== undefined && request.maxTokens > limit) {
    return (
      `Invalid request field maxTokens: ${request.maxTokens} is above the limit of ${limit} ` +
      `(maxTokensPerCall) for agent ${describeValue(request.agent)}. ` +
      `Send at most ${limit}, or omit maxTokens to use the limit.`
    );
  }
  return undefined;
}

/**
 * Validates the payload, looks up the agent and resolves `maxTokens`, which
 * defaults to the agent's `maxTokensPerCall`. Raises InvalidRequestError with
 * the field, the value received and the rule it broke.
 */
export const validateStep: GatewayStep = {
  name: 'validate',
  async run(context, next) {
    const parsed = gatewayRequestSchema.safeParse(context.event, { error: describeExpectedType });
    if (!parsed.success) {
      const messages = parsed.error.issues.slice(0, 3).map((issue) => {
        return describeIssue(issue, context.event);
      });
      throw new InvalidRequestError(messages.join(' '), context.requestId);
    }

    const request: GatewayRequest = parsed.data;
    const agents = context.services.config.agents;
    const agentConfig = findAgent(agents, request.agent);
    if (agentConfig === undefined) {
      throw new InvalidRequestError(describeUnknownAgent(request.agent, agents), context.requestId);
    }
    const semanticError = findSemanticError(request, agentConfig);
    if (semanticError !== undefined) {
      throw new InvalidRequestError(semanticError, context.requestId);
    }

    context.agentConfig = agentConfig;
    context.request = { ...request, maxTokens: request.maxTokens ?? agentConfig.maxTokensPerCall };
    await next();
  },
};
