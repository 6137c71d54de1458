import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { AgentObservability, ObservedAgent } from './agent-observability';
import type { AgentAlarms } from './observability-alarms';
import { mathId } from './observability-metrics';
import { oldestMessageAgeSeconds, type ResolvedThresholds } from './observability-settings';

const FULL_WIDTH = 24;
const THIRD = 8;
const HALF = 12;
const HEIGHT = 6;

/** Returns a dashboard name of letters, digits, `-` and `_`, the characters CloudWatch allows. */
export function dashboardName(...parts: string[]): string {
  return parts.join('-').replace(/[^A-Za-z0-9_-]/g, '-');
}

function graph(title: string, left: cloudwatch.IMetric[], options: Partial<cloudwatch.GraphWidgetProps> = {}): cloudwatch.GraphWidget {
  return new cloudwatch.GraphWidget({ title, left, width: THIRD, height: HEIGHT, ...options });
}

function annotation(value: number, label: string, color = cloudwatch.Color.RED): cloudwatch.HorizontalAnnotation {
  return { value, label, color };
}

/**
 * Creates the dashboard of one agent: tokens and cost, latency, failovers
 * and throttles by region, cache hits, budget use, loop iterations against
 * the cap, tool success, confidence and satisfaction, and the queue or
 * load balancer graphs of its mode.
 */
export function createAgentDashboard(
  scope: AgentObservability,
  agent: ObservedAgent,
  thresholds: ResolvedThresholds,
  alarms: AgentAlarms,
): cloudwatch.Dashboard {
  const name = agent.name;
  const dashboard = new cloudwatch.Dashboard(scope, `${name}-Dashboard`, {
    dashboardName: dashboardName(scope.namePrefix, 'agent', name),
    defaultInterval: Duration.days(1),
  });
  const regions = agent.regions ?? [];
  const windows = agent.budgetWindows ?? ['day', 'month'];

  // Header and alarm states.
  dashboard.addWidgets(
    new cloudwatch.TextWidget({
      markdown:
        `# Agent ${name} (${agent.mode})\n` +
        `Loop iteration cap ${agent.maxIterations}. Periods of ${scope.period.toHumanString()}. ` +
        'Metrics in namespace AgentStack with the dimension Agent.',
      width: FULL_WIDTH,
      height: 2,
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: Object.values(alarmList(alarms)), width: FULL_WIDTH, height: 3 }),
  );

  // Tokens and cost.
  const tokensId = mathId('tokens', name);
  const band = new cloudwatch.MathExpression({
    expression: `ANOMALY_DETECTION_BAND(${tokensId}, ${thresholds.tokenAnomalyBandWidth})`,
    usingMetrics: { [tokensId]: scope.metricTotalTokens(name) },
    label: 'Expected total tokens',
    period: scope.period,
  });
  dashboard.addWidgets(
    graph('Tokens', [scope.metricInputTokens(name), scope.metricOutputTokens(name), scope.metricTotalTokens(name), band], { width: HALF }),
    graph('Cost (USD)', [scope.metricCostUsd(name)], { width: HALF }),
  );

  // Model latency, failovers and throttles.
  dashboard.addWidgets(
    graph('Model latency (ms)', [scope.metricModelLatency(name, { statistic: 'p50' }), scope.metricModelLatency(name, { statistic: 'p99' })]),
    graph('Failovers by region', regions.length > 0 ? regions.map((region) => scope.metricFailovers(name, region)) : [scope.metricFailovers(name)], {
      right: [scope.metricFailoverRate(name)],
    }),
    graph('Throttles by region', regions.length > 0 ? regions.map((region) => scope.metricThrottles(name, region)) : [scope.metricThrottles(name)], {
      right: [scope.metricThrottleRate(name)],
    }),
  );

  // Cache, budget and gateway outcomes.
  dashboard.addWidgets(
    graph('Cache hit rate', [scope.metricCacheHitRate(name)], { leftYAxis: { min: 0, max: 1 } }),
    graph(
      'Budget use (% of limit)',
      windows.map((window) => scope.metricBudgetUsePercent(name, window)),
      {
        leftYAxis: { min: 0 },
        leftAnnotations: [annotation(thresholds.budgetUsePercent, 'alarm', cloudwatch.Color.ORANGE), annotation(100, 'limit')],
      },
    ),
    graph('Model call failures and rejections', [
      scope.metricModelCallFailures(name),
      scope.metricBudgetRejected(name),
      scope.metricRateLimited(name),
      scope.metricSuspendedRejected(name),
    ]),
  );

  // Loops, tools, confidence and satisfaction.
  const tools = agent.tools ?? [];
  dashboard.addWidgets(
    graph('Loop iterations per task', [scope.metricLoopIterations(name), scope.metricLoopIterations(name, { statistic: 'p90' })], {
      leftYAxis: { min: 0 },
      leftAnnotations: [
        annotation(agent.maxIterations, 'cap'),
        annotation(thresholds.loopIterationsShareOfCap * agent.maxIterations, 'alarm (p90)', cloudwatch.Color.ORANGE),
      ],
    }),
    graph('Tool success rate (%)', [scope.metricToolSuccessRate(name), ...tools.map((tool) => scope.metricToolSuccessRate(name, tool))], {
      leftYAxis: { min: 0, max: 100 },
    }),
    graph('Confidence and satisfaction', [scope.metricConfidence(name)], {
      right: [scope.metricSatisfaction(name)],
      leftYAxis: { min: 0, max: 1, label: 'confidence' },
      rightYAxis: { min: 1, max: 5, label: 'satisfaction' },
    }),
  );

  // Mode-specific graphs: the queue of a background agent, the target group of a realtime one.
  const modeWidgets = agent.mode === 'background' ? queueWidgets(scope, agent, thresholds) : realtimeWidgets(scope, agent);
  if (modeWidgets.length > 0) dashboard.addWidgets(...modeWidgets);
  return dashboard;
}

