/**
 * Counts what a deployment pays for every month with no traffic, from the
 * templates: warm Fargate tasks, load balancers and their public IPv4
 * addresses, NAT gateways, interface endpoints per zone, web ACLs and their
 * rules, KMS keys, alarms, custom metrics, dashboards and provisioned
 * concurrency.
 */
import { compareText } from '../assembly';
import { asList, CfnValue, referencedId, referencedIds } from '../cfn';
import type { ResourceModel, ReviewModel, StackModel } from '../model';
import { estimateCustomMetrics } from './custom-metrics';
import { FREE_DASHBOARDS, HOURS_PER_MONTH, PriceKey } from './prices';
import { averageMinCapacity, ScheduledAction } from './schedule';
import type { GatewaySettings, WorkerSettings } from './settings';

/** One counted item of the idle cost, in the unit of its price. */
export interface IdleItem {
  /** Kind of item, such as `fargate-vcpu`; stable for report.json. */
  readonly kind: string;
  readonly stack: string;
  /** Label of the counted item, for the report. */
  readonly item: string;
  /** Logical ids of the resources counted. */
  readonly resources: readonly string[];
  /** Quantity per month in the unit of the price, such as vCPU-hours. */
  readonly quantity: number;
  /** Derivation of the quantity, such as `2 tasks x 0.5 vCPU x 730 h`. */
  readonly basis: string;
  /** The price to apply; undefined when the table has no such price at all. */
  readonly priceKey?: PriceKey;
  /** A caveat for the reviewer, such as an estimate or something not counted. */
  readonly note?: string;
}

/** Formats a number for the basis of an item, with at most 4 decimals. */
export function formatNumber(value: number): string {
  return Number.isInteger(value) ? value.toLocaleString('en-US') : value.toLocaleString('en-US', { maximumFractionDigits: 4 });
}

/** Counts the idle items of every stack. */
export function countIdleItems(model: ReviewModel, workers: readonly WorkerSettings[], gateways: readonly GatewaySettings[]): IdleItem[] {
  const items = model.stacks.flatMap((stack) => [
    ...fargateTasks(stack),
    ...loadBalancers(stack),
    ...publicAddresses(stack),
    ...natGateways(stack),
    ...interfaceEndpoints(stack),
    ...webAcls(stack),
    ...kmsKeys(stack),
    ...alarms(stack),
    ...provisionedConcurrency(stack),
  ]);
  const metrics = estimateCustomMetrics(workers, gateways);
  if (metrics.count > 0) {
    items.push({
      kind: 'custom-metrics',
      stack: metrics.stacks.join(', '),
      item: 'Custom metrics in namespace AgentStack (estimate)',
      resources: [],
      quantity: metrics.count,
      basis: metrics.basis,
      priceKey: 'customMetricMonth',
      note:
        'An estimate: the metric catalog times the agents times the known dimension values. A metric costs only in the hours it is published, ' +
        'so with no traffic only the metrics published on a schedule cost anything, and this is the monthly figure when every metric is published every hour.',
    });
  }
  items.push(...dashboards(model));
  return items;
}

function hours(quantity: number): number {
  return quantity * HOURS_PER_MONTH;
}

/** Returns the scalable target of an ECS service, whose `ResourceId` refers to the service. */
function scalableTargetOf(stack: StackModel, service: ResourceModel): ResourceModel | undefined {
  return stack
    .ofType('AWS::ApplicationAutoScaling::ScalableTarget')
    .find((target) => target.properties.ServiceNamespace === 'ecs' && referencedIds(target.properties.ResourceId).has(service.logicalId));
}

function isFargate(service: ResourceModel): boolean {
  if (service.properties.LaunchType === 'FARGATE') return true;
  const strategy = asList(service.properties.CapacityProviderStrategy as Array<{ CapacityProvider?: string }> | undefined);
  return strategy.some((s) => s.CapacityProvider === 'FARGATE' || s.CapacityProvider === 'FARGATE_SPOT');
}

/** The tasks a service keeps running with no traffic, and how that number is made up. */
interface WarmTasks {
  readonly tasks: number;
  readonly basis: string;
  readonly target?: ResourceModel;
  readonly notes: readonly string[];
}

/**
 * Returns the tasks an ECS service keeps running: its scalable target's
 * `MinCapacity`, averaged over the week of its scheduled actions, or else
 * the service's `DesiredCount`.
 */
