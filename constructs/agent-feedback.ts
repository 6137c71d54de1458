import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { FEEDBACK_ENV, FEEDBACK_PATH, FEEDBACK_TABLE_KEY, type FeedbackRuntimeConfig } from '../lambda/shared/contracts';
import { authenticateAction, runtimeAuthConfig, type EndpointAuth } from './agent-endpoint';
import { bundledAssetPath, latestNodeRuntime } from './assets';

export interface AgentFeedbackProps {
  /** Listener of the agents' load balancer, which gets the `POST /feedback` rule. */
  readonly listener: elbv2.IApplicationListener;

  /** Authentication of callers; pass the agents' `AgentEndpoint.auth`, so that both authenticate alike. */
  readonly auth: EndpointAuth;

  /**
   * ARN of the load balancer that owns `listener`. With cognito or oidc
   * auth the function accepts only user claims that this load balancer
   * signed, because every load balancer in a region signs with keys from
   * the same public endpoint.
   *
   * @default - the ARN of `listener.loadBalancer` when `listener` is an `ApplicationListener`; required otherwise for cognito and oidc
   */
  readonly loadBalancerArn?: string;

  /** Names of the agents, realtime and background, whose responses users may rate. */
  readonly agentNames: readonly string[];

  /**
   * Key that encrypts the table, the log group and the function's
   * environment. Its key policy must let CloudWatch Logs use it, as the
   * AgentStack key's policy does.
   */
  readonly encryptionKey: kms.IKey;

  /**
   * Priority of the listener rule, unique among the listener's rules.
   * AgentEndpoint gives its agent rules multiples of 10, starting at 10.
   *
   * @default 5
   */
  readonly priority?: number;

  /**
   * Policy for the table when it leaves the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Retention of the function's log group.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

const DEFAULT_PRIORITY = 5;

/**
 * Registers a function in a Lambda target group. Unlike `LambdaTarget`, it
 * relies on an invoke permission limited to load balancers of the stack's
 * account. The Elastic Load Balancing guide recommends that condition, see
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html
 * A condition on the target group's ARN would make the group and the
 * permission depend on each other, because CloudFormation registers the
 * function when it creates the group.
 */
class AccountScopedLambdaTarget implements elbv2.IApplicationLoadBalancerTarget {
  constructor(
    private readonly fn: lambda.IFunction,
    private readonly permission: lambda.CfnPermission,
  ) {}

  attachToApplicationTargetGroup(targetGroup: elbv2.IApplicationTargetGroup): elbv2.LoadBalancerTargetProps {
    targetGroup.node.addDependency(this.permission);
    return { targetType: elbv2.TargetType.LAMBDA, targetJson: { id: this.fn.functionArn } };
  }
}

/**
 * The user feedback endpoint: `POST /feedback` on the agents' load balancer
 * reaches a Lambda function that stores one score per user and rated
 * request in a DynamoDB table and writes the `Satisfaction` metric. The
 * body names the agent, so the route serves realtime and background agents
 * alike. See `lambda/feedback` for the request format.
 */
export class AgentFeedback extends Construct {
  /** Partition key: the request id of the rated response. */
  public static readonly PARTITION_KEY = FEEDBACK_TABLE_KEY.partitionKey;
  /** Sort key: the verified user id. */
  public static readonly SORT_KEY = FEEDBACK_TABLE_KEY.sortKey;
  /** Actions the function calls on the table: one conditional PutItem per score. */
  public static readonly TABLE_ACTIONS = ['dynamodb:PutItem'];

  public readonly table: dynamodb.Table;
  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;
  public readonly targetGroup: elbv2.ApplicationTargetGroup;
  public readonly rule: elbv2.ApplicationListenerRule;

  constructor(scope: Construct, id: string, props: AgentFeedbackProps) {
    super(scope, id);

    // Validate.
    if (props.agentNames.length === 0) {
      throw new Error('AgentFeedback: agentNames is empty; list the agents whose responses users may rate.');
    }
    const runtimeAuth = runtimeAuthConfig(props.auth, Stack.of(this).region, this.signerArn(props));

    // Create the table.
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: AgentFeedback.PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      sortKey: { name: AgentFeedback.SORT_KEY, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.encryptionKey,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Create the log group and a role that can write only to it and put items in the table.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'AgentFeedback: stores user scores of agent responses',
    });
    this.logGroup.grantWrite(this.role);
    props.encryptionKey.grant(this.role, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    this.table.grant(this.role, ...AgentFeedback.TABLE_ACTIONS);

    // Create the function from the pre-bundled handler.
    const config: FeedbackRuntimeConfig = { table: this.table.tableName, agents: [...props.agentNames], auth: runtimeAuth };
    this.function = new lambda.Function(this, 'Function', {
      runtime: latestNodeRuntime(),
      architecture: lambda.Architecture.ARM_64,
      code: lambda.Code.fromAsset(bundledAssetPath('feedback')),
      handler: 'index.handler',
      role: this.role,
      memorySize: 256,
      // Covers a key set fetch of at most 5 s and the put with the SDK's retries.
      timeout: Duration.seconds(15),
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: { [FEEDBACK_ENV.config]: Stack.of(this).toJsonString(config) },
      environmentEncryption: props.encryptionKey,
      description: 'AgentFeedback: stores user scores of agent responses and writes the Satisfaction metric',
    });

    // Route POST /feedback to the function, behind the agents' authentication.
    const permission = new lambda.CfnPermission(this, 'LoadBalancerInvoke', {
      action: 'lambda:InvokeFunction',
      functionName: this.function.functionArn,
      principal: 'elasticloadbalancing.amazonaws.com',
      sourceAccount: Stack.of(this).account,
    });
    this.targetGroup = new elbv2.ApplicationTargetGroup(this, 'Targets', {
      targets: [new AccountScopedLambdaTarget(this.function, permission)],
    });
    // Other methods on /feedback get the listener's default 404, so the
    // function's own 405 reaches only callers that invoke it directly.
    this.rule = new elbv2.ApplicationListenerRule(this, 'Rule', {
      listener: props.listener,
      priority: props.priority ?? DEFAULT_PRIORITY,
      conditions: [
        elbv2.ListenerCondition.pathPatterns([FEEDBACK_PATH]),
        elbv2.ListenerCondition.httpRequestMethods(['POST']),
      ],
      action: authenticateAction(props.auth, elbv2.ListenerAction.forward([this.targetGroup])),
    });
  }

  /** Returns the ARN that must sign user claims, or raises when cognito or oidc auth has none. */
  private signerArn(props: AgentFeedbackProps): string | undefined {
    if (props.auth.type !== 'cognito' && props.auth.type !== 'oidc') return props.loadBalancerArn;
    const arn =
      props.loadBalancerArn ??
      (props.listener instanceof elbv2.ApplicationListener ? props.listener.loadBalancer.loadBalancerArn : undefined);
    if (arn === undefined) {
      throw new Error(
        `AgentFeedback: auth type ${props.auth.type} needs loadBalancerArn, because the function must reject user claims ` +
          'that another load balancer signed; set it to the ARN of the load balancer that owns the listener.',
      );
    }
    return arn;
  }
}
