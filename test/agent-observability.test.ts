import * as path from 'path';
import { App, CfnElement, CloudFormationValidatePlugin, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { AgentObservability, AgentObservabilityProps, GATEWAY_FAILURE_OUTCOMES } from '../constructs/agent-observability';
import { catalogMetric } from '../constructs/observability-metrics';
import { AgentStack } from '../lib/agent-stack';
import { ConfigError, loadConfig, validateConfig } from '../lib/config';
import {
  AllTargetsFailedError,
  BudgetUnavailableError,
  ModelCallError,
  TimeoutError,
} from '../lambda/shared/errors';
import { AGENT_METRICS } from '../lambda/shared/metric-catalog';

type Json = any;
type Resource = { Type: string; Properties: Json };

const ROOT = path.resolve(__dirname, '..');
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const ACCOUNT = '111122223333';
const REGION = 'us-east-1';

/** Name and sorted dimension names of every catalog entry, such as `TotalTokens|Agent`. */
const CATALOG_KEYS = new Set(Object.values(AGENT_METRICS).map((entry) => `${entry.name}|${[...entry.dimensions].sort().join(',')}`));

function catalogKey(name: string, dimensionNames: string[]): string {
  return `${name}|${[...dimensionNames].sort().join(',')}`;
}

/** A company's own stack: a gateway function, a queue pair, a load balancer and a kill switch function, built by hand. */
class CompanyStack {
  readonly stack: Stack;
  readonly gateway: lambda.Function;
  readonly killSwitch: lambda.Function;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;

  constructor(app = new App()) {
    this.stack = new Stack(app, 'Company', { env: { region: REGION, account: ACCOUNT } });
    const code = lambda.Code.fromInline('exports.handler = async () => ({});');
    this.gateway = new lambda.Function(this.stack, 'Gateway', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code });
    this.killSwitch = new lambda.Function(this.stack, 'KillSwitch', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code });
    this.deadLetterQueue = new sqs.Queue(this.stack, 'DeadLetters');
    this.queue = new sqs.Queue(this.stack, 'Tasks', { deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 3 } });
    const vpc = new ec2.Vpc(this.stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this.stack, 'LoadBalancer', { vpc, internetFacing: true });
    this.targetGroup = new elbv2.ApplicationTargetGroup(this.stack, 'SupportTargets', {
      vpc,
      port: 8080,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
    });
    this.loadBalancer.addListener('Listener', { port: 80, defaultTargetGroups: [this.targetGroup] });
  }

  observe(overrides: Partial<AgentObservabilityProps> = {}): AgentObservability {
    return new AgentObservability(this.stack, 'Observability', {
      agents: [
        { name: 'support', mode: 'realtime', maxIterations: 8, targetGroup: this.targetGroup, tools: ['lookup_order', 'issue_refund'], regions: ['us-east-1', 'us-east-2'] },
        {
          name: 'research',
          mode: 'background',
          maxIterations: 20,
          taskTimeout: Duration.minutes(15),
          queue: this.queue,
          deadLetterQueue: this.deadLetterQueue,
          tools: ['search_knowledge_base'],
          regions: ['us-east-1', 'us-west-2'],
        },
      ],
      gatewayFunction: this.gateway,
      loadBalancer: this.loadBalancer,
      killSwitch: this.killSwitch,
      ...overrides,
    });
  }
}

/** The synthesized template with the lookups these tests share. */
class Synth {
  readonly template: Template;
  readonly resources: Record<string, Resource>;

  constructor(readonly stack: Stack) {
    this.template = Template.fromStack(stack);
    this.resources = this.template.toJSON().Resources;
  }

  logicalId(construct: IConstruct): string {
    return this.stack.getLogicalId(construct.node.defaultChild as CfnElement);
  }

  ofType(type: string): Array<[string, Resource]> {
    return Object.entries(this.resources).filter(([, resource]) => resource.Type === type);
  }

  alarm(alarm: cloudwatch.Alarm): Json {
    return this.resources[this.logicalId(alarm)].Properties;
  }
}

/** Returns the `MetricStat` of each metric an alarm reads, from the single-metric fields or from `Metrics`. */
function metricStats(alarm: Json): Json[] {
  if (alarm.MetricName !== undefined) {
    return [
      {
        Metric: { Namespace: alarm.Namespace, MetricName: alarm.MetricName, Dimensions: alarm.Dimensions ?? [] },
        Stat: alarm.Statistic ?? alarm.ExtendedStatistic,
        Period: alarm.Period,
      },
    ];
  }
  return (alarm.Metrics ?? []).filter((query: Json) => query.MetricStat).map((query: Json) => ({ ...query.MetricStat, Id: query.Id }));
}

function dimensionNames(stat: Json): string[] {
  return (stat.Metric.Dimensions ?? []).map((dimension: Json) => dimension.Name);
}

