import { ArnFormat, CfnElement, Duration, Names, RemovalPolicy, Size, Stack, Token, Validations } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { AUDIT_FULL_TEXT_ENV, AUDIT_STREAM_ENV } from '../lambda/shared/audit';
import { AUDIT_RECORD_FIELDS, type AuditFieldSpec } from '../lambda/shared/audit-record';

/**
 * Object Lock retention mode of the audit records. In GOVERNANCE mode a
 * principal with `s3:BypassGovernanceRetention` can still delete a record
 * version early; in COMPLIANCE mode nobody can, the root user included,
 * until its retention ends.
 */
export type AuditRetentionMode = 'GOVERNANCE' | 'COMPLIANCE';

/** Defaults of {@link AuditLogProps}, which the config schema shares. */
export const AUDIT_LOG_DEFAULTS = {
  retentionMode: 'GOVERNANCE' as AuditRetentionMode,
  retentionDays: 365,
  fullText: false,
  infrequentAccessAfterDays: 30,
  instantRetrievalAfterDays: 90,
  bufferingIntervalSeconds: 60,
  bufferingSizeMiB: 5,
  queryableYears: 10,
  maxScannedGiBPerQuery: 10,
};

/** Glue table name of the audit records. */
export const AUDIT_TABLE_NAME = 'audit_records';
/** Partition column of the audit table: the UTC day of the object's oldest record's arrival, as `yyyy/MM/dd`. */
export const AUDIT_PARTITION_COLUMN = 'day';
/** Key prefix of the delivered records, followed by the day. */
const RECORDS_PREFIX = 'records/';
// Firehose evaluates the timestamp with the approximate arrival time of the
// oldest record in each object, in UTC by default, per
// https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html
// so a record that arrived just before midnight may sit in the next day.
const DATA_PREFIX = `${RECORDS_PREFIX}!{timestamp:yyyy/MM/dd}/`;
const ERROR_PREFIX = 'errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/';

export interface AuditLogProps {
  /**
   * Key that encrypts the records in Firehose and in S3, the delivery log
   * group and the Athena results. Its key policy must let CloudWatch Logs
   * use it, as the AgentStack key's policy does.
   *
   * @default - a new key with rotation enabled
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Object Lock mode of the bucket's default retention. COMPLIANCE cannot
   * be shortened or removed by anyone, so try GOVERNANCE first.
   *
   * @default 'GOVERNANCE'
   */
  readonly retentionMode?: AuditRetentionMode;

  /**
   * Days each record version is locked after it is written, from 1 to 36500.
   *
   * @default 365
   */
  readonly retentionDays?: number;

  /**
   * Keep prompt and output text in records beside their hashes. When
   * off, the log contains no prompt or output text at all.
   *
   * @default false
   */
  readonly fullText?: boolean;

  /**
   * Days after which records move to S3 Standard-IA; at least 30, which S3 requires for that class.
   *
   * @default 30
   */
  readonly infrequentAccessAfterDays?: number;

  /**
   * Days after which records move to S3 Glacier Instant Retrieval, later than the move to Standard-IA.
   *
   * @default 90
   */
  readonly instantRetrievalAfterDays?: number;

  /**
   * Days after which records expire. It must be at least `retentionDays`,
   * and S3 keeps a locked version until its retention ends anyway.
   *
   * @default - records never expire
   */
  readonly expireAfterDays?: number;

  /**
   * Policy for the buckets, the key it creates and the log group when they leave the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Time Firehose buffers records before it writes an object, from 0 to 900 seconds.
   *
   * @default Duration.seconds(60)
   */
  readonly bufferingInterval?: Duration;

  /**
   * Bytes Firehose buffers before it writes an object, from 1 to 128 MiB.
   *
   * @default Size.mebibytes(5)
   */
  readonly bufferingSize?: Size;

