import type { ConverseCommandOutput } from '@aws-sdk/client-bedrock-runtime';
import type { GatewayStreamEvent, ModelTarget } from '../../shared/contracts';
import { AgentStackError, TimeoutError } from '../../shared/errors';
import { putCallMetrics } from '../call-metrics';
import { classifyModelError } from '../classify';
import { callWithFailover } from '../failover';
import { createFailoverReporter } from '../failover-report';
import { findGuardrailBlock } from '../guardrail';
import { recordRedaction } from '../guard-verdicts';
import {
  createCrossRegionGuardrail,
  namesGuardrailInline,
  type CrossRegionGuardrail,
} from '../guardrail-apply';
import { redactMessage, StreamOutputRedactor } from '../output-redaction';
import { requireField, type GatewayContext, type GatewayStep } from '../pipeline';
import { createCachePointPlanner } from '../prompt-cache-planner';
import { toTargetError } from '../target-errors';
import {
  openConverseStream,
  pumpStream,
  StreamAssembler,
  type OpenedStream,
} from './converse-stream';
import type { StreamEventWriter } from './event-writer';
import {
  streamUsageOf,
  type StreamOutcome,
  type StreamUsageRecord,
  type StreamUsageRecorder,
} from './usage';

/**
 * The reader of a streamed response went away before it ended, so the model
 * call was aborted. No reader is left for this error, so the gateway only
 * logs it.
 */
export class StreamCancelledError extends AgentStackError {
  public override readonly name = 'StreamCancelledError';
  // 499 is the status that proxies such as nginx log for a client that closed the request.
  public readonly statusCode = 499;
}

/** Gateway context of a streamed request. */
export interface StreamGatewayContext extends GatewayContext {
  /**
   * Usage of the streamed call, set once content began, also when the stream
   * then failed, so that a step around this one can settle it.
   */
  streamUsage?: StreamUsageRecord;
}

/**
 * Maps a failure to the typed error that ends the stream. Errors of the
 * failover loop arrive typed already, while a failure after the first
 * content arrives as the SDK raised it.
 */
function toStreamError(
  error: unknown,
  context: GatewayContext,
  readerGone: AbortSignal,
  target: ModelTarget,
): AgentStackError {
  if (readerGone.aborted) {
    return new StreamCancelledError(
      `The reader closed the stream of request ${context.requestId} before it ended, ` +
        'so the Bedrock call was aborted.',
      context.requestId,
      { cause: error },
    );
  }
  if (error instanceof AgentStackError) {
    return error;
  }
  const { deadline } = context;
  if (deadline !== undefined && context.services.now() >= deadline) {
    return new TimeoutError(
      `Bedrock ConverseStream on model ${target.modelId} in ${target.region} did not finish ` +
        `by the request's deadline of ${new Date(deadline).toISOString()}. Raise the ` +
        "gateway's timeout or requestDeadlineMs, or lower maxTokens.",
      context.requestId,
      { cause: error },
    );
  }
  return toTargetError(error, classifyModelError(error), target, context.requestId);
}

function outcomeOf(failure: AgentStackError | undefined): StreamOutcome {
  if (failure === undefined) {
    return 'completed';
  }
  return failure instanceof StreamCancelledError ? 'cancelled' : 'failed';
}

/** Runs the recorder, logging rather than raising its failure, because the stream is done. */
async function record(
  recordUsage: StreamUsageRecorder,
  usage: StreamUsageRecord,
  context: GatewayContext,
): Promise<void> {
  try {
    await recordUsage(usage, context.logger);
  } catch (error) {
    const fields = { totalTokens: usage.usage.totalTokens };
    context.logger.error('Recording stream usage failed', fields, error);
  }
}

/**
 * Opens the stream on the first target that delivers content. Each attempt
 * ends at its first content event, so a target that fails before it moves
 * the call to the next target through the failover loop and its circuit
 * breakers, and the reader never sees it. A target outside the guardrail's
 * region gets no `guardrailConfig`, and `crossRegion` checks the input
 * before its stream starts.
 */
async function openOnRoute(
  context: GatewayContext,
  signal: AbortSignal,
  crossRegion: CrossRegionGuardrail | undefined,
): Promise<OpenedStream> {
  const request = requireField(context, 'request', 'converse-stream');
  const route = requireField(context, 'route', 'converse-stream');
  const { breaker, clientForRegion, clientSettings, config, metrics, now } = context.services;
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
    // The attempt timeout bounds the time to the first content event, and the
    // client's first-byte timeout bounds the time to the response headers.
    attemptTimeoutMs: clientSettings.attemptTimeoutMs,
    attempt: async (target, attemptSignal) => {
      const callSignal = AbortSignal.any([attemptSignal, signal]);
      const remote = crossRegion !== undefined && !namesGuardrailInline(config.guardrail, target);
      const sent = remote ? await crossRegion.checkInput(target, callSignal) : request;
      const client = clientForRegion(target.region);
      const guardrail = remote ? undefined : config.guardrail;
      return openConverseStream(client, sent, target, callSignal, now, guardrail, planCachePoints(target));
    },
    onEvent,
    now,
  });
  return value;
}