function dimensionValue(stat: Json, name: string): unknown {
  return (stat.Metric.Dimensions ?? []).find((dimension: Json) => dimension.Name === name)?.Value;
}

function expressionOf(alarm: Json): string {
  return (alarm.Metrics ?? []).find((query: Json) => query.Expression !== undefined)?.Expression;
}

/** Parses a dashboard body whose tokens are replaced by a placeholder inside their JSON strings. */
function dashboardBody(resource: Resource): Json {
  const body = resource.Properties.DashboardBody;
  const text = typeof body === 'string' ? body : body['Fn::Join'][1].map((part: unknown) => (typeof part === 'string' ? part : 'TOKEN')).join('');
  return JSON.parse(text);
}

/** Returns each metric row of a dashboard as namespace, name and dimension names, leaving out math expressions. */
function dashboardMetrics(body: Json): Array<{ namespace: string; name: string; dimensions: string[] }> {
  return body.widgets
    .flatMap((widget: Json) => [...(widget.properties?.metrics ?? [])])
    .filter((row: Json[]) => typeof row[0] === 'string')
    .map((row: Json[]) => {
      const fields = row.filter((item) => typeof item === 'string');
      const dimensions = fields.slice(2).filter((_, i) => i % 2 === 0);
      return { namespace: fields[0], name: fields[1], dimensions };
    });
}

function widgetTitled(body: Json, title: string): Json {
  return body.widgets.find((widget: Json) => widget.properties?.title === title);
}

