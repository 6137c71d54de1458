import * as path from 'path';
import { App, CfnElement, Duration, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { IConstruct } from 'constructs';
import { AgentEndpoint } from '../constructs/agent-endpoint';
import { AgentMemory } from '../constructs/agent-memory';
import { AgentNetwork } from '../constructs/agent-network';
import { backlogScalingSteps } from '../constructs/agent-scaling';
import { AgentService, AgentServiceProps } from '../constructs/agent-service';
import { AgentTool } from '../constructs/agent-tool';
import { ModelGateway } from '../constructs/model-gateway';
import { AgentStack } from '../lib/agent-stack';
import { AgentStackConfigInput, loadConfig } from '../lib/config';

const ROOT = path.resolve(__dirname, '..');
// Skips bundling the tool functions: the template only needs their asset
// hashes, and bundling would run esbuild once per tool.
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

type Json = any;
type Resource = { Type: string; Properties: Json };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: Json };

/**
 * Writes CloudFormation intrinsics as text so that ARNs can be compared as
 * strings: `{ Ref: 'AWS::Partition' }` becomes `${AWS::Partition}` and
 * `Fn::GetAtt` becomes `${LogicalId.Attribute}`.
 */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  if (intrinsic?.['Fn::Sub']) return intrinsic['Fn::Sub'];
  return JSON.stringify(value);
}

function asList<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** One synthesized template with the lookups these tests share. */
class StackTemplate {
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

  /** Collects the statements of a role from its inline policies and every AWS::IAM::Policy attached to it. */
  statementsOf(roleId: string): Statement[] {
    const inline = (this.resources[roleId].Properties.Policies ?? []).flatMap((p: Json) => p.PolicyDocument.Statement);
    const attached = this.ofType('AWS::IAM::Policy')
      .filter(([, policy]) => asList(policy.Properties.Roles).some((role: Json) => role.Ref === roleId))
      .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement);
    return [...inline, ...attached];
  }

  actionsOf(roleId: string): string[] {
    return this.statementsOf(roleId).flatMap((s) => asList(s.Action));
  }

  /** Finds the scalable target of an ECS service and the scaling policies on it. */
  scalingOf(service: AgentService): { target: Json; policies: Json[] } {
    const serviceName = `\${${this.logicalId(service.service)}.Name}`;
    const [targetId, target] = this.ofType('AWS::ApplicationAutoScaling::ScalableTarget').find(([, t]) =>
      flatten(t.Properties.ResourceId).includes(serviceName),
    )!;
    const policies = this.ofType('AWS::ApplicationAutoScaling::ScalingPolicy')
      .filter(([, p]) => p.Properties.ScalingTargetId.Ref === targetId)
      .map(([id, p]) => ({ id, ...p.Properties }));
    return { target: target.Properties, policies };
  }

  alarmFor(policyId: string): Json {
    const alarm = this.ofType('AWS::CloudWatch::Alarm').find(([, a]) =>
      asList(a.Properties.AlarmActions).some((action: Json) => action.Ref === policyId),
    );
    return alarm?.[1].Properties;
  }

  /** Parses the worker's runtime configuration from its container environment. */
  workerConfigOf(service: AgentService): Json {
    const taskDefinition = this.resources[this.logicalId(service.taskDefinition)].Properties;
    const variable = taskDefinition.ContainerDefinitions[0].Environment.find((e: Json) => e.Name === 'AGENT_WORKER_CONFIG');
    return JSON.parse(flatten(variable.Value));
  }
}

/** Returns the name of the newest Node.js runtime in aws-cdk-lib's list, by version number. */
function newestNodeRuntimeName(): string {
  const versions = lambda.Runtime.ALL.map((runtime) => /^nodejs(\d+)\.x$/.exec(runtime.name)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number);
  return `nodejs${Math.max(...versions)}.x`;
}

