import {
  ConverseCommand,
  type ConverseCommandInput,
  type ConverseCommandOutput,
} from '@aws-sdk/client-bedrock-runtime';
import type { ContentBlock, ConverseMessage, ModelTarget, Usage } from '../../shared/contracts';
import {
  AgentStackError,
  InvalidRequestError,
  ModelCallError,
  TimeoutError,
} from '../../shared/errors';
import { requireField, type GatewayStep, type ResolvedGatewayRequest } from '../pipeline';

/** Next step for the caller, keyed by Bedrock exception name. */
const NEXT_STEP_BY_ERROR: Record<string, string> = {
  ThrottlingException: 'Retry later, or raise the Bedrock quota for this model and region.',
  ServiceQuotaExceededException: 'Raise the Bedrock quota for this model and region.',
  AccessDeniedException:
    'Grant bedrock:InvokeModel on this model to the gateway role and enable access to ' +
    'the model in the Bedrock console of this region.',
  ResourceNotFoundException:
    'Check the model id in the route, because it must exist in this region.',
  ServiceUnavailableException: 'Retry later, or add a target in another region to the route.',
  InternalServerException: 'Retry later, or add a target in another region to the route.',
  ModelNotReadyException: 'Retry in a few seconds, once the model is ready.',
};

/** Builds the Converse input, passing content blocks through unchanged. */
export function buildConverseInput(
  request: ResolvedGatewayRequest,
  target: ModelTarget,
): ConverseCommandInput {
  // NOTE: binary members such as image bytes arrive as JSON, and nothing
  // converts base64 text to the Uint8Array the SDK expects for them yet.
  return {
    modelId: target.modelId,
    // The validate step checks only that each block is an object, and Bedrock
    // validates the union member, so the cast hands that check to Bedrock.
    messages: request.messages as unknown as ConverseCommandInput['messages'],
    system: request.system === undefined ? undefined : [{ text: request.system }],
    inferenceConfig: { maxTokens: request.maxTokens, temperature: request.temperature },
    toolConfig:
      request.tools === undefined || request.tools.length === 0
        ? undefined
        : {
            tools: request.tools.map((tool) => ({
              toolSpec: {
                name: tool.name,
                description: tool.description,
                inputSchema: { json: tool.inputSchema as never },
              },
            })),
          },
  };
}

/**
 * Returns the content blocks as Converse JSON. The SDK wraps a union member it
 * does not know as `{ $unknown: [name, value] }`, which is unwrapped so that a
 * block type newer than the SDK still reaches the caller.
 */
function toContentBlocks(content: readonly object[] | undefined): ContentBlock[] {
  return (content ?? []).map((block) => {
    const unknownMember = (block as { $unknown?: [string, unknown] }).$unknown;
    return unknownMember === undefined
      ? (block as ContentBlock)
      : { [unknownMember[0]]: unknownMember[1] };
  });
}

/** Name of the error: the Bedrock exception name, or a Node.js code such as ECONNREFUSED. */
function errorCodeOf(error: unknown): string {
  if (!(error instanceof Error)) {
    return 'UnknownError';
  }
  const code = (error as { code?: unknown }).code;
  return error.name === 'Error' && typeof code === 'string' ? code : error.name;
}

/** Ends a message from another system with a full stop, so that the next sentence reads on. */
function asSentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** Maps an SDK or network error to the typed error the caller receives. */
export function toGatewayError(
  error: unknown,
  target: ModelTarget,
  requestId: string,
): AgentStackError {
  const call = `Bedrock Converse on model ${target.modelId} in ${target.region}`;
  const code = errorCodeOf(error);
  const detail = asSentence(error instanceof Error ? error.message : String(error));
  if (code === 'ValidationException') {
    return new InvalidRequestError(
      `${call} rejected the request: ${detail} Fix the request, because sending it again ` +
        'unchanged fails the same way.',
      requestId,
      { cause: error },
    );
  }
  const nextStep = NEXT_STEP_BY_ERROR[code] ?? 'Retry later, and check the target if it persists.';
  return new ModelCallError(`${call} failed with ${code}: ${detail} ${nextStep}`, requestId, code, {
    cause: error,
  });
}

/** Returns `count` when it is a non-negative integer, else 0. */
function tokenCount(count: number | undefined): number {
  return Number.isInteger(count) && count! > 0 ? count! : 0;
}

/**
 * Returns the usage of a Converse response as counts the worker's token cap
 * and the budget can add up. A missing or negative count becomes 0, and the
 * total is never below input plus output, because a smaller total would
 * let a task run past its token cap.
 */
export function normalizeUsage(usage: ConverseCommandOutput['usage']): Usage {
  const inputTokens = tokenCount(usage?.inputTokens);
  const outputTokens = tokenCount(usage?.outputTokens);
  const totalTokens = Math.max(tokenCount(usage?.totalTokens), inputTokens + outputTokens);
  return { inputTokens, outputTokens, totalTokens };
}

/** Raises the error for a response without an output message, which Bedrock should never send. */
function requireOutputMessage(
  output: ConverseCommandOutput,
  target: ModelTarget,
  requestId: string,
): ConverseMessage {
  const message = output.output?.message;
  if (message === undefined || (message.role !== 'user' && message.role !== 'assistant')) {
    throw new ModelCallError(
      `Bedrock Converse on model ${target.modelId} in ${target.region} returned no output ` +
        'message. Retry the call; if it persists, try another target.',
      requestId,
      'MissingOutputMessage',
    );
  }
  return { role: message.role, content: toContentBlocks(message.content) };
}

/**
 * Calls Bedrock Converse on the route's first target and stores the result.
 * The call is aborted at the request's deadline, so that the caller gets a
 * TimeoutError before Lambda stops the invocation.
 */
export const invokeModelStep: GatewayStep = {
  name: 'invoke-model',
  async run(context, next) {
    const request = requireField(context, 'request', this.name);
    const route = requireField(context, 'route', this.name);
    const { clientForRegion, now } = context.services;

    // NOTE: only the first target is called, because failover to later targets is not built.
    const target = route[0];
    const client = clientForRegion(target.region);
    const startedAt = now();
    const remainingMs = context.deadline === undefined ? undefined : context.deadline - startedAt;
    if (remainingMs !== undefined && remainingMs <= 0) {
      throw new TimeoutError(
        `No time is left to call Bedrock before the gateway's Lambda timeout, because ` +
          `the deadline passed ${-remainingMs} ms ago. Raise the gateway timeout.`,
        context.requestId,
      );
    }

    let output: ConverseCommandOutput;
    try {
      output = await client.send(new ConverseCommand(buildConverseInput(request, target)), {
        abortSignal: remainingMs === undefined ? undefined : AbortSignal.timeout(remainingMs),
      });
    } catch (error) {
      if (errorCodeOf(error) === 'AbortError' && remainingMs !== undefined) {
        throw new TimeoutError(
          `Bedrock Converse on model ${target.modelId} in ${target.region} did not finish ` +
            `within the ${remainingMs} ms left before the gateway's Lambda timeout. ` +
            'Raise the gateway timeout or lower maxTokens.',
          context.requestId,
          { cause: error },
        );
      }
      throw toGatewayError(error, target, context.requestId);
    }

    context.result = {
      output: requireOutputMessage(output, target, context.requestId),
      stopReason: output.stopReason ?? 'unknown',
      usage: normalizeUsage(output.usage),
      target,
      latencyMs: Math.round(now() - startedAt),
    };
    await next();
  },
};