describe('standalone observability', () => {
  const company = new CompanyStack();
  const observability = company.observe();
  const synth = new Synth(company.stack);
  const topicRef = { Ref: synth.logicalId(observability.alarmTopic as sns.Topic) };
  const support = observability.alarms.support;
  const research = observability.alarms.research;

  describe('token anomaly alarm', () => {
    const alarm = synth.alarm(research.tokenAnomaly);

    test('reads total tokens of the agent', () => {
      const stats = metricStats(alarm);

      expect(stats).toHaveLength(1);
      expect(stats[0].Metric.Namespace).toBe('AgentStack');
      expect(stats[0].Metric.MetricName).toBe('TotalTokens');
      expect(stats[0].Metric.Dimensions).toEqual([{ Name: 'Agent', Value: 'research' }]);
      expect(stats[0].Stat).toBe('Sum');
      expect(stats[0].Period).toBe(300);
    });

    test('uses the band as threshold', () => {
      const band = alarm.Metrics.find((query: Json) => query.Expression !== undefined);
      const metricId = metricStats(alarm)[0].Id;

      expect(band.Expression).toBe(`ANOMALY_DETECTION_BAND(${metricId}, 3)`);
      expect(alarm.ThresholdMetricId).toBe(band.Id);
      expect(alarm.Threshold).toBeUndefined();
      expect(alarm.ComparisonOperator).toBe('GreaterThanUpperThreshold');
    });

    test('evaluates three periods', () => {
      expect(alarm.EvaluationPeriods).toBe(3);
      expect(alarm.DatapointsToAlarm).toBe(3);
      expect(alarm.TreatMissingData).toBe('notBreaching');
    });

    test('name ends with the agent', () => {
      expect(alarm.AlarmName).toBe('Company/TokenAnomaly/agent/research');
    });

    test('band width and periods follow thresholds', () => {
      const other = new CompanyStack();
      const custom = other.observe({ thresholds: { tokenAnomalyBandWidth: 4.5, tokenAnomalyEvaluationPeriods: 2 } });
      const customAlarm = new Synth(other.stack).alarm(custom.alarms.support.tokenAnomaly);

      expect(expressionOf(customAlarm)).toMatch(/^ANOMALY_DETECTION_BAND\(\w+, 4\.5\)$/);
      expect(customAlarm.EvaluationPeriods).toBe(2);
      expect(customAlarm.DatapointsToAlarm).toBe(2);
    });
  });

  describe('single-metric alarms', () => {
    // alarm, namespace, metric, dimensions (value undefined: present, any value), statistic, threshold, operator, periods
    const cases: Array<[string, () => cloudwatch.Alarm, string, string, Record<string, unknown>, string, number, string, number]> = [
      ['loop iterations', () => research.loopIterations, 'AgentStack', 'LoopIterations', { Agent: 'research' }, 'p90', 16, 'GreaterThanOrEqualToThreshold', 3],
      ['daily budget use', () => research.budgetUse.day!, 'AgentStack', 'BudgetUsePercent', { Agent: 'research', Window: 'day' }, 'Maximum', 80, 'GreaterThanOrEqualToThreshold', 1],
      ['monthly budget use', () => research.budgetUse.month!, 'AgentStack', 'BudgetUsePercent', { Agent: 'research', Window: 'month' }, 'Maximum', 80, 'GreaterThanOrEqualToThreshold', 1],
      ['dead letters', () => research.deadLetters!, 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', { QueueName: undefined }, 'Maximum', 1, 'GreaterThanOrEqualToThreshold', 1],
      ['oldest message age', () => research.oldestMessageAge!, 'AWS/SQS', 'ApproximateAgeOfOldestMessage', { QueueName: undefined }, 'Maximum', 1800, 'GreaterThanOrEqualToThreshold', 1],
      ['target 5xx', () => support.target5xx!, 'AWS/ApplicationELB', 'HTTPCode_Target_5XX_Count', { TargetGroup: undefined, LoadBalancer: undefined }, 'Sum', 10, 'GreaterThanOrEqualToThreshold', 1],
      ['unhealthy tasks', () => support.unhealthyTasks!, 'AWS/ApplicationELB', 'UnHealthyHostCount', { TargetGroup: undefined, LoadBalancer: undefined }, 'Maximum', 1, 'GreaterThanOrEqualToThreshold', 5],
      ['gateway errors', () => observability.sharedAlarms.gatewayErrors!, 'AWS/Lambda', 'Errors', { FunctionName: undefined }, 'Sum', 1, 'GreaterThanOrEqualToThreshold', 1],
      ['load balancer 5xx', () => observability.sharedAlarms.loadBalancer5xx!, 'AWS/ApplicationELB', 'HTTPCode_ELB_5XX_Count', { LoadBalancer: undefined }, 'Sum', 10, 'GreaterThanOrEqualToThreshold', 1],
    ];

    test.each(cases)('%s alarm', (_, get, namespace, metricName, dimensions, statistic, threshold, operator, periods) => {
      const alarm = synth.alarm(get());
      const [stat] = metricStats(alarm);

      expect(stat.Metric.Namespace).toBe(namespace);
      expect(stat.Metric.MetricName).toBe(metricName);
      expect(dimensionNames(stat).sort()).toEqual(Object.keys(dimensions).sort());
      for (const [name, value] of Object.entries(dimensions)) {
        if (value !== undefined) expect(dimensionValue(stat, name)).toBe(value);
      }
      expect(stat.Stat).toBe(statistic);
      expect(alarm.Threshold).toBe(threshold);
      expect(alarm.ComparisonOperator).toBe(operator);
      expect(alarm.EvaluationPeriods).toBe(periods);
      expect(alarm.TreatMissingData).toBe('notBreaching');
    });

    test('queue alarms watch their queues', () => {
      const deadLetters = metricStats(synth.alarm(research.deadLetters!))[0];
      const oldest = metricStats(synth.alarm(research.oldestMessageAge!))[0];

      expect(dimensionValue(deadLetters, 'QueueName')).toEqual({ 'Fn::GetAtt': [synth.logicalId(company.deadLetterQueue), 'QueueName'] });
      expect(dimensionValue(oldest, 'QueueName')).toEqual({ 'Fn::GetAtt': [synth.logicalId(company.queue), 'QueueName'] });
    });

    test('gateway alarm watches the function', () => {
      const stat = metricStats(synth.alarm(observability.sharedAlarms.gatewayErrors!))[0];

      expect(dimensionValue(stat, 'FunctionName')).toEqual({ Ref: synth.logicalId(company.gateway) });
    });

    test('unhealthy tasks use minute periods', () => {
      const alarm = synth.alarm(support.unhealthyTasks!);

      expect(alarm.Period).toBe(60);
    });

    test('loop alarm needs two of three', () => {
      expect(synth.alarm(research.loopIterations).DatapointsToAlarm).toBe(2);
      expect(synth.alarm(support.loopIterations).Threshold).toBeCloseTo(6.4);
    });

    test('realtime agent has no queue alarms', () => {
      expect(support.deadLetters).toBeUndefined();
      expect(support.oldestMessageAge).toBeUndefined();
    });

    test('background agent has no target alarms', () => {
      expect(research.target5xx).toBeUndefined();
      expect(research.unhealthyTasks).toBeUndefined();
    });
  });

  describe('rate alarms', () => {
    test('tool failure rate divides failures by calls', () => {
      const alarm = synth.alarm(support.toolFailureRate);
      const stats = metricStats(alarm);
      const failures = stats.find((s) => s.Metric.MetricName === 'ToolFailures');
      const calls = stats.find((s) => s.Metric.MetricName === 'ToolCalls');

      expect(stats).toHaveLength(2);
      expect(failures.Metric.Dimensions).toEqual([{ Name: 'Agent', Value: 'support' }]);
      expect(calls.Metric.Dimensions).toEqual([{ Name: 'Agent', Value: 'support' }]);
      expect(failures.Stat).toBe('Sum');
      expect(calls.Stat).toBe('Sum');
      expect(expressionOf(alarm)).toBe(`IF(${calls.Id} >= 20, 100 * FILL(${failures.Id}, 0) / ${calls.Id}, 0)`);
      expect(alarm.Threshold).toBe(10);
      expect(alarm.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
      expect(alarm.TreatMissingData).toBe('notBreaching');
    });

    test.each([
      ['failover', () => support.failoverRate, 'Failover', 20],
      ['throttle', () => support.throttleRate, 'Throttled', 10],
    ])('%s rate counts attempts', (_, get, metricName, threshold) => {
      const alarm = synth.alarm(get());
      const stats = metricStats(alarm);
      const part = stats.find((s) => s.Metric.MetricName === metricName);
      const served = stats.find((s) => s.Metric.MetricName === 'TotalTokens');

      expect(stats).toHaveLength(2);
      expect(part.Metric.Dimensions).toEqual([{ Name: 'Agent', Value: 'support' }]);
      expect(part.Stat).toBe('Sum');
      expect(served.Stat).toBe('SampleCount');
      const attempts = `(FILL(${part.Id}, 0) + FILL(${served.Id}, 0))`;
      expect(expressionOf(alarm)).toBe(`IF(${attempts} >= 20, 100 * FILL(${part.Id}, 0) / ${attempts}, 0)`);
      expect(alarm.Threshold).toBe(threshold);
      expect(alarm.TreatMissingData).toBe('notBreaching');
    });

    test('model call failures sum failure outcomes', () => {
      const alarm = synth.alarm(support.modelCallFailures);
      const stats = metricStats(alarm);

      expect(stats.map((s) => dimensionValue(s, 'Outcome')).sort()).toEqual([...GATEWAY_FAILURE_OUTCOMES].sort());
      for (const stat of stats) {
        expect(stat.Metric.MetricName).toBe('ModelCalls');
        expect(dimensionValue(stat, 'Agent')).toBe('support');
        expect(stat.Stat).toBe('Sum');
      }
      expect(expressionOf(alarm)).toBe(stats.map((s) => `FILL(${s.Id}, 0)`).join(' + '));
      expect(alarm.Threshold).toBe(5);
    });

    test('failure outcomes are real error names', () => {
      const names = [
        new AllTargetsFailedError('m', 'r', 'ThrottlingException', []).name,
        new ModelCallError('m', 'r', 'ValidationException').name,
        new BudgetUnavailableError('m', 'r').name,
        new TimeoutError('m', 'r').name,
      ];

      expect([...GATEWAY_FAILURE_OUTCOMES].sort()).toEqual(names.sort());
    });
  });

  describe('every alarm', () => {
    const alarms = synth.ofType('AWS::CloudWatch::Alarm');

    test('count matches the construct', () => {
      expect(alarms).toHaveLength(observability.allAlarms().length);
      // Each agent has 10: anomaly, loop, tool failures, failover, throttle, model call failures,
      // two budget windows and two for its mode. The gateway and the load balancer add one each.
      expect(alarms).toHaveLength(2 * 10 + 2);
    });

    test('notifies the topic on alarm and ok', () => {
      for (const [, alarm] of alarms) {
        expect(alarm.Properties.AlarmActions).toEqual([topicRef]);
        expect(alarm.Properties.OKActions).toEqual([topicRef]);
      }
    });

    test('treats missing data as not breaching', () => {
      for (const [, alarm] of alarms) expect(alarm.Properties.TreatMissingData).toBe('notBreaching');
    });

    test('description says what to check', () => {
      for (const [, alarm] of alarms) {
        expect(alarm.Properties.AlarmDescription).toMatch(/Check /);
        expect(alarm.Properties.AlarmDescription.length).toBeLessThanOrEqual(1024);
      }
    });

    test('reads only catalog metrics in AgentStack', () => {
      const read = alarms.flatMap(([, alarm]) => metricStats(alarm.Properties)).filter((stat) => stat.Metric.Namespace === 'AgentStack');

      expect(read.length).toBeGreaterThan(0);
      for (const stat of read) expect(CATALOG_KEYS).toContain(catalogKey(stat.Metric.MetricName, dimensionNames(stat)));
    });

    test('names are unique', () => {
      const names = alarms.map(([, alarm]) => alarm.Properties.AlarmName);

      expect(new Set(names).size).toBe(names.length);
    });
  });

  describe('kill switch routing', () => {
    const rules = synth.ofType('AWS::Events::Rule');

    test('one rule per agent', () => {
      expect(rules).toHaveLength(2);
    });

    test.each(['support', 'research'])('%s rule matches its alarms', (agent) => {
      const rule = synth.resources[synth.logicalId(observability.killSwitchRules[agent])].Properties;
      const expected = observability.killSwitchAlarms(agent).map((alarm) => ({ Ref: synth.logicalId(alarm) }));

      expect(rule.EventPattern.source).toEqual(['aws.cloudwatch']);
      expect(rule.EventPattern['detail-type']).toEqual(['CloudWatch Alarm State Change']);
      expect(rule.EventPattern.detail.alarmName).toEqual(expected);
      expect(rule.Targets).toHaveLength(1);
      expect(rule.Targets[0].Arn).toEqual({ 'Fn::GetAtt': [synth.logicalId(company.killSwitch), 'Arn'] });
    });

    test('routes anomaly and budget alarms only', () => {
      const routed = observability.killSwitchAlarms('research');

      expect(routed).toEqual([research.tokenAnomaly, research.budgetUse.day, research.budgetUse.month]);
    });

    test('events may invoke the kill switch', () => {
      synth.template.hasResourceProperties('AWS::Lambda::Permission', {
        Action: 'lambda:InvokeFunction',
        FunctionName: { 'Fn::GetAtt': [synth.logicalId(company.killSwitch), 'Arn'] },
        Principal: 'events.amazonaws.com',
      });
    });

    test('topic has no kill switch subscription', () => {
      synth.template.resourceCountIs('AWS::SNS::Subscription', 0);
    });

    test('no rules without a kill switch', () => {
      const other = new CompanyStack();
      other.observe({ killSwitch: undefined });

      new Synth(other.stack).template.resourceCountIs('AWS::Events::Rule', 0);
    });

    test('descriptions mention the kill switch', () => {
      expect(synth.alarm(research.tokenAnomaly).AlarmDescription).toMatch(/kill switch suspends/);
      expect(synth.alarm(research.budgetUse.day!).AlarmDescription).toMatch(/kill switch checks the budget/);
    });
  });

  describe('alarm topic', () => {
    const [keyId, key] = synth.ofType('AWS::KMS::Key')[0];

    test('one customer managed key', () => {
      synth.template.resourceCountIs('AWS::KMS::Key', 1);
      expect(key.Properties.EnableKeyRotation).toBe(true);
    });

    test('key policy lets cloudwatch use it', () => {
      const statement = key.Properties.KeyPolicy.Statement.find((s: Json) => s.Principal?.Service === 'cloudwatch.amazonaws.com');

      expect(statement.Effect).toBe('Allow');
      expect(statement.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
      expect(statement.Resource).toBe('*');
    });

    test('topic is encrypted with the key', () => {
      synth.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } });
    });

    test('topic denies publishing without tls', () => {
      synth.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    });

    test('topic lets this account alarms publish', () => {
      const policy = synth.ofType('AWS::SNS::TopicPolicy')[0][1].Properties.PolicyDocument;
      const statement = policy.Statement.find((s: Json) => s.Effect === 'Allow');

      expect(statement.Principal).toEqual({ Service: 'cloudwatch.amazonaws.com' });
      expect(statement.Action).toBe('sns:Publish');
      expect(statement.Resource).toEqual(topicRef);
      expect(JSON.stringify(statement.Condition.ArnLike['aws:SourceArn'])).toContain(`:cloudwatch:${REGION}:`);
    });

    test('given key gets the statement', () => {
      const other = new CompanyStack();
      const key = new kms.Key(other.stack, 'CompanyKey', { enableKeyRotation: true });
      other.observe({ encryptionKey: key });
      const otherSynth = new Synth(other.stack);

      otherSynth.template.resourceCountIs('AWS::KMS::Key', 1);
      const policy = otherSynth.resources[otherSynth.logicalId(key)].Properties.KeyPolicy;
      expect(policy.Statement.some((s: Json) => s.Principal?.Service === 'cloudwatch.amazonaws.com')).toBe(true);
    });

    test('imported key warns', () => {
      const other = new CompanyStack();
      const key = kms.Key.fromKeyArn(other.stack, 'Imported', `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`);
      const observed = other.observe({ encryptionKey: key });

      Annotations.fromStack(other.stack).hasWarning(`/${observed.node.path}`, Match.stringLikeRegexp('cannot change the policy of the imported encryptionKey'));
    });

    test('own topic is used as given', () => {
      const other = new CompanyStack();
      const topicArn = `arn:aws:sns:${REGION}:${ACCOUNT}:oncall`;
      const observed = other.observe({ alarmTopic: sns.Topic.fromTopicArn(other.stack, 'OnCall', topicArn) });
      const otherSynth = new Synth(other.stack);

      otherSynth.template.resourceCountIs('AWS::SNS::Topic', 0);
      otherSynth.template.resourceCountIs('AWS::KMS::Key', 0);
      expect(otherSynth.alarm(observed.alarms.support.tokenAnomaly).AlarmActions).toEqual([topicArn]);
    });

    test('emails are subscribed', () => {
      const other = new CompanyStack();
      other.observe({ alarmEmails: ['oncall@example.com'] });

      new Synth(other.stack).template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
    });

    test('own alarms notify the topic', () => {
      const other = new CompanyStack();
      const observed = other.observe();
      const own = new cloudwatch.Alarm(other.stack, 'Own', {
        metric: observed.metricCostUsd('support'),
        threshold: 50,
        evaluationPeriods: 1,
      });
      observed.addAlarm(own);
      const otherSynth = new Synth(other.stack);

      expect(otherSynth.alarm(own).AlarmActions).toEqual([{ Ref: otherSynth.logicalId(observed.alarmTopic as sns.Topic) }]);
      expect(metricStats(otherSynth.alarm(own))[0].Metric.MetricName).toBe('CostUsd');
    });
  });

  describe('dashboards', () => {
    const dashboards = synth.ofType('AWS::CloudWatch::Dashboard');
    const bodyOf = (dashboard: cloudwatch.Dashboard) => dashboardBody(synth.resources[synth.logicalId(dashboard)]);

    test('one per agent and overview', () => {
      expect(dashboards).toHaveLength(3);
      expect(dashboards.map(([, d]) => d.Properties.DashboardName).sort()).toEqual(['Company-agent-research', 'Company-agent-support', 'Company-overview']);
    });

    test('agentstack metrics are catalog entries', () => {
      for (const [, dashboard] of dashboards) {
        const metrics = dashboardMetrics(dashboardBody(dashboard)).filter((metric) => metric.namespace === 'AgentStack');

        expect(metrics.length).toBeGreaterThan(0);
        for (const metric of metrics) expect(CATALOG_KEYS).toContain(catalogKey(metric.name, metric.dimensions));
      }
    });

    test('agent dashboard shows its metrics', () => {
      const names = new Set(dashboardMetrics(bodyOf(observability.dashboards.research)).map((metric) => metric.name));

      for (const name of [
        'InputTokens', 'OutputTokens', 'TotalTokens', 'CostUsd', 'ModelLatency', 'Failover', 'Throttled', 'CacheHit',
        'BudgetUsePercent', 'LoopIterations', 'ToolCalls', 'ToolFailures', 'Confidence', 'Satisfaction',
      ]) {
        expect(names).toContain(name);
      }
    });

    test('latency shows p50 and p99', () => {
      const widget = widgetTitled(bodyOf(observability.dashboards.support), 'Model latency (ms)');
      const stats = widget.properties.metrics.map((row: Json[]) => row[row.length - 1].stat);

      expect(stats).toEqual(['p50', 'p99']);
    });

    test('failovers per route region', () => {
      const widget = widgetTitled(bodyOf(observability.dashboards.research), 'Failovers by region');
      const regions = widget.properties.metrics.filter((row: Json[]) => row.includes('Region')).map((row: Json[]) => row[row.indexOf('Region') + 1]);

      expect(regions).toEqual(['us-east-1', 'us-west-2']);
    });

    test('loop graph marks the cap', () => {
      const widget = widgetTitled(bodyOf(observability.dashboards.research), 'Loop iterations per task');
      const annotations = widget.properties.annotations.horizontal;

      expect(annotations).toContainEqual(expect.objectContaining({ value: 20, label: 'cap' }));
      expect(annotations).toContainEqual(expect.objectContaining({ value: 16 }));
    });

    test('budget graph marks the limit', () => {
      const widget = widgetTitled(bodyOf(observability.dashboards.research), 'Budget use (% of limit)');
      const windows = widget.properties.metrics.map((row: Json[]) => row[row.indexOf('Window') + 1]);

      expect(windows).toEqual(['day', 'month']);
      expect(widget.properties.annotations.horizontal.map((a: Json) => a.value)).toEqual([80, 100]);
    });

    test('tool success per tool', () => {
      const widget = widgetTitled(bodyOf(observability.dashboards.support), 'Tool success rate (%)');
      const tools = widget.properties.metrics.filter((row: Json[]) => row.includes('Tool')).map((row: Json[]) => row[row.indexOf('Tool') + 1]);

      expect([...new Set(tools)]).toEqual(['lookup_order', 'issue_refund']);
    });

    test('tokens graph shows the band', () => {
      const widget = widgetTitled(bodyOf(observability.dashboards.support), 'Tokens');
      const expressions = widget.properties.metrics.filter((row: Json[]) => typeof row[0] === 'object').map((row: Json[]) => row[0].expression);

      expect(expressions).toEqual(['ANOMALY_DETECTION_BAND(tokens_support, 3)']);
    });

    test('background dashboard shows the queue', () => {
      const body = bodyOf(observability.dashboards.research);
      const names = dashboardMetrics(body).filter((metric) => metric.namespace === 'AWS/SQS').map((metric) => metric.name);

      expect(names).toEqual(['ApproximateNumberOfMessagesVisible', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateAgeOfOldestMessage', 'ApproximateNumberOfMessagesVisible']);
      expect(widgetTitled(body, 'Dead letters')).toBeDefined();
      expect(widgetTitled(body, 'Healthy tasks')).toBeUndefined();
    });

    test('realtime dashboard shows health', () => {
      const body = bodyOf(observability.dashboards.support);
      const names = dashboardMetrics(body).filter((metric) => metric.namespace === 'AWS/ApplicationELB').map((metric) => metric.name);

      expect(names).toEqual(['HealthyHostCount', 'UnHealthyHostCount', 'HTTPCode_Target_5XX_Count', 'RequestCount']);
      expect(widgetTitled(body, 'Queue depth')).toBeUndefined();
    });

    test('overview has a line per agent', () => {
      const widget = widgetTitled(bodyOf(observability.overviewDashboard), 'Total tokens');
      const agents = widget.properties.metrics.map((row: Json[]) => row[row.indexOf('Agent') + 1]);

      expect(agents).toEqual(['support', 'research']);
    });

    test('overview lists every alarm', () => {
      const widget = bodyOf(observability.overviewDashboard).widgets.find((w: Json) => w.type === 'alarm');

      expect(widget.properties.alarms).toHaveLength(observability.allAlarms().length);
    });
  });

  describe('metric methods', () => {
    test('build catalog metrics', () => {
      const metric = observability.metricTotalTokens('support');

      expect(metric.namespace).toBe('AgentStack');
      expect(metric.metricName).toBe(AGENT_METRICS.totalTokens.name);
      expect(metric.dimensions).toEqual({ Agent: 'support' });
      expect(metric.statistic).toBe('Sum');
      expect(metric.period.toSeconds()).toBe(300);
    });

    test('per-region failovers', () => {
      const metric = observability.metricFailovers('support', 'us-east-2');

      expect(metric.metricName).toBe('Failover');
      expect(metric.dimensions).toEqual({ Agent: 'support', Region: 'us-east-2' });
    });

    test('budget use per window', () => {
      const metric = observability.metricBudgetUsePercent('research', 'month');

      expect(metric.dimensions).toEqual({ Agent: 'research', Window: 'month' });
      expect(metric.statistic).toBe('Maximum');
    });

    test('wrong dimensions are rejected', () => {
      expect(() => catalogMetric('budgetUsePercent', { Agent: 'research' })).toThrow(/dimensions Agent, Window, but got Agent/);
    });

    test('unknown agent is rejected', () => {
      expect(() => observability.killSwitchAlarms('billing')).toThrow(/no agent named billing. The construct watches support, research/);
    });
  });

  describe('checks', () => {
    test('no aws solutions findings', () => {
      const report = new AwsSolutionsChecks().validateScope(observability);
      const findings = report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`));

      expect(findings).toEqual([]);
    });

    test('cloudformation validation passes', () => {
      // With this flag, synthesis raises the errors of aws-cdk-lib's CloudFormation validation.
      const app = new App({ context: { '@aws-cdk/core:validateAgainstDefaultRules': true } });
      new CompanyStack(app).observe();
      const validate = jest.spyOn(CloudFormationValidatePlugin.prototype, 'validate');

      try {
        expect(() => app.synth()).not.toThrow();
        expect(validate).toHaveBeenCalledTimes(1);
      } finally {
        validate.mockRestore();
      }
    });
  });

  describe('validation', () => {
    test('duplicate names are rejected', () => {
      const other = new CompanyStack();

      expect(() =>
        other.observe({
          agents: [
            { name: 'support', mode: 'realtime', maxIterations: 8 },
            { name: 'support', mode: 'background', maxIterations: 8 },
          ],
        }),
      ).toThrow(/agents\[1\]\.name duplicates agents\[0\]\.name/);
    });

    test('invalid thresholds name the field', () => {
      const other = new CompanyStack();

      expect(() => other.observe({ thresholds: { loopIterationsShareOfCap: 1.5, periodSeconds: 90 } })).toThrow(
        /thresholds\.periodSeconds must be a multiple of 60.*\(got 90\)/,
      );
      expect(() => new CompanyStack().observe({ thresholds: { loopIterationsShareOfCap: 1.5 } })).toThrow(
        /thresholds\.loopIterationsShareOfCap must be a number from 0 \(exclusive\) to 1 \(got 1\.5\)/,
      );
    });

    test('invalid agent fields are rejected', () => {
      const other = new CompanyStack();

      expect(() => other.observe({ agents: [{ name: 'a/b', mode: 'realtime', maxIterations: 0 }] })).toThrow(
        /agents\[0\]\.name must be 1 to 64 letters.*agents\[0\]\.maxIterations must be a whole number/,
      );
    });

    test('agent thresholds override', () => {
      const other = new CompanyStack();
      const observed = other.observe({
        agents: [{ name: 'research', mode: 'background', maxIterations: 20, queue: other.queue, thresholds: { oldestMessageAgeSeconds: 7200 } }],
      });

      expect(new Synth(other.stack).alarm(observed.alarms.research.oldestMessageAge!).Threshold).toBe(7200);
    });
  });
});

describe('agent stack observability', () => {
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'AgentStack', { config, configDir: ROOT });
  const synth = new Synth(stack);
  const observability = stack.observability;

  test('watches every agent', () => {
    expect(Object.keys(observability.alarms).sort()).toEqual(config.agents.map((agent) => agent.name).sort());
    expect(Object.keys(observability.dashboards).sort()).toEqual(config.agents.map((agent) => agent.name).sort());
  });

  test('topic uses the stack key', () => {
    const key = synth.resources[synth.logicalId(stack.key)].Properties;

    synth.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [synth.logicalId(stack.key), 'Arn'] } });
    expect(key.KeyPolicy.Statement.some((s: Json) => s.Principal?.Service === 'cloudwatch.amazonaws.com')).toBe(true);
  });

  test('kill switch is the budget one', () => {
    const killSwitchArn = { 'Fn::GetAtt': [synth.logicalId(stack.budget!.killSwitch.function), 'Arn'] };

    for (const agent of config.agents) {
      const rule = synth.resources[synth.logicalId(observability.killSwitchRules[agent.name])].Properties;
      expect(rule.Targets[0].Arn).toEqual(killSwitchArn);
    }
  });

  test('agents get their queues and target groups', () => {
    const research = stack.agents.research;
    const support = stack.agents.support;
    const age = metricStats(synth.alarm(observability.alarms.research.oldestMessageAge!))[0];
    const target5xx = metricStats(synth.alarm(observability.alarms.support.target5xx!))[0];

    expect(dimensionValue(age, 'QueueName')).toEqual({ 'Fn::GetAtt': [synth.logicalId(research.queue!), 'QueueName'] });
    expect(JSON.stringify(dimensionValue(target5xx, 'TargetGroup'))).toContain(synth.logicalId(support.targetGroup!));
  });

  test('oldest age follows the task timeout', () => {
    const research = config.agents.find((agent) => agent.name === 'research')!;

    expect(synth.alarm(observability.alarms.research.oldestMessageAge!).Threshold).toBe(2 * research.limits.taskTimeoutSeconds);
  });

  test('loop alarm uses the configured cap', () => {
    const support = config.agents.find((agent) => agent.name === 'support')!;

    expect(synth.alarm(observability.alarms.support.loopIterations).Threshold).toBeCloseTo(0.8 * support.limits.maxIterations);
  });

  test('gateway and load balancer alarms exist', () => {
    const gateway = metricStats(synth.alarm(observability.sharedAlarms.gatewayErrors!))[0];

    expect(dimensionValue(gateway, 'FunctionName')).toEqual({ Ref: synth.logicalId(stack.gateway.function) });
    expect(observability.sharedAlarms.loadBalancer5xx).toBeDefined();
  });

  test('outputs the topic and dashboard', () => {
    const dashboardId = synth.logicalId(observability.overviewDashboard);

    synth.template.hasOutput('AlarmTopicArn', { Value: { Ref: synth.logicalId(observability.alarmTopic as sns.Topic) } });
    synth.template.hasOutput('OverviewDashboardName', { Value: { Ref: dashboardId } });
    expect(synth.resources[dashboardId].Properties.DashboardName).toBe('AgentStack-overview');
  });

  test('config thresholds reach the alarms', () => {
    const custom = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
    const withThresholds = { ...custom, observability: { ...custom.observability, budgetUsePercent: 60, alarmTopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:oncall` } };
    const customStack = new AgentStack(new App({ context: NO_BUNDLING }), 'Custom', { config: withThresholds, configDir: ROOT });
    const customSynth = new Synth(customStack);

    expect(customSynth.alarm(customStack.observability.alarms.research.budgetUse.day!).Threshold).toBe(60);
    expect(customSynth.alarm(customStack.observability.alarms.research.budgetUse.day!).AlarmActions).toEqual([`arn:aws:sns:${REGION}:${ACCOUNT}:oncall`]);
    customSynth.template.resourceCountIs('AWS::SNS::Topic', 0);
  });
});

describe('observability config', () => {
  const base = () => JSON.parse(JSON.stringify(require(path.join(ROOT, 'agent-stack.config.json'))));

  test('defaults match the construct', () => {
    const config = validateConfig(base());

    expect(config.observability).toEqual({
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
      alarmEmails: [],
    });
  });

  test('period must be whole minutes', () => {
    const input = { ...base(), observability: { periodSeconds: 90 } };

    expect(() => validateConfig(input)).toThrow(ConfigError);
    expect(() => validateConfig(input)).toThrow(/\$\.observability\.periodSeconds/);
  });

  test('message age must exceed task timeout', () => {
    const input = { ...base(), observability: { oldestMessageAgeSeconds: 600 } };

    expect(() => validateConfig(input)).toThrow(/\$\.observability\.oldestMessageAgeSeconds: must exceed the task timeout of background agent research \(900 s\)/);
  });

  test('topic arn is checked', () => {
    const input = { ...base(), observability: { alarmTopicArn: 'oncall' } };

    expect(() => validateConfig(input)).toThrow(/\$\.observability\.alarmTopicArn: expected an SNS topic ARN/);
  });

  test('unknown keys are rejected', () => {
    const input = { ...base(), observability: { budgetUsePercnt: 70 } };

    expect(() => validateConfig(input)).toThrow(/\$\.observability\.budgetUsePercnt: unknown key/);
  });
});
