/**
 * CloudWatch metrics in embedded metric format (EMF). An EMF line is a JSON
 * log event with an `_aws` member, and CloudWatch Logs extracts the metrics
 * from it, see
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 * Lambda and the container's `awslogs` driver both forward stdout to
 * CloudWatch Logs, so a line written there is all a metric needs.
 */

export const METRIC_NAMESPACE = 'AgentStack';

/** CloudWatch units the runtime uses. */
export type MetricUnit = 'Count' | 'Milliseconds' | 'None';

/** One value of one metric. */
export interface MetricValue {
  readonly value: number;
  readonly unit: MetricUnit;
}

/** Metrics that share one set of dimension names. */
export interface MetricGroup {
  readonly dimensions: readonly string[];
  /**
   * Further dimension sets that publish the same values, such as
   * `[['Agent']]` for a per-agent total of a per-model metric. CloudWatch
   * does not add up a metric across dimension values, so an alarm on an
   * agent's total needs the metric published under `Agent` alone.
   * @default - none
   */
  readonly rollups?: readonly (readonly string[])[];
  readonly metrics: Record<string, MetricValue>;
}

/**
 * Builds the log fields that publish `groups`. Each group's dimension names,
 * rollups included, must appear in `dimensionValues`, because EMF reads
 * dimension values from members of the same log event.
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
      Dimensions: [group.dimensions, ...(group.rollups ?? [])],
      Metrics: Object.entries(group.metrics).map(([name, m]) => ({ Name: name, Unit: m.unit })),
    })),
  };
  return fields;
}

/** Destination of EMF lines; tests pass an array-backed sink. */
export type MetricSink = (line: string) => void;

/** Settings of {@link MetricsWriter}. */
export interface MetricsWriterOptions {
  /**
   * Receives each EMF line, without a trailing newline.
   * @default - writes the line and a newline to stdout
   */
  readonly sink?: MetricSink;
  /**
   * Clock in epoch milliseconds for the EMF timestamp.
   * @default Date.now
   */
  readonly now?: () => number;
}

/**
 * Writes metrics as EMF lines of their own. A metric line does not depend
 * on the log level, so raising LOG_LEVEL never drops a metric.
 */
export class MetricsWriter {
  private readonly sink: MetricSink;
  private readonly now: () => number;

  constructor(options: MetricsWriterOptions = {}) {
    this.sink = options.sink ?? ((line) => process.stdout.write(`${line}\n`));
    this.now = options.now ?? Date.now;
  }

  /**
   * Writes one line that publishes `metrics` with every name in
   * `dimensionValues` as a dimension. `properties` go on the same line
   * without becoming dimensions, for example the request id that ties the
   * metric to its log lines.
   */
  put(
    dimensionValues: Record<string, string>,
    metrics: Record<string, MetricValue>,
    properties: Record<string, unknown> = {},
  ): void {
    this.putGroups(dimensionValues, [{ dimensions: Object.keys(dimensionValues), metrics }], properties);
  }

  /**
   * Writes one line that publishes each group with its own dimension names,
   * so that metrics of one event can differ in their dimensions. Every
   * group's dimension names must appear in `dimensionValues`.
   */
  putGroups(
    dimensionValues: Record<string, string>,
    groups: readonly MetricGroup[],
    properties: Record<string, unknown> = {},
  ): void {
    const fields = emfFields(dimensionValues, groups, this.now());
    this.sink(JSON.stringify({ ...properties, ...fields }));
  }
}