  /**
   * Bucket for the server access logs of the audit and results buckets.
   * It cannot have Object Lock, because S3 does not deliver access logs to
   * a bucket with Object Lock.
   *
   * @default - a new bucket with SSE-S3 encryption whose logs expire after 365 days
   */
  readonly accessLogBucket?: s3.IBucket;

  /**
   * Years back from today that the table's day partitions reach. Older
   * records stay in the bucket but no query finds them.
   *
   * @default 10
   */
  readonly queryableYears?: number;

  /**
   * Largest amount of data one query of the workgroup may scan before Athena cancels it.
   *
   * @default Size.gibibytes(10)
   */
  readonly maxScannedPerQuery?: Size;

  /**
   * Retention of the Firehose delivery error log group.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;
}

/** Returns the Glue type of one audit record field. JSON keys are matched case-insensitively. */
function glueType(spec: AuditFieldSpec): string {
  switch (spec.type) {
    case 'string':
      return 'string';
    case 'number':
      return 'double';
    case 'boolean':
      return 'boolean';
    case 'tokens':
      return 'struct<input:bigint,output:bigint,total:bigint,cacheread:bigint,cachewrite:bigint>';
  }
}

/** Columns of the audit table, one per audit record field, in lower case as Athena names them. */
export function auditTableColumns(): Array<{ name: string; type: string }> {
  return Object.entries(AUDIT_RECORD_FIELDS).map(([name, spec]) => ({ name: name.toLowerCase(), type: glueType(spec) }));
}

/**
 * Append-only audit log: every decision the gateway and the agents record
 * is one JSON line that a Firehose stream delivers to an S3 bucket with
 * Object Lock, versioning, KMS encryption and lifecycle rules. A Glue table
 * with partition projection and an Athena workgroup let reviewers query it
 * with SQL. Writers get {@link AuditLog.grantWrite} and the environment of
 * {@link AuditLog.environment}.
 */
export class AuditLog extends Construct {
  /** Actions {@link AuditLog.grantWrite} grants, on the stream only. */
  public static readonly WRITE_ACTIONS = ['firehose:PutRecord', 'firehose:PutRecordBatch'];

  public readonly key: kms.IKey;
  /** Bucket of the records, with Object Lock. */
  public readonly bucket: s3.Bucket;
  /** Bucket of the Athena query results, whose objects expire after 30 days. */
  public readonly resultsBucket: s3.Bucket;
  public readonly accessLogBucket: s3.IBucket;
  public readonly deliveryStream: firehose.CfnDeliveryStream;
  /** Role Firehose assumes to write to the bucket; it has no S3 delete action. */
  public readonly deliveryRole: iam.Role;
  public readonly deliveryLogGroup: logs.LogGroup;
  public readonly database: glue.CfnDatabase;
  public readonly table: glue.CfnTable;
  public readonly workGroup: athena.CfnWorkGroup;
  public readonly databaseName: string;
  public readonly workGroupName: string;
  public readonly retentionMode: AuditRetentionMode;
  public readonly retentionDays: number;
  public readonly fullText: boolean;

