import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { AgentBudgetConfig, GatewayBudgetConfig, ModelPrice, WindowLimits } from '../lambda/shared/contracts';
import {
  agentBudgetIssues,
  budgetRangeIssues,
  DEFAULT_ALLOW_ANONYMOUS,
  DEFAULT_FAIL_OPEN,
  DEFAULT_LEASE_SECONDS,
  LEASE_SECONDS_RANGE,
  windowLimitIssues,
} from './budget-settings';
import { formatSettingsPath, SettingsIssue } from './gateway-settings';
import { KillSwitch } from './kill-switch';
import { DEFAULT_REGIONAL_PREMIUM_PERCENT, foundationModelOf, priceTarget } from './model-prices';

export interface TokenBudgetProps {
  /**
   * Key that encrypts the ledger table.
   *
   * @default - an AWS managed key
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Policy for the ledger table when it leaves the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Time after which a reservation that was never settled, because its
   * caller crashed, may be reclaimed. It must be whole seconds from 60 to
   * 43200, and longer than the gateway's timeout.
   *
   * @default Duration.seconds(900)
   */
  readonly lease?: Duration;

  /**
   * Serve model calls without a reservation when the ledger cannot be
   * reached. Every such call is counted.
   *
   * @default false
   */
  readonly failOpen?: boolean;

  /**
   * Accept calls without a user identity, counted against the `anonymous`
   * user.
   *
   * @default false
   */
  readonly allowAnonymous?: boolean;

  /**
   * Caps on the whole stack's spend.
   *
   * @default - no stack-wide cap
   */
  readonly stack?: WindowLimits;

  /**
   * Caps and rate limits per agent name.
   *
   * @default - no agent has limits
   */
  readonly agents?: Readonly<Record<string, AgentBudgetConfig>>;

  /**
   * Prices in US dollars per million tokens, keyed by model id or inference
   * profile id. They take precedence over the built-in table in
   * `model-prices.ts` and are used as given, with no regional premium.
   *
   * @default - the built-in table only
   */
  readonly prices?: Readonly<Record<string, ModelPrice>>;

  /**
   * Percentage added to the built-in list price for in-region and
   * geographic-profile calls to models that Bedrock prices higher there
   * than through a `global.` profile, from 0 to 100.
   *
   * @default 10
   */
  readonly regionalPremiumPercent?: number;

  /**
   * Interval at which the kill switch suspends agents whose daily or
   * monthly agent budget is spent and reclaims expired reservations.
   *
   * @default Duration.minutes(5)
   */
  readonly killSwitchSchedule?: Duration;

  /**
   * Retention of the kill switch's log group.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * DynamoDB ledger for per-user, per-agent and stack-wide budgets in tokens
 * and US dollars over daily and monthly windows, with per-minute rate
 * limits. The ModelGateway reserves against it before each model call and
 * settles after it.
 *
 * Items are keyed by `pk` (the scope and window) and `sk`, and carry
 * `expiresAt` in epoch seconds, so DynamoDB deletes closed windows and
 * reclaimed reservations lazily.
 */
export class TokenBudget extends Construct {
  /** Partition key of the ledger. */
  public static readonly PARTITION_KEY = 'pk';
  /** Sort key of the ledger. */
  public static readonly SORT_KEY = 'sk';
  /** TTL attribute of the ledger, in epoch seconds. */
  public static readonly TTL_ATTRIBUTE = 'expiresAt';

  /**
   * Actions the gateway calls on the ledger. TransactWriteItems has no IAM
   * action of its own: IAM authorizes each item in it as PutItem,
   * UpdateItem, DeleteItem or ConditionCheckItem.
   * Source: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
   */
  public static readonly LEDGER_ACTIONS = [
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:UpdateItem',
    // Settling removes the reservation's lease index item inside its transaction.
    'dynamodb:DeleteItem',
    'dynamodb:Query',
    'dynamodb:ConditionCheckItem',
  ];

  public readonly table: dynamodb.Table;
  /** Function that suspends agents whose budget is spent or whose token use is anomalous. */
  public readonly killSwitch: KillSwitch;
  /** Time after which an unsettled reservation may be reclaimed. */
  public readonly lease: Duration;
  public readonly failOpen: boolean;
  public readonly allowAnonymous: boolean;
  public readonly stack?: WindowLimits;
  public readonly agents: Readonly<Record<string, AgentBudgetConfig>>;
  public readonly prices: Readonly<Record<string, ModelPrice>>;
  public readonly regionalPremiumPercent: number;