function queueWidgets(scope: AgentObservability, agent: ObservedAgent, thresholds: ResolvedThresholds): cloudwatch.IWidget[] {
  const period = scope.period;
  const widgets: cloudwatch.IWidget[] = [];
  if (agent.queue) {
    widgets.push(
      graph('Queue depth', [
        agent.queue.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum', label: 'Waiting' }),
        agent.queue.metricApproximateNumberOfMessagesNotVisible({ period, statistic: 'Maximum', label: 'In flight' }),
      ]),
      graph('Oldest message age (s)', [agent.queue.metricApproximateAgeOfOldestMessage({ period, statistic: 'Maximum' })], {
        leftAnnotations: [annotation(oldestMessageAgeSeconds(thresholds, agent.taskTimeout?.toSeconds()), 'alarm')],
      }),
    );
  }
  if (agent.deadLetterQueue) {
    widgets.push(
      graph('Dead letters', [agent.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' })], {
        leftAnnotations: [annotation(thresholds.deadLetterMessages, 'alarm')],
      }),
    );
  }
  return widgets;
}

function realtimeWidgets(scope: AgentObservability, agent: ObservedAgent): cloudwatch.IWidget[] {
  const period = scope.period;
  const widgets: cloudwatch.IWidget[] = [];
  const targetGroup = agent.targetGroup;
  if (targetGroup) {
    widgets.push(
      graph('Healthy tasks', [
        targetGroup.metrics.healthyHostCount({ period: Duration.minutes(1), statistic: 'Minimum', label: 'Healthy' }),
        targetGroup.metrics.unhealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum', label: 'Unhealthy' }),
      ]),
      graph('Responses', [targetGroup.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period, statistic: 'Sum', label: '5xx' })], {
        right: [targetGroup.metrics.requestCount({ period, statistic: 'Sum', label: 'Requests' })],
      }),
    );
  }
  if (agent.service) {
    widgets.push(graph('Tasks', taskCountMetrics(agent.service, period)));
  }
  return widgets;
}

/**
 * Running and desired tasks of a service, two of the Container Insights
 * metrics listed at
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/appinsights-metrics-ecs.html
 */
function taskCountMetrics(service: { serviceName: string; cluster: { clusterName: string } }, period: Duration): cloudwatch.Metric[] {
  const dimensionsMap = { ClusterName: service.cluster.clusterName, ServiceName: service.serviceName };
  return ['RunningTaskCount', 'DesiredTaskCount'].map(
    (metricName) => new cloudwatch.Metric({ namespace: 'ECS/ContainerInsights', metricName, dimensionsMap, period, statistic: 'Average' }),
  );
}

