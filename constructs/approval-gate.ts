import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { AuditLog } from './audit-log';
import {
  APPROVAL_ENV,
  APPROVALS_TABLE_KEY,
  type ApprovalRuntimeConfig,
  type WorkerApprovalConfig,
} from '../lambda/shared/contracts';
import { bundledAssetPath, latestNodeRuntime } from './assets';

export interface ApprovalGateProps {
  /**
   * Key that encrypts the table, the created topic, the log group and the
   * function's environment. The policy of a given key must let CloudWatch
   * Logs use it, as the AgentStack key's policy does.
   *
   * @default - a new customer managed key with rotation
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Topic on which approvers are notified of each request. A topic
   * encrypted with a key that is not `topic.masterKey` needs a key policy
   * that lets the agent task roles use it.
   *
   * @default - a new topic encrypted with `encryptionKey`
   */
  readonly topic?: sns.ITopic;

  /**
   * Email addresses subscribed to the topic. Each must confirm the email SNS sends.
   *
   * @default - none
   */
  readonly notificationEmails?: string[];

  /**
   * Time a request waits for a decision, from 1 minute to 30 days. A
   * request that is not decided in time expires, which counts as a denial.
   *
   * @default Duration.hours(24)
   */
  readonly expiry?: Duration;

  /**
   * Interval of the sweep that records expired requests, from 1 minute to
   * 1 day. A request can stay pending this long past its deadline, but
   * every read treats it as expired.
   *
   * @default Duration.minutes(5)
   */
  readonly sweepInterval?: Duration;

  /**
   * Principals that may decide requests through the decision URL; see
   * {@link ApprovalGate.grantDecide}.
   *
   * @default - none
   */
  readonly approvers?: iam.IGrantable[];

  /**
   * Policy for the table and a created key when they leave the stack.
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

  /**
   * Audit log that receives a record of every decision and expiry.
   *
   * @default - decisions and expiries are kept in the approvals table only
   */
  readonly auditLog?: AuditLog;
}

const DEFAULT_EXPIRY = Duration.hours(24);
const MIN_EXPIRY = Duration.minutes(1);
const MAX_EXPIRY = Duration.days(30);
const DEFAULT_SWEEP_INTERVAL = Duration.minutes(5);

/**
 * Human approval for high-impact tool calls: the approvals table, the
 * topic approvers are notified on, the decision function behind a function
 * URL with AuthType AWS_IAM, and the scheduled sweep that expires requests
 * left undecided. See `lambda/approval` for the API and
 * `lambda/shared/approvals.ts` for the request states.
 *
 * A function URL rather than API Gateway, because the API has four routes
 * and only IAM callers. The URL costs nothing beyond the function's
 * invocations, and Lambda verifies the SigV4 signature and passes the
 * caller's ARN. `grantDecide` allows InvokeFunction only through the URL,
 * so an approver cannot invoke the function directly with a forged identity.
 * Function URLs are not available in every region:
 * https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html
 */
export class ApprovalGate extends Construct {
  /**
   * Actions the decision function calls: GetItem and UpdateItem on the
   * table to read and decide requests, and Query and Scan on the index of
   * pending requests to list them and find expired ones.
   */
  public static readonly DECIDER_TABLE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:UpdateItem'];
  public static readonly DECIDER_INDEX_ACTIONS = ['dynamodb:Query', 'dynamodb:Scan'];
  /**
   * Actions an agent worker calls on the table: PutItem to store a
   * request, GetItem to read it and UpdateItem to consume an approval or
   * record an expiry.
   */
  public static readonly REQUESTER_TABLE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'];

  public readonly key: kms.IKey;
  public readonly table: dynamodb.Table;
  public readonly topic: sns.ITopic;
  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;
  /** The IAM-authenticated decision endpoint. */
  public readonly functionUrl: lambda.FunctionUrl;
  /** The rule that runs the expiry sweep. */
  public readonly sweepSchedule: events.Rule;
  /** Time a request waits for a decision. */
  public readonly expiry: Duration;

