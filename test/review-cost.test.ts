import { App, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Assembly, readAssembly, Template } from '../lib/review/assembly';
import { averageMinCapacity, weeklyFiringMinutes } from '../lib/review/cost/schedule';
import { buildModel } from '../lib/review/model';
import { buildReport } from '../lib/review/report';
import { exampleConfig, removeTempDirs, reviewOf, synthesize, synthesizeAgentStack } from './support/review';

type Json = any;

afterAll(removeTempDirs);

// Prices of the us-east-1 price table, written out so that the expected
// figures below are worked out by hand rather than by the code under test.
const HOURS = 730;
const FARGATE_VCPU_HOUR = 0.04048;
const FARGATE_GB_HOUR = 0.004445;
const ALB_HOUR = 0.0225;
const PUBLIC_IPV4_HOUR = 0.005;
const NAT_HOUR = 0.045;
const ENDPOINT_AZ_HOUR = 0.01;
const WEB_ACL_MONTH = 5;
const WAF_RULE_MONTH = 1;
const WAF_MILLION_REQUESTS = 0.6;
const KMS_KEY_MONTH = 1;
const ALARM_METRIC_MONTH = 0.1;
const DASHBOARD_MONTH = 3;
const LAMBDA_ARM_PROVISIONED_GB_SECOND = 0.0000033334;
const DYNAMODB_MILLION_WRITE_UNITS = 0.625;
const LOGS_GB = 0.5;
const GUARDRAIL_CONTENT_PER_1000_UNITS = 0.15;
const GUARDRAIL_TOPIC_PER_1000_UNITS = 0.15;
const GUARDRAIL_PII_PER_1000_UNITS = 0.1;

function costOf(json: Json): Json {
  return json.sections.cost.data;
}

function monthly(cost: Json, kind: string, itemPattern?: RegExp): number {
  return cost.idle.items
    .filter((i: Json) => i.kind === kind && (itemPattern === undefined || itemPattern.test(i.item)))
    .reduce((sum: number, i: Json) => sum + i.monthlyUsd, 0);
}

/** Builds the cost section of an assembly whose templates `edit` changed. */
async function costAfter(assemblyDir: string, edit: (template: Json) => void): Promise<Json> {
  const assembly = readAssembly(assemblyDir);
  const changed: Assembly = {
    ...assembly,
    stacks: assembly.stacks.map((stack) => {
      const template = JSON.parse(JSON.stringify(stack.template)) as Template;
      edit(template);
      return { ...stack, template };
    }),
  };
  const report = await buildReport(buildModel(changed), { cfnLint: false });
  return report.sections.find((s) => s.id === 'cost')!.data;
}

function resourcesOfType(template: Json, type: string): Array<[string, Json]> {
  return Object.entries(template.Resources).filter(([, r]: [string, Json]) => r.Type === type) as Array<[string, Json]>;
}

describe('cost schedule', () => {
  test('weekday cron fires five times', () => {
    const monday7 = 1 * 1440 + 7 * 60;
    expect(weeklyFiringMinutes('cron(0 7 ? * MON-FRI *)')).toEqual([0, 1, 2, 3, 4].map((d) => monday7 + d * 1440));
  });

  test('daily cron with a list', () => {
    expect(weeklyFiringMinutes('cron(30 6,18 * * ? *)')).toHaveLength(14);
  });

  test('rate and day-of-month are not read', () => {
    expect(weeklyFiringMinutes('rate(1 day)')).toBeUndefined();
    expect(weeklyFiringMinutes('cron(0 7 1 * ? *)')).toBeUndefined();
  });

  test('warm window average', () => {
    const average = averageMinCapacity(2, [
      { Schedule: 'cron(0 7 ? * MON-FRI *)', ScalableTargetAction: { MinCapacity: 4 } },
      { Schedule: 'cron(0 19 ? * MON-FRI *)', ScalableTargetAction: { MinCapacity: 2 } },
    ]);
    const warmHoursPerWeek = 5 * 12;
    const hoursPerWeek = 7 * 24;

    expect(average.average).toBeCloseTo(2 + ((4 - 2) * warmHoursPerWeek) / hoursPerWeek, 10);
    expect(average.unread).toEqual([]);
  });

  test('unread schedule is reported', () => {
    const average = averageMinCapacity(1, [{ Schedule: 'rate(1 day)', ScalableTargetAction: { MinCapacity: 3 } }]);
    expect(average).toEqual({ average: 1, unread: ['rate(1 day)'] });
  });
});

