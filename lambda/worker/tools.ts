/**
 * Runs the tools a model requests. Every outcome, including a rejected or
 * failed call, becomes a `toolResult` block, so the model receives the
 * reason and the agent loop does not stop because of a tool.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import Ajv, { ValidateFunction } from 'ajv';
import { NO_AUDIT, type AuditDecision, type AuditSink } from '../shared/audit';
import { buildAuditRecord } from '../shared/audit-record';
import { ContentBlock, WorkerToolConfig } from '../shared/contracts';
import { Logger } from '../shared/logger';
import { MetricsWriter } from '../shared/metrics';
import { isAbortError } from './errors';
import { UNKNOWN_TOOL, putToolMetrics } from './metrics';
import { decodePayload, functionErrorMessage } from './model-client';
import { currentTask } from './task-audit';

/** A `toolUse` block from the model's turn. */
export interface ToolUse {
  readonly toolUseId: string;
  readonly name: string;
  readonly input: unknown;
}

/** The outcome of one tool call, before it is wrapped in a `toolResult` block. */
export interface ToolOutcome {
  readonly status: 'success' | 'error';
  /** JSON the tool returned, or a sentence that explains the error to the model. */
  readonly content: unknown;
  /** Cause of an error outcome of the ToolRunner, as its audit record names it. */
  readonly reason?: ToolErrorReason;
}

/**
 * Cause of an error outcome: the call was rejected before it ran (unknown
 * tool, invalid input, approval needed), or it ran and failed.
 */
export type ToolErrorReason =
  | 'unknown tool'
  | 'invalid input'
  | 'approval needed'
  | 'function error'
  | 'invocation failed'
  | 'aborted';

const REJECTED_REASONS: readonly ToolErrorReason[] = ['unknown tool', 'invalid input', 'approval needed'];

/** Returns the audit decision of a tool call's outcome. */
export function toolCallDecision(outcome: ToolOutcome): AuditDecision {
  if (outcome.status === 'success') return 'completed';
  return outcome.reason !== undefined && REJECTED_REASONS.includes(outcome.reason) ? 'rejected' : 'failed';
}

/** Wraps an outcome in the Converse `toolResult` block for the call `toolUseId`. */
export function toolResultBlock(toolUseId: string, outcome: ToolOutcome): ContentBlock {
  const isObject =
    typeof outcome.content === 'object' &&
    outcome.content !== null &&
    !Array.isArray(outcome.content);
  const content =
    typeof outcome.content === 'string'
      ? [{ text: outcome.content }]
      : isObject
        ? [{ json: outcome.content }]
        : [{ text: JSON.stringify(outcome.content) ?? 'null' }];
  return { toolResult: { toolUseId, content, status: outcome.status } };
}

/** Tool definitions in the form the Converse `toolConfig` expects. */
export function toolSpecs(tools: readonly WorkerToolConfig[]) {
  return tools.map(({ name, description, inputSchema }) => ({ name, description, inputSchema }));
}

/** Validates and invokes the tools of one agent. */
export class ToolRunner {
  private readonly tools = new Map<string, WorkerToolConfig>();
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(
    private readonly agent: string,
    tools: readonly WorkerToolConfig[],
    private readonly lambda: LambdaClient,
    /** Writer of the ToolCalls and ToolFailures lines; by default to stdout. */
    private readonly metrics: MetricsWriter = new MetricsWriter(),
    /** Destination of one `tool-call` audit record per call; by default none. */
    private readonly audit: AuditSink = NO_AUDIT,
  ) {
    // strict: false because tool schemas are written for the model and may
    // carry keywords such as `examples` that ajv's strict mode rejects.
    const ajv = new Ajv({ allErrors: true, strict: false });
    for (const tool of tools) {
      this.tools.set(tool.name, tool);
      try {
        this.validators.set(tool.name, ajv.compile(tool.inputSchema));
      } catch (error) {
        throw new Error(
          `The inputSchema of tool ${tool.name} is not a valid JSON Schema: ` +
            `${(error as Error).message}. Fix it in the agent's tool definition.`,
        );
      }
    }
  }

  /** Returns the impact of tool `name`, or undefined when the agent has no such tool. */
  impactOf(name: string): WorkerToolConfig['impact'] | undefined {
    return this.tools.get(name)?.impact;
  }

