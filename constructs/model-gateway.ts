import { Aws, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { GATEWAY_ENV, GatewayRuntimeConfig, ModelTarget } from '../lambda/shared/contracts';
import { bundledAssetPath, latestNodeRuntime } from './assets';

/** One agent the gateway serves. */
export interface ModelGatewayAgent {
  /** Agent name, as the worker sends it. */
  readonly name: string;
  /** Ordered Bedrock targets; the first is the primary. */
  readonly route: ModelTarget[];
  /** Largest `maxTokens` one call may request. */
  readonly maxTokensPerCall: number;
}

export interface ModelGatewayProps {
  /** Agents the gateway serves, with their routes. */
  readonly agents: ModelGatewayAgent[];

  /**
   * Key that encrypts the function's environment and log group.
   *
   * @default - AWS managed keys
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Memory of the gateway function.
   *
   * @default 1024
   */
  readonly memorySize?: number;

  /**
   * Timeout of one gateway invocation.
   *
   * @default Duration.minutes(2)
   */
  readonly timeout?: Duration;

  /**
   * Retention of the gateway's logs.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Place the gateway in this VPC. Its subnets then need NAT egress, since
   * interface endpoints serve only their own region and the gateway calls
   * Bedrock in several.
   *
   * @default - outside any VPC
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Subnets for the gateway when `vpc` is set.
   *
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
}

/** Geography prefixes of Bedrock cross-region inference profile ids. */
const PROFILE_PREFIXES = ['us', 'us-gov', 'eu', 'apac', 'ca', 'jp', 'au', 'global'];

// Lambda caps the environment of one function at 4 KB in total.
// Source: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
const MAX_ENVIRONMENT_BYTES = 4_096;

/** Splits an inference profile id into its prefix and the model id it serves. */
export function parseModelId(modelId: string): { profilePrefix?: string; foundationModelId: string } {
  const dot = modelId.indexOf('.');
  const prefix = dot > 0 ? modelId.slice(0, dot) : '';
  if (PROFILE_PREFIXES.includes(prefix)) {
    return { profilePrefix: prefix, foundationModelId: modelId.slice(dot + 1) };
  }
  return { foundationModelId: modelId };
}

/**
 * The only principal allowed to call Bedrock: a Lambda function through
 * which every model call passes. It runs outside the VPC by default.
 */
export class ModelGateway extends Construct {
  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ModelGatewayProps) {
    super(scope, id);

    // Validate.
    if (props.agents.length === 0) {
      throw new Error('ModelGateway: agents is empty; give at least one agent with a route.');
    }
    for (const agent of props.agents) {
      if (agent.route.length === 0) {
        throw new Error(`ModelGateway: agent ${agent.name} has an empty route; give at least one { region, modelId } target.`);
      }
    }
    if (props.vpcSubnets && !props.vpc) {
      throw new Error('ModelGateway: vpcSubnets needs vpc; set vpc or remove vpcSubnets.');
    }
    const runtimeConfig: GatewayRuntimeConfig = {
      agents: Object.fromEntries(
        props.agents.map((a) => [a.name, { route: a.route, maxTokensPerCall: a.maxTokensPerCall }]),
      ),
    };
    const configJson = JSON.stringify(runtimeConfig);
    const environmentBytes = Buffer.byteLength(GATEWAY_ENV.config) + Buffer.byteLength(configJson);
    if (environmentBytes > MAX_ENVIRONMENT_BYTES - 512) {
      throw new Error(
        `ModelGateway: the route configuration takes ${environmentBytes} bytes of the function environment, ` +
          `above the ${MAX_ENVIRONMENT_BYTES - 512} this construct allows within Lambda's 4 KB limit; share routes between agents or shorten them.`,
      );
    }

    // Create the log group and a role that can write only to it.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'ModelGateway: calls Bedrock for every agent of the stack',
    });
    this.logGroup.grantWrite(this.role);

    // Grant Bedrock on exactly the configured targets.
    this.grantBedrockTargets(props.agents.flatMap((a) => a.route));

    // Create the function from the pre-bundled handler.
    this.function = new lambda.Function(this, 'Function', {
      runtime: latestNodeRuntime(),
      architecture: lambda.Architecture.ARM_64,
      code: lambda.Code.fromAsset(bundledAssetPath('gateway')),
      handler: 'index.handler',
      role: this.role,
      memorySize: props.memorySize ?? 1_024,
      timeout: props.timeout ?? Duration.minutes(2),
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: { [GATEWAY_ENV.config]: configJson, NODE_OPTIONS: '--enable-source-maps' },
      environmentEncryption: props.encryptionKey,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? (props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }) : undefined,
      description: 'ModelGateway: validates each model call and sends it to Bedrock',
    });
    if (props.vpc) {
      Validations.of(this.role).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
        reason: 'A function in a VPC needs the network interface actions of this AWS managed policy, and they cannot be scoped to resources.',
      });
    }
  }

  /**
   * Grants `lambda:InvokeFunction` on the gateway function, the only model
   * access agent tasks get.
   */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    // Only the unqualified ARN: the CDK's own grant adds `<arn>:*`, every
    // version and alias, which the worker never calls.
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['lambda:InvokeFunction'],
      resourceArns: [this.function.functionArn],
    });
  }

  private grantBedrockTargets(targets: ModelTarget[]): void {
    const partition = Aws.PARTITION;
    const account = Stack.of(this).account;
    const resources = new Set<string>();
    const wildcardModels = new Set<string>();
    for (const target of targets) {
      const { profilePrefix, foundationModelId } = parseModelId(target.modelId);
      if (profilePrefix) {
        resources.add(`arn:${partition}:bedrock:${target.region}:${account}:inference-profile/${target.modelId}`);
        // A cross-region profile routes to destination regions AWS chooses
        // and may change, so the model is granted in every region.
        // Source: https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html
        resources.add(`arn:${partition}:bedrock:*::foundation-model/${foundationModelId}`);
        wildcardModels.add(foundationModelId);
      } else {
        resources.add(`arn:${partition}:bedrock:${target.region}::foundation-model/${foundationModelId}`);
      }
    }
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'InvokeConfiguredModels',
        actions: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        resources: [...resources].sort(),
      }),
    );
    for (const model of [...wildcardModels].sort()) {
      Validations.of(this.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${model}]`,
        reason: `The route uses a cross-region inference profile for ${model}, which Bedrock serves from destination regions it chooses; the grant names the one model in every region.`,
      });
    }
  }
}