/**
 * Creates the step that streams a model call to `writer`. It sends `start`
 * only after a target's first content event, so that a failure before it
 * can still move to another target without the reader seeing two starts.
 * After `start`, a failure raises the typed error, which the caller writes
 * as the `error` event, and the usage of what was generated is recorded in
 * either case.
 */
export function createConverseStreamStep(
  writer: StreamEventWriter,
  recordUsage: StreamUsageRecorder,
): GatewayStep {
  return {
    name: 'converse-stream',
    async run(context: StreamGatewayContext, next) {
      const request = requireField(context, 'request', this.name);
      const route = requireField(context, 'route', this.name);
      const { clientForRegion, config, now } = context.services;
      const crossRegion = createCrossRegionGuardrail(
        clientForRegion,
        config.guardrail,
        route,
        request,
        context.requestId,
      );
      // Aborted in `finally`, so that a stream left unread never keeps its connection open.
      const call = new AbortController();
      const signal = AbortSignal.any([writer.signal, call.signal]);

      let opened: OpenedStream;
      try {
        opened = await openOnRoute(context, signal, crossRegion);
      } catch (error) {
        call.abort();
        throw toStreamError(error, context, writer.signal, route[0]);
      }

      const { target } = opened;
      const assembler = new StreamAssembler(context.requestId, target);
      // Every event passes the redactor, which may hold back the end of a text block.
      const redactor = new StreamOutputRedactor();
      const write = async (event: GatewayStreamEvent) => {
        for (const redacted of redactor.accept(event)) {
          await writer.write(redacted);
        }
      };
      let failure: AgentStackError | undefined;
      try {
        await write({ type: 'start', requestId: context.requestId, target });
        await pumpStream(opened, assembler, write, context.requestId);
        if (writer.signal.aborted) {
          throw writer.signal.reason;
        }
        // A guardrail block ends the stream like an error, as it ends a buffered call.
        const traced = { stopReason: assembler.stopReason, trace: assembler.trace };
        const output = traced as ConverseCommandOutput;
        const blocked = findGuardrailBlock(output, config.guardrail, target, context.requestId);
        if (blocked !== undefined) {
          throw blocked;
        }
        if (crossRegion !== undefined && !namesGuardrailInline(config.guardrail, target)) {
          // NOTE: the text was streamed before this check, and a block cannot
          // recall it. The reader gets the error event last and must discard
          // the output. A masked result is raised as a block for that reason.
          const deadline = context.deadline;
          const checkSignal =
            deadline === undefined
              ? signal
              : AbortSignal.any([signal, AbortSignal.timeout(Math.max(0, deadline - now()))]);
          await crossRegion.checkOutput(assembler.message(), target, checkSignal, false);
        }
      } catch (error) {
        // NOTE: a failure after the first content does not count against the
        // target's circuit breaker, which recorded the attempt as a success.
        failure = toStreamError(error, context, writer.signal, target);
        throw failure;
      } finally {
        call.abort();
        recordRedaction(context, request, redactor.redacted, target);
        context.streamUsage = {
          requestId: context.requestId,
          agent: request.agent,
          userId: request.userId,
          sessionId: request.sessionId,
          target,
          outcome: outcomeOf(failure),
          usage: streamUsageOf(assembler.usage, request, assembler.outputChars),
          stopReason: assembler.stopReason,
          errorName: failure?.name,
          latencyMs: Math.round(now() - opened.startedAt),
          settlement: context.reservation?.guarded ? context.reservation.settlement : undefined,
        };
        if (failure !== undefined) {
          await record(recordUsage, context.streamUsage, context);
        }
        // Failed and cancelled streams spent tokens too, so they are counted here.
        putCallMetrics({
          metrics: context.services.metrics,
          config,
          agent: request.agent,
          target,
          usage: context.streamUsage.usage,
          latencyMs: context.streamUsage.latencyMs,
          requestId: context.requestId,
          properties: {
            outcome: context.streamUsage.outcome,
            usageEstimated: context.streamUsage.usage.estimated,
          },
        });
      }

      const { usage, latencyMs } = context.streamUsage;
      const { estimated: _estimated, ...callUsage } = usage;
      context.result = {
        // The same text as the deltas written, because the stream redactor
        // emits what redactSecrets makes of each whole block.
        output: redactMessage(assembler.message()).message,
        stopReason: assembler.stopReason ?? 'unknown',
        usage: callUsage,
        target,
        latencyMs,
      };
      // The usage event is the reader's last, so a completed stream settles
      // after it: the reader has everything it needs while the ledger write runs.
      try {
        await write({ type: 'usage', usage, latencyMs });
      } finally {
        await record(recordUsage, context.streamUsage, context);
      }
      await next();
    },
  };
}