  /**
   * Returns the error outcome of a call of an unknown tool or with invalid
   * input, or undefined when the call may run.
   */
  check(call: ToolUse): ToolOutcome | undefined {
    const tool = this.tools.get(call.name);
    if (!tool) {
      const known = [...this.tools.keys()].join(', ') || 'none';
      return error(`Tool ${call.name} does not exist. Available tools: ${known}.`, 'unknown tool');
    }

    const validate = this.validators.get(tool.name)!;
    if (!validate(call.input)) {
      const problems = (validate.errors ?? [])
        .map((e) => `${e.instancePath || 'input'} ${e.message}`)
        .join('; ');
      return error(
        `The input for tool ${tool.name} is invalid: ${problems}. ` +
          'Correct the input to match the tool input schema and call the tool again.',
        'invalid input',
      );
    }
    return undefined;
  }

  /**
   * Runs one call of task `requestId`, writes its metrics and queues its
   * audit record; rethrows only an abort, so the caller can stop the task.
   * A high-impact tool runs only with `approvalId`, the id of the approval
   * that the caller consumed for exactly this call.
   */
  async run(
    call: ToolUse,
    requestId: string,
    logger: Logger,
    signal?: AbortSignal,
    approvalId?: string,
  ): Promise<ToolOutcome> {
    const log = logger.child({ tool: call.name, toolUseId: call.toolUseId, approvalId });
    const started = Date.now();
    let outcome: ToolOutcome;
    try {
      outcome = await this.runUnlogged(call, log, signal, approvalId);
    } catch (caught) {
      this.recordCall(call, requestId, { status: 'error', content: null, reason: 'aborted' }, approvalId);
      throw caught;
    }
    this.recordCall(call, requestId, outcome, approvalId);
    const failed = outcome.status === 'error';
    log.info('tool call finished', { status: outcome.status, durationMs: Date.now() - started });
    const tool = this.tools.has(call.name) ? call.name : UNKNOWN_TOOL;
    putToolMetrics(this.metrics, this.agent, tool, failed, requestId);
    return outcome;
  }

  private async runUnlogged(
    call: ToolUse,
    log: Logger,
    signal?: AbortSignal,
    approvalId?: string,
  ): Promise<ToolOutcome> {
    const problem = this.check(call);
    if (problem) return problem;
    const tool = this.tools.get(call.name)!;

    // The agent loop passes an approval id only after the ApprovalGate
    // approved this call, and a worker without approval settings never does.
    if (tool.impact === 'high' && approvalId === undefined) {
      return error(
        `Tool ${tool.name} has high impact and needs a person's approval before it runs, ` +
          'but no approval mechanism is configured for this agent, so it was not run. ' +
          'Tell the user that a person has to carry out this action.',
        'approval needed',
      );
    }

    return this.invoke(tool, call.input, log, signal);
  }

  private async invoke(
    tool: WorkerToolConfig,
    input: unknown,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<ToolOutcome> {
    let payload: unknown;
    try {
      const response = await this.lambda.send(
        new InvokeCommand({
          FunctionName: tool.functionName,
          Payload: Buffer.from(JSON.stringify(input)),
        }),
        { abortSignal: signal },
      );
      payload = decodePayload(response.Payload);
      if (response.FunctionError) {
        const message = functionErrorMessage(payload);
        log.warn('tool function failed', {
          functionName: tool.functionName,
          errorMessage: message,
        });
        return error(`Tool ${tool.name} failed: ${message}`, 'function error');
      }
    } catch (caught) {
      if (isAbortError(caught)) throw caught;
      log.error('tool invocation failed', { functionName: tool.functionName }, caught);
      return error(`Tool ${tool.name} could not be run because of an internal error.`, 'invocation failed');
    }
    return { status: 'success', content: payload ?? null };
  }

  /**
   * Queues the call's audit record, with the user and session of the task
   * that runs it. The arguments are kept as their hash only, and the
   * reason is a fixed phrase, because an error message may quote them.
   */
  private recordCall(call: ToolUse, requestId: string, outcome: ToolOutcome, approvalId?: string): void {
    const task = currentTask();
    this.audit.record(
      buildAuditRecord(
        {
          requestId,
          agent: this.agent,
          userId: task?.userId,
          sessionId: task?.sessionId,
          kind: 'tool-call',
          decision: toolCallDecision(outcome),
          reason: outcome.reason,
          tool: call.name,
          arguments: call.input,
          approvalId,
        },
        { fullText: false },
      ),
    );
  }
}

function error(message: string, reason: ToolErrorReason): ToolOutcome {
  return { status: 'error', content: message, reason };
}
