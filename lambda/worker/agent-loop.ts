/**
 * The agent loop: load the session, let the model and the tools take turns
 * until the model ends its turn or a limit stops the task, then save the new
 * turns and return the output.
 */
import { randomUUID } from 'crypto';
import { NO_AUDIT, type AuditSink } from '../shared/audit';
import { ConverseMessage, FINAL_ANSWER_TOOL, Usage, WorkerRuntimeConfig } from '../shared/contracts';
import { InvalidRequestError, TimeoutError } from '../shared/errors';
import { Logger } from '../shared/logger';
import { MetricsWriter } from '../shared/metrics';
import { ToolApprovals } from './approvals';
import { TaskAbortedError, isAbortError } from './errors';
import {
  FINAL_ANSWER_SPEC,
  FinalAnswer,
  finalAnswerResults,
  readFinalAnswer,
  systemPromptOf,
} from './final-answer';
import { textOf, toolUses, unansweredToolResults, type NumberedMessage } from './history';
import { HistoryCompressor, type SummaryCall } from './history-compressor';
import { SessionMemory } from './memory';
import { putTaskMetrics } from './metrics';
import { ModelClient, ModelStreamListener } from './model-client';
import { flushAudit, runInTask } from './task-audit';
import { EstimateTally, withMargin } from './token-estimate';
import { ToolOutcome, ToolRunner, ToolUse, toolResultBlock, toolSpecs } from './tools';

/** Calls of one tool with the same input that stop a task. */
export const REPEATED_CALL_LIMIT = 3;

/**
 * Why a task stopped: a Converse stop reason other than `tool_use`, such as
 * `end_turn`, `max_tokens` or `guardrail_intervened`, a call of the final
 * answer tool (`final_answer`), a high-impact call that waits for a
 * person's decision (`awaiting_approval`), or one of the worker's own limits.
 */
export type StopReason =
  | 'end_turn'
  | 'final_answer'
  | 'awaiting_approval'
  | 'max_iterations'
  | 'max_tokens_per_task'
  | 'repeated_tool_call'
  | 'timeout'
  | (string & {});

/**
 * One message to an agent, from an authenticated user, or the resume of a
 * session whose high-impact tool call waited for approval `resume`.
 */
export type AgentTask = {
  readonly requestId: string;
  readonly userId: string;
  readonly sessionId: string;
} & (
  | { readonly message: string; readonly resume?: undefined }
  | { readonly resume: string; readonly message?: undefined }
);

export interface AgentResult {
  readonly requestId: string;
  readonly sessionId: string;
  /**
   * The answer of a final answer call, or else the text of the model's last
   * turn; empty when a limit stopped it before it wrote any.
   */
  readonly output: string;
  readonly stopReason: StopReason;
  /**
   * Confidence from 0 to 1 that the model reported with its final answer;
   * absent when it answered without the final answer tool or reported an
   * invalid value.
   */
  readonly confidence?: number;
  /** Model calls the task made. */
  readonly iterations: number;
  /** Tokens of all model calls of the task. */
  readonly usage: Usage;
  readonly toolCalls: number;
  /** Id of the approval the task waits for, with stop reason `awaiting_approval`. */
  readonly approvalId?: string;
}

export interface AgentLoopDeps {
  readonly config: WorkerRuntimeConfig;
  readonly model: ModelClient;
  readonly tools: ToolRunner;
  readonly memory: SessionMemory;
  readonly logger: Logger;
  /**
   * Writer of the task's metric line.
   * @default - a MetricsWriter writing to stdout
   */
  readonly metrics?: MetricsWriter;
  /**
   * Approval requests of high-impact tool calls, which wait for a person's decision.
   * @default - none, so every high-impact call is rejected
   */
  readonly approvals?: ToolApprovals;
  /**
   * Destination of the audit records of approvals and approved tool calls,
   * flushed at the end of each task. Pass the same sink to the ToolRunner,
   * which records every tool call.
   * @default NO_AUDIT
   */
  readonly audit?: AuditSink;
}

