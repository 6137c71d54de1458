import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { AGENT_METRICS, type AgentMetricKey, type MetricDefinition } from '../lambda/shared/metric-catalog';
import { METRIC_NAMESPACE } from '../lambda/shared/metrics';

/**
 * Builds the CloudWatch metric of one {@link AGENT_METRICS} entry. The
 * dimension names must be exactly the entry's set, because CloudWatch
 * treats each dimension set as a metric of its own and a metric read with
 * another set has no data.
 *
 * The metric carries no unit filter, because an alarm with a unit matches
 * only values published with that exact unit, and the emitters already
 * use the catalog's unit.
 */
export function catalogMetric(
  key: AgentMetricKey,
  dimensions: Readonly<Record<string, string>>,
  options: cloudwatch.MetricOptions = {},
): cloudwatch.Metric {
  const entry: MetricDefinition = AGENT_METRICS[key];
  const givenNames = Object.keys(dimensions).sort();
  const expectedNames = [...entry.dimensions].sort();
  if (givenNames.join(',') !== expectedNames.join(',')) {
    throw new Error(
      `AgentObservability: metric ${entry.name} (catalog entry ${key}) has the dimensions ${entry.dimensions.join(', ')}, ` +
        `but got ${givenNames.join(', ') || 'none'}; pass a value for each of its dimensions or use another catalog entry.`,
    );
  }
  return new cloudwatch.Metric({
    namespace: METRIC_NAMESPACE,
    metricName: entry.name,
    dimensionsMap: { ...dimensions },
    ...options,
  });
}

/**
 * Returns a metric math id from `base` and the names it belongs to, such as
 * `failures_support_lookup_order`. Ids must be unique within one alarm or
 * graph, and a graph shows the same expression for several agents or tools.
 */
export function mathId(base: string, ...names: Array<string | undefined>): string {
  const parts = names.filter((name): name is string => name !== undefined).map((name) => name.replace(/[^A-Za-z0-9]/g, '_'));
  return [base, ...parts].join('_');
}

/** Inputs of {@link guardedRate}. */
export interface GuardedRateOptions {
  /** Sum of the events counted, such as failed tool calls. */
  readonly part: cloudwatch.IMetric;
  /**
   * Sum of all events, `part` included, such as all tool calls. Give this
   * or `rest`.
   */
  readonly whole?: cloudwatch.IMetric;
  /**
   * Sum of the other events, `part` excluded, such as calls that a model
   * target served. The whole is then `part + rest`.
   */
  readonly rest?: cloudwatch.IMetric;
  /** Whole events in one period below which the rate is 0. */
  readonly minWhole: number;
  readonly label: string;
  readonly period: cloudwatch.MathExpressionOptions['period'];
  /** Names that make the metric math ids unique, such as the agent and the tool. */
  readonly idNames: ReadonlyArray<string | undefined>;
}

/**
 * Returns the percentage of `part` in the whole, which is 0 while the
 * whole is below `minWhole` in a period, so that a rate alarm ignores
 * periods with too few events to judge. All inputs must be sums over the
 * same period.
 */
export function guardedRate(options: GuardedRateOptions): cloudwatch.MathExpression {
  // Metric math functions IF and FILL:
  // https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
  // NOTE: the tests check these expressions in the template only. No
  // CloudWatch evaluated them, so a period in which neither metric has a
  // value is assumed to give no data point, which the alarms treat as OK.
  if ((options.whole === undefined) === (options.rest === undefined)) {
    throw new Error(`AgentObservability: the rate "${options.label}" needs either whole or rest, not both or neither.`);
  }
  const ids = {
    part: mathId('part', ...options.idNames),
    whole: mathId('whole', ...options.idNames),
    rest: mathId('rest', ...options.idNames),
  };
  const part = `FILL(${ids.part}, 0)`;
  const whole = options.whole !== undefined ? ids.whole : `(${part} + FILL(${ids.rest}, 0))`;
  const usingMetrics: Record<string, cloudwatch.IMetric> = { [ids.part]: options.part };
  if (options.whole !== undefined) usingMetrics[ids.whole] = options.whole;
  if (options.rest !== undefined) usingMetrics[ids.rest] = options.rest;
  return new cloudwatch.MathExpression({
    expression: `IF(${whole} >= ${options.minWhole}, 100 * ${part} / ${whole}, 0)`,
    usingMetrics,
    label: options.label,
    period: options.period,
  });
}
