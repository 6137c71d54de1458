/**
 * Worker metrics in embedded metric format (EMF), written by a MetricsWriter
 * as lines of their own, so that a raised LOG_LEVEL never drops a metric.
 *
 * The container's `awslogs` log driver passes each stdout line to CloudWatch
 * Logs as a log event, see
 * https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.md
 * CloudWatch Logs extracts the metrics of an event whose JSON carries the
 * `_aws` member. The `x-amzn-logs-format: json/emf` header on PutLogEvents,
 * which the driver does not send, is optional, see
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_PutLogEvents.html
 * The log group needs no setting either. AgentService creates it in the
 * default Standard class, which supports every CloudWatch Logs feature, see
 * https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/cloudwatchlogs/aws.sdk.kotlin.services.cloudwatchlogs.model/-create-log-group-request/log-group-class.html
 * A line still buffered in the process when it exits is lost, so main.ts
 * waits for stdout to drain before it exits.
 */
import type { MetricValue, MetricsWriter } from '../shared/metrics';

/**
 * Value of the `Tool` dimension for a tool name that the agent does not
 * have, so that names the model invents cannot add dimension values.
 */
export const UNKNOWN_TOOL = 'unknown';

/** The parts of a task's result that its metrics publish. */
export interface TaskMetricsInput {
  readonly requestId: string;
  readonly iterations: number;
  readonly stopReason: string;
  readonly usage: { readonly totalTokens: number };
  /** Confidence from 0 to 1 of the final answer, when the model reported a valid one. */
  readonly confidence?: number;
  /** History compression figures, present when the agent compresses its history. */
  readonly history?: {
    readonly summaryCalls: number;
    readonly tokensSaved: number;
  };
  /** Error of the task's input token estimates in percent, when a call reported input tokens. */
  readonly inputTokenEstimateError?: number;
}

/**
 * Writes the line that ends a task: LoopIterations, TaskTokens and, when
 * present, Confidence (None), HistorySummaryCalls, HistoryTokensSaved and
 * InputTokenEstimateError (None) with dimension Agent, and StopReason with
 * Agent and Reason.
 */
export function putTaskMetrics(
  metrics: MetricsWriter,
  agent: string,
  result: TaskMetricsInput,
): void {
  const perAgent: Record<string, MetricValue> = {
    LoopIterations: { value: result.iterations, unit: 'Count' },
    TaskTokens: { value: result.usage.totalTokens, unit: 'Count' },
  };
  if (result.confidence !== undefined) {
    perAgent.Confidence = { value: result.confidence, unit: 'None' };
  }
  if (result.history !== undefined) {
    perAgent.HistorySummaryCalls = { value: result.history.summaryCalls, unit: 'Count' };
    perAgent.HistoryTokensSaved = { value: result.history.tokensSaved, unit: 'Count' };
  }
  if (result.inputTokenEstimateError !== undefined) {
    perAgent.InputTokenEstimateError = { value: result.inputTokenEstimateError, unit: 'None' };
  }
  metrics.putGroups(
    { Agent: agent, Reason: result.stopReason },
    [
      { dimensions: ['Agent'], metrics: perAgent },
      { dimensions: ['Agent', 'Reason'], metrics: { StopReason: { value: 1, unit: 'Count' } } },
    ],
    { requestId: result.requestId },
  );
}

/**
 * Writes the line that ends a tool call: ToolCalls 1 and ToolFailures 1 or
 * 0, with dimensions Agent and Tool and also Agent alone, so that an alarm
 * can read an agent's failure rate across its tools.
 */
export function putToolMetrics(
  metrics: MetricsWriter,
  agent: string,
  tool: string,
  failed: boolean,
  requestId: string,
): void {
  metrics.putGroups(
    { Agent: agent, Tool: tool },
    [
      {
        dimensions: ['Agent', 'Tool'],
        rollups: [['Agent']],
        metrics: {
          ToolCalls: { value: 1, unit: 'Count' },
          ToolFailures: { value: failed ? 1 : 0, unit: 'Count' },
        },
      },
    ],
    { requestId },
  );
}
