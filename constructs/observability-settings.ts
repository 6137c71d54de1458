import type { SettingsIssue } from './gateway-settings';

/**
 * Defaults, ranges and checks of the alarm thresholds. The config schema
 * and the AgentObservability construct both use them, so the two can
 * never disagree on a default. The README explains each value.
 */

/** Alarm thresholds of AgentObservability. Every field is optional. */
export interface AlarmThresholds {
  /**
   * Period over which each alarm and graph aggregates its metric, in
   * seconds: a multiple of 60 up to 3600.
   *
   * @default 300
   */
  readonly periodSeconds?: number;

  /**
   * Width of the anomaly detection band around the expected TotalTokens of
   * an agent, in standard deviations. A wider band fires less often.
   *
   * @default 3
   */
  readonly tokenAnomalyBandWidth?: number;

  /**
   * Consecutive periods above the band before the token anomaly alarm
   * fires, and with it the kill switch.
   *
   * @default 3
   */
  readonly tokenAnomalyEvaluationPeriods?: number;

  /**
   * Share of an agent's loop iteration cap, from 0 to 1, that the 90th
   * percentile of LoopIterations per task must reach for the alarm.
   *
   * @default 0.8
   */
  readonly loopIterationsShareOfCap?: number;

  /**
   * Failed tool calls in percent of all tool calls of an agent.
   *
   * @default 10
   */
  readonly toolFailureRatePercent?: number;

  /**
   * Model target attempts that failed over, in percent of all attempts.
   *
   * @default 20
   */
  readonly failoverRatePercent?: number;

  /**
   * Model target attempts that were throttled, in percent of all attempts.
   *
   * @default 10
   */
  readonly throttleRatePercent?: number;

  /**
   * Calls in one period below which the rate alarms (tool failures,
   * failovers, throttles) stay OK, so that one failure out of two calls
   * does not page anyone.
   *
   * @default 20
   */
  readonly minCallsForRate?: number;

  /**
   * Share of an agent's daily or monthly limit, in percent, at which the
   * budget use alarm fires and makes the kill switch check the budget.
   *
   * @default 80
   */
  readonly budgetUsePercent?: number;

  /**
   * Messages in an agent's dead-letter queue that raise the alarm.
   *
   * @default 1
   */
  readonly deadLetterMessages?: number;

  /**
   * Age of the oldest message in an agent's task queue, in seconds. SQS
   * counts messages in flight too, so the value must exceed the agent's
   * task timeout.
   *
   * @default - 900, or twice the agent's task timeout when that is longer
   */
  readonly oldestMessageAgeSeconds?: number;

  /**
   * Gateway requests of one agent in one period that ended with a
   * server-side error ({@link GATEWAY_FAILURE_OUTCOMES}).
   *
   * @default 5
   */
  readonly modelCallFailures?: number;

  /**
   * Invocations of the gateway function in one period that failed with an
   * error the handler did not catch, such as a timeout or a crash.
   *
   * @default 1
   */
  readonly gatewayErrors?: number;

  /**
   * 5xx responses that the load balancer itself generated in one period.
   *
   * @default 10
   */
  readonly loadBalancer5xx?: number;

  /**
   * 5xx responses from one realtime agent's tasks in one period.
   *
   * @default 10
   */
  readonly target5xx?: number;

  /**
   * Unhealthy tasks of one realtime agent, held for 5 minutes.
   *
   * @default 1
   */
  readonly unhealthyTasks?: number;
}

/** Thresholds with every default filled in, except the per-agent message age. */
export type ResolvedThresholds = Required<Omit<AlarmThresholds, 'oldestMessageAgeSeconds'>> &
  Pick<AlarmThresholds, 'oldestMessageAgeSeconds'>;

/** Default of each threshold that has a fixed default. */
export const DEFAULT_THRESHOLDS: Omit<ResolvedThresholds, 'oldestMessageAgeSeconds'> = {
  periodSeconds: 300,
  tokenAnomalyBandWidth: 3,
  tokenAnomalyEvaluationPeriods: 3,
  loopIterationsShareOfCap: 0.8,
  toolFailureRatePercent: 10,
  failoverRatePercent: 20,
  throttleRatePercent: 10,
  minCallsForRate: 20,
  budgetUsePercent: 80,
  deadLetterMessages: 1,
  modelCallFailures: 5,
  gatewayErrors: 1,
  loadBalancer5xx: 10,
  target5xx: 10,
  unhealthyTasks: 1,
};