/** Serializes `value` with sorted object keys, so equal inputs compare equal. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function describeStop(reason: StopReason, limits: WorkerRuntimeConfig['limits']): string {
  switch (reason) {
    case 'max_iterations':
      return `the task reached its limit of ${limits.maxIterations} model calls`;
    case 'max_tokens_per_task':
      return `the task used up its budget of ${limits.maxTokensPerTask} tokens`;
    case 'repeated_tool_call':
      return `the same tool was requested with the same input ${REPEATED_CALL_LIMIT} times`;
    case 'timeout':
      return `the task ran past its timeout of ${limits.taskTimeoutSeconds} seconds`;
    case 'final_answer':
      return `the model ended its turn with ${FINAL_ANSWER_TOOL}`;
    default:
      return `the model's turn ended with stop reason ${reason}`;
  }
}

/**
 * Runs one task to its end. Limits end the task with a stop reason rather
 * than an error; errors are failed model calls, failed memory access and an
 * abort through `signal`, which raises {@link TaskAbortedError} and saves
 * nothing. `listener` receives the stream events of every model call of the
 * task, when the model client streams. The task's audit records are
 * delivered before it returns or raises.
 */
export async function runAgentTask(
  task: AgentTask,
  deps: AgentLoopDeps,
  signal?: AbortSignal,
  listener?: ModelStreamListener,
): Promise<AgentResult> {
  const identity = { requestId: task.requestId, userId: task.userId, sessionId: task.sessionId };
  try {
    return await runInTask(identity, () => runTaskLoop(task, deps, signal, listener));
  } finally {
    const log = deps.logger.child({
      requestId: task.requestId,
      agent: deps.config.agent,
      user: task.userId,
      session: task.sessionId,
    });
    await flushAudit(deps.audit ?? NO_AUDIT, log);
  }
}