describe('agent stack from the example config', () => {
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  const app = new App({ context: NO_BUNDLING });
  const stack = new AgentStack(app, 'AgentStack', { config, configDir: ROOT });
  const synth = new StackTemplate(stack);
  const { template } = synth;
  const realtime = config.agents.find((a) => a.mode === 'realtime')!;
  const background = config.agents.find((a) => a.mode === 'background')!;
  const keyArn = { 'Fn::GetAtt': [synth.logicalId(stack.key), 'Arn'] };

  describe('network', () => {
    test('one vpc with flow logs', () => {
      template.resourceCountIs('AWS::EC2::VPC', 1);
      template.hasResourceProperties('AWS::EC2::FlowLog', {
        ResourceType: 'VPC',
        ResourceId: { Ref: synth.logicalId(stack.network.vpc) },
        TrafficType: 'ALL',
        LogDestinationType: 'cloud-watch-logs',
      });
    });

    test('flow log group keeps logs as configured', () => {
      const flowLog = synth.ofType('AWS::EC2::FlowLog')[0][1];
      const logGroupId = flowLog.Properties.LogGroupName.Ref;

      expect(synth.resources[logGroupId].Properties.RetentionInDays).toBe(config.network.flowLogRetentionDays);
      expect(synth.resources[logGroupId].Properties.KmsKeyId).toEqual(keyArn);
    });

    test.each(['dynamodb', 's3'])('gateway endpoint for %s', (service) => {
      template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Gateway',
        ServiceName: { 'Fn::Join': ['', Match.arrayWith([`.${service}`])] },
      });
    });

    test('interface endpoints for the task services', () => {
      const services = synth
        .ofType('AWS::EC2::VPCEndpoint')
        .filter(([, e]) => e.Properties.VpcEndpointType === 'Interface')
        .map(([, e]) => e.Properties.ServiceName)
        .sort();

      expect(services).toEqual(
        ['ecr.api', 'ecr.dkr', 'kinesis-firehose', 'lambda', 'logs', 'sqs'].map((s) => `com.amazonaws.${config.region}.${s}`),
      );
    });

    test('interface endpoints use private dns in private subnets', () => {
      const privateSubnets = stack.network.vpc.privateSubnets.map((s) => ({ Ref: synth.logicalId(s) }));
      const endpoints = synth.ofType('AWS::EC2::VPCEndpoint').filter(([, e]) => e.Properties.VpcEndpointType === 'Interface');

      for (const [, endpoint] of endpoints) {
        expect(endpoint.Properties.PrivateDnsEnabled).toBe(true);
        expect(endpoint.Properties.SubnetIds).toEqual(privateSubnets);
      }
    });
  });

  describe('key and memory', () => {
    test('key rotates', () => {
      template.resourceCountIs('AWS::KMS::Key', 1);
      template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    });

    test('memory table', () => {
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: keyArn },
      });
    });
  });

  describe('gateway', () => {
    const gatewayFunction = () => synth.resources[synth.logicalId(stack.gateway.function)].Properties;
    const gatewayRoleId = synth.logicalId(stack.gateway.role);

    test('newest node runtime', () => {
      expect(gatewayFunction().Runtime).toBe(newestNodeRuntimeName());
    });

    test('outside the vpc', () => {
      expect(gatewayFunction().VpcConfig).toBeUndefined();
    });

    test('limits from config', () => {
      expect(gatewayFunction().MemorySize).toBe(config.gateway.memoryMiB);
      expect(gatewayFunction().Timeout).toBe(config.gateway.timeoutSeconds);
    });

    test('only role with bedrock actions', () => {
      const rolesWithBedrock = synth
        .ofType('AWS::IAM::Role')
        .filter(([id]) => synth.actionsOf(id).some((action) => action.startsWith('bedrock:')))
        .map(([id]) => id);

      expect(rolesWithBedrock).toEqual([gatewayRoleId]);
    });

    test('bedrock scoped to configured targets', () => {
      // A cross-region inference profile is granted in its own region, and
      // its model in every region Bedrock may route to, but only through
      // the profiles that serve it.
      const direct = new Set<string>();
      const profilesByModel = new Map<string, Set<string>>();
      for (const target of Object.values(config.routes).flat()) {
        const profile = /^(us|us-gov|eu|apac|ca|jp|au|global)\.(.+)$/.exec(target.modelId);
        if (profile) {
          const profileArn = `arn:\${AWS::Partition}:bedrock:${target.region}:\${AWS::AccountId}:inference-profile/${target.modelId}`;
          const modelArn = `arn:\${AWS::Partition}:bedrock:*::foundation-model/${profile[2]}`;
          direct.add(profileArn);
          profilesByModel.set(modelArn, new Set([...(profilesByModel.get(modelArn) ?? []), profileArn]));
        } else {
          direct.add(`arn:\${AWS::Partition}:bedrock:${target.region}::foundation-model/${target.modelId}`);
        }
      }
      const invoke = synth.statementsOf(gatewayRoleId).filter((s) => asList(s.Action).includes('bedrock:InvokeModel'));
      const unconditional = invoke.filter((s) => s.Condition === undefined);
      const conditional = invoke.filter((s) => s.Condition !== undefined);
      const throughProfiles = new Map(
        conditional.flatMap((s) =>
          asList(s.Resource).map((r) => [flatten(r), new Set(asList(s.Condition.StringEquals['bedrock:InferenceProfileArn']).map(flatten))] as const),
        ),
      );

      for (const statement of invoke) {
        expect(asList(statement.Action).sort()).toEqual(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
      }
      expect(new Set(unconditional.flatMap((s) => asList(s.Resource).map(flatten)))).toEqual(direct);
      expect(throughProfiles).toEqual(profilesByModel);
    });

    test('bedrock actions are invoke and guardrail only', () => {
      const actions = new Set(synth.actionsOf(gatewayRoleId).filter((a) => a.startsWith('bedrock:')));

      expect(actions).toEqual(new Set(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream', 'bedrock:ApplyGuardrail']));
    });

    test('guardrail applied on its own arn', () => {
      const guardrailArn = `\${${synth.logicalId(stack.gateway.guardrail!)}.GuardrailArn}`;
      const apply = synth.statementsOf(gatewayRoleId).filter((s) => asList(s.Action).includes('bedrock:ApplyGuardrail'));

      expect(apply.flatMap((s) => asList(s.Resource).map(flatten))).toEqual([guardrailArn]);
    });
  });

  describe('agent services', () => {
    test.each(config.agents.map((a) => [a.name]))('%s task role may invoke the gateway', (name) => {
      const taskRoleId = synth.logicalId(stack.agents[name].taskDefinition.taskRole);
      const gatewayArn = `\${${synth.logicalId(stack.gateway.function)}.Arn}`;
      const invokes = synth.statementsOf(taskRoleId).filter((s) => asList(s.Action).includes('lambda:InvokeFunction'));

      expect(invokes.flatMap((s) => asList(s.Resource).map(flatten))).toContain(gatewayArn);
      expect(synth.actionsOf(taskRoleId).filter((a) => a.startsWith('bedrock:'))).toEqual([]);
    });

    test.each(config.agents.map((a) => [a.name, a]))('%s task definition follows limits', (name, agent) => {
      const taskDefinition = synth.resources[synth.logicalId(stack.agents[name].taskDefinition)].Properties;
      const container = taskDefinition.ContainerDefinitions[0];

      expect(taskDefinition.Cpu).toBe(String(agent.limits.cpu));
      expect(taskDefinition.Memory).toBe(String(agent.limits.memoryMiB));
      expect(container.ReadonlyRootFilesystem).toBe(true);
      expect(container.LogConfiguration.LogDriver).toBe('awslogs');
    });

    test.each(config.agents.map((a) => [a.name, a]))('%s worker config carries limits', (name, agent) => {
      const workerConfig = synth.workerConfigOf(stack.agents[name]);

      expect(workerConfig.agent).toBe(name);
      expect(workerConfig.mode).toBe(agent.mode);
      expect(workerConfig.limits).toEqual({
        maxIterations: agent.limits.maxIterations,
        maxTokensPerTask: agent.limits.maxTokensPerTask,
        maxTokensPerCall: agent.limits.maxTokensPerCall,
        taskTimeoutSeconds: agent.limits.taskTimeoutSeconds,
        maxBodyBytes: agent.limits.maxBodyBytes,
      });
      expect(workerConfig.tools.map((t: Json) => t.name)).toEqual(agent.tools.map((t) => t.name));
    });

    test('realtime agent routed by path', () => {
      const targetGroupId = synth.logicalId(stack.agents[realtime.name].targetGroup!);

      template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
        Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: [`/agents/${realtime.name}/*`] } }],
        Actions: [{ Type: 'forward', TargetGroupArn: { Ref: targetGroupId } }],
      });
    });

    test('realtime agent health check', () => {
      const targetGroup = synth.resources[synth.logicalId(stack.agents[realtime.name].targetGroup!)].Properties;

      expect(targetGroup.HealthCheckPath).toBe(`/agents/${realtime.name}/health`);
    });

    test('background queue', () => {
      const service = stack.agents[background.name];
      const queue = synth.resources[synth.logicalId(service.queue!)].Properties;

      expect(queue.KmsMasterKeyId).toEqual(keyArn);
      expect(queue.VisibilityTimeout).toBe(background.limits.taskTimeoutSeconds + 60);
      expect(queue.RedrivePolicy).toEqual({
        deadLetterTargetArn: { 'Fn::GetAtt': [synth.logicalId(service.deadLetterQueue!), 'Arn'] },
        maxReceiveCount: background.queue.maxReceiveCount,
      });
    });

    test('background queues enforce ssl', () => {
      const service = stack.agents[background.name];

      for (const queue of [service.queue!, service.deadLetterQueue!]) {
        template.hasResourceProperties('AWS::SQS::QueuePolicy', {
          Queues: [{ Ref: synth.logicalId(queue) }],
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            ]),
          },
        });
      }
    });

    test('only background tasks get scale-in protection', () => {
      const hasProtection = (name: string) =>
        synth.actionsOf(synth.logicalId(stack.agents[name].taskDefinition.taskRole)).includes('ecs:UpdateTaskProtection');

      expect(hasProtection(background.name)).toBe(true);
      expect(hasProtection(realtime.name)).toBe(false);
    });
  });

  describe('scaling', () => {
    test('realtime scales on requests per target', () => {
      const { target, policies } = synth.scalingOf(stack.agents[realtime.name]);

      expect(target.MinCapacity).toBe(realtime.scaling.minTasks);
      expect(target.MaxCapacity).toBe(realtime.scaling.maxTasks);
      expect(policies).toHaveLength(1);
      expect(policies[0].TargetTrackingScalingPolicyConfiguration).toMatchObject({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ALBRequestCountPerTarget' },
        TargetValue: realtime.scaling.requestsPerTarget,
      });
    });

    test('background min capacity is zero', () => {
      const { target } = synth.scalingOf(stack.agents[background.name]);

      expect(background.scaling.minTasks).toBe(0);
      expect(target.MinCapacity).toBe(0);
      expect(target.MaxCapacity).toBe(background.scaling.maxTasks);
    });

    test('background scales out from one message', () => {
      const { policies } = synth.scalingOf(stack.agents[background.name]);
      const stepPolicies = policies.filter((p) => p.PolicyType === 'StepScaling');
      const scaleOut = stepPolicies.find(
        (p) => p.StepScalingPolicyConfiguration.StepAdjustments[0].MetricIntervalLowerBound !== undefined,
      )!;
      const alarm = synth.alarmFor(scaleOut.id);
      const firstStep = scaleOut.StepScalingPolicyConfiguration.StepAdjustments[0];

      expect(scaleOut.StepScalingPolicyConfiguration.AdjustmentType).toBe('ExactCapacity');
      // Step bounds are relative to the alarm threshold: a backlog of one runs one task.
      expect(alarm.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
      expect(alarm.Threshold).toBe(1);
      expect(firstStep).toEqual({
        MetricIntervalLowerBound: 0,
        MetricIntervalUpperBound: background.scaling.backlogPerTask,
        ScalingAdjustment: 1,
      });
    });

    test('background scales in to minTasks', () => {
      const { policies } = synth.scalingOf(stack.agents[background.name]);
      const scaleIn = policies.find((p) => p.StepScalingPolicyConfiguration?.StepAdjustments[0].MetricIntervalUpperBound === 0)!;
      const alarm = synth.alarmFor(scaleIn.id);

      expect(alarm.ComparisonOperator).toBe('LessThanOrEqualToThreshold');
      expect(alarm.Threshold).toBe(0);
      expect(scaleIn.StepScalingPolicyConfiguration.StepAdjustments).toEqual([{ MetricIntervalUpperBound: 0, ScalingAdjustment: 0 }]);
    });

    test('backlog counts visible and in-flight messages', () => {
      const { policies } = synth.scalingOf(stack.agents[background.name]);
      const alarm = synth.alarmFor(policies[0].id);
      const metricNames = alarm.Metrics.filter((m: Json) => m.MetricStat).map((m: Json) => m.MetricStat.Metric.MetricName).sort();

      expect(alarm.Metrics.find((m: Json) => m.Expression).Expression).toBe('visible + inFlight');
      expect(metricNames).toEqual(['ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesVisible']);
    });

    test('warm windows become scheduled actions', () => {
      const { target } = synth.scalingOf(stack.agents[realtime.name]);

      expect(realtime.scaling.warmWindows.length).toBeGreaterThan(0);
      expect(target.ScheduledActions).toEqual(
        realtime.scaling.warmWindows.map((window) =>
          expect.objectContaining({ Schedule: window.schedule, ScalableTargetAction: { MinCapacity: window.minTasks } }),
        ),
      );
    });
  });

  describe('tools', () => {
    const bundled = config.agents.flatMap((agent) =>
      agent.tools.map((tool) => ({ tool, construct: stack.node.findChild(`${agent.name}-tool-${tool.name}`) as AgentTool })),
    );

    test.each(bundled.map((b) => [b.tool.name, b]))('%s has its own log-only role', (_name, { construct }) => {
      const roleId = synth.logicalId(construct.function.role!);
      const logGroupArn = `\${${synth.logicalId(construct.node.findChild('Logs'))}.Arn}`;
      const statements = synth.statementsOf(roleId);

      expect(synth.resources[roleId].Properties.ManagedPolicyArns).toBeUndefined();
      expect(statements.flatMap((s) => asList(s.Action)).sort()).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
      expect(statements.flatMap((s) => asList(s.Resource).map(flatten))).toEqual([logGroupArn]);
    });

    test('roles are not shared', () => {
      const roleIds = bundled.map(({ construct }) => synth.logicalId(construct.function.role!));

      expect(new Set(roleIds).size).toBe(bundled.length);
    });

    test.each(bundled.map((b) => [b.tool.name, b]))('%s limits from config', (_name, { tool, construct }) => {
      const fn = synth.resources[synth.logicalId(construct.function)].Properties;

      expect(fn.ReservedConcurrentExecutions).toBe(tool.maxConcurrency);
      expect(fn.Timeout).toBe(tool.timeoutSeconds);
      expect(fn.MemorySize).toBe(tool.memoryMiB);
    });
  });

  describe('warnings', () => {
    const annotations = Annotations.fromStack(stack);

    test('http listener without certificate', () => {
      expect(config.endpoint?.certificateArn).toBeUndefined();
      annotations.hasWarning('/AgentStack/Endpoint', Match.stringLikeRegexp('cdk-agent-stack:httpListener'));
    });

    test('no auth warning with jwt', () => {
      annotations.hasNoWarning('*', Match.stringLikeRegexp('cdk-agent-stack:noAuth'));
    });

    test('endpoint without realtime agents warns', () => {
      const worker: AgentStackConfigInput = {
        region: 'us-east-1',
        endpoint: { auth: { type: 'none' } },
        routes: { main: [{ region: 'us-east-1', modelId: 'amazon.nova-lite-v1:0' }] },
        agents: [{ name: 'worker', mode: 'background', systemPrompt: 'Summarize the task.', route: 'main' }],
      };
      const workerStack = new AgentStack(new App({ context: NO_BUNDLING }), 'WorkerStack', { config: worker });

      Annotations.fromStack(workerStack).hasWarning('/WorkerStack', Match.stringLikeRegexp('cdk-agent-stack:unusedEndpoint'));
      Template.fromStack(workerStack).resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 0);
    });

    test('maxAzs above two without account', () => {
      const wide: AgentStackConfigInput = {
        region: 'us-east-1',
        network: { maxAzs: 3 },
        routes: { main: [{ region: 'us-east-1', modelId: 'amazon.nova-lite-v1:0' }] },
        agents: [{ name: 'worker', mode: 'background', systemPrompt: 'Summarize the task.', route: 'main' }],
      };
      const wideStack = new AgentStack(new App({ context: NO_BUNDLING }), 'WideStack', { config: wide });

      Template.fromStack(wideStack).resourceCountIs('AWS::EC2::Subnet', 6);
    });

    test('auth none warns', () => {
      const demo: AgentStackConfigInput = {
        region: 'us-east-1',
        endpoint: { auth: { type: 'none' } },
        routes: { main: [{ region: 'us-east-1', modelId: 'amazon.nova-lite-v1:0' }] },
        agents: [{ name: 'demo', mode: 'realtime', systemPrompt: 'Answer briefly.', route: 'main' }],
      };
      const demoStack = new AgentStack(new App({ context: NO_BUNDLING }), 'DemoStack', { config: demo });

      Annotations.fromStack(demoStack).hasWarning('/DemoStack/Endpoint', Match.stringLikeRegexp('cdk-agent-stack:noAuth'));
    });
  });
});

