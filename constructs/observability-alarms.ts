import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { AgentObservability, BudgetWindow, ObservedAgent } from './agent-observability';
import { GATEWAY_FAILURE_OUTCOMES, oldestMessageAgeSeconds, type ResolvedThresholds } from './observability-settings';

/** Alarms of one agent. */
export interface AgentAlarms {
  /** TotalTokens above its anomaly detection band, which the kill switch receives too. */
  readonly tokenAnomaly: cloudwatch.Alarm;
  /** LoopIterations p90 near the agent's iteration cap. */
  readonly loopIterations: cloudwatch.Alarm;
  /** Failed tool calls in percent of tool calls. */
  readonly toolFailureRate: cloudwatch.Alarm;
  /** Failovers in percent of model target attempts. */
  readonly failoverRate: cloudwatch.Alarm;
  /** Throttles in percent of model target attempts. */
  readonly throttleRate: cloudwatch.Alarm;
  /** Gateway requests that ended with a server-side error. */
  readonly modelCallFailures: cloudwatch.Alarm;
  /** BudgetUsePercent above its threshold per budget window, which the kill switch receives too. */
  readonly budgetUse: Readonly<Partial<Record<BudgetWindow, cloudwatch.Alarm>>>;
  /** Messages in the dead-letter queue of a background agent. */
  readonly deadLetters?: cloudwatch.Alarm;
  /** Age of the oldest message in the task queue of a background agent. */
  readonly oldestMessageAge?: cloudwatch.Alarm;
  /** 5xx responses of a realtime agent's tasks. */
  readonly target5xx?: cloudwatch.Alarm;
  /** Tasks of a realtime agent that fail the load balancer health check. */
  readonly unhealthyTasks?: cloudwatch.Alarm;
}

/** Alarms on resources that all agents share. */
export interface SharedAlarms {
  /** Invocations of the gateway function that failed with an uncaught error. */
  readonly gatewayErrors?: cloudwatch.Alarm;
  /** 5xx responses that the load balancer generated itself. */
  readonly loadBalancer5xx?: cloudwatch.Alarm;
}

/** Period of the unhealthy task alarm, which counts 5 of them. */
const HEALTH_PERIOD = Duration.minutes(1);
const HEALTH_EVALUATION_PERIODS = 5;
/** Periods of the loop iteration alarm: 2 of 3 must breach. */
const LOOP_EVALUATION_PERIODS = 3;
const LOOP_DATAPOINTS_TO_ALARM = 2;

function periodText(period: Duration): string {
  return period.toHumanString();
}

/**
 * Creates the alarms of one agent. No alarm has an action yet, because
 * the construct adds the topic to each.
 */