/** Smallest default oldest-message age, for agents with short tasks: 15 minutes. */
export const MIN_DEFAULT_OLDEST_MESSAGE_AGE_SECONDS = 900;

/** Allowed range of one threshold. An `integer` threshold must be a whole number. */
export interface ThresholdRange {
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
  /** When true, the range excludes `min` itself. */
  readonly exclusiveMin?: boolean;
}

/** Allowed range of each threshold. */
export const THRESHOLD_RANGES: Record<keyof AlarmThresholds, ThresholdRange> = {
  periodSeconds: { min: 60, max: 3_600, integer: true },
  tokenAnomalyBandWidth: { min: 0.5, max: 10, integer: false },
  tokenAnomalyEvaluationPeriods: { min: 1, max: 10, integer: true },
  loopIterationsShareOfCap: { min: 0, max: 1, integer: false, exclusiveMin: true },
  toolFailureRatePercent: { min: 0, max: 100, integer: false, exclusiveMin: true },
  failoverRatePercent: { min: 0, max: 100, integer: false, exclusiveMin: true },
  throttleRatePercent: { min: 0, max: 100, integer: false, exclusiveMin: true },
  minCallsForRate: { min: 1, max: 1_000_000, integer: true },
  budgetUsePercent: { min: 1, max: 100, integer: false },
  deadLetterMessages: { min: 1, max: 1_000_000, integer: true },
  // SQS keeps a message for at most 14 days, so an older message cannot exist.
  oldestMessageAgeSeconds: { min: 60, max: 1_209_600, integer: true },
  modelCallFailures: { min: 1, max: 1_000_000, integer: true },
  gatewayErrors: { min: 1, max: 1_000_000, integer: true },
  loadBalancer5xx: { min: 1, max: 1_000_000, integer: true },
  target5xx: { min: 1, max: 1_000_000, integer: true },
  unhealthyTasks: { min: 1, max: 1_000, integer: true },
};

/**
 * Gateway outcomes that count as model call failures: the `ModelCalls`
 * metric's `Outcome` values that name a fault of the model path rather
 * than a request the gateway rejected on purpose (budget, rate limit,
 * guardrail, suspension, invalid input). The gateway writes the error's
 * `name`, from `lambda/shared/errors.ts`, as the outcome.
 */
export const GATEWAY_FAILURE_OUTCOMES = [
  'AllTargetsFailedError',
  'ModelCallError',
  'BudgetUnavailableError',
  'TimeoutError',
] as const;

/** Fills in every default except the per-agent oldest message age. */
export function resolveThresholds(thresholds: AlarmThresholds = {}): ResolvedThresholds {
  const resolved: Record<string, number | undefined> = { ...DEFAULT_THRESHOLDS };
  for (const [field, value] of Object.entries(thresholds)) {
    if (value !== undefined) resolved[field] = value;
  }
  return resolved as ResolvedThresholds;
}

/**
 * Returns the oldest-message age threshold of one agent: the configured
 * value, or twice the task timeout with a floor of 15 minutes.
 */
export function oldestMessageAgeSeconds(thresholds: ResolvedThresholds, taskTimeoutSeconds: number | undefined): number {
  if (thresholds.oldestMessageAgeSeconds !== undefined) return thresholds.oldestMessageAgeSeconds;
  return Math.max(MIN_DEFAULT_OLDEST_MESSAGE_AGE_SECONDS, 2 * (taskTimeoutSeconds ?? 0));
}

/** Checks each threshold against its range, and that the period is whole minutes. */
export function thresholdIssues(thresholds: AlarmThresholds): SettingsIssue[] {
  const issues: SettingsIssue[] = [];
  for (const field of Object.keys(THRESHOLD_RANGES) as Array<keyof AlarmThresholds>) {
    const value = thresholds[field];
    if (value === undefined) continue;
    const { min, max, integer, exclusiveMin } = THRESHOLD_RANGES[field];
    const belowMin = exclusiveMin ? value <= min : value < min;
    if (typeof value !== 'number' || !Number.isFinite(value) || belowMin || value > max || (integer && !Number.isInteger(value))) {
      const kind = integer ? 'a whole number' : 'a number';
      issues.push({ path: [field], message: `must be ${kind} from ${min}${exclusiveMin ? ' (exclusive)' : ''} to ${max}`, value });
    }
  }
  const period = thresholds.periodSeconds;
  if (period !== undefined && Number.isInteger(period) && period % 60 !== 0) {
    issues.push({ path: ['periodSeconds'], message: 'must be a multiple of 60, because the metrics are standard resolution with one value per minute', value: period });
  }
  return issues;
}
