import { CfnElement, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { WORKER_ENV, WorkerRuntimeConfig, summaryAgentName } from '../lambda/shared/contracts';
import { backlogMetric, backlogScalingSteps, validateProps } from './agent-scaling';
import { AgentServiceProps } from './agent-service-props';
import { bundledAssetPath } from './assets';

export type { AgentHistoryCompression, AgentServiceProps, WarmWindow } from './agent-service-props';

/** Characters of one tool result beyond which history compression cuts it. */
const DEFAULT_MAX_TOOL_RESULT_CHARS = 20_000;

/** Formats a value as cdk-nag prints it in a finding id: a pseudo parameter in brackets, or the literal. */
function nagText(value: string, pseudoParameter: string): string {
  return Token.isUnresolved(value) ? `<${pseudoParameter}>` : value;
}

/**
 * Returns the cluster name as cdk-nag prints it in a finding id: the logical
 * id in brackets for a cluster of this app, the literal name of an imported
 * cluster, or undefined for any other token.
 */
function nagClusterName(cluster: ecs.ICluster): string | undefined {
  if (!Token.isUnresolved(cluster.clusterName)) return cluster.clusterName;
  const resource = cluster.node.defaultChild;
  return CfnElement.isCfnElement(resource) ? `<${Stack.of(resource).getLogicalId(resource)}>` : undefined;
}

/** Port the reference worker listens on in realtime mode. */
const CONTAINER_PORT = 8080;
const CONTAINER_NAME = 'agent';

/** Margin between the task timeout and the queue visibility timeout. */
const VISIBILITY_MARGIN = Duration.seconds(60);

/**
 * One agent type as its own ECS Fargate service, with its task role, log
 * group, configuration and scaling. A background agent also gets a task
 * queue with a dead-letter queue.
 */
export class AgentService extends Construct {
  public readonly service: ecs.FargateService;
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly logGroup: logs.LogGroup;
  /** Task queue of a background agent. */
  public readonly queue?: sqs.Queue;
  /** Dead-letter queue of a background agent. */
  public readonly deadLetterQueue?: sqs.Queue;
  /** Target group of a realtime agent. */
  public readonly targetGroup?: elbv2.ApplicationTargetGroup;
  public readonly scaling: ecs.ScalableTaskCount;

  constructor(scope: Construct, id: string, props: AgentServiceProps) {
    super(scope, id);

    // Resolve defaults.
    const realtime = props.mode === 'realtime';
    const taskTimeout = props.taskTimeout ?? Duration.minutes(5);
    const minTasks = props.minTasks ?? (realtime ? 1 : 0);
    const maxTasks = props.maxTasks ?? 4;
    const tools = props.tools ?? [];

    // Validate.
    validateProps(props, { realtime, taskTimeout, minTasks, maxTasks });

    // Create the log group and the task definition.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: props.cpu ?? 512,
      memoryLimitMiB: props.memoryLimitMiB ?? 1_024,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: props.cpuArchitecture ?? ecs.CpuArchitecture.X86_64,
      },
    });

    // Create the task queue of a background agent.
    if (!realtime) {
      this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
        encryption: props.encryptionKey ? sqs.QueueEncryption.KMS : sqs.QueueEncryption.SQS_MANAGED,
        encryptionMasterKey: props.encryptionKey,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      this.queue = new sqs.Queue(this, 'Queue', {
        encryption: props.encryptionKey ? sqs.QueueEncryption.KMS : sqs.QueueEncryption.SQS_MANAGED,
        encryptionMasterKey: props.encryptionKey,
        enforceSSL: true,
        visibilityTimeout: taskTimeout.plus(VISIBILITY_MARGIN),
        retentionPeriod: props.queueRetention ?? Duration.days(14),
        receiveMessageWaitTime: Duration.seconds(20),
        deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 3 },
      });
    }

    // Add the worker container with its runtime configuration.
    const runtimeConfig: WorkerRuntimeConfig = {
      agent: props.agentName,
      mode: props.mode,
      systemPrompt: props.systemPrompt,
      tools: tools.map((tool) => tool.definition),
      limits: {
        maxIterations: props.maxIterations ?? 10,
        maxTokensPerTask: props.maxTokensPerTask ?? 100_000,
        maxTokensPerCall: props.maxTokensPerCall ?? 4_096,
        taskTimeoutSeconds: taskTimeout.toSeconds(),
        maxBodyBytes: props.maxBodyBytes ?? 262_144,
      },
      memoryTtlDays: (props.memoryTtl ?? Duration.days(30)).toDays(),
      auth: props.auth ?? props.endpoint?.workerAuth() ?? { type: 'none' },
      concurrency: props.concurrency ?? 1,
      confidence: props.confidence ?? false,
      ...(props.history
        ? {
            history: {
              maxInputTokens: props.history.maxInputTokens,
              summaryAgent: summaryAgentName(props.agentName),
              maxToolResultChars: props.history.maxToolResultChars ?? DEFAULT_MAX_TOOL_RESULT_CHARS,
            },
          }
        : {}),
      ...(props.approvalGate ? { approvals: props.approvalGate.workerConfig } : {}),
    };
    const environment: Record<string, string> = {
      [WORKER_ENV.config]: Stack.of(this).toJsonString(runtimeConfig),
      [WORKER_ENV.gatewayFunction]: props.gateway.invokeTarget.functionName,
      [WORKER_ENV.memoryTable]: props.memory.table.tableName,
      AGENT_SERVICE_NAME: `agent-${props.agentName}`,
      AWS_REGION: Stack.of(this).region,
    };
    if (this.queue) environment[WORKER_ENV.queueUrl] = this.queue.queueUrl;
    if (realtime) environment[WORKER_ENV.port] = String(CONTAINER_PORT);
    Object.assign(environment, props.auditLog?.environment());
    this.taskDefinition.addContainer(CONTAINER_NAME, {
      image: props.image ?? ecs.ContainerImage.fromAsset(bundledAssetPath('worker')),
      environment,
      readonlyRootFilesystem: true,
      // Background tasks need time to hand in-flight messages back, and 120 s is the Fargate maximum.
      stopTimeout: realtime ? Duration.seconds(30) : Duration.seconds(120),
      portMappings: realtime ? [{ containerPort: CONTAINER_PORT }] : undefined,
      logging: ecs.LogDrivers.awsLogs({
        logGroup: this.logGroup,
        streamPrefix: props.agentName,
        // Metric lines go through these logs, so a line must never be dropped.
        mode: ecs.AwsLogDriverMode.BLOCKING,
      }),
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason: 'The environment holds the agent configuration and resource names, never a secret; secrets belong in Secrets Manager.',
    });

    // ECR's GetAuthorizationToken is the execution role's only wildcard.
    Validations.of(this.taskDefinition.obtainExecutionRole()).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken, which the execution role needs to pull the image, accepts only resource *.',
    });

    // Grant the task role what the worker calls, and no Bedrock access.
    const taskRole = this.taskDefinition.taskRole;
    props.gateway.grantInvoke(taskRole);
    props.memory.grantWorkerAccess(taskRole);
    for (const tool of tools) tool.grantInvoke(taskRole);
    props.approvalGate?.grantRequest(taskRole);
    props.auditLog?.grantWrite(taskRole);
    if (this.queue) {
      this.queue.grantConsumeMessages(taskRole);
      props.approvalGate?.addContinuationQueue(this.queue);
      // The ECS agent endpoint sets scale-in protection with the task role.
      // Source: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html
      const stack = Stack.of(this);
      taskRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['ecs:GetTaskProtection', 'ecs:UpdateTaskProtection'],
          resources: [`arn:${stack.partition}:ecs:${stack.region}:${stack.account}:task/${props.cluster.clusterName}/*`],
        }),
      );
      const clusterName = nagClusterName(props.cluster);
      if (clusterName !== undefined) {
        Validations.of(taskRole).acknowledge({
          id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:${nagText(stack.region, 'AWS::Region')}:${nagText(stack.account, 'AWS::AccountId')}:task/${clusterName}/*]`,
          reason: 'Task ids are assigned at run time, so scale-in protection is granted on the tasks of this cluster.',
        });
      }
    }

    // Create the service in private subnets.
    this.service = new ecs.FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition: this.taskDefinition,
      vpcSubnets: props.vpcSubnets,
      assignPublicIp: false,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });

    // Route a realtime agent through the endpoint.
    if (realtime) {
      this.targetGroup = props.endpoint!.addAgent({
        agentName: props.agentName,
        service: this.service,
        containerName: CONTAINER_NAME,
        containerPort: CONTAINER_PORT,
        deregistrationDelay: Duration.seconds(Math.min(taskTimeout.toSeconds(), 3_600)),
        taskTimeout,
      });
    }

    // Scale on requests per task or on backlog per task, within minTasks and maxTasks.
    this.scaling = this.service.autoScaleTaskCount({ minCapacity: minTasks, maxCapacity: maxTasks });
    if (realtime) {
      this.scaling.scaleOnRequestCount('RequestScaling', {
        requestsPerTarget: props.requestsPerTarget ?? 60,
        targetGroup: this.targetGroup!,
        scaleOutCooldown: Duration.seconds(60),
        scaleInCooldown: Duration.minutes(5),
      });
    } else {
      this.scaling.scaleOnMetric('BacklogScaling', {
        metric: this.metricBacklog(),
        adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
        scalingSteps: backlogScalingSteps({ minTasks, maxTasks, backlogPerTask: props.backlogPerTask ?? 2 }),
        cooldown: Duration.seconds(60),
        evaluationPeriods: 1,
      });
    }
    (props.warmWindows ?? []).forEach((window, i) => {
      this.scaling.scaleOnSchedule(`WarmWindow${i}`, { schedule: window.schedule, minCapacity: window.minTasks });
    });
  }

  /**
   * Visible plus in-flight messages of the task queue, the backlog a
   * background agent scales on.
   */
  metricBacklog(): cloudwatch.IMetric {
    if (!this.queue) {
      throw new Error('AgentService: metricBacklog applies to background agents only; this agent is realtime.');
    }
    return backlogMetric(this.queue);
  }
}
