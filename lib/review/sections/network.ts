import { compareText } from '../assembly';
import { Block, code, renderBlocks, toned } from '../blocks';
import { asList, CfnValue, flatten, referencedId } from '../cfn';
import { acknowledgedFinding } from '../explain';
import { describeExplanation, Finding, sortFindings } from '../findings';
import type { ResourceModel, ReviewModel, StackModel } from '../model';
import type { ReviewSection, SectionResult } from '../section';
import { SECTION_ORDER } from './order';

const ANYWHERE = ['0.0.0.0/0', '::/0'];

/** Public listeners, security group ingress, VPC endpoints and which workloads can reach the internet. */
export const networkSection: ReviewSection = {
  id: 'network',
  title: 'Network exposure',
  order: SECTION_ORDER.network,
  build: ({ model }) => buildNetwork(model),
};

/** A listener of an internet-facing load balancer. */
export interface PublicListener {
  readonly stack: string;
  readonly loadBalancer: string;
  readonly listener: string;
  readonly port: number | string;
  readonly protocol: string;
  /** Whether callers reach it over TLS: HTTPS or TLS, or HTTP that only redirects to HTTPS. */
  readonly tls: boolean;
}

interface SecurityGroupRule {
  readonly stack: string;
  readonly group: ResourceModel;
  /** The resource that contains the rule: the group itself for inline rules. */
  readonly holder: ResourceModel;
  readonly direction: 'ingress' | 'egress';
  readonly protocol: string;
  readonly ports: string;
  readonly peer: string;
  readonly description: string;
}

function buildNetwork(model: ReviewModel): SectionResult {
  const findings: Finding[] = [];
  const rules = model.stacks.flatMap(securityGroupRules);
  const listeners = model.stacks.flatMap((stack) => stack.ofType('AWS::ElasticLoadBalancingV2::Listener').map((listener) => ({ stack, listener })));
  const publicListeners: PublicListener[] = [];

  for (const { stack, listener } of listeners) {
    const lb = stack.resource(referencedId(listener.properties.LoadBalancerArn));
    if (!lb || (lb.properties.Scheme ?? 'internet-facing') !== 'internet-facing') continue;
    const protocol = flatten(listener.properties.Protocol ?? '');
    const tls = protocol === 'HTTPS' || protocol === 'TLS' || redirectsToHttps(listener);
    const entry: PublicListener = { stack: stack.name, loadBalancer: lb.logicalId, listener: listener.logicalId, port: portOf(listener.properties.Port), protocol, tls };
    publicListeners.push(entry);
    const groupPaths = asList(lb.properties.SecurityGroups as CfnValue[])
      .map((g) => stack.resource(referencedId(g))?.path)
      .filter((p): p is string => p !== undefined);
    const paths = [listener.path, lb.path, ...groupPaths];
    findings.push({
      kind: 'public',
      section: 'network',
      stack: stack.name,
      logicalId: listener.logicalId,
      path: listener.path,
      subject: `${protocol} ${entry.port} on ${lb.logicalId}`,
      message: 'The load balancer is internet-facing, so this listener is reachable from the internet.',
      explanation: acknowledgedFinding(model, paths, 'public', ['AwsSolutions-EC23']),
    });
    if (!tls) {
      findings.push({
        kind: 'unencrypted',
        section: 'network',
        stack: stack.name,
        logicalId: listener.logicalId,
        path: listener.path,
        subject: `${protocol} ${entry.port} on ${lb.logicalId}`,
        message: 'The listener accepts requests from the internet without TLS.',
        explanation: acknowledgedFinding(model, paths, 'unencrypted'),
      });
    }
  }

  for (const rule of rules.filter((r) => r.direction === 'ingress' && ANYWHERE.includes(r.peer))) {
    findings.push({
      kind: 'public',
      section: 'network',
      stack: rule.stack,
      logicalId: rule.group.logicalId,
      path: rule.holder.path,
      subject: `ingress ${rule.protocol} ${rule.ports} from ${rule.peer}`,
      message: 'The security group accepts this traffic from any address.',
      explanation: acknowledgedFinding(model, [rule.holder.path, rule.group.path], 'public', ['AwsSolutions-EC23']),
    });
  }

  const workloads = model.stacks.flatMap((stack) => workloadEgress(stack, rules));
  for (const workload of workloads.filter((w) => w.egress.startsWith('yes'))) {
    findings.push({
      kind: 'internet-egress',
      section: 'network',
      stack: workload.stack,
      logicalId: workload.resource.logicalId,
      path: workload.resource.path,
      subject: workload.egress,
      message: `${workload.resource.type} can open connections to the internet.`,
      explanation: acknowledgedFinding(model, [workload.resource.path], 'internet-egress'),
    });
  }

  const endpoints = model.stacks.flatMap((stack) =>
    stack.ofType('AWS::EC2::VPCEndpoint').map((e) => ({ stack: stack.name, logicalId: e.logicalId, service: flatten(e.properties.ServiceName), type: flatten(e.properties.VpcEndpointType ?? 'Gateway') })),
  );
  endpoints.sort((a, b) => compareText(a.stack, b.stack) || compareText(a.service, b.service));
  const sorted = sortFindings(findings);

  const blocks: Block[] = [
    { kind: 'heading', text: 'Public listeners' },
    {
      kind: 'table',
      headers: ['Stack', 'Load balancer', 'Listener', 'Port', 'Protocol', 'TLS'],
      rows: publicListeners.map((l) => [l.stack, l.loadBalancer, l.listener, String(l.port), l.protocol, toned(l.tls ? 'yes' : 'no', l.tls ? undefined : 'bad')]),
      empty: 'No internet-facing load balancer.',
    },
    { kind: 'heading', text: 'Findings' },
    {
      kind: 'table',
      headers: ['Kind', 'Resource', 'Exposure', 'Reason'],
      rows: sorted.map((f) => [f.kind, `${f.stack}/${f.logicalId}`, code(f.subject), toned(describeExplanation(f), f.explanation ? 'ok' : f.kind === 'internet-egress' ? 'muted' : 'bad')]),
      empty: 'No public exposure and no internet egress.',
    },
    { kind: 'heading', text: 'Internet egress of workloads' },
    {
      kind: 'table',
      headers: ['Stack', 'Workload', 'Type', 'Internet egress'],
      rows: workloads.map((w) => [w.stack, w.resource.logicalId, w.resource.type, w.egress]),
      empty: 'No ECS services or Lambda functions.',
    },
    { kind: 'heading', text: 'Security group rules' },
    {
      kind: 'table',
      headers: ['Stack', 'Security group', 'Direction', 'Protocol', 'Ports', 'Peer', 'Description'],
      rows: rules.map((r) => [r.stack, r.group.logicalId, r.direction, r.protocol, r.ports, code(r.peer), r.description]),
      empty: 'No security groups.',
    },
    { kind: 'heading', text: 'VPC endpoints' },
    {
      kind: 'table',
      headers: ['Stack', 'Endpoint', 'Service', 'Type'],
      rows: endpoints.map((e) => [e.stack, e.logicalId, code(e.service), e.type]),
      empty: 'No VPC endpoints.',
    },
  ];

  return {
    findings: sorted,
    data: {
      publicListeners,
      securityGroupRules: rules.map((r) => ({
        stack: r.stack,
        securityGroup: r.group.logicalId,
        direction: r.direction,
        protocol: r.protocol,
        ports: r.ports,
        peer: r.peer,
        description: r.description,
      })),
      workloads: workloads.map((w) => ({ stack: w.stack, logicalId: w.resource.logicalId, type: w.resource.type, internetEgress: w.egress })),
      vpcEndpoints: endpoints,
    },
    ...renderBlocks(blocks),
  };
}