export function createAgentAlarms(scope: AgentObservability, agent: ObservedAgent, thresholds: ResolvedThresholds, hasKillSwitch: boolean): AgentAlarms {
  const name = agent.name;
  const period = periodText(scope.period);
  const id = (kind: string) => `${name}-${kind}`;
  const { minCallsForRate } = thresholds;

  // The band is the threshold: CloudFormation's ThresholdMetricId names an
  // ANOMALY_DETECTION_BAND expression, as in the example "Alarm Based on an
  // Anomaly Detector" at
  // https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-alarm.html
  const tokenAnomaly = new cloudwatch.AnomalyDetectionAlarm(scope, id('TokenAnomaly'), {
    alarmName: scope.alarmName('TokenAnomaly', name),
    metric: scope.metricTotalTokens(name),
    stdDevs: thresholds.tokenAnomalyBandWidth,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_UPPER_THRESHOLD,
    evaluationPeriods: thresholds.tokenAnomalyEvaluationPeriods,
    datapointsToAlarm: thresholds.tokenAnomalyEvaluationPeriods,
    // No model calls means no spike.
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: total tokens per ${period} stayed above the anomaly band (${thresholds.tokenAnomalyBandWidth} standard deviations) ` +
      `for ${thresholds.tokenAnomalyEvaluationPeriods} periods. ` +
      (hasKillSwitch
        ? `The kill switch suspends the agent on this alarm until an operator resumes it with {"action":"resume","agent":"${name}"}. `
        : '') +
      'Check the agent dashboard (tokens, loop iterations, tool calls) and the gateway logs of this agent for a task that loops, ' +
      'a prompt that grew, or a traffic spike. The band is learned from the history of the metric, so it is unreliable for a new agent.',
  });

  const cap = agent.maxIterations;
  const loopThreshold = thresholds.loopIterationsShareOfCap * cap;
  const loopIterations = new cloudwatch.Alarm(scope, id('LoopIterations'), {
    alarmName: scope.alarmName('LoopIterations', name),
    metric: scope.metricLoopIterations(name, { statistic: 'p90' }),
    threshold: loopThreshold,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: LOOP_EVALUATION_PERIODS,
    datapointsToAlarm: LOOP_DATAPOINTS_TO_ALARM,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: the 90th percentile of model calls per task reached ${loopThreshold} (${thresholds.loopIterationsShareOfCap * 100}% ` +
      `of the cap of ${cap}) in ${LOOP_DATAPOINTS_TO_ALARM} of ${LOOP_EVALUATION_PERIODS} periods of ${period}, so many tasks are close to being stopped. ` +
      'Check StopReason and the tool success rate on the agent dashboard, and the worker logs for tasks that repeat a tool call. ' +
      'Raise maxIterations only if the tasks really need more steps.',
  });

  const toolFailureRate = new cloudwatch.Alarm(scope, id('ToolFailureRate'), {
    alarmName: scope.alarmName('ToolFailureRate', name),
    metric: scope.metricToolFailureRate(name),
    threshold: thresholds.toolFailureRatePercent,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: ${thresholds.toolFailureRatePercent}% or more of its tool calls failed in ${period} with at least ` +
      `${minCallsForRate} calls. Check the success rate per tool on the agent dashboard, then the failing tool's Lambda errors and logs.`,
  });

  const failoverRate = new cloudwatch.Alarm(scope, id('FailoverRate'), {
    alarmName: scope.alarmName('FailoverRate', name),
    metric: scope.metricFailoverRate(name),
    threshold: thresholds.failoverRatePercent,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: ${thresholds.failoverRatePercent}% or more of its model target attempts failed over to the next target in ` +
      `${period} with at least ${minCallsForRate} attempts. Check failovers and throttles by region on the agent dashboard ` +
      'and the gateway log lines "Model target failed" for the cause; one region or model standing out points at an outage or a quota there.',
  });

  const throttleRate = new cloudwatch.Alarm(scope, id('ThrottleRate'), {
    alarmName: scope.alarmName('ThrottleRate', name),
    metric: scope.metricThrottleRate(name),
    threshold: thresholds.throttleRatePercent,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: Bedrock throttled ${thresholds.throttleRatePercent}% or more of its model target attempts in ${period} ` +
      `with at least ${minCallsForRate} attempts. Check throttles by region on the agent dashboard and the Bedrock quotas (requests and ` +
      'tokens per minute) of the model in each region; request a quota increase or add a target in another region.',
  });

  const modelCallFailures = new cloudwatch.Alarm(scope, id('ModelCallFailures'), {
    alarmName: scope.alarmName('ModelCallFailures', name),
    metric: scope.metricModelCallFailures(name),
    threshold: thresholds.modelCallFailures,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: ${thresholds.modelCallFailures} or more gateway requests in ${period} ended with ` +
      `${GATEWAY_FAILURE_OUTCOMES.join(', ')}. Check the gateway logs of this agent by outcome: AllTargetsFailedError means every ` +
      'target of the route failed, BudgetUnavailableError that the budget ledger table could not be reached.',
  });

  const budgetUse: Partial<Record<BudgetWindow, cloudwatch.Alarm>> = {};
  for (const window of agent.budgetWindows ?? ['day', 'month']) {
    budgetUse[window] = new cloudwatch.Alarm(scope, id(`BudgetUse-${window}`), {
      alarmName: scope.alarmName(`BudgetUse-${window}`, name),
      metric: scope.metricBudgetUsePercent(name, window),
      threshold: thresholds.budgetUsePercent,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      // The kill switch writes the metric only for windows with a limit.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        `Agent ${name} has spent ${thresholds.budgetUsePercent}% or more of its agent-wide limit for the current ${window}. ` +
        (hasKillSwitch ? 'The kill switch checks the budget on this alarm and suspends the agent once the limit is spent, until the window ends. ' : '') +
        'Check tokens and cost on the agent dashboard for a spike, and raise the limit if the spend is expected.',
    });
  }

  return {
    tokenAnomaly,
    loopIterations,
    toolFailureRate,
    failoverRate,
    throttleRate,
    modelCallFailures,
    budgetUse,
    ...queueAlarms(scope, agent, thresholds),
    ...targetGroupAlarms(scope, agent, thresholds),
  };
}

function queueAlarms(scope: AgentObservability, agent: ObservedAgent, thresholds: ResolvedThresholds): Pick<AgentAlarms, 'deadLetters' | 'oldestMessageAge'> {
  const name = agent.name;
  const alarms: { deadLetters?: cloudwatch.Alarm; oldestMessageAge?: cloudwatch.Alarm } = {};
  if (agent.deadLetterQueue) {
    // A dead-letter queue has no consumer, so the visible messages are all it holds.
    alarms.deadLetters = new cloudwatch.Alarm(scope, `${name}-DeadLetters`, {
      alarmName: scope.alarmName('DeadLetters', name),
      metric: agent.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: scope.period, statistic: 'Maximum' }),
      threshold: thresholds.deadLetterMessages,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        `Agent ${name}: ${thresholds.deadLetterMessages} or more messages are in its dead-letter queue, tasks that failed on every receive. ` +
        'Check the worker logs for the message ids and the error of each attempt, fix the cause, then redrive the messages to the task queue. ' +
        'The alarm stays in ALARM until the queue is empty.',
    });
  }
  if (agent.queue) {
    const ageSeconds = oldestMessageAgeSeconds(thresholds, agent.taskTimeout?.toSeconds());
    alarms.oldestMessageAge = new cloudwatch.Alarm(scope, `${name}-OldestMessageAge`, {
      alarmName: scope.alarmName('OldestMessageAge', name),
      metric: agent.queue.metricApproximateAgeOfOldestMessage({ period: scope.period, statistic: 'Maximum' }),
      threshold: ageSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        `Agent ${name}: the oldest message in its task queue is ${ageSeconds} s old or older; SQS counts messages in flight too. ` +
        'Check on the agent dashboard that tasks are running and that the backlog did not hit maxTasks, and the worker logs for ' +
        'tasks that never finish.',
    });
  }
  return alarms;
}

function targetGroupAlarms(scope: AgentObservability, agent: ObservedAgent, thresholds: ResolvedThresholds): Pick<AgentAlarms, 'target5xx' | 'unhealthyTasks'> {
  const targetGroup = agent.targetGroup;
  if (targetGroup === undefined) return {};
  const name = agent.name;
  const target5xx = new cloudwatch.Alarm(scope, `${name}-Target5xx`, {
    alarmName: scope.alarmName('Target5xx', name),
    metric: targetGroup.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period: scope.period, statistic: 'Sum' }),
    threshold: thresholds.target5xx,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: its tasks returned ${thresholds.target5xx} or more 5xx responses in ${periodText(scope.period)}. ` +
      'Check the worker logs for the error names (502 ModelCallError, 503 BudgetUnavailableError, 504 TimeoutError) and the ' +
      'model call failures on the agent dashboard.',
  });
  const unhealthyTasks = new cloudwatch.Alarm(scope, `${name}-UnhealthyTasks`, {
    alarmName: scope.alarmName('UnhealthyTasks', name),
    metric: targetGroup.metrics.unhealthyHostCount({ period: HEALTH_PERIOD, statistic: 'Maximum' }),
    threshold: thresholds.unhealthyTasks,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: HEALTH_EVALUATION_PERIODS,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription:
      `Agent ${name}: ${thresholds.unhealthyTasks} or more of its tasks failed the load balancer health check for ` +
      `${HEALTH_EVALUATION_PERIODS} minutes. Check the ECS service events and the stopped reasons of its tasks, and the worker logs ` +
      'around the target group health check path.',
  });
  return { target5xx, unhealthyTasks };
}