describe('feedback and confidence from the config', () => {
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  const rated: AgentStackConfigInput = {
    ...config,
    agents: config.agents.map((agent, index) => (index === 0 ? { ...agent, confidence: true } : agent)),
  };
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'Rated', { config: rated, configDir: ROOT });
  const synth = new StackTemplate(stack);

  test('feedback rule on the listener', () => {
    synth.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      ListenerArn: { Ref: synth.logicalId(stack.endpoint!.listener) },
      Conditions: Match.arrayWith([
        Match.objectLike({ Field: 'path-pattern', PathPatternConfig: { Values: ['/feedback'] } }),
        Match.objectLike({ Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['POST'] } }),
      ]),
    });
  });

  test('feedback serves every agent', () => {
    const variables = synth.resources[synth.logicalId(stack.feedback!.function)].Properties.Environment.Variables;
    // The value joins JSON text around the table's Ref, so the Ref is replaced by a placeholder to parse it.
    const parts: unknown[] = variables.AGENT_FEEDBACK_CONFIG['Fn::Join'][1];
    const feedbackConfig = JSON.parse(parts.map((part) => (typeof part === 'string' ? part : 'table')).join(''));

    expect(feedbackConfig.agents).toEqual(config.agents.map((agent) => agent.name));
  });

  test('confidence reaches the worker', () => {
    const [first, second] = config.agents;

    expect(synth.workerConfigOf(stack.agents[first.name]).confidence).toBe(true);
    expect(synth.workerConfigOf(stack.agents[second.name]).confidence).toBe(false);
  });
});