function warmTasksOf(stack: StackModel, service: ResourceModel): WarmTasks {
  const target = scalableTargetOf(stack, service);
  if (target !== undefined && typeof target.properties.MinCapacity === 'number') {
    const actions = asList(target.properties.ScheduledActions as ScheduledAction[] | undefined);
    const average = averageMinCapacity(target.properties.MinCapacity, actions);
    const basis =
      actions.length === 0
        ? `MinCapacity ${formatNumber(average.average)}`
        : `MinCapacity ${target.properties.MinCapacity} and ${actions.length} scheduled action(s): ${formatNumber(average.average)} tasks on average over a week`;
    const notes = average.unread.length > 0 ? [`Schedules not counted, because they do not repeat weekly: ${average.unread.join(', ')}.`] : [];
    return { tasks: average.average, basis, target, notes };
  }
  if (typeof service.properties.DesiredCount === 'number') {
    return { tasks: service.properties.DesiredCount, basis: `DesiredCount ${service.properties.DesiredCount}`, notes: [] };
  }
  // CloudFormation starts a new service without DesiredCount with 1 task.
  // Source: https://github.com/aws/aws-cdk/pull/13130 (the CloudFormation behaviour it describes)
  return { tasks: 1, basis: 'no DesiredCount, so 1 task', notes: [] };
}

/** Counts the vCPU-hours and GB-hours of the tasks each Fargate service keeps running. */
function fargateTasks(stack: StackModel): IdleItem[] {
  const items: IdleItem[] = [];
  for (const service of stack.ofType('AWS::ECS::Service').filter(isFargate)) {
    const taskDefinition = stack.resource(referencedId(service.properties.TaskDefinition));
    const { tasks, basis: taskBasis, target, notes: warmNotes } = warmTasksOf(stack, service);
    const notes = [...warmNotes];
    const cpu = Number(taskDefinition?.properties.Cpu);
    const memoryMiB = Number(taskDefinition?.properties.Memory);
    if (!taskDefinition || !Number.isFinite(cpu) || !Number.isFinite(memoryMiB)) {
      items.push({ kind: 'fargate-vcpu', stack: stack.name, item: `Fargate tasks of ${service.logicalId}`, resources: [service.logicalId], quantity: 0, basis: taskBasis, note: 'The task definition has no literal Cpu and Memory, so the tasks are not priced.' });
      continue;
    }
    const vcpu = cpu / 1024;
    const gb = memoryMiB / 1024;
    const architecture = (taskDefinition.properties.RuntimePlatform as { CpuArchitecture?: string; OperatingSystemFamily?: string } | undefined) ?? {};
    const linuxX86 = (architecture.CpuArchitecture ?? 'X86_64') === 'X86_64' && (architecture.OperatingSystemFamily ?? 'LINUX') === 'LINUX';
    const spot = asList(service.properties.CapacityProviderStrategy as Array<{ CapacityProvider?: string }> | undefined).some((s) => s.CapacityProvider === 'FARGATE_SPOT');
    if (!linuxX86) notes.push(`The price table has no verified price for ${architecture.OperatingSystemFamily ?? 'LINUX'}/${architecture.CpuArchitecture} tasks.`);
    if (spot) notes.push('Fargate Spot tasks are priced at the on-demand rate, an upper bound.');
    const resources = [service.logicalId, taskDefinition.logicalId, ...(target ? [target.logicalId] : [])];
    const note = notes.length > 0 ? notes.join(' ') : undefined;
    items.push({
      kind: 'fargate-vcpu',
      stack: stack.name,
      item: `Fargate vCPU of ${service.logicalId}`,
      resources,
      quantity: hours(tasks * vcpu),
      basis: `${taskBasis} x ${formatNumber(vcpu)} vCPU x ${HOURS_PER_MONTH} h`,
      priceKey: linuxX86 ? 'fargateLinuxX86VcpuHour' : undefined,
      note,
    });
    items.push({
      kind: 'fargate-memory',
      stack: stack.name,
      item: `Fargate memory of ${service.logicalId}`,
      resources,
      quantity: hours(tasks * gb),
      basis: `${taskBasis} x ${formatNumber(gb)} GB x ${HOURS_PER_MONTH} h`,
      priceKey: linuxX86 ? 'fargateLinuxX86GbHour' : undefined,
      note,
    });
  }
  return items;
}