/** Creates the alarms on the gateway function and the load balancer, where given. */
export function createSharedAlarms(scope: AgentObservability, thresholds: ResolvedThresholds): SharedAlarms {
  const period = periodText(scope.period);
  const alarms: { gatewayErrors?: cloudwatch.Alarm; loadBalancer5xx?: cloudwatch.Alarm } = {};
  if (scope.gatewayFunction) {
    alarms.gatewayErrors = new cloudwatch.Alarm(scope, 'GatewayErrors', {
      alarmName: scope.alarmName('GatewayErrors'),
      metric: scope.gatewayFunction.metricErrors({ period: scope.period, statistic: 'Sum' }),
      threshold: thresholds.gatewayErrors,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        `The model gateway function failed ${thresholds.gatewayErrors} or more invocations in ${period} with an error its ` +
        'handler did not catch, such as a timeout, running out of memory or a crash. Every model call of every agent goes through it. ' +
        'Check its log group for "Task timed out" and error lines, and its duration against its timeout.',
    });
  }
  if (scope.loadBalancer) {
    alarms.loadBalancer5xx = new cloudwatch.Alarm(scope, 'LoadBalancer5xx', {
      alarmName: scope.alarmName('LoadBalancer5xx'),
      metric: scope.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { period: scope.period, statistic: 'Sum' }),
      threshold: thresholds.loadBalancer5xx,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        `The agents' load balancer itself returned ${thresholds.loadBalancer5xx} or more 5xx responses in ${period}. ` +
        'A 503 means a route had no healthy task, a 504 that a task did not answer within the idle timeout, a 502 that a task ' +
        "closed the connection. Check each realtime agent's healthy tasks and the load balancer access logs.",
    });
  }
  return alarms;
}
