import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface AgentMemoryProps {
  /**
   * Key that encrypts the table.
   *
   * @default - an AWS owned key
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Policy for the table when it leaves the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * DynamoDB table for conversation history and summaries.
 *
 * Items are keyed by `pk` (agent, user and session) and `sk` (turn order)
 * and carry `expiresAt` in epoch seconds. DynamoDB deletes expired items
 * lazily, so readers must compare `expiresAt` themselves.
 */
export class AgentMemory extends Construct {
  /** Partition key: `<agent>#<user>#<session>`. */
  public static readonly PARTITION_KEY = 'pk';
  /** Sort key: the order of turns within a session. */
  public static readonly SORT_KEY = 'sk';
  /** TTL attribute, in epoch seconds. */
  public static readonly TTL_ATTRIBUTE = 'expiresAt';

  public readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: AgentMemoryProps = {}) {
    super(scope, id);

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: AgentMemory.PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      sortKey: { name: AgentMemory.SORT_KEY, type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: AgentMemory.TTL_ATTRIBUTE,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: props.encryptionKey
        ? dynamodb.TableEncryption.CUSTOMER_MANAGED
        : dynamodb.TableEncryption.AWS_MANAGED,
      encryptionKey: props.encryptionKey,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /**
   * Actions an agent worker needs on its memory: it reads a session with
   * Query and appends turns with conditional puts inside TransactWriteItems,
   * which IAM authorizes as PutItem.
   * Source: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
   */
  public static readonly WORKER_ACTIONS = ['dynamodb:Query', 'dynamodb:PutItem'];

  /**
   * Grants the reads and writes an agent worker makes
   * ({@link AgentMemory.WORKER_ACTIONS}), and `kms:Decrypt`, `kms:Encrypt`
   * and `kms:GenerateDataKey` on the table's customer key when it has one.
   */
  grantWorkerAccess(grantee: iam.IGrantable): iam.Grant {
    this.table.encryptionKey?.grant(grantee, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    return this.table.grant(grantee, ...AgentMemory.WORKER_ACTIONS);
  }
}