describe('history compression from the config', () => {
  // The example config whose support agent compresses its history with summaries from the sonnet route.
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  const compressed: AgentStackConfigInput = {
    ...config,
    agents: config.agents.map((agent, index) =>
      index === 0 ? { ...agent, history: { maxInputTokens: 50_000, summaryRoute: 'claude-sonnet' } } : agent,
    ),
  };
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'Compressed', { config: compressed, configDir: ROOT });
  const synth = new StackTemplate(stack);
  const gatewayFunction = synth.resources[synth.logicalId(stack.gateway.function)].Properties;
  const runtimeConfig = JSON.parse(flatten(gatewayFunction.Environment.Variables.AGENT_GATEWAY_CONFIG));
  const [first, second] = config.agents;

  test('history reaches the worker', () => {
    expect(synth.workerConfigOf(stack.agents[first.name]).history).toEqual({
      maxInputTokens: 50_000,
      summaryAgent: `${first.name}.summary`,
      maxToolResultChars: 20_000,
    });
    expect(synth.workerConfigOf(stack.agents[second.name]).history).toBeUndefined();
  });

  test('gateway serves the summary entry', () => {
    const summary = runtimeConfig.agents[`${first.name}.summary`];

    expect(summary.route).toEqual(config.routes['claude-sonnet']);
    expect(summary.maxTokensPerCall).toBe(1_024);
    expect(summary.promptCache).toBe('off');
    expect(runtimeConfig.agents[`${second.name}.summary`]).toBeUndefined();
  });
});

