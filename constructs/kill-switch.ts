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
import { Construct } from 'constructs';
import { KILL_SWITCH_ENV, type KillSwitchConfig } from '../lambda/shared/contracts';
import { bundledAssetPath, latestNodeRuntime } from './assets';

export interface KillSwitchProps {
  /** The budget ledger table, which also contains the suspensions. */
  readonly table: dynamodb.ITable;
  /** Table name, lease and agent budgets the function checks. */
  readonly config: KillSwitchConfig;
  /**
   * Key that encrypts the log group and the function's environment.
   *
   * @default - AWS managed keys
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * Interval of the scheduled budget check and reclaim.
   *
   * @default Duration.minutes(5)
   */
  readonly schedule?: Duration;
  /**
   * Retention of the function's log group.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Lambda function that suspends agents in the budget ledger table: on a
 * schedule for a spent agent budget, on CloudWatch alarms for anomalous
 * token use, and on operator commands. See `lambda/kill-switch` for the
 * events it accepts.
 */
export class KillSwitch extends Construct {
  /**
   * Actions the function calls on the ledger table: GetItem to read
   * counters and suspensions, PutItem and DeleteItem to suspend and resume,
   * and Query, UpdateItem and DeleteItem to reclaim expired reservations.
   */
  public static readonly TABLE_ACTIONS = [
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:UpdateItem',
    'dynamodb:DeleteItem',
    'dynamodb:Query',
  ];

  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;
  /** The rule that runs the budget check and the reclaim. */
  public readonly schedule: events.Rule;

  constructor(scope: Construct, id: string, props: KillSwitchProps) {
    super(scope, id);

    // Create the log group and a role that can write only to it.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'KillSwitch: suspends and resumes agents in the budget ledger',
    });
    this.logGroup.grantWrite(this.role);
    props.table.encryptionKey?.grant(this.role, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    props.table.grant(this.role, ...KillSwitch.TABLE_ACTIONS);

    // Create the function from the pre-bundled handler.
    this.function = new lambda.Function(this, 'Function', {
      runtime: latestNodeRuntime(),
      architecture: lambda.Architecture.ARM_64,
      code: lambda.Code.fromAsset(bundledAssetPath('kill-switch')),
      handler: 'index.handler',
      role: this.role,
      memorySize: 256,
      timeout: Duration.minutes(1),
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: { [KILL_SWITCH_ENV.config]: Stack.of(this).toJsonString(props.config) },
      environmentEncryption: props.encryptionKey,
      description: 'KillSwitch: suspends agents whose budget is spent or whose token use is anomalous',
    });

    // Run the budget check and the reclaim on a schedule.
    this.schedule = new events.Rule(this, 'Schedule', {
      schedule: events.Schedule.rate(props.schedule ?? Duration.minutes(5)),
      description: 'KillSwitch: suspends agents whose budget is spent and reclaims expired reservations',
      targets: [new targets.LambdaFunction(this.function)],
    });
  }

  /**
   * Subscribes the function to an SNS topic of CloudWatch alarms. An alarm
   * that enters ALARM suspends the agent named by its `Agent` dimension, or
   * by an alarm name that ends with `agent/<agent>`, until an operator
   * resumes it.
   */
  addAlarmTopic(topic: sns.ITopic): void {
    topic.addSubscription(new subscriptions.LambdaSubscription(this.function));
  }
}
