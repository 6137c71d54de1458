import {
  ConverseCommand,
  type ConverseCommandInput,
  type ConverseCommandOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { canonicalJson } from '../../shared/canonical';
import type {
  ContentBlock,
  ConverseMessage,
  GatewayGuardrail,
  ModelTarget,
  Usage,
} from '../../shared/contracts';
import { AgentStackError, ModelCallError } from '../../shared/errors';
import { putCallMetrics } from '../call-metrics';
import { classifyModelError } from '../classify';
import { callWithFailover } from '../failover';
import { createFailoverReporter } from '../failover-report';
import { converseGuardrailConfig, findGuardrailBlock } from '../guardrail';
import {
  createCrossRegionGuardrail,
  namesGuardrailInline,
  type CrossRegionGuardrail,
} from '../guardrail-apply';
import {
  requireField,
  type GatewayContext,
  type GatewayStep,
  type ModelCallResult,
  type ResolvedGatewayRequest,
} from '../pipeline';
import { CACHE_POINT_BLOCK, type CachePointPlan } from '../prompt-cache';
import { createCachePointPlanner } from '../prompt-cache-planner';
import { toTargetError } from '../target-errors';

/**
 * Builds the Converse input, passing content blocks through unchanged. With
 * a guardrail the input carries its `guardrailConfig`, trace enabled. With
 * `cachePoints` a cache point block follows the last tool definition, the
 * system prompt, or both.
 */
export function buildConverseInput(
  request: ResolvedGatewayRequest,
  target: ModelTarget,
  guardrail?: GatewayGuardrail,
  cachePoints?: CachePointPlan,
): ConverseCommandInput {
  const systemCachePoint = cachePoints?.afterSystem ? [CACHE_POINT_BLOCK] : [];
  const toolsCachePoint = cachePoints?.afterTools ? [CACHE_POINT_BLOCK] : [];
  // NOTE: binary members such as image bytes arrive as JSON, and nothing
  // converts base64 text to the Uint8Array the SDK expects for them yet.
  return {
    modelId: target.modelId,
    // The validate step checks only that each block is an object, and Bedrock
    // validates the union member, so the cast hands that check to Bedrock.
    messages: request.messages as unknown as ConverseCommandInput['messages'],
    system: request.system === undefined ? undefined : [{ text: request.system }, ...systemCachePoint],
    inferenceConfig: { maxTokens: request.maxTokens, temperature: request.temperature },
    toolConfig:
      request.tools === undefined || request.tools.length === 0
        ? undefined
        : {
            tools: [
              ...request.tools.map((tool) => ({
                toolSpec: {
                  name: tool.name,
                  description: tool.description,
                  inputSchema: { json: tool.inputSchema as never },
                },
              })),
              ...toolsCachePoint,
            ],
          },
    guardrailConfig: converseGuardrailConfig(guardrail),
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

/** Maps an SDK or network error to the typed error the caller receives. */
export function toGatewayError(
  error: unknown,
  target: ModelTarget,
  requestId: string,
): AgentStackError {
  return toTargetError(error, classifyModelError(error), target, requestId);
}

/** Returns `count` when it is a non-negative integer, else 0. */
function tokenCount(count: number | undefined): number {
  return Number.isInteger(count) && count! > 0 ? count! : 0;
}

/**
 * Returns the usage of a Converse response as counts the worker's token cap
 * and the budget can add up. A missing or negative count becomes 0. The
 * total is never below input plus output plus cache reads and writes,
 * because a smaller total would let a task run past its token cap. The cache
 * counts are kept only when Bedrock reported them.
 */
export function normalizeUsage(usage: ConverseCommandOutput['usage']): Usage {
  const inputTokens = tokenCount(usage?.inputTokens);
  const outputTokens = tokenCount(usage?.outputTokens);
  const cache: { cacheReadInputTokens?: number; cacheWriteInputTokens?: number } = {};
  if (usage?.cacheReadInputTokens !== undefined) {
    cache.cacheReadInputTokens = tokenCount(usage.cacheReadInputTokens);
  }
  if (usage?.cacheWriteInputTokens !== undefined) {
    cache.cacheWriteInputTokens = tokenCount(usage.cacheWriteInputTokens);
  }
  const counted =
    inputTokens +
    outputTokens +
    (cache.cacheReadInputTokens ?? 0) +
    (cache.cacheWriteInputTokens ?? 0);
  const totalTokens = Math.max(tokenCount(usage?.totalTokens), counted);
  return { inputTokens, outputTokens, totalTokens, ...cache };
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
 * Calls Converse on one target and returns its result. A guardrail block is
 * raised as GuardrailBlockedError, which does not fail over. A target in the
 * guardrail's region gets the guardrail in its `guardrailConfig`, and for
 * any other target `crossRegion` checks the input and output instead. The
 * client's first-byte timeout is turned off for this call, because Converse
 * sends its headers only after generation, and the failover loop's attempt
 * timeout bounds the call instead.
 */
async function converseOnce(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  target: ModelTarget,
  signal: AbortSignal,
  crossRegion: CrossRegionGuardrail | undefined,
  cachePoints: CachePointPlan,
): Promise<ModelCallResult> {
  const { clientForRegion, config, now } = context.services;
  const startedAt = now();
  const remote = crossRegion !== undefined && !namesGuardrailInline(config.guardrail, target);
  const sent = remote ? await crossRegion.checkInput(target, signal) : request;
  const input = buildConverseInput(sent, target, remote ? undefined : config.guardrail, cachePoints);
  const output = await clientForRegion(target.region).send(new ConverseCommand(input), {
    abortSignal: signal,
    requestTimeout: 0,
  });
  const usage = normalizeUsage(output.usage);
  const blocked = findGuardrailBlock(output, config.guardrail, target, context.requestId);
  if (blocked !== undefined) {
    context.failedCall = { target, usage };
    throw blocked;
  }
  let message = requireOutputMessage(output, target, context.requestId);
  let guardrailMasked = false;
  if (remote) {
    try {
      const checked = await crossRegion.checkOutput(message, target, signal, true);
      guardrailMasked = canonicalJson(checked.content) !== canonicalJson(message.content);
      message = checked;
    } catch (error) {
      context.failedCall = { target, usage };
      throw error;
    }
  }
  return {
    output: message,
    stopReason: output.stopReason ?? 'unknown',
    usage,
    ...(guardrailMasked ? { guardrailMasked } : {}),
    target,
    latencyMs: Math.round(now() - startedAt),
  };
}

/**
 * Calls Bedrock Converse on the route's targets in order, failing over on
 * throttling, server errors, timeouts and connection errors, and stores the
 * result. The call is aborted at the request's deadline, so that the caller
 * gets a TimeoutError before Lambda stops the invocation.
 */
export const invokeModelStep: GatewayStep = {
  name: 'invoke-model',
  async run(context, next) {
    const request = requireField(context, 'request', this.name);
    const route = requireField(context, 'route', this.name);
    const { breaker, clientForRegion, clientSettings, config, metrics, now } = context.services;
    const crossRegion = createCrossRegionGuardrail(
      clientForRegion,
      config.guardrail,
      route,
      request,
      context.requestId,
    );
    const onEvent = createFailoverReporter({
      logger: context.logger,
      metrics,
      agent: request.agent,
      requestId: context.requestId,
    });
    const planCachePoints = createCachePointPlanner(context, request);

    const { value } = await callWithFailover({
      targets: route,
      breaker,
      requestId: context.requestId,
      deadline: context.deadline,
      attemptTimeoutMs: clientSettings.attemptTimeoutMs,
      attempt: (target, signal) =>
        converseOnce(context, request, target, signal, crossRegion, planCachePoints(target)),
      onEvent,
      now,
    });
    context.result = value;
    // NOTE: a call that Bedrock returned a response for but that raised later, such as
    // a guardrail block, writes no per-call metrics, because its usage is dropped.
    putCallMetrics({
      metrics,
      config,
      agent: request.agent,
      target: value.target,
      usage: value.usage,
      latencyMs: value.latencyMs,
      requestId: context.requestId,
    });
    await next();
  },
};