/**
 * Creates the overview dashboard: every agent's tokens, cost, latency,
 * failures, budget use and satisfaction side by side, the gateway
 * function, the load balancer, the feedback function and every alarm.
 */
export function createOverviewDashboard(scope: AgentObservability, thresholds: ResolvedThresholds): cloudwatch.Dashboard {
  const dashboard = new cloudwatch.Dashboard(scope, 'OverviewDashboard', {
    dashboardName: dashboardName(scope.namePrefix, 'overview'),
    defaultInterval: Duration.days(1),
  });
  const names = scope.agents.map((agent) => agent.name);
  const perAgent = (build: (agent: string) => cloudwatch.IMetric) => names.map((name) => withLabel(build(name), name));

  dashboard.addWidgets(
    new cloudwatch.TextWidget({
      markdown: `# ${scope.namePrefix}: all agents\nOne line per agent. Open the dashboard of one agent for its details.`,
      width: FULL_WIDTH,
      height: 2,
    }),
  );
  dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: scope.allAlarms(), width: FULL_WIDTH, height: 4 }));
  dashboard.addWidgets(
    graph('Total tokens', perAgent((name) => scope.metricTotalTokens(name)), { width: HALF }),
    graph('Cost (USD)', perAgent((name) => scope.metricCostUsd(name)), { width: HALF }),
  );
  dashboard.addWidgets(
    graph('Model latency p99 (ms)', perAgent((name) => scope.metricModelLatency(name, { statistic: 'p99' }))),
    graph('Model call failures', perAgent((name) => scope.metricModelCallFailures(name))),
    graph('Daily budget use (% of limit)', perAgent((name) => scope.metricBudgetUsePercent(name, 'day')), {
      leftYAxis: { min: 0 },
      leftAnnotations: [annotation(thresholds.budgetUsePercent, 'alarm', cloudwatch.Color.ORANGE), annotation(100, 'limit')],
    }),
  );
  dashboard.addWidgets(
    graph('Satisfaction (1 to 5)', perAgent((name) => scope.metricSatisfaction(name)), { width: HALF, leftYAxis: { min: 1, max: 5 } }),
    graph('Confidence (0 to 1)', perAgent((name) => scope.metricConfidence(name)), { width: HALF, leftYAxis: { min: 0, max: 1 } }),
  );

  const shared: cloudwatch.IWidget[] = [];
  const period = scope.period;
  if (scope.gatewayFunction) {
    const fn = scope.gatewayFunction;
    shared.push(
      graph('Gateway function', [fn.metricInvocations({ period }), fn.metricErrors({ period }), fn.metricThrottles({ period })]),
      graph('Gateway duration (ms)', [fn.metricDuration({ period, statistic: 'p50' }), fn.metricDuration({ period, statistic: 'p99' })]),
    );
  }
  if (scope.loadBalancer) {
    const metrics = scope.loadBalancer.metrics;
    shared.push(
      graph('Load balancer', [
        metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { period, statistic: 'Sum', label: 'Load balancer 5xx' }),
        metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period, statistic: 'Sum', label: 'Agent 5xx' }),
      ], { right: [metrics.requestCount({ period, statistic: 'Sum', label: 'Requests' })] }),
    );
  }
  if (scope.feedbackFunction) {
    const fn = scope.feedbackFunction;
    shared.push(graph('Feedback function', [fn.metricInvocations({ period }), fn.metricErrors({ period })]));
  }
  if (shared.length > 0) dashboard.addWidgets(...shared);
  return dashboard;
}

function withLabel(metric: cloudwatch.IMetric, label: string): cloudwatch.IMetric {
  if (metric instanceof cloudwatch.Metric) return metric.with({ label });
  if (metric instanceof cloudwatch.MathExpression) return metric.with({ label });
  return metric;
}

function alarmList(alarms: AgentAlarms): cloudwatch.IAlarm[] {
  const { budgetUse, ...single } = alarms;
  return [...Object.values(single), ...Object.values(budgetUse)].filter((alarm): alarm is cloudwatch.Alarm => alarm !== undefined);
}