async function runTaskLoop(
  task: AgentTask,
  deps: AgentLoopDeps,
  signal?: AbortSignal,
  listener?: ModelStreamListener,
): Promise<AgentResult> {
  const { config, model, tools, memory } = deps;
  const limits = config.limits;
  const log = deps.logger.child({
    requestId: task.requestId,
    agent: config.agent,
    user: task.userId,
    session: task.sessionId,
  });
  const started = Date.now();
  const deadline = AbortSignal.timeout(limits.taskTimeoutSeconds * 1000);
  const taskSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
  const throwIfCancelled = () => {
    if (signal?.aborted) {
      throw new TaskAbortedError(
        `Request ${task.requestId} was cancelled before it finished; nothing was saved.`,
        task.requestId,
      );
    }
  };

  const key = { agent: config.agent, userId: task.userId, sessionId: task.sessionId };
  const audit = deps.audit ?? NO_AUDIT;
  const approvalContext = { ...key, requestId: task.requestId };
  if (task.resume !== undefined && deps.approvals === undefined) {
    throw new InvalidRequestError(
      `Agent ${config.agent} has no approval settings, so there is no approval ${task.resume} to resume; send a message instead.`,
      task.requestId,
    );
  }
  const session = await memory.load(key, { summary: config.history !== undefined });
  const turns: ConverseMessage[] = [];
  const usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };
  const compressor = new HistoryCompressor({ config, model, memory, key, logger: log, summary: session.summary });
  const estimates = new EstimateTally();
  let summaryCalls = 0;
  let tokensSaved = 0;
  // Turns of this task take the sequence numbers after the stored ones, as append writes them.
  const numberedTurns = (): NumberedMessage[] => [
    ...session.messages.map((message, i) => ({ message, seq: session.seqs[i] })),
    ...turns.map((message, i) => ({ message, seq: session.nextSeq + i })),
  ];
  const addUsage = (callUsage: Usage) => {
    usage.inputTokens += callUsage.inputTokens;
    usage.outputTokens += callUsage.outputTokens;
    usage.totalTokens += callUsage.totalTokens;
  };
  // A summary call counts against the task's tokens like the call it prepares.
  const addSummaryCall = (call: SummaryCall) => {
    summaryCalls += 1;
    addUsage(call.usage);
    estimates.add(call.estimatedInputTokens, call.usage);
  };
  const callCounts = new Map<string, number>();
  const specs = config.confidence
    ? [...toolSpecs(config.tools), FINAL_ANSWER_SPEC]
    : toolSpecs(config.tools);
  let iterations = 0;
  let toolCalls = 0;
  let stopReason: StopReason | undefined;
  let finalAnswer: FinalAnswer | undefined;
  let pendingUse: ToolUse | undefined;
  let approvalId: string | undefined;
  log.info('task started', {
    historyTurns: session.messages.length,
    resume: task.resume,
    pendingApprovalId: session.pendingApprovalId,
  });

  // A session whose last turn waits for approval first gets the results of
  // that turn's calls, because Converse needs them before any new turn.
  if (task.resume !== undefined || (session.pendingApprovalId !== undefined && deps.approvals)) {
    try {
      const answered = await deps.approvals!.answer(session, task.resume, approvalContext, tools, audit, log, taskSignal);
      turns.push(answered.turn);
      toolCalls += answered.toolCalls;
    } catch (error) {
      if (!isAbortError(error)) throw error;
      throwIfCancelled();
      throw new TimeoutError(
        `Request ${task.requestId} ran past its timeout of ${limits.taskTimeoutSeconds} seconds while it ` +
          'answered the calls that waited for approval; nothing was saved.',
        task.requestId,
        { cause: error },
      );
    }
  } else if (session.pendingApprovalId !== undefined) {
    const notRun = unansweredToolResults(
      session.messages[session.messages.length - 1],
      'the agent has no approval settings any more',
    );
    if (notRun) turns.push(notRun);
  }
  if (task.message !== undefined) turns.push({ role: 'user', content: [{ text: task.message }] });

  while (stopReason === undefined) {
    throwIfCancelled();
    const remainingTokens = limits.maxTokensPerTask - usage.totalTokens;
    if (deadline.aborted) {
      stopReason = 'timeout';
      break;
    }
    if (remainingTokens <= 0) {
      stopReason = 'max_tokens_per_task';
      break;
    }

    // NOTE: maxTokens bounds only the output of a call. The input tokens of
    // the last call are not known in advance, so a task can end above
    // maxTokensPerTask by up to that call's input.
    const system = systemPromptOf(config);
    const toolList = specs.length > 0 ? specs : undefined;
    let response;
    let prepared;
    try {
      prepared = await compressor.prepare(numberedTurns(), {
        requestId: task.requestId,
        userId: task.userId,
        sessionId: task.sessionId,
        system,
        tools: toolList,
        signal: taskSignal,
      });
      if (prepared.summaryCall !== undefined) addSummaryCall(prepared.summaryCall);
      const remaining = limits.maxTokensPerTask - usage.totalTokens;
      if (remaining <= 0) {
        stopReason = 'max_tokens_per_task';
        break;
      }
      iterations += 1;
      response = await model.converse(
        {
          // One id per call, because the gateway settles usage once per id.
          // Errors of the call carry it, and the gateway logs it.
          requestId: `${task.requestId}-${iterations}`,
          agent: config.agent,
          userId: task.userId,
          sessionId: task.sessionId,
          system,
          messages: prepared.messages,
          tools: toolList,
          maxTokens: Math.min(limits.maxTokensPerCall, remaining),
          estimatedInputTokens: withMargin(prepared.estimatedInputTokens),
        },
        taskSignal,
        listener,
      );
    } catch (error) {
      if (!isAbortError(error) && !taskSignal.aborted) throw error;
      throwIfCancelled();
      stopReason = 'timeout';
      break;
    }

    addUsage(response.usage);
    estimates.add(prepared.estimatedInputTokens, response.usage);
    tokensSaved += prepared.tokensSaved;
    turns.push(response.output);
    log.debug('model call finished', {
      iteration: iterations,
      modelStopReason: response.stopReason,
      usage: response.usage,
      estimatedInputTokens: prepared.estimatedInputTokens,
    });

    const uses = toolUses(response.output);
    const finalUse = config.confidence
      ? uses.find((use) => use.name === FINAL_ANSWER_TOOL)
      : undefined;
    const final = finalUse === undefined ? undefined : readFinalAnswer(finalUse.input);
    // A tool_use turn without toolUse blocks ends the task too, because the
    // next request would carry a user turn with no content, which Converse rejects.
    if (response.stopReason !== 'tool_use' || uses.length === 0) {
      stopReason = response.stopReason;
    } else if (final?.ok) {
      finalAnswer = final;
      stopReason = 'final_answer';
      turns.push({ role: 'user', content: finalAnswerResults(uses, finalUse!.toolUseId) });
    } else if (usage.totalTokens >= limits.maxTokensPerTask) {
      stopReason = 'max_tokens_per_task';
    } else if (iterations >= limits.maxIterations) {
      stopReason = 'max_iterations';
    } else {
      if (uses.some((use) => countCall(callCounts, use) >= REPEATED_CALL_LIMIT)) {
        stopReason = 'repeated_tool_call';
        break;
      }
      // No tool of the turn runs now: the next task on the session answers
      // them all once the high-impact call is decided.
      pendingUse = deps.approvals?.gatedUse(uses, tools);
      if (pendingUse !== undefined) {
        stopReason = 'awaiting_approval';
        approvalId = randomUUID();
        break;
      }
      // A final answer without usable text is answered with the error, and
      // the model may call it again; the other tools of the turn run.
      const runUse = (use: ToolUse): Promise<ToolOutcome> =>
        use === finalUse && final?.ok === false
          ? Promise.resolve({ status: 'error', content: final.error })
          : tools.run(use, task.requestId, log, taskSignal);
      toolCalls += uses.filter((use) => use !== finalUse).length;
      try {
        // NOTE: tool results go back to the model without an ApplyGuardrail
        // check, and the Converse guardrail does not evaluate tool results.
        const outcomes = await Promise.all(uses.map(runUse));
        turns.push({
          role: 'user',
          content: uses.map((use, i) => toolResultBlock(use.toolUseId, outcomes[i])),
        });
      } catch (error) {
        if (!isAbortError(error)) throw error;
        throwIfCancelled();
        stopReason = 'timeout';
      }
    }
  }

  const unanswered =
    stopReason === 'awaiting_approval'
      ? undefined
      : unansweredToolResults(turns[turns.length - 1], describeStop(stopReason, limits));
  if (unanswered) turns.push(unanswered);
  // The turns are saved before the request exists, so a request that fails
  // to be stored leaves a session whose next message reports the call as not run.
  await memory.append(key, session.nextSeq, turns, task.requestId, { pendingApprovalId: approvalId });
  if (pendingUse !== undefined && approvalId !== undefined) {
    await deps.approvals!.request(approvalId, pendingUse, approvalContext, audit, log);
  }

  const lastAssistant = [...turns].reverse().find((turn) => turn.role === 'assistant');
  const result: AgentResult = {
    requestId: task.requestId,
    sessionId: task.sessionId,
    output: finalAnswer?.answer ?? textOf(lastAssistant),
    stopReason,
    confidence: finalAnswer?.confidence,
    iterations,
    usage,
    toolCalls,
    approvalId,
  };
  if (finalAnswer?.confidenceProblem !== undefined) {
    log.warn('final answer confidence is invalid, so no Confidence metric was written', {
      confidenceProblem: finalAnswer.confidenceProblem,
      reportedConfidence: describeValue(finalAnswer.reportedConfidence),
    });
  }
  const history = config.history === undefined ? undefined : { summaryCalls, tokensSaved };
  const inputTokenEstimateError = estimates.errorPercent();
  log.info('task finished', {
    stopReason,
    approvalId,
    confidence: result.confidence,
    iterations,
    toolCalls,
    usage,
    history,
    inputTokenEstimateError,
    durationMs: Date.now() - started,
  });
  putTaskMetrics(deps.metrics ?? new MetricsWriter(), config.agent, { ...result, history, inputTokenEstimateError });
  return result;
}

const MAX_LOGGED_VALUE_CHARS = 100;

/** Returns a value the model sent as JSON text short enough for a log line. */
function describeValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > MAX_LOGGED_VALUE_CHARS ? `${text.slice(0, MAX_LOGGED_VALUE_CHARS)}...` : text;
}

/** Counts a call of `use`'s tool with `use`'s input and returns the new count. */
function countCall(counts: Map<string, number>, use: ToolUse): number {
  const key = `${use.name}\n${canonicalJson(use.input)}`;
  const count = (counts.get(key) ?? 0) + 1;
  counts.set(key, count);
  return count;
}