function isApplicationLoadBalancer(lb: ResourceModel): boolean {
  return (lb.properties.Type ?? 'application') === 'application';
}

/** Number of zones of a load balancer: its subnets or subnet mappings, one per zone. */
function subnetCount(lb: ResourceModel): number {
  return asList(lb.properties.Subnets as CfnValue[] | undefined).length || asList(lb.properties.SubnetMappings as CfnValue[] | undefined).length;
}

function loadBalancers(stack: StackModel): IdleItem[] {
  return stack
    .ofType('AWS::ElasticLoadBalancingV2::LoadBalancer')
    .filter(isApplicationLoadBalancer)
    .map((lb) => ({
      kind: 'load-balancer',
      stack: stack.name,
      item: `Application Load Balancer ${lb.logicalId}`,
      resources: [lb.logicalId],
      quantity: hours(1),
      basis: `1 x ${HOURS_PER_MONTH} h`,
      priceKey: 'albHour' as const,
      note: 'Hours only: with no traffic no LCU is used, because LCUs measure new and active connections, processed bytes and rule evaluations. Health checks are assumed to use none.',
    }));
}

/**
 * Counts public IPv4 addresses: one per zone of each internet-facing load
 * balancer, every Elastic IP, such as a NAT gateway's, and one per task of
 * a service that assigns public IPs. A load balancer has at least one
 * address per zone and adds addresses as it scales.
 */
function publicAddresses(stack: StackModel): IdleItem[] {
  const items: IdleItem[] = [];
  for (const lb of stack.ofType('AWS::ElasticLoadBalancingV2::LoadBalancer')) {
    if (lb.properties.Scheme !== 'internet-facing') continue;
    const zones = subnetCount(lb);
    items.push({
      kind: 'public-ipv4',
      stack: stack.name,
      item: `Public IPv4 addresses of ${lb.logicalId}`,
      resources: [lb.logicalId],
      quantity: hours(zones),
      basis: `${zones} zone(s) x 1 address x ${HOURS_PER_MONTH} h`,
      priceKey: 'publicIpv4Hour',
      note: 'At least one address per zone; the load balancer adds addresses as it scales.',
    });
  }
  const eips = stack.ofType('AWS::EC2::EIP');
  if (eips.length > 0) {
    items.push({
      kind: 'public-ipv4',
      stack: stack.name,
      item: 'Elastic IP addresses, such as those of NAT gateways',
      resources: eips.map((e) => e.logicalId),
      quantity: hours(eips.length),
      basis: `${eips.length} address(es) x ${HOURS_PER_MONTH} h`,
      priceKey: 'publicIpv4Hour',
    });
  }
  for (const service of stack.ofType('AWS::ECS::Service')) {
    const network = service.properties.NetworkConfiguration as { AwsvpcConfiguration?: { AssignPublicIp?: string } } | undefined;
    if (network?.AwsvpcConfiguration?.AssignPublicIp !== 'ENABLED') continue;
    const taskHours = hours(warmTasksOf(stack, service).tasks);
    items.push({
      kind: 'public-ipv4',
      stack: stack.name,
      item: `Public IPv4 addresses of the tasks of ${service.logicalId}`,
      resources: [service.logicalId],
      quantity: taskHours,
      basis: `1 address per running task, ${formatNumber(taskHours)} task-hours`,
      priceKey: 'publicIpv4Hour',
    });
  }
  return items;
}

function natGateways(stack: StackModel): IdleItem[] {
  const nats = stack.ofType('AWS::EC2::NatGateway');
  if (nats.length === 0) return [];
  return [
    {
      kind: 'nat-gateway',
      stack: stack.name,
      item: 'NAT gateways',
      resources: nats.map((n) => n.logicalId),
      quantity: hours(nats.length),
      basis: `${nats.length} gateway(s) x ${HOURS_PER_MONTH} h`,
      priceKey: 'natGatewayHour',
      note: 'Hours only; each GB processed costs extra.',
    },
  ];
}