function portOf(value: unknown): number | string {
  return typeof value === 'number' ? value : flatten(value);
}

function redirectsToHttps(listener: ResourceModel): boolean {
  const actions = asList(listener.properties.DefaultActions as Array<{ Type?: string; RedirectConfig?: { Protocol?: string } }>);
  return actions.length > 0 && actions.every((a) => a.Type === 'redirect' && a.RedirectConfig?.Protocol === 'HTTPS');
}

interface RuleProperties {
  IpProtocol?: CfnValue;
  FromPort?: CfnValue;
  ToPort?: CfnValue;
  CidrIp?: CfnValue;
  CidrIpv6?: CfnValue;
  SourceSecurityGroupId?: CfnValue;
  DestinationSecurityGroupId?: CfnValue;
  SourcePrefixListId?: CfnValue;
  DestinationPrefixListId?: CfnValue;
  Description?: CfnValue;
  GroupId?: CfnValue;
}

function describeRule(stack: StackModel, group: ResourceModel, holder: ResourceModel, direction: 'ingress' | 'egress', rule: RuleProperties): SecurityGroupRule {
  const protocol = flatten(rule.IpProtocol ?? '-1');
  const from = rule.FromPort === undefined ? undefined : flatten(rule.FromPort);
  const to = rule.ToPort === undefined ? undefined : flatten(rule.ToPort);
  let ports = `${from}-${to}`;
  if (protocol === '-1' || from === undefined) ports = 'all';
  else if (from === to) ports = from;
  const groupPeer = rule.SourceSecurityGroupId ?? rule.DestinationSecurityGroupId;
  const peerGroup = stack.resource(referencedId(groupPeer));
  const peer =
    rule.CidrIp !== undefined
      ? flatten(rule.CidrIp)
      : rule.CidrIpv6 !== undefined
        ? flatten(rule.CidrIpv6)
        : groupPeer !== undefined
          ? `security group ${peerGroup?.logicalId ?? flatten(groupPeer)}`
          : `prefix list ${flatten(rule.SourcePrefixListId ?? rule.DestinationPrefixListId)}`;
  return {
    stack: stack.name,
    group,
    holder,
    direction,
    protocol: protocol === '-1' ? 'all' : protocol,
    ports,
    peer,
    description: rule.Description === undefined ? '' : flatten(rule.Description),
  };
}

