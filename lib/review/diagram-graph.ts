import { compareText } from './assembly';
import { asList, CfnValue, parseArn, referencedId } from './cfn';
import { allowsActionLike, collectRoles, Statement } from './iam';
import type { ResourceModel, ReviewModel, StackModel } from './model';

/** Kind of a node in the architecture diagram, which sets its shape colour. */
export type NodeKind = 'internet' | 'firewall' | 'load-balancer' | 'service' | 'queue' | 'function' | 'bedrock' | 'table' | 'stream' | 'bucket';

export interface DiagramNode {
  readonly id: string;
  readonly kind: NodeKind;
  /** One or more lines of text. */
  readonly label: readonly string[];
}

export interface DiagramEdge {
  readonly from: string;
  readonly to: string;
  readonly label: string;
}

/** The request path of an app: nodes and edges derived from its templates, sorted by id. */
export interface DiagramGraph {
  readonly nodes: readonly DiagramNode[];
  readonly edges: readonly DiagramEdge[];
}

const NODE_TYPES: Record<string, NodeKind> = {
  'AWS::ElasticLoadBalancingV2::LoadBalancer': 'load-balancer',
  'AWS::WAFv2::WebACL': 'firewall',
  'AWS::ECS::Service': 'service',
  'AWS::SQS::Queue': 'queue',
  'AWS::Lambda::Function': 'function',
  'AWS::DynamoDB::Table': 'table',
  'AWS::DynamoDB::GlobalTable': 'table',
  'AWS::KinesisFirehose::DeliveryStream': 'stream',
};

