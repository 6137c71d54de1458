import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { AgentEndpoint, AgentEndpointProps } from '../constructs/agent-endpoint';
import { AgentMemory } from '../constructs/agent-memory';
import { AgentNetwork } from '../constructs/agent-network';
import { AgentService } from '../constructs/agent-service';
import { ModelGateway } from '../constructs/model-gateway';

// The load balancer's idle timeout must outlast a buffered response, which
// sends no bytes until the agent's task is done.

const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const AUTH = {
  type: 'jwt' as const,
  issuer: 'https://issuer.example.com/',
  audience: ['agents'],
  jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
};

function realtimeAgent(endpointProps: Partial<AgentEndpointProps>, taskTimeout: Duration) {
  const stack = new Stack(new App({ context: NO_BUNDLING }), 'Company', { env: { region: 'eu-west-1' } });
  const network = new AgentNetwork(stack, 'Network', {});
  const endpoint = new AgentEndpoint(stack, 'Endpoint', { vpc: network.vpc, auth: AUTH, ...endpointProps });
  const create = () =>
    new AgentService(stack, 'Chat', {
      agentName: 'chat',
      mode: 'realtime',
      cluster: new ecs.Cluster(stack, 'Cluster', { vpc: network.vpc }),
      systemPrompt: 'Help the caller.',
      gateway: new ModelGateway(stack, 'Gateway', {
        agents: [{ name: 'chat', route: [{ region: 'eu-west-1', modelId: 'amazon.nova-lite-v1:0' }], maxTokensPerCall: 512 }],
      }),
      memory: new AgentMemory(stack, 'Memory'),
      endpoint,
      taskTimeout,
    });
  return { stack, create };
}

function idleTimeoutOf(stack: Stack): string {
  const balancers = Template.fromStack(stack).findResources('AWS::ElasticLoadBalancingV2::LoadBalancer');
  const [balancer] = Object.values(balancers);
  const attributes = balancer.Properties.LoadBalancerAttributes as Array<{ Key: string; Value: string }>;
  const idle = attributes.filter((a) => a.Key === 'idle_timeout.timeout_seconds');
  expect(idle).toHaveLength(1);
  return idle[0].Value;
}

describe('endpoint idle timeout', () => {
  test('default covers a short task', () => {
    const { stack, create } = realtimeAgent({}, Duration.seconds(30));
    create();
    expect(idleTimeoutOf(stack)).toBe('60');
  });

  test('default rises to the task timeout', () => {
    const { stack, create } = realtimeAgent({}, Duration.minutes(5));
    create();
    expect(idleTimeoutOf(stack)).toBe('305');
  });

  test('explicit timeout too short throws', () => {
    const { create } = realtimeAgent({ idleTimeout: Duration.seconds(60) }, Duration.minutes(5));
    expect(create).toThrow(/idleTimeout of 60 s would cut off responses of agent chat, whose taskTimeout is 300 s; set idleTimeout to at least 305 s/);
  });

  test('explicit timeout long enough stays', () => {
    const { stack, create } = realtimeAgent({ idleTimeout: Duration.seconds(900) }, Duration.minutes(5));
    create();
    expect(idleTimeoutOf(stack)).toBe('900');
  });

  test('task beyond the maximum throws', () => {
    const { create } = realtimeAgent({}, Duration.seconds(3_999));
    expect(create).toThrow(/maximum idle timeout of 4000 s/);
  });
});

describe('network ranges', () => {
  test.each([
    ['10.0.0.0/16', 2],
    ['10.0.0.0/20', 3],
    ['10.0.0.0/24', 2],
  ])('%s across %d zones', (cidr, zones) => {
    const stack = new Stack(new App(), 'Net', { env: { region: 'eu-west-1' } });
    const azs = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'].slice(0, zones);
    new AgentNetwork(stack, 'Network', { cidr, availabilityZones: azs });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::Subnet', zones * 2);
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: cidr });
    template.hasResourceProperties('AWS::EC2::Subnet', { CidrBlock: Match.stringLikeRegexp(`^10\\.0\\.`) });
  });
});