/** Counts interface endpoint hours per zone: one endpoint network interface per subnet, one subnet per zone. */
function interfaceEndpoints(stack: StackModel): IdleItem[] {
  return stack
    .ofType('AWS::EC2::VPCEndpoint')
    .filter((e) => e.properties.VpcEndpointType === 'Interface')
    .map((endpoint) => {
      const subnets = endpoint.properties.SubnetIds;
      const zones = Array.isArray(subnets) ? subnets.length : undefined;
      const service = typeof endpoint.properties.ServiceName === 'string' ? endpoint.properties.ServiceName : endpoint.logicalId;
      return {
        kind: 'interface-endpoint',
        stack: stack.name,
        item: `Interface endpoint ${service}`,
        resources: [endpoint.logicalId],
        quantity: hours(zones ?? 0),
        basis: zones === undefined ? 'subnets not listed in the template' : `${zones} zone(s) x ${HOURS_PER_MONTH} h`,
        priceKey: 'interfaceEndpointAzHour' as const,
        note: zones === undefined ? 'The subnets are not a list in the template, so the zones are not counted.' : undefined,
      };
    });
}

/** Managed rule groups with a subscription fee on top of the rule price. */
const PAID_RULE_GROUPS = ['AWSManagedRulesBotControlRuleSet', 'AWSManagedRulesATPRuleSet', 'AWSManagedRulesACFPRuleSet'];

function webAcls(stack: StackModel): IdleItem[] {
  const items: IdleItem[] = [];
  for (const acl of stack.ofType('AWS::WAFv2::WebACL')) {
    const rules = asList(acl.properties.Rules as Array<{ Statement?: { ManagedRuleGroupStatement?: { Name?: string } } }> | undefined);
    const paid = rules.map((r) => r.Statement?.ManagedRuleGroupStatement?.Name).filter((name): name is string => name !== undefined && PAID_RULE_GROUPS.includes(name));
    items.push({ kind: 'web-acl', stack: stack.name, item: `Web ACL ${acl.logicalId}`, resources: [acl.logicalId], quantity: 1, basis: '1 web ACL', priceKey: 'wafWebAclMonth' });
    items.push({
      kind: 'web-acl-rules',
      stack: stack.name,
      item: `Rules of ${acl.logicalId}`,
      resources: [acl.logicalId],
      quantity: rules.length,
      basis: `${rules.length} rule(s); a rule group counts as one`,
      priceKey: 'wafRuleMonth',
      note: paid.length > 0 ? `Not counted: the subscription and request fees of ${paid.join(', ')}.` : undefined,
    });
  }
  return items;
}

function kmsKeys(stack: StackModel): IdleItem[] {
  const keys = stack.ofType('AWS::KMS::Key');
  if (keys.length === 0) return [];
  const rotating = keys.filter((k) => k.properties.EnableKeyRotation === true).length;
  return [
    {
      kind: 'kms-key',
      stack: stack.name,
      item: 'KMS keys',
      resources: keys.map((k) => k.logicalId),
      quantity: keys.length,
      basis: `${keys.length} key(s)`,
      priceKey: 'kmsKeyMonth',
      note: rotating > 0 ? `${rotating} key(s) rotate yearly; rotated key material may add to the monthly price after the first year, which is not counted.` : undefined,
    },
  ];
}

interface AlarmMetricEntry {
  readonly Expression?: string;
  readonly MetricStat?: unknown;
}

/**
 * Counts alarm metrics: one per metric an alarm evaluates, and 3 per metric
 * of an anomaly detection alarm (the metric and the band's two bounds).
 * High-resolution alarms (a period under 60 seconds) and composite alarms
 * have no price in the table.
 */
