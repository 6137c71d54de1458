import { Duration, Token } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { FINAL_ANSWER_TOOL, MIN_HISTORY_INPUT_TOKENS } from '../lambda/shared/contracts';
import type { AgentServiceProps } from './agent-service-props';

/** Maximum visibility timeout SQS accepts: 12 hours. */
const MAX_VISIBILITY = Duration.hours(12);

/** Seconds between the task timeout and the visibility timeout. */
const VISIBILITY_MARGIN_SECONDS = 60;

/**
 * Maximum scale-out steps of one policy, within Application Auto Scaling's
 * default quota of 20 step adjustments per step scaling policy.
 * Source: https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-quotas.html
 */
const MAX_SCALE_OUT_STEPS = 19;

/** Throws on props that cannot make a working service, naming the prop and the fix. */
export function validateProps(
  props: AgentServiceProps,
  resolved: { realtime: boolean; taskTimeout: Duration; minTasks: number; maxTasks: number },
): void {
  const name = `AgentService ${props.agentName}`;
  const { realtime, taskTimeout, minTasks, maxTasks } = resolved;
  if (!/^[a-z][a-z0-9-]{0,29}$/.test(props.agentName)) {
    throw new Error(`${name}: agentName must be lower-case letters, digits and -, starting with a letter, at most 30 characters.`);
  }
  if (realtime && !props.endpoint) {
    throw new Error(`${name}: a realtime agent needs endpoint; pass an AgentEndpoint or use mode background.`);
  }
  if (!realtime && props.endpoint) {
    throw new Error(`${name}: endpoint applies to realtime agents only; remove it or use mode realtime.`);
  }
  if (realtime && (props.maxReceiveCount !== undefined || props.queueRetention !== undefined || props.backlogPerTask !== undefined)) {
    throw new Error(`${name}: maxReceiveCount, queueRetention and backlogPerTask apply to background agents only.`);
  }
  if (!Token.isUnresolved(minTasks) && !Token.isUnresolved(maxTasks)) {
    if (!Number.isInteger(minTasks) || minTasks < 0) {
      throw new Error(`${name}: minTasks must be a whole number of 0 or more (got ${minTasks}).`);
    }
    if (!Number.isInteger(maxTasks) || maxTasks < 1) {
      throw new Error(`${name}: maxTasks must be a whole number of 1 or more (got ${maxTasks}).`);
    }
    if (minTasks > maxTasks) {
      throw new Error(`${name}: minTasks (${minTasks}) exceeds maxTasks (${maxTasks}); raise maxTasks or lower minTasks.`);
    }
    if (realtime && minTasks === 0) {
      throw new Error(`${name}: minTasks must be at least 1 for a realtime agent, because with no task behind the load balancer there is no request metric to scale out on.`);
    }
  }
  const timeoutSeconds = taskTimeout.toSeconds();
  if (!realtime && timeoutSeconds + VISIBILITY_MARGIN_SECONDS > MAX_VISIBILITY.toSeconds()) {
    throw new Error(`${name}: taskTimeout of ${timeoutSeconds} s leaves no room for the ${VISIBILITY_MARGIN_SECONDS} s visibility margin within the SQS maximum of 12 hours; use at most ${MAX_VISIBILITY.toSeconds() - VISIBILITY_MARGIN_SECONDS} s.`);
  }
  const history = props.history;
  if (history !== undefined && (!Number.isInteger(history.maxInputTokens) || history.maxInputTokens < MIN_HISTORY_INPUT_TOKENS)) {
    throw new Error(`${name}: history.maxInputTokens must be a whole number of at least ${MIN_HISTORY_INPUT_TOKENS} (got ${history.maxInputTokens}), so that a summary, the system prompt and the latest turns fit.`);
  }
  if (history?.maxToolResultChars !== undefined && (!Number.isInteger(history.maxToolResultChars) || history.maxToolResultChars < 1)) {
    throw new Error(`${name}: history.maxToolResultChars must be a whole number of 1 or more (got ${history.maxToolResultChars}).`);
  }
  const conflictingTool = (props.tools ?? []).find((tool) => tool.definition.name === FINAL_ANSWER_TOOL);
  if (props.confidence && conflictingTool !== undefined) {
    throw new Error(`${name}: confidence makes the worker offer its own ${FINAL_ANSWER_TOOL} tool, so rename the agent's tool ${FINAL_ANSWER_TOOL} or turn confidence off.`);
  }
  for (const [i, window] of (props.warmWindows ?? []).entries()) {
    if (window.minTasks > maxTasks) {
      throw new Error(`${name}: warmWindows[${i}].minTasks (${window.minTasks}) exceeds maxTasks (${maxTasks}).`);
    }
  }
}

/** Visible plus in-flight messages: the work a background agent is processing or has yet to start. */
export function backlogMetric(queue: sqs.IQueue): cloudwatch.IMetric {
  const options = { period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM };
  return new cloudwatch.MathExpression({
    expression: 'visible + inFlight',
    label: 'Backlog',
    period: Duration.minutes(1),
    usingMetrics: {
      visible: queue.metricApproximateNumberOfMessagesVisible(options),
      inFlight: queue.metricApproximateNumberOfMessagesNotVisible(options),
    },
  });
}

/**
 * Returns step scaling intervals in exact task counts. No backlog scales to
 * `minTasks`, and a backlog of `b` runs `ceil(b / backlogPerTask)` tasks, so
 * the first step starts at one message even when `minTasks` is 0. Beyond
 * {@link MAX_SCALE_OUT_STEPS} task counts the counts grow geometrically, so
 * a step runs less than 1.5 times the tasks its backlog needs for a
 * `maxTasks` of up to 1000.
 */
export function backlogScalingSteps(options: {
  minTasks: number;
  maxTasks: number;
  backlogPerTask: number;
}): appscaling.ScalingInterval[] {
  const { minTasks, maxTasks, backlogPerTask } = options;

  // Each count grows by the ratio that reaches maxTasks within the steps
  // left, and by one task at least, so small services get every count.
  // Evenly spaced counts would jump from 1 task to maxTasks / 18 tasks.
  const counts: number[] = [];
  let tasks = 1;
  for (let remaining = MAX_SCALE_OUT_STEPS - 1; ; remaining--) {
    counts.push(tasks);
    if (tasks >= maxTasks) break;
    const ratio = (maxTasks / tasks) ** (1 / remaining);
    tasks = Math.min(maxTasks, Math.max(tasks + 1, Math.round(tasks * ratio)));
  }

  const steps: appscaling.ScalingInterval[] = [{ upper: 0, change: minTasks }];
  let lower = 1;
  for (const count of counts) {
    steps.push({ lower, change: Math.max(count, minTasks) });
    lower = count * backlogPerTask + 1;
  }
  return steps;
}