describe('idle cost of a hand-built stack', () => {
  let cost: Json;

  beforeAll(async () => {
    const assembly = synthesize((app: App) => {
      const stack = new Stack(app, 'Priced', { env: { region: 'us-east-1' } });
      const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
      vpc.addInterfaceEndpoint('Sqs', { service: ec2.InterfaceVpcEndpointAwsService.SQS });
      vpc.addInterfaceEndpoint('Logs', { service: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS });
      new elbv2.ApplicationLoadBalancer(stack, 'Lb', { vpc, internetFacing: true });

      const cluster = new ecs.Cluster(stack, 'Cluster', { vpc });
      const image = ecs.ContainerImage.fromRegistry('public.ecr.aws/nginx/nginx:latest');
      const small = new ecs.FargateTaskDefinition(stack, 'Small', { cpu: 256, memoryLimitMiB: 512 });
      small.addContainer('app', { image });
      new ecs.FargateService(stack, 'Fixed', { cluster, taskDefinition: small, desiredCount: 2 });
      const large = new ecs.FargateTaskDefinition(stack, 'Large', { cpu: 1024, memoryLimitMiB: 2048 });
      large.addContainer('app', { image });
      new ecs.FargateService(stack, 'Scaled', { cluster, taskDefinition: large }).autoScaleTaskCount({ minCapacity: 1, maxCapacity: 4 });

      const visibilityConfig = { cloudWatchMetricsEnabled: true, metricName: 'acl', sampledRequestsEnabled: true };
      new wafv2.CfnWebACL(stack, 'Acl', {
        scope: 'REGIONAL',
        defaultAction: { allow: {} },
        visibilityConfig,
        rules: [
          { name: 'Rate', priority: 0, action: { block: {} }, statement: { rateBasedStatement: { limit: 1000, aggregateKeyType: 'IP' } }, visibilityConfig },
          {
            name: 'Common',
            priority: 1,
            overrideAction: { none: {} },
            statement: { managedRuleGroupStatement: { vendorName: 'AWS', name: 'AWSManagedRulesCommonRuleSet' } },
            visibilityConfig,
          },
        ],
      });
      new kms.Key(stack, 'KeyA');
      new kms.Key(stack, 'KeyB');

      const metric = (name: string) => new cloudwatch.Metric({ namespace: 'App', metricName: name, period: Duration.minutes(5) });
      new cloudwatch.Alarm(stack, 'Plain', { metric: metric('Errors'), threshold: 1, evaluationPeriods: 1 });
      new cloudwatch.Alarm(stack, 'Math', {
        metric: new cloudwatch.MathExpression({ expression: 'a + b', usingMetrics: { a: metric('A'), b: metric('B') } }),
        threshold: 1,
        evaluationPeriods: 1,
      });
      new cloudwatch.CfnAlarm(stack, 'Anomaly', {
        comparisonOperator: 'GreaterThanUpperThreshold',
        evaluationPeriods: 1,
        thresholdMetricId: 'band',
        metrics: [
          { id: 'm0', metricStat: { metric: { namespace: 'App', metricName: 'Tokens' }, period: 300, stat: 'Sum' }, returnData: true },
          { id: 'band', expression: 'ANOMALY_DETECTION_BAND(m0, 2)' },
        ],
      });
      for (const name of ['One', 'Two', 'Three', 'Four']) new cloudwatch.Dashboard(stack, name);

      const fn = new lambda.Function(stack, 'Fn', {
        runtime: lambda.Runtime.NODEJS_20_X,
        handler: 'index.handler',
        code: lambda.Code.fromInline('exports.handler = async () => {};'),
        memorySize: 512,
        architecture: lambda.Architecture.ARM_64,
      });
      new lambda.Alias(stack, 'Live', { aliasName: 'live', version: fn.currentVersion, provisionedConcurrentExecutions: 2 });
    });
    cost = costOf((await reviewOf(assembly)).json);
  }, 120_000);

  test('total worked out by hand', () => {
    const fixedTasks = 2;
    const fixedVcpu = 0.25;
    const fixedGb = 0.5;
    const scaledTasks = 1;
    const scaledVcpu = 1;
    const scaledGb = 2;
    const fargate =
      fixedTasks * HOURS * (fixedVcpu * FARGATE_VCPU_HOUR + fixedGb * FARGATE_GB_HOUR) +
      scaledTasks * HOURS * (scaledVcpu * FARGATE_VCPU_HOUR + scaledGb * FARGATE_GB_HOUR);
    const loadBalancer = HOURS * ALB_HOUR;
    const zones = 2;
    const elasticIps = 1;
    const publicIpv4 = (zones + elasticIps) * HOURS * PUBLIC_IPV4_HOUR;
    const nat = 1 * HOURS * NAT_HOUR;
    const interfaceEndpoints = 2;
    const endpoints = interfaceEndpoints * zones * HOURS * ENDPOINT_AZ_HOUR;
    const wafRules = 2;
    const waf = WEB_ACL_MONTH + wafRules * WAF_RULE_MONTH;
    const keys = 2 * KMS_KEY_MONTH;
    const standardAlarmMetrics = 1 + 2;
    const anomalyAlarmMetrics = 3;
    const alarms = (standardAlarmMetrics + anomalyAlarmMetrics) * ALARM_METRIC_MONTH;
    const freeDashboards = 3;
    const dashboards = (4 - freeDashboards) * DASHBOARD_MONTH;
    const environments = 2;
    const functionGb = 0.5;
    const provisioned = environments * functionGb * HOURS * 3600 * LAMBDA_ARM_PROVISIONED_GB_SECOND;
    const total = fargate + loadBalancer + publicIpv4 + nat + endpoints + waf + keys + alarms + dashboards + provisioned;

    expect(cost.idle.unpricedItems).toBe(0);
    expect(cost.idle.totalMonthlyUsd).toBeCloseTo(total, 5);
  });

  test('each item worked out by hand', () => {
    expect(monthly(cost, 'fargate-vcpu', /Fixed/)).toBeCloseTo(2 * 0.25 * HOURS * FARGATE_VCPU_HOUR, 6);
    expect(monthly(cost, 'fargate-memory', /Scaled/)).toBeCloseTo(1 * 2 * HOURS * FARGATE_GB_HOUR, 6);
    expect(monthly(cost, 'public-ipv4')).toBeCloseTo(3 * HOURS * PUBLIC_IPV4_HOUR, 6);
    expect(monthly(cost, 'interface-endpoint')).toBeCloseTo(4 * HOURS * ENDPOINT_AZ_HOUR, 6);
    expect(monthly(cost, 'web-acl-rules')).toBe(2 * WAF_RULE_MONTH);
    expect(monthly(cost, 'alarm-metrics')).toBeCloseTo(3 * ALARM_METRIC_MONTH, 6);
    expect(monthly(cost, 'anomaly-alarm-metrics')).toBeCloseTo(3 * ALARM_METRIC_MONTH, 6);
    expect(monthly(cost, 'dashboards')).toBe(DASHBOARD_MONTH);
    expect(monthly(cost, 'provisioned-concurrency')).toBeCloseTo(2 * 0.5 * HOURS * 3600 * LAMBDA_ARM_PROVISIONED_GB_SECOND, 6);
  });

  test('no agents, no variable cost', () => {
    expect(cost.variable).toEqual([]);
    expect(cost.idle.items.some((i: Json) => i.kind === 'custom-metrics')).toBe(false);
  });
});