function alarms(stack: StackModel): IdleItem[] {
  let standard = 0;
  let anomaly = 0;
  const standardIds: string[] = [];
  const anomalyIds: string[] = [];
  const unpriced: string[] = [];

  for (const alarm of stack.ofType('AWS::CloudWatch::Alarm')) {
    const p = alarm.properties;
    const entries = asList(p.Metrics as AlarmMetricEntry[] | undefined);
    const periods = [p.Period, ...entries.map((e) => (e.MetricStat as { Period?: unknown } | undefined)?.Period)].filter((v): v is number => typeof v === 'number');
    if (periods.some((period) => period < 60)) {
      unpriced.push(alarm.logicalId);
      continue;
    }
    const metricCount = entries.length === 0 ? 1 : entries.filter((e) => e.MetricStat !== undefined).length;
    if (entries.some((e) => typeof e.Expression === 'string' && e.Expression.includes('ANOMALY_DETECTION_BAND'))) {
      anomaly += 3 * metricCount;
      anomalyIds.push(alarm.logicalId);
    } else {
      standard += metricCount;
      standardIds.push(alarm.logicalId);
    }
  }
  unpriced.push(...stack.ofType('AWS::CloudWatch::CompositeAlarm').map((a) => a.logicalId));

  const items: IdleItem[] = [];
  if (standardIds.length > 0) {
    items.push({ kind: 'alarm-metrics', stack: stack.name, item: 'Alarms: standard resolution', resources: standardIds, quantity: standard, basis: `${standardIds.length} alarm(s) evaluating ${standard} metric(s)`, priceKey: 'alarmMetricMonth' });
  }
  if (anomalyIds.length > 0) {
    items.push({
      kind: 'anomaly-alarm-metrics',
      stack: stack.name,
      item: 'Alarms: anomaly detection',
      resources: anomalyIds,
      quantity: anomaly,
      basis: `${anomalyIds.length} alarm(s) x 3 alarm metrics per evaluated metric = ${anomaly}`,
      priceKey: 'alarmMetricMonth',
    });
  }
  if (unpriced.length > 0) {
    items.push({ kind: 'unpriced-alarms', stack: stack.name, item: 'Alarms: high-resolution or composite', resources: unpriced.sort(compareText), quantity: unpriced.length, basis: `${unpriced.length} alarm(s)`, note: 'The price table has no verified price for these.' });
  }
  return items;
}

function dashboards(model: ReviewModel): IdleItem[] {
  const all = model.stacks.flatMap((stack) => stack.ofType('AWS::CloudWatch::Dashboard').map((d) => ({ stack, d })));
  if (all.length === 0) return [];
  const charged = Math.max(0, all.length - FREE_DASHBOARDS);
  return [
    {
      kind: 'dashboards',
      stack: [...new Set(all.map((a) => a.stack.name))].join(', '),
      item: 'Dashboards',
      resources: all.map((a) => a.d.logicalId),
      quantity: charged,
      basis: `${all.length} dashboard(s) less ${FREE_DASHBOARDS} free = ${charged}`,
      priceKey: 'dashboardMonth',
      note: `The ${FREE_DASHBOARDS} free dashboards are per account; other dashboards in the account use them too.`,
    },
  ];
}

/** Counts the GB-seconds of provisioned concurrency of each alias and version. */
function provisionedConcurrency(stack: StackModel): IdleItem[] {
  const items: IdleItem[] = [];
  for (const resource of stack.ofType('AWS::Lambda::Alias', 'AWS::Lambda::Version')) {
    const executions = (resource.properties.ProvisionedConcurrencyConfig as { ProvisionedConcurrentExecutions?: number } | undefined)?.ProvisionedConcurrentExecutions;
    if (typeof executions !== 'number' || executions === 0) continue;
    const fn = functionOf(stack, resource);
    const memoryMb = typeof fn?.properties.MemorySize === 'number' ? fn.properties.MemorySize : 128;
    const arm = asList(fn?.properties.Architectures as string[] | undefined).includes('arm64');
    const gb = memoryMb / 1024;
    const seconds = HOURS_PER_MONTH * 3600;
    items.push({
      kind: 'provisioned-concurrency',
      stack: stack.name,
      item: `Provisioned concurrency of ${resource.logicalId}${fn ? ` (${fn.logicalId})` : ''}`,
      resources: [resource.logicalId, ...(fn ? [fn.logicalId] : [])],
      quantity: executions * gb * seconds,
      basis: `${executions} environment(s) x ${formatNumber(gb)} GB x ${HOURS_PER_MONTH} h x 3,600 s`,
      priceKey: arm ? 'lambdaProvisionedArmGbSecond' : 'lambdaProvisionedX86GbSecond',
      note: fn ? undefined : 'The function is not in this template; its memory is taken as the default 128 MB.',
    });
  }
  return items;
}

/** Returns the function of an alias (through its version) or of a version. */
function functionOf(stack: StackModel, resource: ResourceModel): ResourceModel | undefined {
  const direct = stack.resource(referencedId(resource.properties.FunctionName));
  if (direct?.type === 'AWS::Lambda::Function') return direct;
  const version = stack.resource(referencedId(resource.properties.FunctionVersion));
  return version ? stack.resource(referencedId(version.properties.FunctionName)) : undefined;
}
