import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { WorkerToolConfig } from '../lambda/shared/contracts';
import { latestNodeRuntime } from './assets';

export interface AgentToolProps {
  /** Tool name the model calls; letters, digits, `_` and `-`. */
  readonly toolName: string;
  /** Description of the tool, as the model reads it. */
  readonly description: string;
  /** JSON Schema of the tool's input; the worker validates arguments against it. */
  readonly inputSchema: Record<string, unknown>;
  /** `high` tools need a person's approval before they run. */
  readonly impact: 'low' | 'high';

  /**
   * TypeScript or JavaScript entry file of a handler to bundle with esbuild.
   * Give exactly one of `entry` and `functionArn`.
   *
   * @default - none
   */
  readonly entry?: string;

  /**
   * ARN of an existing Lambda function that runs the tool. Its permissions
   * and concurrency are managed where it is defined.
   *
   * @default - none
   */
  readonly functionArn?: string;

  /**
   * Timeout of a bundled tool.
   *
   * @default Duration.seconds(30)
   */
  readonly timeout?: Duration;

  /**
   * Memory of a bundled tool in MiB.
   *
   * @default 256
   */
  readonly memorySize?: number;

  /**
   * Reserved concurrency of a bundled tool: the most instances that run at
   * once, so a looping agent cannot exhaust the account's concurrency.
   *
   * @default 10
   */
  readonly maxConcurrency?: number;

  /**
   * Permissions of a bundled tool beyond writing its own logs.
   *
   * @default - none
   */
  readonly policyStatements?: iam.PolicyStatement[];

  /**
   * Reason that `policyStatements` use a `*` in actions or resources. It is recorded
   * as the cdk-nag acknowledgement of each wildcard finding on the tool's
   * role, where reviewers and the review report read it.
   *
   * @default - none, so cdk-nag reports each wildcard as an error
   */
  readonly wildcardReason?: string;

  /**
   * Key that encrypts a bundled tool's log group and environment.
   *
   * @default - AWS managed keys
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Retention of a bundled tool's logs.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/** A tool an agent can call: a Lambda function plus its definition for the model. */
export class AgentTool extends Construct {
  public readonly function: lambda.IFunction;
  public readonly toolName: string;
  public readonly impact: 'low' | 'high';
  private readonly description: string;
  private readonly inputSchema: Record<string, unknown>;

  constructor(scope: Construct, id: string, props: AgentToolProps) {
    super(scope, id);

    if ((props.entry === undefined) === (props.functionArn === undefined)) {
      throw new Error(`AgentTool ${props.toolName}: give exactly one of entry and functionArn.`);
    }
    if (props.functionArn && (props.policyStatements?.length || props.timeout || props.maxConcurrency)) {
      throw new Error(
        `AgentTool ${props.toolName}: policyStatements, timeout and maxConcurrency apply only to bundled tools (entry); set them on the existing function.`,
      );
    }
    this.toolName = props.toolName;
    this.impact = props.impact;
    this.description = props.description;
    this.inputSchema = props.inputSchema;

    if (props.functionArn) {
      // The task role gets an identity grant; a function in another account
      // must also allow the role in its own resource policy.
      this.function = lambda.Function.fromFunctionAttributes(this, 'Function', {
        functionArn: props.functionArn,
        skipPermissions: true,
      });
      return;
    }

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Agent tool ${props.toolName}: writes its own logs and nothing else unless granted`,
    });
    logGroup.grantWrite(role);
    for (const statement of props.policyStatements ?? []) role.addToPrincipalPolicy(statement);
    if (props.wildcardReason !== undefined) {
      this.acknowledgeWildcards(role, props.policyStatements ?? [], props.wildcardReason);
    }

    const fn = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      runtime: latestNodeRuntime(),
      architecture: lambda.Architecture.ARM_64,
      role,
      timeout: props.timeout ?? Duration.seconds(30),
      memorySize: props.memorySize ?? 256,
      reservedConcurrentExecutions: props.maxConcurrency ?? 10,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environmentEncryption: props.encryptionKey,
      description: `Agent tool ${props.toolName}`,
      bundling: { minify: true, sourceMap: false, target: 'node22' },
    });
    this.function = fn;
  }

  /** Tool entry of the worker's runtime configuration. */
  get definition(): WorkerToolConfig {
    return {
      name: this.toolName,
      description: this.description,
      inputSchema: this.inputSchema,
      impact: this.impact,
      functionName: this.function.functionArn,
    };
  }

  /** Grants `lambda:InvokeFunction` on the tool's function. */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    // Only the unqualified ARN: the CDK's own grant adds `<arn>:*`, every
    // version and alias, which the worker never calls.
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['lambda:InvokeFunction'],
      resourceArns: [this.function.functionArn],
    });
  }

  /** Records `reason` as the cdk-nag acknowledgement of each wildcard action and resource in `statements`. */
  private acknowledgeWildcards(role: iam.Role, statements: readonly iam.PolicyStatement[], reason: string): void {
    const findings = new Set<string>();
    for (const statement of statements) {
      statement.actions.filter((action) => action.includes('*')).forEach((action) => findings.add(`Action::${action}`));
      statement.resources.filter((resource) => resource.includes('*')).forEach((resource) => findings.add(`Resource::${resource}`));
    }
    for (const finding of findings) {
      Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    }
  }
}