describe('gateway settings from the config', () => {
  // The example config with a company guardrail, warm instances and its own client and breaker settings.
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  const tuned: AgentStackConfigInput = {
    ...config,
    gateway: { ...config.gateway, timeoutSeconds: 90, provisionedConcurrency: 2, client: { attemptTimeoutMs: 40_000 }, breaker: { failureThreshold: 3 } },
    guardrail: { existing: { id: 'companyguard01', version: '7', region: 'us-west-2' } },
  };
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'Tuned', { config: tuned, configDir: ROOT });
  const synth = new StackTemplate(stack);
  const gatewayFunction = synth.resources[synth.logicalId(stack.gateway.function)].Properties;
  const runtimeConfig = JSON.parse(flatten(gatewayFunction.Environment.Variables.AGENT_GATEWAY_CONFIG));

  test('client settings resolved', () => {
    expect(runtimeConfig.client).toEqual({
      connectTimeoutMs: 1_000,
      firstByteTimeoutMs: 10_000,
      attemptTimeoutMs: 40_000,
      sdkMaxAttempts: 1,
      requestDeadlineMs: 85_000,
    });
  });

  test('breaker settings resolved', () => {
    expect(runtimeConfig.breaker).toEqual({ failureThreshold: 3, cooldownSeconds: 30, cacheTtlMs: 2_000 });
  });

  test('company guardrail passed through', () => {
    expect(runtimeConfig.guardrail).toEqual({ id: 'companyguard01', version: '7', region: 'us-west-2' });
    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'bedrock:ApplyGuardrail',
            Resource: {
              'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:us-west-2:', { Ref: 'AWS::AccountId' }, ':guardrail/companyguard01']],
            },
          }),
        ]),
      },
    });
    synth.template.resourceCountIs('AWS::Bedrock::Guardrail', 0);
    synth.template.resourceCountIs('AWS::Bedrock::GuardrailVersion', 0);
  });

  test('workers invoke the alias', () => {
    const aliasArn = `\${${synth.logicalId(stack.gateway.alias!)}}`;
    for (const agent of config.agents) {
      const service = stack.agents[agent.name];
      const taskDefinition = synth.resources[synth.logicalId(service.taskDefinition)].Properties;
      const variable = taskDefinition.ContainerDefinitions[0].Environment.find((e: Json) => e.Name === 'AGENT_GATEWAY_FUNCTION');
      const invokes = synth.statementsOf(synth.logicalId(service.taskDefinition.taskRole)).filter((s) => asList(s.Action).includes('lambda:InvokeFunction'));

      expect(flatten(variable.Value)).toMatch(/:live$/);
      expect(invokes.flatMap((s) => asList(s.Resource).map(flatten))).toContain(aliasArn);
    }
  });

  test('alias keeps two instances warm', () => {
    synth.template.hasResourceProperties('AWS::Lambda::Alias', {
      Name: 'live',
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 },
    });
  });
});

// Constructs composed in a company's own stack, with its own VPC and key.
const KEY_ARN = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const ROUTE = [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }];
const JWT_AUTH = {
  type: 'jwt' as const,
  issuer: 'https://issuer.example.com/',
  audience: ['agents'],
  jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
};

function companyStack() {
  const stack = new Stack(new App({ context: NO_BUNDLING }), 'Company', { env: { region: 'us-east-1' } });
  const vpc = ec2.Vpc.fromVpcAttributes(stack, 'CompanyVpc', {
    vpcId: 'vpc-0123456789abcdef0',
    vpcCidrBlock: '10.20.0.0/16',
    availabilityZones: ['us-east-1a', 'us-east-1b'],
    privateSubnetIds: ['subnet-0000000000000000a', 'subnet-0000000000000000b'],
    publicSubnetIds: ['subnet-0000000000000000c', 'subnet-0000000000000000d'],
  });
  const key = kms.Key.fromKeyArn(stack, 'CompanyKey', KEY_ARN);
  const cluster = new ecs.Cluster(stack, 'Cluster', { vpc });
  const memory = new AgentMemory(stack, 'Memory', { encryptionKey: key });
  const gateway = new ModelGateway(stack, 'Gateway', {
    agents: [{ name: 'helper', route: ROUTE, maxTokensPerCall: 1_024 }],
    encryptionKey: key,
  });
  return { stack, vpc, key, cluster, memory, gateway };
}

type Company = ReturnType<typeof companyStack>;

function serviceProps(company: Company, overrides: Partial<AgentServiceProps> = {}): AgentServiceProps {
  return {
    agentName: 'helper',
    mode: 'background',
    cluster: company.cluster,
    systemPrompt: 'Help the caller.',
    gateway: company.gateway,
    memory: company.memory,
    encryptionKey: company.key,
    ...overrides,
  };
}

function endpointIn(company: Company): AgentEndpoint {
  return new AgentEndpoint(company.stack, 'Endpoint', { vpc: company.vpc, auth: JWT_AUTH });
}