describe('cost of the example stack', () => {
  let example = '';
  let json: Json;
  let cost: Json;

  beforeAll(async () => {
    example = synthesizeAgentStack();
    json = (await reviewOf(example)).json;
    cost = costOf(json);
  }, 180_000);

  test('warm support tasks by hand', () => {
    const minTasks = 2;
    const warmWindowTasks = 4;
    const warmHoursPerWeek = 5 * 12;
    const hoursPerWeek = 7 * 24;
    const averageTasks = minTasks + ((warmWindowTasks - minTasks) * warmHoursPerWeek) / hoursPerWeek;
    const vcpu = 512 / 1024;
    const gb = 1024 / 1024;

    expect(monthly(cost, 'fargate-vcpu', /agentsupport/)).toBeCloseTo(averageTasks * vcpu * HOURS * FARGATE_VCPU_HOUR, 5);
    expect(monthly(cost, 'fargate-memory', /agentsupport/)).toBeCloseTo(averageTasks * gb * HOURS * FARGATE_GB_HOUR, 5);
    expect(monthly(cost, 'fargate-vcpu', /agentresearch/)).toBe(0);
  });

  test('network items by hand', () => {
    const zones = 2;
    const natGateways = 1;
    const interfaceEndpoints = 6;

    expect(monthly(cost, 'nat-gateway')).toBeCloseTo(natGateways * HOURS * NAT_HOUR, 6);
    expect(monthly(cost, 'public-ipv4')).toBeCloseTo((zones + natGateways) * HOURS * PUBLIC_IPV4_HOUR, 6);
    expect(monthly(cost, 'interface-endpoint')).toBeCloseTo(interfaceEndpoints * zones * HOURS * ENDPOINT_AZ_HOUR, 6);
    expect(monthly(cost, 'load-balancer')).toBeCloseTo(HOURS * ALB_HOUR, 6);
    expect(monthly(cost, 'web-acl')).toBe(WEB_ACL_MONTH);
  });

  test('anomaly alarms are told apart', () => {
    const anomaly = cost.idle.items.find((i: Json) => i.kind === 'anomaly-alarm-metrics');
    expect(anomaly.resources).toHaveLength(2);
    expect(anomaly.quantity).toBe(2 * 3);
  });

  test('custom metrics are an estimate', () => {
    const metrics = cost.idle.items.find((i: Json) => i.kind === 'custom-metrics');
    expect(metrics.item).toBe('Custom metrics in namespace AgentStack (estimate)');
    expect(metrics.quantity).toBeGreaterThan(0);
    expect(metrics.note).toMatch(/^An estimate/);
  });

  test('support task at the caps by hand', () => {
    const support = cost.variable.find((a: Json) => a.agent === 'support');
    const iterations = 8;
    const maxTokensPerCall = 2_048;
    const maxTokensPerTask = 60_000;
    const regionalPremium = 1.1;
    const haikuOutputPerMillion = 5 * regionalPremium;
    const haikuCacheWritePerMillion = 1.25 * regionalPremium;
    const outputTokens = iterations * maxTokensPerCall;
    const inputTokens = maxTokensPerTask - outputTokens;
    const tokens = (outputTokens * haikuOutputPerMillion + inputTokens * haikuCacheWritePerMillion) / 1e6;
    const charsPerToken = 4;
    const textUnits = (maxTokensPerTask * charsPerToken) / 1_000 + 2 * iterations;
    const guardrail = (textUnits / 1_000) * (GUARDRAIL_CONTENT_PER_1000_UNITS + GUARDRAIL_TOPIC_PER_1000_UNITS + GUARDRAIL_PII_PER_1000_UNITS);
    const counters = 1 + 2 + 1 + 1; // perUser daily, stack daily and monthly, perUserRate, agentRate
    const itemsPerCall = 2 * counters + 4;
    const writeUnits = iterations * itemsPerCall * 2;
    const ledger = (writeUnits / 1e6) * DYNAMODB_MILLION_WRITE_UNITS;
    const logBytes = iterations * 4_096 + 2_048;
    const logs = (logBytes / 2 ** 30) * LOGS_GB;
    const waf = WAF_MILLION_REQUESTS / 1e6;
    const perTask = tokens + guardrail + ledger + logs + waf;

    expect(support.modelCalls).toBe(iterations);
    expect(support.lines.find((l: Json) => l.item === 'Output tokens').quantity).toBe(outputTokens);
    expect(support.lines.find((l: Json) => l.item.startsWith('Budget ledger writes')).quantity).toBe(writeUnits);
    expect(support.lines.filter((l: Json) => l.item.startsWith('Guardrail text units')).map((l: Json) => l.quantity)).toEqual([textUnits, textUnits, textUnits]);
    expect(support.usdPerTask).toBeCloseTo(perTask, 8);
    expect(support.usdPer1000Tasks).toBeCloseTo(perTask * 1_000, 5);
  });

  test('background agent has no web acl requests', () => {
    const research = cost.variable.find((a: Json) => a.agent === 'research');
    expect(research.lines.some((l: Json) => l.item === 'Web ACL requests')).toBe(false);
    expect(research.lines.find((l: Json) => l.item === 'Output tokens').quantity).toBe(20 * 4_096);
  });

  test('price table has source and date', () => {
    expect(cost.priceTable.readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(cost.prices.every((p: Json) => p.source.startsWith('https://aws.amazon.com/') && p.readOn === cost.priceTable.readOn)).toBe(true);
    expect(json.sections.cost.title).toBe('Cost');
  });

  test('section sits between data protection and changes', () => {
    expect(Object.keys(json.sections).indexOf('cost')).toBeGreaterThan(Object.keys(json.sections).indexOf('data-protection'));
  });

  test('unverified prices are marked', async () => {
    const { files } = await reviewOf(example);
    expect(files['report.md']).toContain('$0.004445 per GB-hour (not verified on the AWS page)');
    expect(files['report.html']).toContain('<h2>Cost</h2>');
  });

  describe('after a template change', () => {
    test('higher desired count costs more', async () => {
      const changed = await costAfter(example, (template) => {
        const [, target] = resourcesOfType(template, 'AWS::ApplicationAutoScaling::ScalableTarget').find(([id]) => id.startsWith('agentresearch'))!;
        target.Properties.MinCapacity = 1;
      });
      const researchVcpu = 1;
      const researchGb = 2;

      expect(changed.idle.totalMonthlyUsd - cost.idle.totalMonthlyUsd).toBeCloseTo(HOURS * (researchVcpu * FARGATE_VCPU_HOUR + researchGb * FARGATE_GB_HOUR), 5);
    });

    test('service without scaling uses desired count', async () => {
      const changed = await costAfter(example, (template) => {
        for (const [id] of resourcesOfType(template, 'AWS::ApplicationAutoScaling::ScalableTarget')) {
          if (id.startsWith('agentresearch')) delete template.Resources[id];
        }
        const [, service] = resourcesOfType(template, 'AWS::ECS::Service').find(([id]) => id.startsWith('agentresearch'))!;
        service.Properties.DesiredCount = 3;
      });
      const item = changed.idle.items.find((i: Json) => i.kind === 'fargate-vcpu' && /agentresearch/.test(i.item));

      expect(item.basis).toBe('DesiredCount 3 x 1 vCPU x 730 h');
      expect(item.quantity).toBe(3 * HOURS);
    });

    test('removing the load balancer saves its hours and addresses', async () => {
      const changed = await costAfter(example, (template) => {
        for (const [id] of resourcesOfType(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')) delete template.Resources[id];
      });
      const zones = 2;
      expect(cost.idle.totalMonthlyUsd - changed.idle.totalMonthlyUsd).toBeCloseTo(HOURS * ALB_HOUR + zones * HOURS * PUBLIC_IPV4_HOUR, 5);
    });

    test('second nat gateway adds its hours and address', async () => {
      const changed = await costAfter(example, (template) => {
        const [natId, nat] = resourcesOfType(template, 'AWS::EC2::NatGateway')[0];
        const [eipId, eip] = resourcesOfType(template, 'AWS::EC2::EIP')[0];
        template.Resources[`${natId}Second`] = JSON.parse(JSON.stringify(nat));
        template.Resources[`${eipId}Second`] = JSON.parse(JSON.stringify(eip));
      });
      expect(changed.idle.totalMonthlyUsd - cost.idle.totalMonthlyUsd).toBeCloseTo(HOURS * NAT_HOUR + HOURS * PUBLIC_IPV4_HOUR, 5);
    });

    test('interface endpoint in three zones', async () => {
      const changed = await costAfter(example, (template) => {
        const [id, endpoint] = resourcesOfType(template, 'AWS::EC2::VPCEndpoint').find(([, e]) => e.Properties.VpcEndpointType === 'Interface')!;
        const copy = JSON.parse(JSON.stringify(endpoint));
        copy.Properties.ServiceName = 'com.amazonaws.us-east-1.sts';
        copy.Properties.SubnetIds = ['subnet-a', 'subnet-b', 'subnet-c'];
        template.Resources[`${id}Sts`] = copy;
      });
      const zones = 3;
      expect(changed.idle.totalMonthlyUsd - cost.idle.totalMonthlyUsd).toBeCloseTo(zones * HOURS * ENDPOINT_AZ_HOUR, 5);
    });
  });
});

describe('cost with a second background agent', () => {
  test('adds its tasks, dashboard and variable cost', async () => {
    const config = exampleConfig() as Json;
    const triage = JSON.parse(JSON.stringify(config.agents.find((a: Json) => a.name === 'research')));
    triage.name = 'triage';
    triage.scaling.minTasks = 1;
    config.agents.push(triage);
    const cost = costOf((await reviewOf(synthesizeAgentStack(config))).json);
    const freeDashboards = 3;
    const dashboards = 4; // one per agent and the overview

    expect(cost.variable.map((a: Json) => a.agent)).toEqual(['research', 'support', 'triage']);
    expect(monthly(cost, 'fargate-vcpu', /agenttriage/)).toBeCloseTo(1 * 1 * HOURS * FARGATE_VCPU_HOUR, 6);
    expect(monthly(cost, 'fargate-memory', /agenttriage/)).toBeCloseTo(1 * 2 * HOURS * FARGATE_GB_HOUR, 6);
    expect(monthly(cost, 'dashboards')).toBe((dashboards - freeDashboards) * DASHBOARD_MONTH);
    expect(cost.variable.find((a: Json) => a.agent === 'triage').usdPerTask).toBe(cost.variable.find((a: Json) => a.agent === 'research').usdPerTask);
  }, 180_000);
});

describe('cost in a region without prices', () => {
  test('counts but does not price', async () => {
    const assembly = synthesize((app: App) => {
      const stack = new Stack(app, 'Elsewhere', { env: { region: 'eu-south-2' } });
      new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
      new kms.Key(stack, 'Key');
    });
    const cost = costOf((await reviewOf(assembly)).json);
    const nat = cost.idle.items.find((i: Json) => i.kind === 'nat-gateway');

    expect(nat.quantity).toBe(HOURS);
    expect(nat.monthlyUsd).toBeNull();
    expect(nat.missingPrice).toBe('no prices for region eu-south-2');
    expect(cost.idle.totalMonthlyUsd).toBe(0);
    expect(cost.idle.unpricedItems).toBe(3);
  }, 120_000);
});