/** Derives the diagram of the request path from the model. */
export function buildDiagramGraph(model: ReviewModel): DiagramGraph {
  const nodes = new Map<string, DiagramNode>();
  const edges = new Map<string, DiagramEdge>();
  const multiStack = model.stacks.length > 1;
  const idOf = (stack: StackModel, resource: ResourceModel) => `${stack.name}:${resource.logicalId}`;
  const addEdge = (from: string, to: string, label: string) => {
    if (!nodes.has(from) || !nodes.has(to) || from === to) return;
    const key = `${from}\n${to}`;
    const existing = edges.get(key);
    if (!existing || compareText(label, existing.label) < 0) edges.set(key, { from, to, label });
  };

  for (const stack of model.stacks) {
    const customFunctions = new Set(collectRoles(stack).filter((r) => r.customResource).flatMap((r) => r.usedBy.map((u) => u.logicalId)));
    for (const resource of stack.resources) {
      const kind = NODE_TYPES[resource.type];
      if (!kind || customFunctions.has(resource.logicalId)) continue;
      nodes.set(idOf(stack, resource), { id: idOf(stack, resource), kind, label: [shortName(stack, resource, multiStack)] });
    }
    // Buckets appear only as the destination of a delivery stream: the audit pipeline.
    for (const stream of stack.ofType('AWS::KinesisFirehose::DeliveryStream')) {
      const destination = (stream.properties.ExtendedS3DestinationConfiguration ?? stream.properties.S3DestinationConfiguration) as { BucketARN?: CfnValue } | undefined;
      const bucket = stack.resource(referencedId(destination?.BucketARN));
      if (!bucket) continue;
      nodes.set(idOf(stack, bucket), { id: idOf(stack, bucket), kind: 'bucket', label: [shortName(stack, bucket, multiStack)] });
      addEdge(idOf(stack, stream), idOf(stack, bucket), 'delivers');
    }
  }

  for (const stack of model.stacks) {
    // Internet, web ACL and load balancers.
    for (const lb of stack.ofType('AWS::ElasticLoadBalancingV2::LoadBalancer')) {
      const acls = stack
        .ofType('AWS::WAFv2::WebACLAssociation')
        .filter((a) => referencedId(a.properties.ResourceArn) === lb.logicalId)
        .map((a) => stack.resource(referencedId(a.properties.WebACLArn)))
        .filter((a): a is ResourceModel => a !== undefined);
      if ((lb.properties.Scheme ?? 'internet-facing') !== 'internet-facing') continue;
      nodes.set('internet', { id: 'internet', kind: 'internet', label: ['Internet clients'] });
      if (acls.length === 0) addEdge('internet', idOf(stack, lb), 'HTTP(S)');
      for (const acl of acls) {
        addEdge('internet', idOf(stack, acl), 'HTTP(S)');
        addEdge(idOf(stack, acl), idOf(stack, lb), 'allowed requests');
      }
    }

    // Load balancer targets: services through target groups, functions as Lambda targets.
    for (const service of stack.ofType('AWS::ECS::Service')) {
      for (const binding of asList(service.properties.LoadBalancers as Array<{ TargetGroupArn?: CfnValue }>)) {
        for (const lb of loadBalancersForwardingTo(stack, referencedId(binding.TargetGroupArn))) addEdge(idOf(stack, lb), idOf(stack, service), 'forwards');
      }
    }
    for (const group of stack.ofType('AWS::ElasticLoadBalancingV2::TargetGroup').filter((g) => g.properties.TargetType === 'lambda')) {
      for (const target of asList(group.properties.Targets as Array<{ Id?: CfnValue }>)) {
        const fn = functionOf(stack, referencedId(target.Id));
        if (!fn) continue;
        for (const lb of loadBalancersForwardingTo(stack, group.logicalId)) addEdge(idOf(stack, lb), idOf(stack, fn), 'forwards');
      }
    }

    // Dead-letter queues.
    for (const queue of stack.ofType('AWS::SQS::Queue')) {
      const redrive = queue.properties.RedrivePolicy as { deadLetterTargetArn?: CfnValue } | undefined;
      const dlq = stack.resource(referencedId(redrive?.deadLetterTargetArn));
      if (dlq) addEdge(idOf(stack, queue), idOf(stack, dlq), 'dead letters');
    }

    // What each compute resource may call, from the grants of its role.
    for (const role of collectRoles(stack)) {
      const computes = computeUsing(stack, role.resource);
      if (computes.length === 0) continue;
      const statements = role.grants.map((g) => g.statement).filter((s) => s.effect === 'Allow');
      for (const compute of computes) {
        const from = idOf(stack, compute);
        for (const statement of statements) linkStatement(stack, statement, from, addEdge, idOf);
        for (const region of bedrockRegions(stack, statements)) {
          const id = `bedrock:${region.region}`;
          const known = nodes.get(id);
          const models = [...new Set([...(known?.label.slice(1) ?? []), ...region.models])].sort(compareText);
          nodes.set(id, { id, kind: 'bedrock', label: [region.region === '*' ? 'Bedrock, every region' : `Bedrock ${region.region}`, ...models] });
          addEdge(from, id, 'invokes models');
        }
      }
    }
  }

  return {
    nodes: [...nodes.values()].sort((a, b) => compareText(a.id, b.id)),
    edges: [...edges.values()].sort((a, b) => compareText(a.from, b.from) || compareText(a.to, b.to)),
  };
}

/** Names a resource by its construct path without the stack and the `Resource` suffix, such as `Gateway/Function`. */
function shortName(stack: StackModel, resource: ResourceModel, withStack: boolean): string {
  const parts = resource.path.split('/');
  const stackParts = stack.name.split('/').length;
  let rest = parts.slice(stackParts);
  if (rest.length > 1 && (rest[rest.length - 1] === 'Resource' || rest[rest.length - 1] === rest[rest.length - 2])) rest = rest.slice(0, -1);
  const name = rest.join('/') || resource.logicalId;
  return withStack ? `${stack.name}: ${name}` : name;
}

function functionOf(stack: StackModel, id: string | undefined): ResourceModel | undefined {
  const resource = stack.resource(id);
  if (resource?.type === 'AWS::Lambda::Function') return resource;
  if (resource?.type === 'AWS::Lambda::Alias' || resource?.type === 'AWS::Lambda::Version') return functionOf(stack, referencedId(resource.properties.FunctionName));
  return undefined;
}