describe('constructs in a company stack', () => {
  const company = companyStack();
  const network = new AgentNetwork(company.stack, 'Network', { vpc: company.vpc });
  const endpoint = endpointIn(company);
  const worker = new AgentService(company.stack, 'Worker', serviceProps(company, { agentName: 'worker' }));
  const chat = new AgentService(company.stack, 'Chat', serviceProps(company, { agentName: 'chat', mode: 'realtime', endpoint }));
  const synth = new StackTemplate(company.stack);
  const { template } = synth;

  test('network adopts the vpc', () => {
    expect(network.vpc).toBe(company.vpc);
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::FlowLog', 0);
  });

  test('network leaves endpoints to the vpc owner', () => {
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
  });

  test('memory uses the company key', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: KEY_ARN },
    });
  });

  test('memory is retained', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  test('gateway runs outside the vpc', () => {
    const fn = synth.resources[synth.logicalId(company.gateway.function)].Properties;

    expect(fn.VpcConfig).toBeUndefined();
    expect(fn.MemorySize).toBe(1_024);
    expect(fn.Timeout).toBe(120);
  });

  test('service defaults', () => {
    const taskDefinition = synth.resources[synth.logicalId(worker.taskDefinition)].Properties;

    expect(taskDefinition.Cpu).toBe('512');
    expect(taskDefinition.Memory).toBe('1024');
    expect(synth.workerConfigOf(worker).limits).toEqual({
      maxIterations: 10,
      maxTokensPerTask: 100_000,
      maxTokensPerCall: 4_096,
      taskTimeoutSeconds: 300,
      maxBodyBytes: 262_144,
    });
    expect(synth.workerConfigOf(worker).confidence).toBe(false);
  });

  test('service passes confidence', () => {
    const company = companyStack();
    const service = new AgentService(company.stack, 'Rated', serviceProps(company, { agentName: 'rated', confidence: true }));

    expect(new StackTemplate(company.stack).workerConfigOf(service).confidence).toBe(true);
  });

  test('background defaults', () => {
    const queue = synth.resources[synth.logicalId(worker.queue!)].Properties;
    const { target } = synth.scalingOf(worker);

    expect(queue.VisibilityTimeout).toBe(300 + 60);
    expect(queue.MessageRetentionPeriod).toBe(Duration.days(14).toSeconds());
    expect(queue.RedrivePolicy.maxReceiveCount).toBe(3);
    expect(target.MinCapacity).toBe(0);
    expect(target.MaxCapacity).toBe(4);
  });

  test('background default backlog per task', () => {
    const { policies } = synth.scalingOf(worker);
    const scaleOut = policies.find((p) => p.StepScalingPolicyConfiguration.StepAdjustments[0].MetricIntervalLowerBound !== undefined)!;

    expect(scaleOut.StepScalingPolicyConfiguration.StepAdjustments[0].MetricIntervalUpperBound).toBe(2);
  });

  test('realtime defaults', () => {
    const { target, policies } = synth.scalingOf(chat);

    expect(target.MinCapacity).toBe(1);
    expect(target.MaxCapacity).toBe(4);
    expect(policies[0].TargetTrackingScalingPolicyConfiguration.TargetValue).toBe(60);
  });

  test('task role uses the company key', () => {
    const statements = synth.statementsOf(synth.logicalId(worker.taskDefinition.taskRole));
    const kmsResources = statements
      .filter((s) => asList(s.Action).some((a) => a.startsWith('kms:')))
      .flatMap((s) => asList(s.Resource));

    expect(kmsResources.length).toBeGreaterThan(0);
    expect(new Set(kmsResources)).toEqual(new Set([KEY_ARN]));
  });
});

describe('construct errors', () => {
  test('network vpc with cidr', () => {
    const company = companyStack();

    expect(() => new AgentNetwork(company.stack, 'Network', { vpc: company.vpc, cidr: '10.1.0.0/16' })).toThrow(
      /vpc cannot be combined with cidr/,
    );
  });

  test('network vpc with zones', () => {
    const company = companyStack();

    expect(
      () => new AgentNetwork(company.stack, 'Network', { vpc: company.vpc, availabilityZones: ['us-east-1a', 'us-east-1b'] }),
    ).toThrow(/vpc cannot be combined with .*availabilityZones/);
  });

  test('network negative nat gateways', () => {
    const stack = new Stack(new App(), 'Company');

    expect(() => new AgentNetwork(stack, 'Network', { natGateways: -1 })).toThrow(
      /natGateways must be a whole number of 0 or more \(got -1\)/,
    );
  });

  test('gateway without agents', () => {
    const stack = new Stack(new App(), 'Company');

    expect(() => new ModelGateway(stack, 'Gateway', { agents: [] })).toThrow(/agents is empty/);
  });

  test('gateway with an empty route', () => {
    const stack = new Stack(new App(), 'Company');

    expect(() => new ModelGateway(stack, 'Gateway', { agents: [{ name: 'helper', route: [], maxTokensPerCall: 1 }] })).toThrow(
      /agent helper has an empty route/,
    );
  });

  test('gateway subnets without vpc', () => {
    const stack = new Stack(new App(), 'Company');
    const agents = [{ name: 'helper', route: ROUTE, maxTokensPerCall: 1 }];

    const vpcSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

    expect(() => new ModelGateway(stack, 'Gateway', { agents, vpcSubnets })).toThrow(/vpcSubnets needs vpc/);
  });

  test('gateway routes beyond the environment limit', () => {
    const stack = new Stack(new App(), 'Company');
    const longRoute = Array.from({ length: 10 }, () => ({ region: 'us-east-1', modelId: `us.${'m'.repeat(60)}` }));
    const agents = Array.from({ length: 10 }, (_, i) => ({ name: `agent-${i}`, route: longRoute, maxTokensPerCall: 1 }));

    expect(() => new ModelGateway(stack, 'Gateway', { agents })).toThrow(/bytes of the function environment/);
  });

  test('endpoint cognito without certificate', () => {
    const company = companyStack();
    const auth = {
      type: 'cognito' as const,
      userPool: cognito.UserPool.fromUserPoolId(company.stack, 'Pool', 'us-east-1_EXAMPLE11'),
      userPoolClient: cognito.UserPoolClient.fromUserPoolClientId(company.stack, 'Client', 'client'),
      userPoolDomain: cognito.UserPoolDomain.fromDomainName(company.stack, 'Domain', 'agents'),
    };

    expect(() => new AgentEndpoint(company.stack, 'Endpoint', { vpc: company.vpc, auth })).toThrow(/needs certificateArn/);
  });

  test('service realtime without endpoint', () => {
    const company = companyStack();

    expect(() => new AgentService(company.stack, 'Chat', serviceProps(company, { mode: 'realtime' }))).toThrow(
      /a realtime agent needs endpoint/,
    );
  });

  test('service history budget too small', () => {
    const company = companyStack();

    expect(() => new AgentService(company.stack, 'Worker', serviceProps(company, { history: { maxInputTokens: 1_000 } }))).toThrow(
      /history.maxInputTokens must be a whole number of at least 4096 \(got 1000\)/,
    );
  });

  test('service background with endpoint', () => {
    const company = companyStack();
    const endpoint = endpointIn(company);

    expect(() => new AgentService(company.stack, 'Worker', serviceProps(company, { endpoint }))).toThrow(
      /endpoint applies to realtime agents only/,
    );
  });

  test('service minTasks above maxTasks', () => {
    const company = companyStack();

    expect(() => new AgentService(company.stack, 'Worker', serviceProps(company, { minTasks: 5, maxTasks: 2 }))).toThrow(
      /minTasks \(5\) exceeds maxTasks \(2\)/,
    );
  });

  test('service realtime minTasks 0', () => {
    const company = companyStack();
    const endpoint = endpointIn(company);

    expect(() => new AgentService(company.stack, 'Chat', serviceProps(company, { mode: 'realtime', endpoint, minTasks: 0 }))).toThrow(
      /minTasks must be at least 1 for a realtime agent/,
    );
  });

  test('service realtime with queue settings', () => {
    const company = companyStack();
    const endpoint = endpointIn(company);

    const props = serviceProps(company, { mode: 'realtime', endpoint, maxReceiveCount: 5 });

    expect(() => new AgentService(company.stack, 'Chat', props)).toThrow(/apply to background agents only/);
  });

  test('service timeout past the visibility limit', () => {
    const company = companyStack();
    const props = serviceProps(company, { taskTimeout: Duration.seconds(12 * 60 * 60 - 59) });

    expect(() => new AgentService(company.stack, 'Worker', props)).toThrow(/use at most 43140 s/);
  });

  test('service warm window above maxTasks', () => {
    const company = companyStack();
    const warmWindows = [{ schedule: appscaling.Schedule.cron({ hour: '7' }), minTasks: 9 }];

    expect(() => new AgentService(company.stack, 'Worker', serviceProps(company, { maxTasks: 4, warmWindows }))).toThrow(
      /warmWindows\[0\].minTasks \(9\) exceeds maxTasks \(4\)/,
    );
  });

  test('service confidence with final_answer tool', () => {
    const company = companyStack();
    const tool = new AgentTool(company.stack, 'Tool', {
      toolName: 'final_answer',
      description: 'Returns the answer.',
      inputSchema: { type: 'object' },
      impact: 'low',
      functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:final-answer',
    });

    expect(() => new AgentService(company.stack, 'Worker', serviceProps(company, { confidence: true, tools: [tool] }))).toThrow(
      /so rename the agent's tool final_answer or turn confidence off/,
    );
  });

  test('service invalid agent name', () => {
    const company = companyStack();

    expect(() => new AgentService(company.stack, 'Worker', serviceProps(company, { agentName: 'Helper_1' }))).toThrow(
      /agentName must be lower-case letters/,
    );
  });

  test('metricBacklog of a realtime agent', () => {
    const company = companyStack();
    const props = serviceProps(company, { mode: 'realtime', endpoint: endpointIn(company) });
    const service = new AgentService(company.stack, 'Chat', props);

    expect(() => service.metricBacklog()).toThrow(/applies to background agents only/);
  });
});