  constructor(scope: Construct, id: string, props: AuditLogProps = {}) {
    super(scope, id);

    // Resolve defaults.
    this.retentionMode = props.retentionMode ?? AUDIT_LOG_DEFAULTS.retentionMode;
    this.retentionDays = props.retentionDays ?? AUDIT_LOG_DEFAULTS.retentionDays;
    this.fullText = props.fullText ?? AUDIT_LOG_DEFAULTS.fullText;
    const infrequentAccessAfterDays = props.infrequentAccessAfterDays ?? AUDIT_LOG_DEFAULTS.infrequentAccessAfterDays;
    const instantRetrievalAfterDays = props.instantRetrievalAfterDays ?? AUDIT_LOG_DEFAULTS.instantRetrievalAfterDays;
    const queryableYears = props.queryableYears ?? AUDIT_LOG_DEFAULTS.queryableYears;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const bufferingInterval = props.bufferingInterval ?? Duration.seconds(AUDIT_LOG_DEFAULTS.bufferingIntervalSeconds);
    const bufferingSize = props.bufferingSize ?? Size.mebibytes(AUDIT_LOG_DEFAULTS.bufferingSizeMiB);

    // Validate.
    this.validate(props, { infrequentAccessAfterDays, instantRetrievalAfterDays, queryableYears, bufferingInterval, bufferingSize });

    // Create the key, unless one is given.
    this.key =
      props.encryptionKey ??
      new kms.Key(this, 'Key', {
        description: 'AuditLog: encrypts audit records, their delivery logs and Athena results',
        enableKeyRotation: true,
        removalPolicy,
      });

    // Create the buckets: access logs, records with Object Lock, and query results.
    this.accessLogBucket = props.accessLogBucket ?? this.createAccessLogBucket(removalPolicy);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      objectLockEnabled: true,
      // NOTE: that Firehose's writes into a bucket with default retention
      // succeed is not verified against a deployed stream.
      objectLockDefaultRetention:
        this.retentionMode === 'COMPLIANCE'
          ? s3.ObjectLockRetention.compliance(Duration.days(this.retentionDays))
          : s3.ObjectLockRetention.governance(Duration.days(this.retentionDays)),
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogBucket,
      serverAccessLogsPrefix: 'audit-records/',
      // Athena skips objects in Glacier Flexible Retrieval and Deep Archive unless
      // they are restored, per https://docs.aws.amazon.com/athena/latest/ug/querying-glacier.html
      // so records move only to classes that Athena reads in place.
      lifecycleRules: [
        {
          id: 'colder-storage',
          transitions: [
            { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(infrequentAccessAfterDays) },
            { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(instantRetrievalAfterDays) },
          ],
          expiration: props.expireAfterDays === undefined ? undefined : Duration.days(props.expireAfterDays),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy,
    });
    this.resultsBucket = new s3.Bucket(this, 'QueryResults', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogBucket,
      serverAccessLogsPrefix: 'audit-query-results/',
      lifecycleRules: [{ id: 'expire-results', expiration: Duration.days(30), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy,
    });

    // Create the delivery stream, which writes gzipped newline-delimited JSON by day.
    this.deliveryLogGroup = new logs.LogGroup(this, 'DeliveryLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR,
      encryptionKey: this.key,
      removalPolicy,
    });
    const deliveryLogStream = this.deliveryLogGroup.addStream('S3Delivery');
    this.deliveryRole = this.createDeliveryRole(deliveryLogStream);
    this.deliveryStream = new firehose.CfnDeliveryStream(this, 'Stream', {
      deliveryStreamType: 'DirectPut',
      deliveryStreamEncryptionConfigurationInput: { keyType: 'CUSTOMER_MANAGED_CMK', keyArn: this.key.keyArn },
      extendedS3DestinationConfiguration: {
        bucketArn: this.bucket.bucketArn,
        roleArn: this.deliveryRole.roleArn,
        prefix: DATA_PREFIX,
        errorOutputPrefix: ERROR_PREFIX,
        bufferingHints: { intervalInSeconds: bufferingInterval.toSeconds(), sizeInMBs: bufferingSize.toMebibytes() },
        // Athena reads gzip objects by their .gz extension.
        compressionFormat: 'GZIP',
        encryptionConfiguration: { kmsEncryptionConfig: { awskmsKeyArn: this.key.keyArn } },
        cloudWatchLoggingOptions: {
          enabled: true,
          logGroupName: this.deliveryLogGroup.logGroupName,
          logStreamName: deliveryLogStream.logStreamName,
        },
      },
    });
    // The role's policy must exist before Firehose checks it when the stream is created.
    this.deliveryStream.node.addDependency(this.deliveryRole);

    // Create the Glue database and table, with the days projected rather than crawled.
    const stack = Stack.of(this);
    this.databaseName = glueName(this);
    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: stack.account,
      databaseInput: { name: this.databaseName, description: 'Audit records of cdk-agent-stack, one decision per row' },
    });
    const location = `s3://${this.bucket.bucketName}/${RECORDS_PREFIX}`;
    this.table = new glue.CfnTable(this, 'Table', {
      catalogId: stack.account,
      databaseName: this.databaseName,
      tableInput: {
        name: AUDIT_TABLE_NAME,
        description: 'One audit record per row: model calls, budget decisions, guard verdicts, tool calls and approvals',
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: [{ name: AUDIT_PARTITION_COLUMN, type: 'string', comment: 'UTC day the oldest record of the object arrived at Firehose, yyyy/MM/dd' }],
        parameters: {
          classification: 'json',
          compressionType: 'gzip',
          // Partition projection computes the day partitions from this range, per
          // https://docs.aws.amazon.com/athena/latest/ug/partition-projection-kinesis-firehose-example-using-the-date-type.html
          'projection.enabled': 'true',
          [`projection.${AUDIT_PARTITION_COLUMN}.type`]: 'date',
          [`projection.${AUDIT_PARTITION_COLUMN}.format`]: 'yyyy/MM/dd',
          [`projection.${AUDIT_PARTITION_COLUMN}.range`]: `NOW-${queryableYears}YEARS,NOW`,
          [`projection.${AUDIT_PARTITION_COLUMN}.interval`]: '1',
          [`projection.${AUDIT_PARTITION_COLUMN}.interval.unit`]: 'DAYS',
          'storage.location.template': `${location}\${${AUDIT_PARTITION_COLUMN}}/`,
        },
        storageDescriptor: {
          location,
          columns: auditTableColumns(),
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          // The OpenX SerDe matches JSON keys such as requestId to lower-case
          // columns, because case.insensitive defaults to true, per
          // https://docs.aws.amazon.com/athena/latest/ug/openx-json-serde.html
          serdeInfo: { serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe', parameters: { 'case.insensitive': 'true' } },
        },
      },
    });
    this.table.addResourceDependency(this.database);

    // Create the Athena workgroup, which encrypts its results and lets no query override that.
    this.workGroupName = Names.uniqueResourceName(this, { maxLength: 128, separator: '-' });
    const maxScanned = props.maxScannedPerQuery ?? Size.gibibytes(AUDIT_LOG_DEFAULTS.maxScannedGiBPerQuery);
    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: `Queries of the audit records in Glue database ${this.databaseName}`,
      state: 'ENABLED',
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: maxScanned.toBytes(),
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: `s3://${this.resultsBucket.bucketName}/results/`,
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: this.key.keyArn },
          expectedBucketOwner: stack.account,
        },
      },
    });
  }

  /**
   * Grants `firehose:PutRecord` and `firehose:PutRecordBatch` on the
   * delivery stream and nothing else.
   */
  // NOTE: writers get no permission on the key that encrypts the stream. That
  // Firehose needs none from them is not verified against a deployed stream.
  grantWrite(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: AuditLog.WRITE_ACTIONS,
      resourceArns: [this.deliveryStream.attrArn],
    });
  }

  /** Returns the environment variables that point a writer's audit sink at this log. */
  environment(): Record<string, string> {
    return {
      [AUDIT_STREAM_ENV]: this.deliveryStream.ref,
      [AUDIT_FULL_TEXT_ENV]: String(this.fullText),
    };
  }

  private createAccessLogBucket(removalPolicy: RemovalPolicy): s3.Bucket {
    // S3 does not deliver access logs to a bucket with Object Lock, per
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html
    // SSE-S3, as on the load balancer's log bucket, needs no key grant for the
    // log delivery. Object ownership is left to the CDK, which grants log
    // delivery with an ACL or, under the serverAccessLogsUseBucketPolicy flag,
    // a bucket policy.
    // cdk-nag's AwsSolutions-S1 passes a bucket that another bucket of the
    // stack logs to, so this bucket needs no access logs of its own.
    return new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy,
    });
  }

  /**
   * Creates the role Firehose delivers with. It gets the S3 actions the
   * Firehose developer guide lists for an S3 destination, at
   * https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html
   * and no delete action, so that delivery cannot hide a record behind a
   * delete marker. The key is usable only through S3, and the logs only in
   * the one delivery stream.
   */
  private createDeliveryRole(logStream: logs.LogStream): iam.Role {
    const stack = Stack.of(this);
    const role = new iam.Role(this, 'DeliveryRole', {
      assumedBy: new iam.ServicePrincipal('firehose.amazonaws.com', {
        conditions: { StringEquals: { 'sts:ExternalId': stack.account } },
      }),
      description: 'AuditLog: lets Firehose write audit records to the audit bucket',
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
        resources: [this.bucket.bucketArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject'],
        resources: [this.bucket.arnForObjects(`${RECORDS_PREFIX}*`), this.bucket.arnForObjects('errors/*')],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [this.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.${stack.urlSuffix}` } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['logs:PutLogEvents'],
        resources: [
          stack.formatArn({
            service: 'logs',
            resource: 'log-group',
            resourceName: `${this.deliveryLogGroup.logGroupName}:log-stream:${logStream.logStreamName}`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    // cdk-nag names a finding by the bucket's logical id, as in <AuditLogBucket1234.Arn>/records/*.
    const bucketArn = `<${stack.getLogicalId(this.bucket.node.defaultChild as CfnElement)}.Arn>`;
    for (const prefix of [RECORDS_PREFIX, 'errors/']) {
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${bucketArn}/${prefix}*]`,
        reason:
          'Firehose writes one object per buffer under keys it names at delivery time, so the role may put objects under ' +
          'the records/ and errors/ prefixes of the audit bucket only.',
      });
    }
    return role;
  }

  /** Raises one error that lists every invalid prop. */
  private validate(
    props: AuditLogProps,
    resolved: {
      infrequentAccessAfterDays: number;
      instantRetrievalAfterDays: number;
      queryableYears: number;
      bufferingInterval: Duration;
      bufferingSize: Size;
    },
  ): void {
    const problems: string[] = [];
    const wholeIn = (name: string, value: number, min: number, max: number) => {
      if (Token.isUnresolved(value)) return;
      if (!Number.isInteger(value) || value < min || value > max) {
        problems.push(`${name} must be a whole number from ${min} to ${max} (got ${value})`);
      }
    };
    if (this.retentionMode !== 'GOVERNANCE' && this.retentionMode !== 'COMPLIANCE') {
      problems.push(`retentionMode must be GOVERNANCE or COMPLIANCE (got ${JSON.stringify(this.retentionMode)})`);
    }
    wholeIn('retentionDays', this.retentionDays, 1, 36_500);
    wholeIn('infrequentAccessAfterDays', resolved.infrequentAccessAfterDays, 30, 36_500);
    wholeIn('instantRetrievalAfterDays', resolved.instantRetrievalAfterDays, resolved.infrequentAccessAfterDays + 1, 36_500);
    wholeIn('queryableYears', resolved.queryableYears, 1, 100);
    wholeIn('bufferingInterval', resolved.bufferingInterval.toSeconds(), 0, 900);
    wholeIn('bufferingSize', resolved.bufferingSize.toMebibytes(), 1, 128);
    if (props.expireAfterDays !== undefined) {
      wholeIn('expireAfterDays', props.expireAfterDays, Math.max(this.retentionDays, resolved.instantRetrievalAfterDays + 1), 36_500);
    }
    if (problems.length > 0) {
      throw new Error(`AuditLog: ${problems.join('; ')}.`);
    }
  }
}

/** Returns a Glue database name for `scope`: lower-case letters, digits and underscores, unique in the app. */
function glueName(scope: Construct): string {
  return Names.uniqueResourceName(scope, { maxLength: 100, separator: '_' }).toLowerCase().replace(/[^a-z0-9_]/g, '_');
}
