/**
 * CloudWatch metrics as embedded metric format (EMF) fields on a log line.
 * CloudWatch Logs extracts them from any JSON log event that carries the
 * `_aws` member, see
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 * The worker writes its log lines synchronously to stdout, which the
 * container's `awslogs` driver forwards, so nothing is buffered in process.
 */

export const METRIC_NAMESPACE = 'AgentStack';

interface MetricGroup {
  readonly dimensions: readonly string[];
  readonly metrics: Record<string, { value: number; unit: 'Count' | 'Milliseconds' }>;
}

/**
 * Builds the log fields that publish `groups`. Each group's dimension names
 * must appear in `dimensionValues`, because EMF reads dimension values from
 * members of the same log event.
 */
export function emfFields(
  dimensionValues: Record<string, string>,
  groups: readonly MetricGroup[],
  timestampMs = Date.now(),
): Record<string, unknown> {
  const fields: Record<string, unknown> = { ...dimensionValues };
  for (const group of groups) {
    for (const [name, metric] of Object.entries(group.metrics)) fields[name] = metric.value;
  }
  fields._aws = {
    Timestamp: timestampMs,
    CloudWatchMetrics: groups.map((group) => ({
      Namespace: METRIC_NAMESPACE,
      Dimensions: [group.dimensions],
      Metrics: Object.entries(group.metrics).map(([name, m]) => ({ Name: name, Unit: m.unit })),
    })),
  };
  return fields;
}

/** Fields for the line that ends a task: iterations, tokens and the stop reason. */
export function taskMetricFields(
  agent: string,
  result: { iterations: number; stopReason: string; usage: { totalTokens: number } },
): Record<string, unknown> {
  return emfFields({ Agent: agent, Reason: result.stopReason }, [
    {
      dimensions: ['Agent'],
      metrics: {
        LoopIterations: { value: result.iterations, unit: 'Count' },
        TaskTokens: { value: result.usage.totalTokens, unit: 'Count' },
      },
    },
    { dimensions: ['Agent', 'Reason'], metrics: { StopReason: { value: 1, unit: 'Count' } } },
  ]);
}

/** Fields for the line that ends a tool call. */
export function toolMetricFields(
  agent: string,
  tool: string,
  failed: boolean,
): Record<string, unknown> {
  return emfFields({ Agent: agent, Tool: tool }, [
    {
      dimensions: ['Agent', 'Tool'],
      metrics: {
        ToolCalls: { value: 1, unit: 'Count' },
        ToolFailures: { value: failed ? 1 : 0, unit: 'Count' },
      },
    },
  ]);
}
