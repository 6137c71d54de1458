import { InvalidRequestError, type SuspensionReason } from '../shared/errors';
import { isSuspensionReason } from '../gateway/budget/suspension';

/** Metric dimension that names the agent an alarm watches. */
export const AGENT_DIMENSION = 'Agent';

/**
 * Alarm name convention for alarms without an `Agent` dimension, such as
 * metric math over several metrics: the name ends with `agent/<agent>`,
 * as in `TokenAnomaly/agent/billing`.
 */
export const AGENT_ALARM_NAME = /(?:^|\/)agent\/([^/]+)$/;

/** A CloudWatch alarm state change, from SNS or from EventBridge. */
export interface AlarmChange {
  readonly source: 'sns' | 'eventbridge';
  readonly alarmName: string;
  /** New state: `ALARM`, `OK` or `INSUFFICIENT_DATA`. */
  readonly state: string;
  /** Agent from the `Agent` dimension or the alarm name, or undefined when neither names one. */
  readonly agent?: string;
  /** Names of the metrics the alarm watches, metric math inputs included. */
  readonly metricNames: readonly string[];
}

/** An operator's request to suspend or resume one agent. */
export interface OperatorCommand {
  readonly action: 'suspend' | 'resume';
  readonly agent: string;
  readonly reason: SuspensionReason;
  /** Epoch milliseconds at which a suspension lapses, or undefined for one that lasts until a resume. */
  readonly until?: number;
  readonly by: string;
}

/** Kind and content of a kill switch invocation. */
export type KillSwitchInput =
  | { readonly kind: 'alarms'; readonly alarms: readonly AlarmChange[] }
  | { readonly kind: 'schedule' }
  | { readonly kind: 'command'; readonly command: OperatorCommand };

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function agentOf(alarmName: string, dimensionValues: readonly unknown[]): string | undefined {
  const fromDimension = dimensionValues.find((value) => typeof value === 'string' && value !== '');
  if (typeof fromDimension === 'string') {
    return fromDimension;
  }
  return AGENT_ALARM_NAME.exec(alarmName)?.[1];
}

/**
 * Parses the alarm message of an SNS notification. Its `Trigger` lists
 * dimensions as `{ name, value }` pairs, for a single metric directly and
 * for metric math under `Metrics[].MetricStat.Metric`.
 */
export function parseSnsAlarm(message: string): AlarmChange {
  let alarm: unknown;
  try {
    alarm = JSON.parse(message);
  } catch (error) {
    throw new InvalidRequestError(
      `The SNS message is not JSON (${message.slice(0, 80)}), so it is not a CloudWatch alarm ` +
        'notification. Subscribe the kill switch only to alarm topics.',
      undefined,
      { cause: error },
    );
  }
  if (!isObject(alarm) || typeof alarm.AlarmName !== 'string' || typeof alarm.NewStateValue !== 'string') {
    throw new InvalidRequestError(
      `The SNS message ${message.slice(0, 80)} has no AlarmName and NewStateValue, so it is not a ` +
        'CloudWatch alarm notification. Subscribe the kill switch only to alarm topics.',
    );
  }
  const trigger = isObject(alarm.Trigger) ? alarm.Trigger : {};
  const innerMetrics = (Array.isArray(trigger.Metrics) ? trigger.Metrics : []).map((metric: unknown) => {
    const stat = isObject(metric) && isObject(metric.MetricStat) ? metric.MetricStat : {};
    return isObject(stat.Metric) ? stat.Metric : {};
  });
  const metricDimensions = innerMetrics.flatMap((inner) => (Array.isArray(inner.Dimensions) ? inner.Dimensions : []));
  const metricNames = [trigger.MetricName, ...innerMetrics.map((inner) => inner.MetricName)].filter(
    (name): name is string => typeof name === 'string',
  );
  const dimensions = [...(Array.isArray(trigger.Dimensions) ? trigger.Dimensions : []), ...metricDimensions];
  const values = dimensions
    .filter((dimension): dimension is Json => isObject(dimension) && dimension.name === AGENT_DIMENSION)
    .map((dimension) => dimension.value);
  return {
    source: 'sns',
    alarmName: alarm.AlarmName,
    state: alarm.NewStateValue,
    agent: agentOf(alarm.AlarmName, values),
    metricNames,
  };
}

/**
 * Parses the detail of an EventBridge "CloudWatch Alarm State Change"
 * event, whose metrics list dimensions as an object of name to value.
 */