/** Returns the load balancers whose listeners or listener rules forward to a target group. */
function loadBalancersForwardingTo(stack: StackModel, targetGroupId: string | undefined): ResourceModel[] {
  if (!targetGroupId) return [];
  const forwards = (actions: unknown) =>
    asList(actions as Array<{ TargetGroupArn?: CfnValue; ForwardConfig?: { TargetGroups?: Array<{ TargetGroupArn?: CfnValue }> } }>).some(
      (a) => referencedId(a.TargetGroupArn) === targetGroupId || asList(a.ForwardConfig?.TargetGroups).some((t) => referencedId(t.TargetGroupArn) === targetGroupId),
    );
  const listeners = stack.ofType('AWS::ElasticLoadBalancingV2::Listener');
  const viaRules = stack
    .ofType('AWS::ElasticLoadBalancingV2::ListenerRule')
    .filter((r) => forwards(r.properties.Actions))
    .map((r) => stack.resource(referencedId(r.properties.ListenerArn)));
  const direct = listeners.filter((l) => forwards(l.properties.DefaultActions));
  const lbs = [...viaRules, ...direct].map((l) => stack.resource(referencedId(l?.properties.LoadBalancerArn))).filter((lb): lb is ResourceModel => lb !== undefined);
  return [...new Set(lbs)];
}

/** Returns the services and functions that run with a role: services through their task definition's task role. */
function computeUsing(stack: StackModel, role: ResourceModel): ResourceModel[] {
  const functions = stack.ofType('AWS::Lambda::Function').filter((fn) => referencedId(fn.properties.Role) === role.logicalId);
  const taskDefinitions = stack.ofType('AWS::ECS::TaskDefinition').filter((td) => referencedId(td.properties.TaskRoleArn) === role.logicalId);
  const services = stack.ofType('AWS::ECS::Service').filter((s) => taskDefinitions.some((td) => referencedId(s.properties.TaskDefinition) === td.logicalId));
  return [...functions, ...services];
}

function linkStatement(
  stack: StackModel,
  statement: Statement,
  from: string,
  addEdge: (from: string, to: string, label: string) => void,
  idOf: (stack: StackModel, resource: ResourceModel) => string,
): void {
  for (const targetId of statement.resourceIds) {
    const target = functionOf(stack, targetId) ?? stack.resource(targetId);
    if (!target) continue;
    const to = idOf(stack, target);
    switch (target.type) {
      case 'AWS::SQS::Queue':
        if (allowsActionLike(statement, 'sqs:ReceiveMessage')) addEdge(to, from, 'delivers tasks');
        if (allowsActionLike(statement, 'sqs:SendMessage')) addEdge(from, to, 'sends');
        break;
      case 'AWS::Lambda::Function':
        if (allowsActionLike(statement, 'lambda:InvokeFunction')) addEdge(from, to, 'invokes');
        break;
      case 'AWS::DynamoDB::Table':
      case 'AWS::DynamoDB::GlobalTable':
        addEdge(from, to, allowsActionLike(statement, 'dynamodb:PutItem') || allowsActionLike(statement, 'dynamodb:UpdateItem') ? 'reads and writes' : 'reads');
        break;
      case 'AWS::KinesisFirehose::DeliveryStream':
        if (allowsActionLike(statement, 'firehose:PutRecord*')) addEdge(from, to, 'audit records');
        break;
      default:
        break;
    }
  }
}

/** Groups the Bedrock model and inference profile grants of a role by the region in their ARN. */
function bedrockRegions(stack: StackModel, statements: Statement[]): Array<{ region: string; models: string[] }> {
  const byRegion = new Map<string, Set<string>>();
  for (const statement of statements) {
    if (!allowsActionLike(statement, 'bedrock:Invoke*')) continue;
    for (const resource of statement.resources) {
      const arn = parseArn(resource);
      if (!arn || arn.service !== 'bedrock' || !/^(foundation-model|inference-profile|application-inference-profile|\*)/.test(arn.resource)) continue;
      const region = arn.region === '' ? '*' : arn.region === '<AWS::Region>' ? (stack.region ?? 'stack region') : arn.region;
      const models = byRegion.get(region) ?? new Set<string>();
      models.add(arn.resource.replace(/^[^/]*\//, ''));
      byRegion.set(region, models);
    }
  }
  return [...byRegion.entries()].map(([region, models]) => ({ region, models: [...models].sort(compareText) })).sort((a, b) => compareText(a.region, b.region));
}
