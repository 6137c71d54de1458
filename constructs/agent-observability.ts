import { Annotations, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { AgentMetricKey } from '../lambda/shared/metric-catalog';
import { formatSettingsPath, type SettingsIssue } from './gateway-settings';
import { KillSwitch } from './kill-switch';
import { createAgentAlarms, createSharedAlarms, type AgentAlarms, type SharedAlarms } from './observability-alarms';
import { createAgentDashboard, createOverviewDashboard } from './observability-dashboards';
import { catalogMetric, guardedRate, mathId } from './observability-metrics';
import { AlarmThresholds, GATEWAY_FAILURE_OUTCOMES, resolveThresholds, ResolvedThresholds, thresholdIssues } from './observability-settings';

export type { AgentAlarms, SharedAlarms } from './observability-alarms';
export * from './observability-settings';

/** Window of an agent-wide budget, the `Window` dimension of BudgetUsePercent. */
export type BudgetWindow = 'day' | 'month';

/** One agent that AgentObservability watches. */
export interface ObservedAgent {
  /** Agent name, the `Agent` dimension of its metrics. */
  readonly name: string;
  /** `realtime` agents serve HTTP behind a load balancer, and `background` agents consume a task queue. */
  readonly mode: 'realtime' | 'background';
  /** Model calls in one task at which the worker stops the loop (`maxIterations`). */
  readonly maxIterations: number;

  /**
   * Maximum time one task may run. It sets the default threshold of the
   * oldest message age alarm.
   *
   * @default - unknown, so the age threshold defaults to 15 minutes
   */
  readonly taskTimeout?: Duration;

  /**
   * Task queue of a background agent.
   *
   * @default - no queue graphs or age alarm
   */
  readonly queue?: sqs.IQueue;

  /**
   * Dead-letter queue of the task queue.
   *
   * @default - no dead-letter graph or alarm
   */
  readonly deadLetterQueue?: sqs.IQueue;

  /**
   * Target group of a realtime agent, for healthy and unhealthy tasks and
   * the tasks' 5xx responses.
   *
   * @default - no target group graphs or alarms
   */
  readonly targetGroup?: elbv2.IApplicationTargetGroup;

  /**
   * ECS service of the agent, for running and desired task counts. The
   * counts come from Container Insights, which must be on for the cluster.
   *
   * @default - no task count graph
   */
  readonly service?: ecs.IBaseService;

  /**
   * Names of the agent's tools, one success-rate line each.
   *
   * @default - only the success rate over all tools
   */
  readonly tools?: readonly string[];

  /**
   * Regions of the agent's model route, one failover and throttle line
   * each.
   *
   * @default - only the totals over all regions
   */
  readonly regions?: readonly string[];

  /**
   * Budget windows to alarm on. The kill switch publishes BudgetUsePercent
   * for each window in which the agent has an agent-wide limit.
   *
   * @default ['day', 'month']
   */
  readonly budgetWindows?: readonly BudgetWindow[];

  /**
   * Thresholds of this agent that differ from the construct's `thresholds`.
   *
   * @default - the construct's thresholds
   */
  readonly thresholds?: AlarmThresholds;
}

export interface AgentObservabilityProps {
  /** Agents to watch: one dashboard and one set of alarms each. */
  readonly agents: readonly ObservedAgent[];

  /**
   * The model gateway's function, for its errors, throttles and duration.
   *
   * @default - no gateway function graphs or alarm
   */
  readonly gatewayFunction?: lambda.IFunction;

  /**
   * Load balancer of the realtime agents, for the 5xx responses it
   * generates itself.
   *
   * @default - no load balancer graphs or alarm
   */
  readonly loadBalancer?: elbv2.IApplicationLoadBalancer;

  /**
   * Function that receives user feedback, for its invocations and errors
   * on the overview dashboard.
   *
   * @default - no feedback function graphs
   */
  readonly feedbackFunction?: lambda.IFunction;

  /**
   * Topic that every alarm notifies on ALARM and OK. A topic you bring must
   * let CloudWatch publish to it, and, when it is encrypted, its key
   * policy must let `cloudwatch.amazonaws.com` call `kms:Decrypt` and
   * `kms:GenerateDataKey*`.
   *
   * @default - a new topic encrypted with `encryptionKey`
   */
  readonly alarmTopic?: sns.ITopic;

  /**
   * Customer managed key that encrypts the topic this construct creates.
   * A statement that lets CloudWatch use the key is added to its policy,
   * which works only for a key defined in this app.
   *
   * @default - a new key with rotation enabled
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Email addresses subscribed to the alarm topic. Each address must
   * confirm the subscription from the email SNS sends.
   *
   * @default - no subscriptions
   */
  readonly alarmEmails?: readonly string[];

  /**
   * Kill switch that receives the token anomaly and budget use alarms, as
   * EventBridge alarm state changes. It suspends an agent whose token use
   * is anomalous and checks the budget of an agent near its limit.
   *
   * @default - the alarms only notify the topic
   */
  readonly killSwitch?: KillSwitch | lambda.IFunction;

  /**
   * Alarm thresholds for all agents.
   *
   * @default - the defaults of {@link AlarmThresholds}
   */
  readonly thresholds?: AlarmThresholds;

  /**
   * Start of every alarm and dashboard name. An alarm of one agent is
   * named `<prefix>/<kind>/agent/<agent>`, which the kill switch reads the
   * agent from.
   *
   * @default - the stack name
   */
  readonly namePrefix?: string;
}

/**
 * CloudWatch dashboards and alarms for agents: one dashboard per agent and
 * an overview, alarms that all notify one SNS topic, and the token anomaly
 * and budget use alarms routed to the kill switch. Every AgentStack
 * metric comes from the metric catalog, through the `metric*` methods.
 */
export class AgentObservability extends Construct {
  /** Topic that every alarm notifies. */
  public readonly alarmTopic: sns.ITopic;
  /** Key of the topic, when this construct created the topic. */
  public readonly alarmTopicKey?: kms.IKey;
  /** Alarms of each agent, by agent name. */
  public readonly alarms: Readonly<Record<string, AgentAlarms>>;
  /** Alarms on the gateway function and the load balancer. */
  public readonly sharedAlarms: SharedAlarms;
  /** Dashboard of each agent, by agent name. */
  public readonly dashboards: Readonly<Record<string, cloudwatch.Dashboard>>;
  public readonly overviewDashboard: cloudwatch.Dashboard;
  /** Rules that send each agent's token anomaly and budget use alarms to the kill switch. */
  public readonly killSwitchRules: Readonly<Record<string, events.Rule>>;
  /** Period of every alarm and graph. */
  public readonly period: Duration;
  public readonly namePrefix: string;
  public readonly agents: readonly ObservedAgent[];
  public readonly gatewayFunction?: lambda.IFunction;
  public readonly loadBalancer?: elbv2.IApplicationLoadBalancer;
  public readonly feedbackFunction?: lambda.IFunction;
  private readonly thresholds: ResolvedThresholds;

  constructor(scope: Construct, id: string, props: AgentObservabilityProps) {
    super(scope, id);

    // Resolve defaults.
    this.agents = props.agents;
    this.thresholds = resolveThresholds(props.thresholds);
    this.period = Duration.seconds(this.thresholds.periodSeconds);
    this.namePrefix = props.namePrefix ?? Stack.of(this).stackName;
    this.gatewayFunction = props.gatewayFunction;
    this.loadBalancer = props.loadBalancer;
    this.feedbackFunction = props.feedbackFunction;

    // Validate.
    validateProps(props);

    // Create the topic, or adopt the one given, and subscribe the emails.
    if (props.alarmTopic) {
      this.alarmTopic = props.alarmTopic;
    } else {
      this.alarmTopicKey = props.encryptionKey ?? new kms.Key(this, 'AlarmTopicKey', {
        description: `${this.namePrefix}: encrypts the alarm topic of the agents`,
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      this.alarmTopic = this.createAlarmTopic(this.alarmTopicKey);
    }
    (props.alarmEmails ?? []).forEach((email) => this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(email)));

    // Create the alarms, each notifying the topic.
    const alarms: Record<string, AgentAlarms> = {};
    for (const agent of this.agents) {
      alarms[agent.name] = createAgentAlarms(this, agent, this.thresholdsOf(agent), props.killSwitch !== undefined);
    }
    this.alarms = alarms;
    this.sharedAlarms = createSharedAlarms(this, this.thresholds);
    for (const alarm of this.allAlarms()) this.addAlarm(alarm);

    // Route the token anomaly and budget use alarms to the kill switch.
    const rules: Record<string, events.Rule> = {};
    if (props.killSwitch) {
      const fn = props.killSwitch instanceof KillSwitch ? props.killSwitch.function : props.killSwitch;
      for (const agent of this.agents) {
        rules[agent.name] = this.routeToKillSwitch(agent.name, fn);
      }
    }
    this.killSwitchRules = rules;

    // Create the dashboards from the same metrics as the alarms.
    const dashboards: Record<string, cloudwatch.Dashboard> = {};
    for (const agent of this.agents) {
      dashboards[agent.name] = createAgentDashboard(this, agent, this.thresholdsOf(agent), this.alarms[agent.name]);
    }
    this.dashboards = dashboards;
    this.overviewDashboard = createOverviewDashboard(this, this.thresholds);
  }

  /**
   * Makes an alarm of your own notify the alarm topic on ALARM and on OK,
   * as the construct's alarms do.
   */
  addAlarm(alarm: cloudwatch.AlarmBase): void {
    const action = new cloudwatchActions.SnsAction(this.alarmTopic);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
  }

  /** Returns every alarm this construct created. */
  allAlarms(): cloudwatch.Alarm[] {
    const perAgent = Object.values(this.alarms).flatMap((agentAlarms) => alarmsIn(agentAlarms));
    return [...perAgent, ...alarmsIn(this.sharedAlarms)];
  }

  /** Returns the alarms of `agent` that the kill switch acts on: token anomaly and budget use. */
  killSwitchAlarms(agent: string): cloudwatch.Alarm[] {
    const agentAlarms = this.alarmsOf(agent);
    return [agentAlarms.tokenAnomaly, ...Object.values(agentAlarms.budgetUse)];
  }

  /** Returns the name of an alarm of `kind` on `agent`, or on the stack when `agent` is undefined. */
  alarmName(kind: string, agent?: string): string {
    return agent === undefined ? `${this.namePrefix}/${kind}` : `${this.namePrefix}/${kind}/agent/${agent}`;
  }

  /**
   * Returns the metric of one {@link AGENT_METRICS} entry for `agent`.
   * `dimensions` gives the entry's dimensions other than `Agent`.
   */
  metric(key: AgentMetricKey, agent: string, dimensions: Record<string, string> = {}, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return catalogMetric(key, { Agent: agent, ...dimensions }, { period: this.period, ...options });
  }

  /** Returns the input tokens of the agent's model calls, summed per period. */
  metricInputTokens(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('inputTokens', agent, {}, { statistic: 'Sum', label: 'Input tokens', ...options });
  }

  /** Returns the output tokens of the agent's model calls, summed per period. */
  metricOutputTokens(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('outputTokens', agent, {}, { statistic: 'Sum', label: 'Output tokens', ...options });
  }

  /** Returns all tokens of the agent's model calls, summed per period. */
  metricTotalTokens(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('totalTokens', agent, {}, { statistic: 'Sum', label: 'Total tokens', ...options });
  }

  /** Returns the list price of the agent's model calls in US dollars, summed per period. */
  metricCostUsd(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('costUsd', agent, {}, { statistic: 'Sum', label: 'Cost (USD)', ...options });
  }

  /** Returns the time of the agent's model calls in milliseconds, by default the p50 per period. */
  metricModelLatency(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    const statistic = options.statistic ?? 'p50';
    return this.metric('modelLatency', agent, {}, { statistic, label: `Model latency ${statistic}`, ...options });
  }

  /** Returns the agent's gateway requests that ended with `outcome` (`success` or an error name), summed. */
  metricModelCalls(agent: string, outcome: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('modelCalls', agent, { Outcome: outcome }, { statistic: 'Sum', label: outcome, ...options });
  }

  /**
   * Returns the agent's gateway requests that ended with a server-side
   * error, the sum over {@link GATEWAY_FAILURE_OUTCOMES}.
   */
  metricModelCallFailures(agent: string): cloudwatch.MathExpression {
    const usingMetrics: Record<string, cloudwatch.IMetric> = {};
    GATEWAY_FAILURE_OUTCOMES.forEach((outcome, i) => {
      usingMetrics[mathId(`outcome${i}`, agent)] = this.metricModelCalls(agent, outcome);
    });
    return new cloudwatch.MathExpression({
      expression: Object.keys(usingMetrics).map((id) => `FILL(${id}, 0)`).join(' + '),
      usingMetrics,
      label: 'Model call failures',
      period: this.period,
    });
  }

  /** Returns the share of the agent's gateway requests served from the response cache, from 0 to 1. */
  metricCacheHitRate(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('cacheHit', agent, {}, { statistic: 'Average', label: 'Cache hit rate', ...options });
  }

  /** Returns the model targets that failed and moved the call on, summed, in one region when `region` is given. */
  metricFailovers(agent: string, region?: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return region === undefined
      ? this.metric('failover', agent, {}, { statistic: 'Sum', label: 'Failovers', ...options })
      : this.metric('failoverByRegion', agent, { Region: region }, { statistic: 'Sum', label: `Failovers ${region}`, ...options });
  }

  /** Returns the model targets that throttled a call, summed, in one region when `region` is given. */
  metricThrottles(agent: string, region?: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return region === undefined
      ? this.metric('throttled', agent, {}, { statistic: 'Sum', label: 'Throttles', ...options })
      : this.metric('throttledByRegion', agent, { Region: region }, { statistic: 'Sum', label: `Throttles ${region}`, ...options });
  }

  /**
   * Returns the model calls that a target served, counted as the number of
   * TotalTokens values, because the gateway writes one for each served call.
   */
  metricServedCalls(agent: string): cloudwatch.Metric {
    return this.metricTotalTokens(agent, { statistic: 'SampleCount', label: 'Served calls' });
  }

  /** Returns the failovers in percent of target attempts (served calls plus failovers). */
  metricFailoverRate(agent: string): cloudwatch.MathExpression {
    return guardedRate({
      part: this.metricFailovers(agent),
      rest: this.metricServedCalls(agent),
      minWhole: this.thresholds.minCallsForRate,
      label: 'Failover rate (%)',
      idNames: [agent],
      period: this.period,
    });
  }

  /** Returns the throttles in percent of target attempts (served calls plus throttles). */
  metricThrottleRate(agent: string): cloudwatch.MathExpression {
    return guardedRate({
      part: this.metricThrottles(agent),
      rest: this.metricServedCalls(agent),
      minWhole: this.thresholds.minCallsForRate,
      label: 'Throttle rate (%)',
      idNames: [agent],
      period: this.period,
    });
  }

  /** Returns the spent share of the agent's tightest limit in `window`, in percent, the maximum per period. */
  metricBudgetUsePercent(agent: string, window: BudgetWindow, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('budgetUsePercent', agent, { Window: window }, { statistic: 'Maximum', label: `Budget use ${window} (%)`, ...options });
  }

  /** Returns the gateway calls rejected for lack of budget, summed. */
  metricBudgetRejected(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('budgetRejected', agent, {}, { statistic: 'Sum', label: 'Budget rejected', ...options });
  }

  /** Returns the gateway calls rejected by a rate limit, summed. */
  metricRateLimited(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('rateLimited', agent, {}, { statistic: 'Sum', label: 'Rate limited', ...options });
  }

  /** Returns the gateway calls rejected because the agent was suspended, summed. */
  metricSuspendedRejected(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('suspendedRejected', agent, {}, { statistic: 'Sum', label: 'Suspended rejected', ...options });
  }

  /** Returns the model calls per task, by default the maximum per period. */
  metricLoopIterations(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    const statistic = options.statistic ?? 'Maximum';
    return this.metric('loopIterations', agent, {}, { statistic, label: `Loop iterations ${statistic}`, ...options });
  }

  /** Returns the tokens per task, the average per period. */
  metricTaskTokens(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('taskTokens', agent, {}, { statistic: 'Average', label: 'Tokens per task', ...options });
  }

  /** Returns the tasks that ended for `reason`, summed. */
  metricStopReason(agent: string, reason: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('stopReason', agent, { Reason: reason }, { statistic: 'Sum', label: reason, ...options });
  }

  /** Returns the tool calls, summed, of one tool when `tool` is given. */
  metricToolCalls(agent: string, tool?: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return tool === undefined
      ? this.metric('toolCalls', agent, {}, { statistic: 'Sum', label: 'Tool calls', ...options })
      : this.metric('toolCallsByTool', agent, { Tool: tool }, { statistic: 'Sum', label: `${tool} calls`, ...options });
  }

  /** Returns the failed tool calls, summed, of one tool when `tool` is given. */
  metricToolFailures(agent: string, tool?: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return tool === undefined
      ? this.metric('toolFailures', agent, {}, { statistic: 'Sum', label: 'Tool failures', ...options })
      : this.metric('toolFailuresByTool', agent, { Tool: tool }, { statistic: 'Sum', label: `${tool} failures`, ...options });
  }

  /** Returns the failed tool calls in percent of tool calls, of one tool when `tool` is given. */
  metricToolFailureRate(agent: string, tool?: string): cloudwatch.MathExpression {
    return guardedRate({
      part: this.metricToolFailures(agent, tool),
      whole: this.metricToolCalls(agent, tool),
      minWhole: this.thresholds.minCallsForRate,
      label: `${tool ?? 'Tool'} failure rate (%)`,
      idNames: [agent, tool],
      period: this.period,
    });
  }

  /** Returns the successful tool calls in percent of tool calls, of one tool when `tool` is given, for graphs. */
  metricToolSuccessRate(agent: string, tool?: string): cloudwatch.MathExpression {
    const failures = mathId('failures', agent, tool);
    const calls = mathId('calls', agent, tool);
    return new cloudwatch.MathExpression({
      expression: `100 - 100 * FILL(${failures}, 0) / ${calls}`,
      usingMetrics: { [failures]: this.metricToolFailures(agent, tool), [calls]: this.metricToolCalls(agent, tool) },
      label: `${tool ?? 'All tools'} success (%)`,
      period: this.period,
    });
  }

  /** Returns the confidence from 0 to 1 that the agent reports in its final output, the average per period. */
  metricConfidence(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('confidence', agent, {}, { statistic: 'Average', label: 'Confidence', ...options });
  }

  /** Returns the user scores from 1 to 5, the average per period. */
  metricSatisfaction(agent: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('satisfaction', agent, {}, { statistic: 'Average', label: 'Satisfaction', ...options });
  }

  /** Returns the alarms of `agent`, or raises an error naming the watched agents. */
  private alarmsOf(agent: string): AgentAlarms {
    const found = this.alarms[agent];
    if (found === undefined) {
      throw new Error(`AgentObservability: no agent named ${agent}. The construct watches ${Object.keys(this.alarms).join(', ') || 'no agents'}.`);
    }
    return found;
  }

  private thresholdsOf(agent: ObservedAgent): ResolvedThresholds {
    return resolveThresholds({ ...this.thresholds, ...definedFields(agent.thresholds ?? {}) });
  }

  /**
   * Creates a topic encrypted with `key` that CloudWatch may publish to.
   * CloudWatch alarms cannot publish to a topic encrypted with the AWS
   * managed key `alias/aws/sns`, whose policy does not let CloudWatch use
   * it and cannot be changed, so the key must be customer managed:
   * https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
   * https://repost.aws/knowledge-center/cloudwatch-configure-alarm-sns
   */
  private createAlarmTopic(key: kms.IKey): sns.Topic {
    const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    const added = key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [cloudWatch],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    if (!added.statementAdded) {
      Annotations.of(this).addWarningV2(
        'cdk-agent-stack:alarmTopicKeyPolicy',
        'AgentObservability cannot change the policy of the imported encryptionKey. Allow cloudwatch.amazonaws.com ' +
          'kms:Decrypt and kms:GenerateDataKey* in its key policy, or alarms cannot notify the topic.',
      );
    }
    const topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `${this.namePrefix} agent alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    // enforceSSL replaces the topic's default policy, which let the
    // account's principals publish, so CloudWatch alarms of this account
    // and region are allowed explicitly.
    const stack = Stack.of(this);
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [cloudWatch],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: {
          ArnLike: { 'aws:SourceArn': `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:*` },
        },
      }),
    );
    return topic;
  }

  /**
   * Sends the agent's token anomaly and budget use alarm state changes to
   * the kill switch. The rule matches the alarm names, so the kill switch
   * receives only these alarms and not all alarms of the topic. One rule per agent keeps each event
   * pattern far below EventBridge's default limit of 2048 characters:
   * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html
   */
  private routeToKillSwitch(agent: string, fn: lambda.IFunction): events.Rule {
    const alarmNames = this.killSwitchAlarms(agent).map((alarm) => alarm.alarmName);
    // Event fields: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html
    return new events.Rule(this, `${agent}KillSwitchRule`, {
      description: `AgentObservability: sends the token anomaly and budget use alarms of agent ${agent} to the kill switch`,
      eventPattern: {
        source: ['aws.cloudwatch'],
        detailType: ['CloudWatch Alarm State Change'],
        detail: { alarmName: alarmNames },
      },
      targets: [new targets.LambdaFunction(fn)],
    });
  }
}

/** Returns the alarms among the values of `group`, lists included. */
function alarmsIn(group: object): cloudwatch.Alarm[] {
  return Object.values(group).flatMap((value: unknown) => {
    if (value instanceof cloudwatch.Alarm) return [value];
    if (value !== null && typeof value === 'object') return alarmsIn(value);
    return [];
  });
}

function definedFields<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<T>;
}

const AGENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Raises one error that lists every invalid prop. */
function validateProps(props: AgentObservabilityProps): void {
  const issues: SettingsIssue[] = [];
  issues.push(...thresholdIssues(props.thresholds ?? {}).map((i) => ({ ...i, path: ['thresholds', ...i.path] })));
  const seen = new Map<string, number>();
  props.agents.forEach((agent, a) => {
    const at = (...rest: Array<string | number>) => ['agents', a, ...rest];
    if (!AGENT_NAME.test(agent.name)) {
      issues.push({ path: at('name'), message: 'must be 1 to 64 letters, digits, - or _, which dashboard and alarm names allow', value: agent.name });
    }
    const first = seen.get(agent.name);
    if (first !== undefined) issues.push({ path: at('name'), message: `duplicates agents[${first}].name`, value: agent.name });
    seen.set(agent.name, a);
    if (!Number.isInteger(agent.maxIterations) || agent.maxIterations < 1) {
      issues.push({ path: at('maxIterations'), message: 'must be a whole number of at least 1, the loop iteration cap', value: agent.maxIterations });
    }
    issues.push(...thresholdIssues(agent.thresholds ?? {}).map((i) => ({ ...i, path: at('thresholds', ...i.path) })));
  });
  if (issues.length > 0) {
    const described = issues.map((i) => `${formatSettingsPath('', i.path).slice(1)} ${i.message}${i.value === undefined ? '' : ` (got ${JSON.stringify(i.value)})`}`);
    throw new Error(`AgentObservability: ${described.join('; ')}.`);
  }
}