  constructor(scope: Construct, id: string, props: TokenBudgetProps = {}) {
    super(scope, id);

    // Resolve defaults.
    this.lease = props.lease ?? Duration.seconds(DEFAULT_LEASE_SECONDS);
    this.failOpen = props.failOpen ?? DEFAULT_FAIL_OPEN;
    this.allowAnonymous = props.allowAnonymous ?? DEFAULT_ALLOW_ANONYMOUS;
    this.stack = props.stack;
    this.agents = props.agents ?? {};
    this.prices = props.prices ?? {};
    this.regionalPremiumPercent = props.regionalPremiumPercent ?? DEFAULT_REGIONAL_PREMIUM_PERCENT;

    // Validate.
    this.validate();

    // Create the ledger table.
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: TokenBudget.PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TokenBudget.SORT_KEY, type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: TokenBudget.TTL_ATTRIBUTE,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: props.encryptionKey ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.AWS_MANAGED,
      encryptionKey: props.encryptionKey,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    // Create the kill switch, which writes suspensions to the same table.
    this.killSwitch = new KillSwitch(this, 'KillSwitch', {
      table: this.table,
      config: { table: this.table.tableName, leaseSeconds: this.lease.toSeconds(), agents: { ...this.agents } },
      encryptionKey: props.encryptionKey,
      schedule: props.killSwitchSchedule,
      logRetention: props.logRetention,
    });
  }

  /**
   * Subscribes the kill switch to an SNS topic of CloudWatch alarms, such
   * as token-anomaly alarms. See {@link KillSwitch.addAlarmTopic}.
   */
  addAlarmTopic(topic: sns.ITopic): void {
    this.killSwitch.addAlarmTopic(topic);
  }

  /**
   * Grants the ledger actions the gateway calls
   * ({@link TokenBudget.LEDGER_ACTIONS}: GetItem, PutItem, UpdateItem,
   * DeleteItem, Query and ConditionCheckItem), and `kms:Decrypt`, `kms:Encrypt` and
   * `kms:GenerateDataKey` on the table's customer key when it has one.
   */
  grantLedger(grantee: iam.IGrantable): iam.Grant {
    this.table.encryptionKey?.grant(grantee, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    return this.table.grant(grantee, ...TokenBudget.LEDGER_ACTIONS);
  }

  /**
   * Builds the gateway's budget settings, with a price for each target id.
   * Raises an error naming every target id that has no price.
   *
   * @param targets target ids with the agent that routes to each, for messages.
   */
  gatewayConfig(targets: ReadonlyArray<{ modelId: string; agent: string }>): GatewayBudgetConfig {
    const prices: Record<string, ModelPrice> = {};
    const missing = new Map<string, string[]>();
    for (const { modelId, agent } of targets) {
      const found = priceTarget(modelId, { overrides: this.prices, regionalPremiumPercent: this.regionalPremiumPercent });
      if (found) prices[modelId] = found.price;
      else missing.set(modelId, [...(missing.get(modelId) ?? []), agent]);
    }
    if (missing.size > 0) {
      const list = [...missing].map(([modelId, agents]) => `${modelId} (route of ${[...new Set(agents)].join(', ')})`).join('; ');
      const example = foundationModelOf([...missing.keys()][0]);
      throw new Error(
        `TokenBudget: no price for ${list}. The built-in table does not list these models; ` +
          `add them to prices, such as prices["${example}"] = { inputPerMillion, outputPerMillion, cacheReadPerMillion, cacheWritePerMillion }.`,
      );
    }
    return {
      table: this.table.tableName,
      leaseSeconds: this.lease.toSeconds(),
      failOpen: this.failOpen,
      allowAnonymous: this.allowAnonymous,
      ...(this.stack ? { stack: this.stack } : {}),
      agents: { ...this.agents },
      prices,
    };
  }

  /** Raises one error that lists every invalid prop. */
  private validate(): void {
    const issues: SettingsIssue[] = [];
    if (!Token.isUnresolved(this.lease.toSeconds({ integral: false }))) {
      const seconds = this.lease.toSeconds({ integral: false });
      if (!Number.isInteger(seconds) || seconds < LEASE_SECONDS_RANGE.min || seconds > LEASE_SECONDS_RANGE.max) {
        issues.push({ path: ['lease'], message: `must be whole seconds from ${LEASE_SECONDS_RANGE.min} to ${LEASE_SECONDS_RANGE.max}`, value: `${seconds} s` });
      }
    }
    issues.push(...budgetRangeIssues(this));
    issues.push(...windowLimitIssues(this.stack).map((i) => ({ ...i, path: ['stack', ...i.path] })));
    for (const [name, agent] of Object.entries(this.agents)) {
      issues.push(...agentBudgetIssues(agent).map((i) => ({ ...i, path: ['agents', name, ...i.path] })));
    }
    if (issues.length > 0) {
      const described = issues.map((i) => `${formatSettingsPath('', i.path).slice(1)} ${i.message}${i.value === undefined ? '' : ` (got ${JSON.stringify(i.value)})`}`);
      throw new Error(`TokenBudget: ${described.join('; ')}.`);
    }
  }
}
