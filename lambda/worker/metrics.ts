/**
 * Worker metrics as embedded metric format (EMF) fields on a log line. The
 * worker writes its log lines synchronously to stdout, which the container's
 * `awslogs` driver forwards, so nothing is buffered in process.
 */
import { emfFields } from '../shared/metrics';

export { METRIC_NAMESPACE, emfFields } from '../shared/metrics';

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