  constructor(scope: Construct, id: string, props: ApprovalGateProps = {}) {
    super(scope, id);

    // Resolve defaults and validate.
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.expiry = props.expiry ?? DEFAULT_EXPIRY;
    const sweepInterval = props.sweepInterval ?? DEFAULT_SWEEP_INTERVAL;
    validateDurations(this.expiry, sweepInterval);

    // Create the key, unless one is given.
    this.key = props.encryptionKey ?? this.createKey(removalPolicy);

    // Create the table: one item per request, a sparse index of pending requests, TTL on expiresAt.
    const { partitionKey, pendingIndex, pendingPartitionKey, pendingSortKey, timeToLive } = APPROVALS_TABLE_KEY;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: timeToLive,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      removalPolicy,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: pendingIndex,
      partitionKey: { name: pendingPartitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: pendingSortKey, type: dynamodb.AttributeType.NUMBER },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    // Create the topic, unless one is given, and subscribe the emails.
    this.topic =
      props.topic ??
      new sns.Topic(this, 'Topic', {
        displayName: 'Agent tool call approvals',
        masterKey: this.key,
        enforceSSL: true,
      });
    (props.notificationEmails ?? []).forEach((email) => this.topic.addSubscription(new subscriptions.EmailSubscription(email)));

    // Create the log group and a role that can write only to it and decide requests.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: this.key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'ApprovalGate: decides and expires approval requests of high-impact tool calls',
    });
    this.logGroup.grantWrite(this.role);
    this.key.grant(this.role, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ApprovalGate.DECIDER_TABLE_ACTIONS, resources: [this.table.tableArn] }),
    );
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ApprovalGate.DECIDER_INDEX_ACTIONS,
        resources: [`${this.table.tableArn}/index/${pendingIndex}`],
      }),
    );

    // Create the function from the pre-bundled handler, behind a URL with IAM auth.
    const config: ApprovalRuntimeConfig = { table: this.table.tableName };
    this.function = new lambda.Function(this, 'Function', {
      runtime: latestNodeRuntime(),
      architecture: lambda.Architecture.ARM_64,
      code: lambda.Code.fromAsset(bundledAssetPath('approval')),
      handler: 'index.handler',
      role: this.role,
      memorySize: 256,
      // Covers a sweep of a few hundred expired requests with the SDK's retries.
      timeout: Duration.minutes(1),
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: {
        [APPROVAL_ENV.config]: Stack.of(this).toJsonString(config),
        ...props.auditLog?.environment(),
      },
      environmentEncryption: this.key,
      description: 'ApprovalGate: lists, approves and denies tool call approvals, and expires unanswered ones',
    });
    props.auditLog?.grantWrite(this.function);
    this.functionUrl = this.function.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });

    // Run the expiry sweep on a schedule.
    this.sweepSchedule = new events.Rule(this, 'SweepSchedule', {
      schedule: events.Schedule.rate(sweepInterval),
      description: 'ApprovalGate: records approval requests still pending after their deadline as expired',
      targets: [new targets.LambdaFunction(this.function)],
    });

    // Grant the approvers.
    (props.approvers ?? []).forEach((approver) => this.grantDecide(approver));
  }

  /** The settings an agent worker needs, for its runtime configuration. */
  get workerConfig(): WorkerApprovalConfig {
    return { table: this.table.tableName, topicArn: this.topic.topicArn, expirySeconds: this.expiry.toSeconds() };
  }

  /**
   * Grants an agent worker what it needs to request approvals: PutItem,
   * GetItem and UpdateItem on the table ({@link ApprovalGate.REQUESTER_TABLE_ACTIONS}),
   * `sns:Publish` on the topic, and use of the table's and the topic's keys.
   */
  grantRequest(grantee: iam.IGrantable): iam.Grant {
    this.key.grant(grantee, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    this.topic.masterKey?.grant(grantee, 'kms:Decrypt', 'kms:GenerateDataKey');
    iam.Grant.addToPrincipal({ grantee, actions: ['sns:Publish'], resourceArns: [this.topic.topicArn] });
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ApprovalGate.REQUESTER_TABLE_ACTIONS,
      resourceArns: [this.table.tableArn],
    });
  }

  /**
   * Lets `grantee` call the decision URL: `lambda:InvokeFunctionUrl`, and
   * `lambda:InvokeFunction` only with `lambda:InvokedViaFunctionUrl`, which
   * Lambda requires for function URLs created since October 2025:
   * https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html
   * A principal outside the stack, such as an `iam.ArnPrincipal`, is
   * allowed in the function's resource policy.
   */
  grantDecide(grantee: iam.IGrantable): iam.Grant {
    return this.function.grantInvokeUrl(grantee);
  }

  /**
   * Lets the decision function send continuation messages to a background
   * agent's task queue, which resume the agent after a decision or an expiry.
   */
  addContinuationQueue(queue: sqs.IQueue): void {
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }));
    queue.encryptionMasterKey?.grant(this.role, 'kms:Decrypt', 'kms:GenerateDataKey');
  }

  private createKey(removalPolicy: RemovalPolicy): kms.Key {
    const key = new kms.Key(this, 'Key', {
      description: 'ApprovalGate: encrypts approval requests, their topic, logs and function environment',
      enableKeyRotation: true,
      removalPolicy,
    });
    // CloudWatch Logs encrypts the function's log group with this key.
    const stack = Stack.of(this);
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchLogs',
        principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${stack.partition}:logs:${stack.region}:${stack.account}:log-group:*` },
        },
      }),
    );
    return key;
  }
}

function validateDurations(expiry: Duration, sweepInterval: Duration): void {
  const expirySeconds = expiry.toSeconds();
  if (expirySeconds < MIN_EXPIRY.toSeconds() || expirySeconds > MAX_EXPIRY.toSeconds()) {
    throw new Error(
      `ApprovalGate: expiry is ${expirySeconds} seconds; set it from ${MIN_EXPIRY.toSeconds()} seconds (1 minute) to ` +
        `${MAX_EXPIRY.toSeconds()} seconds (30 days).`,
    );
  }
  const sweepSeconds = sweepInterval.toSeconds();
  if (sweepSeconds < 60 || sweepSeconds > 86_400 || sweepSeconds % 60 !== 0) {
    throw new Error(
      `ApprovalGate: sweepInterval is ${sweepSeconds} seconds; set it to whole minutes from 1 minute to 1 day, ` +
        'because EventBridge rate schedules count in minutes.',
    );
  }
}