export function parseEventBridgeAlarm(detail: unknown): AlarmChange {
  const alarm = isObject(detail) ? detail : {};
  const state = isObject(alarm.state) ? alarm.state.value : undefined;
  if (typeof alarm.alarmName !== 'string' || typeof state !== 'string') {
    throw new InvalidRequestError(
      'The CloudWatch Alarm State Change event has no detail.alarmName and detail.state.value ' +
        `(detail: ${JSON.stringify(detail)?.slice(0, 120)}). Send the event as EventBridge delivers it.`,
    );
  }
  const configuration = isObject(alarm.configuration) ? alarm.configuration : {};
  const metrics = Array.isArray(configuration.metrics) ? configuration.metrics : [];
  const innerMetrics = metrics.map((metric: unknown) => {
    const stat = isObject(metric) && isObject(metric.metricStat) ? metric.metricStat : {};
    return isObject(stat.metric) ? stat.metric : {};
  });
  const values = innerMetrics.map((inner) => (isObject(inner.dimensions) ? inner.dimensions[AGENT_DIMENSION] : undefined));
  const metricNames = innerMetrics.map((inner) => inner.name).filter((name): name is string => typeof name === 'string');
  return { source: 'eventbridge', alarmName: alarm.alarmName, state, agent: agentOf(alarm.alarmName, values), metricNames };
}

function parseCommand(event: Json): OperatorCommand {
  const { action, agent, reason = 'operator', until, by = 'operator' } = event;
  const problems: string[] = [];
  if (action !== 'suspend' && action !== 'resume') {
    problems.push(`action must be "suspend" or "resume" (got ${JSON.stringify(action)})`);
  }
  if (typeof agent !== 'string' || agent === '') {
    problems.push(`agent must be a non-empty agent name (got ${JSON.stringify(agent)})`);
  }
  if (!isSuspensionReason(reason)) {
    problems.push(`reason must be "operator", "anomaly" or "budget-exhausted" (got ${JSON.stringify(reason)})`);
  }
  const untilMs = typeof until === 'string' ? Date.parse(until) : NaN;
  if (until !== undefined && Number.isNaN(untilMs)) {
    problems.push(`until must be an ISO 8601 time such as "2026-12-05T00:00:00Z" (got ${JSON.stringify(until)})`);
  }
  if (typeof by !== 'string' || by === '') {
    problems.push(`by must name who sends the command (got ${JSON.stringify(by)})`);
  }
  if (problems.length > 0) {
    throw new InvalidRequestError(`Invalid kill switch command: ${problems.join('; ')}.`);
  }
  return {
    action: action as OperatorCommand['action'],
    agent: agent as string,
    reason: reason as SuspensionReason,
    ...(until === undefined ? {} : { until: untilMs }),
    by: by as string,
  };
}

/**
 * Classifies a kill switch invocation: an SNS notification of CloudWatch
 * alarms, an EventBridge alarm state change, the EventBridge schedule, or
 * an operator command `{ action, agent, reason?, until?, by? }`.
 */
export function parseKillSwitchEvent(event: unknown): KillSwitchInput {
  if (!isObject(event)) {
    throw new InvalidRequestError(
      `The kill switch received ${JSON.stringify(event)}, not an object. Send an alarm event or ` +
        '{"action":"suspend","agent":"<agent>"}.',
    );
  }
  if (Array.isArray(event.Records)) {
    const alarms = event.Records.map((record: unknown) => {
      const sns = isObject(record) && isObject(record.Sns) ? record.Sns : {};
      return parseSnsAlarm(String(sns.Message ?? ''));
    });
    return { kind: 'alarms', alarms };
  }
  if (event['detail-type'] === 'CloudWatch Alarm State Change') {
    return { kind: 'alarms', alarms: [parseEventBridgeAlarm(event.detail)] };
  }
  if (event['detail-type'] === 'Scheduled Event') {
    return { kind: 'schedule' };
  }
  if ('action' in event) {
    return { kind: 'command', command: parseCommand(event) };
  }
  throw new InvalidRequestError(
    `The kill switch cannot handle an event with keys ${Object.keys(event).join(', ')}. Send an SNS ` +
      'alarm notification, an EventBridge alarm state change, a scheduled event, or ' +
      '{"action":"suspend","agent":"<agent>"}.',
  );
}