describe('constructs with imported resources', () => {
  test('background service on an imported cluster', () => {
    const company = companyStack();
    const cluster = ecs.Cluster.fromClusterAttributes(company.stack, 'SharedCluster', {
      clusterName: 'shared-agents',
      vpc: company.vpc,
    });
    const service = new AgentService(company.stack, 'Worker', serviceProps(company, { cluster }));
    const synth = new StackTemplate(company.stack);
    const protection = synth
      .statementsOf(synth.logicalId(service.taskDefinition.taskRole))
      .filter((s) => asList(s.Action).includes('ecs:UpdateTaskProtection'));

    expect(protection.flatMap((s) => asList(s.Resource).map(flatten))).toEqual([
      'arn:${AWS::Partition}:ecs:us-east-1:${AWS::AccountId}:task/shared-agents/*',
    ]);
  });

  test('network uses maxAzs of the listed zones', () => {
    const stack = new Stack(new App(), 'Company', { env: { region: 'us-east-1' } });
    const network = new AgentNetwork(stack, 'Network', { availabilityZones: ['us-east-1a', 'us-east-1b', 'us-east-1c'], maxAzs: 2 });

    expect(network.vpc.availabilityZones).toEqual(['us-east-1a', 'us-east-1b']);
    expect(network.vpc.isolatedSubnets).toHaveLength(2);
  });
});

describe('backlog scaling steps', () => {
  /** Returns the tasks the steps run for a backlog, from the last step whose lower bound it reaches. */
  function tasksFor(steps: appscaling.ScalingInterval[], backlog: number): number {
    if (backlog <= 0) return steps.find((s) => s.upper === 0)!.change;
    const reached = steps.filter((s) => s.lower !== undefined && s.lower <= backlog);
    return reached[reached.length - 1].change;
  }

  test('exact steps for small maxTasks', () => {
    expect(backlogScalingSteps({ minTasks: 0, maxTasks: 3, backlogPerTask: 2 })).toEqual([
      { upper: 0, change: 0 },
      { lower: 1, change: 1 },
      { lower: 3, change: 2 },
      { lower: 5, change: 3 },
    ]);
  });

  test.each([
    [0, 1, 1],
    [0, 4, 2],
    [1, 5, 3],
    [2, 19, 1],
    [0, 19, 5],
  ])('one task per backlogPerTask (min %i, max %i, per task %i)', (minTasks, maxTasks, backlogPerTask) => {
    const steps = backlogScalingSteps({ minTasks, maxTasks, backlogPerTask });
    const mismatches: string[] = [];

    for (let backlog = 0; backlog <= maxTasks * backlogPerTask + 3; backlog++) {
      const expected = Math.max(minTasks, Math.min(maxTasks, Math.ceil(backlog / backlogPerTask)));
      const tasks = tasksFor(steps, backlog);
      if (tasks !== expected) mismatches.push(`backlog ${backlog}: ${tasks} tasks, expected ${expected}`);
    }

    expect(mismatches).toEqual([]);
  });

  test('at most 20 steps for 1000 tasks', () => {
    const steps = backlogScalingSteps({ minTasks: 0, maxTasks: 1_000, backlogPerTask: 2 });

    expect(steps.length).toBeLessThanOrEqual(20);
    expect(steps[steps.length - 1]).toMatchObject({ change: 1_000 });
  });

  test('1000 tasks never under or far over', () => {
    const steps = backlogScalingSteps({ minTasks: 0, maxTasks: 1_000, backlogPerTask: 2 });
    const under: number[] = [];
    const over: number[] = [];

    for (let backlog = 1; backlog <= 2_010; backlog++) {
      const needed = Math.min(1_000, Math.ceil(backlog / 2));
      const tasks = tasksFor(steps, backlog);
      if (tasks < needed) under.push(backlog);
      if (tasks >= 1.5 * needed) over.push(backlog);
    }

    expect(under).toEqual([]);
    expect(over).toEqual([]);
  });

  test('minTasks 0 starts at one message', () => {
    const steps = backlogScalingSteps({ minTasks: 0, maxTasks: 1_000, backlogPerTask: 5 });

    expect(steps[0]).toEqual({ upper: 0, change: 0 });
    expect(steps[1]).toEqual({ lower: 1, change: 1 });
  });

  test('lower bounds increase', () => {
    const lowers = backlogScalingSteps({ minTasks: 0, maxTasks: 1_000, backlogPerTask: 3 }).slice(1).map((s) => s.lower!);

    expect(lowers).toEqual([...lowers].sort((a, b) => a - b));
    expect(new Set(lowers).size).toBe(lowers.length);
  });
});

