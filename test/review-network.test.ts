import { App, CfnElement, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { IConstruct } from 'constructs';
import { AgentMemory } from '../constructs/agent-memory';
import { AgentNetwork } from '../constructs/agent-network';
import { AgentService } from '../constructs/agent-service';
import { ModelGateway } from '../constructs/model-gateway';
import { exampleConfig, removeTempDirs, reviewOf, synthesize, synthesizeAgentStack } from './support/review';

type Json = any;

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

afterAll(removeTempDirs);

describe('network section of the example stack', () => {
  let json: Json;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const assembly = synthesizeAgentStack(exampleConfig(), (stack) => {
      ids.loadBalancer = logicalId(stack.endpoint!.loadBalancer);
      ids.listener = logicalId(stack.endpoint!.listener);
      ids.support = logicalId(stack.agents.support.service);
      ids.research = logicalId(stack.agents.research.service);
      ids.gateway = logicalId(stack.gateway.function);
    });
    ({ json } = await reviewOf(assembly));
  }, 120_000);

  test('one public listener, plain http', () => {
    expect(json.sections.network.data.publicListeners).toEqual([
      { stack: 'AgentStack', loadBalancer: ids.loadBalancer, listener: ids.listener, port: 80, protocol: 'HTTP', tls: false },
    ]);
  });

  test('public listener explained by its acknowledgement', () => {
    const finding = json.findings.find((f: Json) => f.kind === 'public' && f.logicalId === ids.listener);
    expect(finding.explanation.ruleId).toBe('AwsSolutions-EC23');
    expect(finding.explanation.path).toBe('AgentStack/Endpoint/LoadBalancer/SecurityGroup');
  });

  test('plain http listener is unexplained', () => {
    const finding = json.findings.find((f: Json) => f.kind === 'unencrypted' && f.logicalId === ids.listener);
    expect(finding.subject).toBe(`HTTP 80 on ${ids.loadBalancer}`);
    expect(finding.explained).toBe(false);
  });

  test('only the load balancer accepts internet traffic', () => {
    const open = json.sections.network.data.securityGroupRules.filter((r: Json) => r.direction === 'ingress' && r.peer === '0.0.0.0/0');
    expect(open.map((r: Json) => `${r.protocol} ${r.ports}`)).toEqual(['tcp 80']);
  });

  test('services reach the internet through nat', () => {
    const egress = Object.fromEntries(json.sections.network.data.workloads.map((w: Json) => [w.logicalId, w.internetEgress]));
    expect(egress[ids.support]).toBe('yes: through a NAT gateway');
    expect(egress[ids.research]).toBe('yes: through a NAT gateway');
    expect(egress[ids.gateway]).toBe('yes: runs outside any VPC, on the Lambda service network');
  });
});

describe('network section with a certificate and a second listener', () => {
  let json: Json;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const config = exampleConfig() as Json;
    config.endpoint.certificateArn = 'arn:aws:acm:us-east-1:111122223333:certificate/12345678-1234-1234-1234-123456789012';
    const assembly = synthesizeAgentStack(config, (stack) => {
      const debug = stack.endpoint!.loadBalancer.addListener('Debug', {
        port: 8080,
        protocol: elbv2.ApplicationProtocol.HTTP,
        defaultAction: elbv2.ListenerAction.fixedResponse(200, { messageBody: 'ok' }),
      });
      ids.loadBalancer = logicalId(stack.endpoint!.loadBalancer);
      ids.listener = logicalId(stack.endpoint!.listener);
      ids.debug = logicalId(debug);
    });
    ({ json } = await reviewOf(assembly));
  }, 120_000);

  test('lists both public listeners', () => {
    expect(json.sections.network.data.publicListeners).toEqual([
      { stack: 'AgentStack', loadBalancer: ids.loadBalancer, listener: ids.debug, port: 8080, protocol: 'HTTP', tls: false },
      { stack: 'AgentStack', loadBalancer: ids.loadBalancer, listener: ids.listener, port: 443, protocol: 'HTTPS', tls: true },
    ].sort((a, b) => (a.listener < b.listener ? -1 : 1)));
  });

  test('only the debug listener is unencrypted', () => {
    const unencrypted = json.findings.filter((f: Json) => f.kind === 'unencrypted' && f.section === 'network');
    expect(unencrypted.map((f: Json) => f.logicalId)).toEqual([ids.debug]);
  });
});

describe('network section without a realtime agent', () => {
  test('no public listeners', async () => {
    const config = exampleConfig() as Json;
    config.agents = config.agents.filter((a: Json) => a.mode === 'background');
    delete config.endpoint;
    const { json } = await reviewOf(synthesizeAgentStack(config));

    expect(json.sections.network.data.publicListeners).toEqual([]);
    expect(json.findings.filter((f: Json) => f.kind === 'public')).toEqual([]);
  }, 120_000);
});

describe('network section with a company vpc', () => {
  test('egress of the services is unknown', async () => {
    let service = '';
    const assembly = synthesize((app: App) => {
      const stack = new Stack(app, 'Company', { env: { region: 'us-east-1' } });
      const vpc = ec2.Vpc.fromVpcAttributes(stack, 'CompanyVpc', {
        vpcId: 'vpc-0123456789abcdef0',
        availabilityZones: ['us-east-1a', 'us-east-1b'],
        privateSubnetIds: ['subnet-0000000000000000a', 'subnet-0000000000000000b'],
      });
      const network = new AgentNetwork(stack, 'Network', { vpc });
      const gateway = new ModelGateway(stack, 'Gateway', { agents: [{ name: 'helper', route: [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], maxTokensPerCall: 1_024 }] });
      const worker = new AgentService(stack, 'Worker', {
        agentName: 'helper',
        mode: 'background',
        cluster: new ecs.Cluster(stack, 'Cluster', { vpc: network.vpc }),
        systemPrompt: 'Help the caller.',
        gateway,
        memory: new AgentMemory(stack, 'Memory', {}),
      });
      service = logicalId(worker.service);
    });
    const { json } = await reviewOf(assembly);
    const workload = json.sections.network.data.workloads.find((w: Json) => w.logicalId === service);

    expect(workload.internetEgress).toBe('unknown: subnets of a VPC that this app does not define');
    expect(json.sections.iam.data.bedrockInvokeRoles).toEqual([expect.stringMatching(/^Company\/GatewayRole/)]);
  }, 120_000);
});