function securityGroupRules(stack: StackModel): SecurityGroupRule[] {
  const rules: SecurityGroupRule[] = [];
  for (const group of stack.ofType('AWS::EC2::SecurityGroup')) {
    for (const rule of asList(group.properties.SecurityGroupIngress as RuleProperties[])) rules.push(describeRule(stack, group, group, 'ingress', rule));
    for (const rule of asList(group.properties.SecurityGroupEgress as RuleProperties[])) rules.push(describeRule(stack, group, group, 'egress', rule));
  }
  for (const holder of stack.ofType('AWS::EC2::SecurityGroupIngress', 'AWS::EC2::SecurityGroupEgress')) {
    const group = stack.resource(referencedId(holder.properties.GroupId));
    if (!group) continue;
    rules.push(describeRule(stack, group, holder, holder.type.endsWith('Ingress') ? 'ingress' : 'egress', holder.properties as RuleProperties));
  }
  return rules.sort(
    (a, b) => compareText(a.group.logicalId, b.group.logicalId) || compareText(a.direction, b.direction) || compareText(a.peer, b.peer) || compareText(a.ports, b.ports),
  );
}

interface WorkloadEgress {
  readonly stack: string;
  readonly resource: ResourceModel;
  readonly egress: string;
}

/** Works out whether each ECS service and Lambda function can reach the internet, from its subnets' routes and its security groups. */
function workloadEgress(stack: StackModel, rules: SecurityGroupRule[]): WorkloadEgress[] {
  const result: WorkloadEgress[] = [];
  for (const resource of stack.ofType('AWS::ECS::Service', 'AWS::Lambda::Function')) {
    const vpc =
      resource.type === 'AWS::ECS::Service'
        ? ((resource.properties.NetworkConfiguration as { AwsvpcConfiguration?: Record<string, unknown> } | undefined)?.AwsvpcConfiguration ?? undefined)
        : (resource.properties.VpcConfig as Record<string, unknown> | undefined);
    if (!vpc) {
      result.push({
        stack: stack.name,
        resource,
        egress: resource.type === 'AWS::Lambda::Function' ? 'yes: runs outside any VPC, on the Lambda service network' : 'unknown: no awsvpc network configuration',
      });
      continue;
    }
    const subnets = asList((vpc.Subnets ?? vpc.SubnetIds) as CfnValue[]);
    const groups = asList((vpc.SecurityGroups ?? vpc.SecurityGroupIds) as CfnValue[]).map((g) => stack.resource(referencedId(g)));
    result.push({ stack: stack.name, resource, egress: describeEgress(stack, subnets, groups, rules, vpc.AssignPublicIp === 'ENABLED') });
  }
  return result;
}

function describeEgress(stack: StackModel, subnets: CfnValue[], groups: (ResourceModel | undefined)[], rules: SecurityGroupRule[], publicIp: boolean): string {
  if (groups.length > 0 && groups.every((g) => g !== undefined)) {
    const open = rules.some((r) => r.direction === 'egress' && groups.includes(r.group) && ANYWHERE.includes(r.peer));
    if (!open) return 'no: its security groups allow no egress to 0.0.0.0/0';
  }
  const routes = subnets.map((subnet) => defaultRoute(stack, subnet));
  if (routes.some((r) => r === undefined)) return 'unknown: subnets of a VPC that this app does not define';
  const kinds = [...new Set(routes as string[])].sort(compareText);
  if (kinds.includes('internet gateway')) return publicIp ? 'yes: public IP through an internet gateway' : 'no: internet gateway route but no public IP';
  if (kinds.includes('NAT gateway')) return 'yes: through a NAT gateway';
  if (kinds.every((k) => k === 'none')) return 'no: no default route';
  return `yes: default route to ${kinds.filter((k) => k !== 'none').join(', ')}`;
}

/** Returns what a subnet's default route goes to, `none`, or undefined for a subnet this template does not define. */
function defaultRoute(stack: StackModel, subnet: CfnValue): string | undefined {
  const subnetId = referencedId(subnet);
  if (stack.resource(subnetId)?.type !== 'AWS::EC2::Subnet') return undefined;
  const association = stack.ofType('AWS::EC2::SubnetRouteTableAssociation').find((a) => referencedId(a.properties.SubnetId) === subnetId);
  const tableId = referencedId(association?.properties.RouteTableId);
  const route = stack
    .ofType('AWS::EC2::Route')
    .find((r) => referencedId(r.properties.RouteTableId) === tableId && (r.properties.DestinationCidrBlock === '0.0.0.0/0' || r.properties.DestinationIpv6CidrBlock === '::/0'));
  if (!route) return 'none';
  const p = route.properties;
  if (p.NatGatewayId !== undefined) return 'NAT gateway';
  if (p.GatewayId !== undefined) return stack.resource(referencedId(p.GatewayId))?.type === 'AWS::EC2::VPNGateway' ? 'VPN gateway' : 'internet gateway';
  if (p.EgressOnlyInternetGatewayId !== undefined) return 'egress-only internet gateway';
  if (p.TransitGatewayId !== undefined) return 'transit gateway';
  if (p.InstanceId !== undefined || p.NetworkInterfaceId !== undefined) return 'an instance or network interface';
  return 'another target';
}