describe('tool result checks from the config', () => {
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  // support marks issue_refund as returning only the stack's own data; research turns the checks off.
  const marked: AgentStackConfigInput = {
    ...config,
    agents: config.agents.map((agent) => ({
      ...agent,
      checkToolResults: agent.name !== 'research',
      tools: agent.tools.map((tool) => ({ ...tool, untrustedOutput: tool.name !== 'issue_refund' })),
    })),
  };
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'Checks', { config: marked, configDir: ROOT });
  const synth = new StackTemplate(stack);
  const gatewayFunction = synth.resources[synth.logicalId(stack.gateway.function)].Properties;
  const runtimeConfig = JSON.parse(flatten(gatewayFunction.Environment.Variables.AGENT_GATEWAY_CONFIG));

  test('trusted tools listed', () => {
    expect(runtimeConfig.agents.support.toolResultChecks).toEqual({ trustedTools: ['issue_refund'] });
  });

  test('checks off for one agent', () => {
    expect(runtimeConfig.agents.research.toolResultChecks).toBeUndefined();
  });

  test('checks on by default', () => {
    const stackWithDefaults = new AgentStack(new App({ context: NO_BUNDLING }), 'Defaults', { config, configDir: ROOT });
    const defaults = new StackTemplate(stackWithDefaults);
    const fn = defaults.resources[defaults.logicalId(stackWithDefaults.gateway.function)].Properties;
    const agents = JSON.parse(flatten(fn.Environment.Variables.AGENT_GATEWAY_CONFIG)).agents;

    expect(agents.support.toolResultChecks).toEqual({});
    expect(agents.research.toolResultChecks).toEqual({});
  });
});

describe('prompt cache from the config', () => {
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  const tuned: AgentStackConfigInput = {
    ...config,
    agents: config.agents.map((agent) =>
      agent.name === 'research' ? { ...agent, promptCache: 'off' } : { ...agent, expectedCallsPer5Minutes: 40 },
    ),
  };
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'PromptCache', { config: tuned, configDir: ROOT });
  const synth = new StackTemplate(stack);
  const gatewayFunction = synth.resources[synth.logicalId(stack.gateway.function)].Properties;
  const agents = JSON.parse(flatten(gatewayFunction.Environment.Variables.AGENT_GATEWAY_CONFIG)).agents;

  test('mode reaches the gateway', () => {
    expect(agents.research.promptCache).toBe('off');
    expect(agents.support).not.toHaveProperty('promptCache');
  });

  test('expected calls reach the gateway', () => {
    expect(agents.support.expectedCallsPer5Minutes).toBe(40);
    expect(agents.research).not.toHaveProperty('expectedCallsPer5Minutes');
  });
});

describe('budget from the config', () => {
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'AgentStack', { config, configDir: ROOT });
  const synth = new StackTemplate(stack);
  const gatewayConfig = () => {
    const fn = synth.resources[synth.logicalId(stack.gateway.function)].Properties;
    return JSON.parse(flatten(fn.Environment.Variables.AGENT_GATEWAY_CONFIG));
  };

  test('ledger encrypted with the stack key', () => {
    const table = synth.resources[synth.logicalId(stack.budget!.table)].Properties;

    expect(table.SSESpecification.KMSMasterKeyId).toEqual({ 'Fn::GetAtt': [synth.logicalId(stack.key), 'Arn'] });
  });

  test('gateway may use the ledger', () => {
    const tableArn = `\${${synth.logicalId(stack.budget!.table)}.Arn}`;
    const statements = synth.statementsOf(synth.logicalId(stack.gateway.role)).filter((s) => asList(s.Resource).map(flatten).includes(tableArn));

    expect(statements.flatMap((s) => asList(s.Action))).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
      'dynamodb:ConditionCheckItem',
    ]);
  });

  test('agent tasks cannot reach the ledger', () => {
    const tableArn = `\${${synth.logicalId(stack.budget!.table)}.Arn}`;
    for (const service of Object.values(stack.agents)) {
      const roleId = synth.logicalId(service.taskDefinition.taskRole);
      const resources = synth.statementsOf(roleId).flatMap((s) => asList(s.Resource).map(flatten));

      expect(resources).not.toContain(tableArn);
    }
  });

  test('limits in the gateway environment', () => {
    const budget = gatewayConfig().budget;

    expect(budget.leaseSeconds).toBe(900);
    expect(budget.stack).toEqual({ daily: { usd: 300 }, monthly: { usd: 5_000 } });
    expect(budget.agents.support.perUser).toEqual({ daily: { usd: 2 } });
    expect(budget.agents.research.agent).toEqual({ daily: { usd: 150 }, monthly: { usd: 1_500 } });
  });

  test('every route target priced', () => {
    const targetIds = new Set(Object.values(config.routes).flat().map((t) => t.modelId));

    expect(Object.keys(gatewayConfig().budget.prices).sort()).toEqual([...targetIds].sort());
  });

  test('no ledger without a budget', () => {
    const input = JSON.parse(JSON.stringify(config));
    delete input.budget;
    for (const agent of input.agents) delete agent.budget;
    const plain = new AgentStack(new App({ context: NO_BUNDLING }), 'Plain', { config: input, configDir: ROOT });

    expect(plain.budget).toBeUndefined();
    // Other tables, such as memory and gateway state, remain, and none of them is under the Budget construct.
    const tables = Object.keys(Template.fromStack(plain).findResources('AWS::DynamoDB::Table'));
    expect(tables.length).toBeGreaterThan(0);
    expect(tables.filter((logicalId) => logicalId.startsWith('Budget'))).toEqual([]);
  });
});
