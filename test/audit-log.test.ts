import { App, CloudFormationValidatePlugin, Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AUDIT_TABLE_NAME, AuditLog, auditTableColumns, type AuditLogProps } from '../constructs/audit-log';
import { AUDIT_FULL_TEXT_ENV, AUDIT_STREAM_ENV } from '../lambda/shared/audit';
import { AUDIT_RECORD_FIELDS } from '../lambda/shared/audit-record';

type Json = any;

function synth(props: AuditLogProps = {}): { stack: Stack; log: AuditLog; template: Template } {
  const stack = new Stack(new App(), 'Audit', { env: { region: 'us-east-1', account: '111122223333' } });
  const log = new AuditLog(stack, 'AuditLog', props);
  return { stack, log, template: Template.fromStack(stack) };
}

/** Returns the one resource of `type` whose properties match `properties`. */
function onlyResource(template: Template, type: string, properties: Json = {}): Json {
  const found = Object.values(template.findResources(type, { Properties: properties }));
  expect(found).toHaveLength(1);
  return found[0];
}

function recordsBucket(template: Template): Json {
  return onlyResource(template, 'AWS::S3::Bucket', { ObjectLockEnabled: true });
}

describe('AuditLog bucket', () => {
  const { template, stack, log } = synth();

  test('has Object Lock with default retention', () => {
    const bucket = recordsBucket(template);

    expect(bucket.Properties.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 365 } },
    });
  });

  test('is versioned', () => {
    expect(recordsBucket(template).Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
  });

  test('is encrypted with the key', () => {
    const encryption = recordsBucket(template).Properties.BucketEncryption.ServerSideEncryptionConfiguration[0];

    expect(encryption.ServerSideEncryptionByDefault.SSEAlgorithm).toBe('aws:kms');
    expect(encryption.ServerSideEncryptionByDefault.KMSMasterKeyID).toEqual({
      'Fn::GetAtt': [stack.getLogicalId(log.key.node.defaultChild as kms.CfnKey), 'Arn'],
    });
    expect(encryption.BucketKeyEnabled).toBe(true);
  });

  test('blocks public access', () => {
    expect(recordsBucket(template).Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
  });

  test('policy requires TLS 1.2', () => {
    const bucketId = stack.getLogicalId(log.bucket.node.defaultChild as any);
    const policy = onlyResource(template, 'AWS::S3::BucketPolicy', { Bucket: { Ref: bucketId } });
    const denies = policy.Properties.PolicyDocument.Statement.filter((s: Json) => s.Effect === 'Deny');

    expect(denies).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        expect.objectContaining({ Action: 's3:*', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
      ]),
    );
  });

  test('moves records to colder storage', () => {
    const [rule] = recordsBucket(template).Properties.LifecycleConfiguration.Rules;

    expect(rule.Transitions).toEqual([
      { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
      { StorageClass: 'GLACIER_IR', TransitionInDays: 90 },
    ]);
    expect(rule.ExpirationInDays).toBeUndefined();
  });

  test('logs access to the log bucket', () => {
    const logging = recordsBucket(template).Properties.LoggingConfiguration;
    const logBucketId = stack.getLogicalId(log.accessLogBucket.node.defaultChild as any);

    expect(logging).toEqual({ DestinationBucketName: { Ref: logBucketId }, LogFilePrefix: 'audit-records/' });
  });

  test('log bucket has no Object Lock', () => {
    const logBucketId = stack.getLogicalId(log.accessLogBucket.node.defaultChild as any);
    const logBucket = template.toJSON().Resources[logBucketId];

    expect(logBucket.Properties.ObjectLockEnabled).toBeUndefined();
    expect(logBucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
  });

  test('buckets are retained', () => {
    const buckets = Object.values(template.findResources('AWS::S3::Bucket')) as Json[];

    expect(buckets.map((bucket) => bucket.DeletionPolicy)).toEqual(buckets.map(() => 'Retain'));
  });
});

describe('AuditLog options', () => {
  test('compliance mode and days', () => {
    const { template } = synth({ retentionMode: 'COMPLIANCE', retentionDays: 2_555 });

    expect(recordsBucket(template).Properties.ObjectLockConfiguration.Rule.DefaultRetention).toEqual({ Mode: 'COMPLIANCE', Days: 2_555 });
  });

  test('lifecycle days and expiry', () => {
    const { template } = synth({ infrequentAccessAfterDays: 60, instantRetrievalAfterDays: 180, expireAfterDays: 3_650 });
    const [rule] = recordsBucket(template).Properties.LifecycleConfiguration.Rules;

    expect(rule.Transitions.map((t: Json) => t.TransitionInDays)).toEqual([60, 180]);
    expect(rule.ExpirationInDays).toBe(3_650);
  });

  test('given key is used', () => {
    const stack = new Stack(new App(), 'Audit', { env: { region: 'us-east-1', account: '111122223333' } });
    const key = new kms.Key(stack, 'CompanyKey', { enableKeyRotation: true });
    new AuditLog(stack, 'AuditLog', { encryptionKey: key });
    const template = Template.fromStack(stack);

    template.resourceCountIs('AWS::KMS::Key', 1);
    expect(recordsBucket(template).Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.KMSMasterKeyID).toEqual({
      'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'],
    });
  });

  test('removal policy applies to buckets', () => {
    const { template } = synth({ removalPolicy: RemovalPolicy.DESTROY });
    const buckets = Object.values(template.findResources('AWS::S3::Bucket')) as Json[];

    expect(buckets.map((bucket) => bucket.DeletionPolicy)).toEqual(buckets.map(() => 'Delete'));
  });

  test('buffering hints reach the stream', () => {
    const { template } = synth({ bufferingInterval: Duration.seconds(300), bufferingSize: Size.mebibytes(64) });
    const stream = onlyResource(template, 'AWS::KinesisFirehose::DeliveryStream');

    expect(stream.Properties.ExtendedS3DestinationConfiguration.BufferingHints).toEqual({ IntervalInSeconds: 300, SizeInMBs: 64 });
  });

  test.each<[string, AuditLogProps, RegExp]>([
    ['retention days', { retentionDays: 0 }, /retentionDays must be a whole number from 1 to 36500 \(got 0\)/],
    ['retention mode', { retentionMode: 'LEGAL' as never }, /retentionMode must be GOVERNANCE or COMPLIANCE \(got "LEGAL"\)/],
    ['early IA move', { infrequentAccessAfterDays: 10 }, /infrequentAccessAfterDays must be a whole number from 30/],
    ['glacier before IA', { infrequentAccessAfterDays: 60, instantRetrievalAfterDays: 45 }, /instantRetrievalAfterDays must be a whole number from 61/],
    ['expiry inside retention', { retentionDays: 400, expireAfterDays: 200 }, /expireAfterDays must be a whole number from 400/],
    ['buffer too large', { bufferingSize: Size.mebibytes(256) }, /bufferingSize must be a whole number from 1 to 128 \(got 256\)/],
    ['buffer too long', { bufferingInterval: Duration.minutes(20) }, /bufferingInterval must be a whole number from 0 to 900 \(got 1200\)/],
  ])('rejects %s', (_name, props, message) => {
    expect(() => synth(props)).toThrow(message);
  });
});

describe('AuditLog delivery stream', () => {
  const { template, stack, log } = synth();
  const stream = onlyResource(template, 'AWS::KinesisFirehose::DeliveryStream');
  const destination = stream.Properties.ExtendedS3DestinationConfiguration;

  test('takes direct puts', () => {
    expect(stream.Properties.DeliveryStreamType).toBe('DirectPut');
  });

  test('encrypts the stream', () => {
    expect(stream.Properties.DeliveryStreamEncryptionConfigurationInput).toEqual({
      KeyType: 'CUSTOMER_MANAGED_CMK',
      KeyARN: { 'Fn::GetAtt': [stack.getLogicalId(log.key.node.defaultChild as kms.CfnKey), 'Arn'] },
    });
  });

  test('writes to the bucket by day', () => {
    expect(destination.BucketARN).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(log.bucket.node.defaultChild as any), 'Arn'] });
    expect(destination.Prefix).toBe('records/!{timestamp:yyyy/MM/dd}/');
    expect(destination.ErrorOutputPrefix).toBe('errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/');
    expect(destination.CompressionFormat).toBe('GZIP');
  });

  test('encrypts objects with the key', () => {
    expect(destination.EncryptionConfiguration.KMSEncryptionConfig.AWSKMSKeyARN).toEqual({
      'Fn::GetAtt': [stack.getLogicalId(log.key.node.defaultChild as kms.CfnKey), 'Arn'],
    });
  });

  test('delivery role cannot delete', () => {
    const roleId = stack.getLogicalId(log.deliveryRole.node.defaultChild as iam.CfnRole);
    const policy = onlyResource(template, 'AWS::IAM::Policy', { Roles: [{ Ref: roleId }] });
    const actions = policy.Properties.PolicyDocument.Statement.flatMap((s: Json) => [s.Action].flat());

    expect(destination.RoleARN).toEqual({ 'Fn::GetAtt': [roleId, 'Arn'] });
    expect(actions.sort()).toEqual(
      [
        's3:AbortMultipartUpload',
        's3:GetBucketLocation',
        's3:GetObject',
        's3:ListBucket',
        's3:ListBucketMultipartUploads',
        's3:PutObject',
        'kms:Decrypt',
        'kms:GenerateDataKey',
        'logs:PutLogEvents',
      ].sort(),
    );
  });

  test('logs delivery errors', () => {
    expect(destination.CloudWatchLoggingOptions).toMatchObject({
      Enabled: true,
      LogGroupName: { Ref: stack.getLogicalId(log.deliveryLogGroup.node.defaultChild as any) },
    });
  });
});

describe('AuditLog query', () => {
  const { template, log } = synth();
  const table = onlyResource(template, 'AWS::Glue::Table').Properties.TableInput;

  test('table has one column per field', () => {
    const names = table.StorageDescriptor.Columns.map((c: Json) => c.Name);

    expect(names).toEqual(Object.keys(AUDIT_RECORD_FIELDS).map((name) => name.toLowerCase()));
    expect(table.Name).toBe(AUDIT_TABLE_NAME);
  });

  test('column types match the fields', () => {
    const types = Object.fromEntries(auditTableColumns().map((c) => [c.name, c.type]));

    expect(types.time).toBe('string');
    expect(types.costusd).toBe('double');
    expect(types.textomitted).toBe('boolean');
    expect(types.tokens).toBe('struct<input:bigint,output:bigint,total:bigint,cacheread:bigint,cachewrite:bigint>');
  });

  test('reads JSON lines', () => {
    expect(table.StorageDescriptor.SerdeInfo).toEqual({
      SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
      Parameters: { 'case.insensitive': 'true' },
    });
    expect(table.StorageDescriptor.InputFormat).toBe('org.apache.hadoop.mapred.TextInputFormat');
  });

  test('projects the day partitions', () => {
    expect(table.PartitionKeys).toEqual([expect.objectContaining({ Name: 'day', Type: 'string' })]);
    expect(table.Parameters).toMatchObject({
      'projection.enabled': 'true',
      'projection.day.type': 'date',
      'projection.day.format': 'yyyy/MM/dd',
      'projection.day.range': 'NOW-10YEARS,NOW',
      'projection.day.interval': '1',
      'projection.day.interval.unit': 'DAYS',
    });
    expect(JSON.stringify(table.Parameters['storage.location.template'])).toContain('/records/${day}/');
  });

  test('workgroup enforces encrypted results', () => {
    const workGroup = onlyResource(template, 'AWS::Athena::WorkGroup').Properties;

    expect(workGroup.Name).toBe(log.workGroupName);
    expect(workGroup.WorkGroupConfiguration).toMatchObject({
      EnforceWorkGroupConfiguration: true,
      BytesScannedCutoffPerQuery: 10 * 1024 ** 3,
      ResultConfiguration: { EncryptionConfiguration: { EncryptionOption: 'SSE_KMS' } },
    });
  });
});

describe('AuditLog writers', () => {
  test('grantWrite allows puts on the stream only', () => {
    const stack = new Stack(new App(), 'Audit', { env: { region: 'us-east-1', account: '111122223333' } });
    const log = new AuditLog(stack, 'AuditLog');
    const role = new iam.Role(stack, 'Writer', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });

    log.grantWrite(role);

    const policy = onlyResource(Template.fromStack(stack), 'AWS::IAM::Policy', { Roles: [{ Ref: stack.getLogicalId(role.node.defaultChild as iam.CfnRole) }] });
    expect(policy.Properties.PolicyDocument.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: ['firehose:PutRecord', 'firehose:PutRecordBatch'],
        Resource: { 'Fn::GetAtt': [stack.getLogicalId(log.deliveryStream), 'Arn'] },
      },
    ]);
  });

  test('environment names stream and text setting', () => {
    const { log, stack } = synth({ fullText: true });

    expect(stack.resolve(log.environment())).toEqual({
      [AUDIT_STREAM_ENV]: { Ref: stack.getLogicalId(log.deliveryStream) },
      [AUDIT_FULL_TEXT_ENV]: 'true',
    });
  });
});

describe('AuditLog checks', () => {
  test('no aws solutions findings', () => {
    const { log } = synth();
    const report = new AwsSolutionsChecks().validateScope(log);
    const findings = report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`));

    expect(findings).toEqual([]);
  });

  test('cloudformation validation passes', () => {
    const app = new App({ context: { '@aws-cdk/core:validateAgainstDefaultRules': true } });
    const stack = new Stack(app, 'Audit', { env: { region: 'us-east-1', account: '111122223333' } });
    new AuditLog(stack, 'AuditLog');
    const validate = jest.spyOn(CloudFormationValidatePlugin.prototype, 'validate');

    try {
      expect(() => app.synth()).not.toThrow();
      expect(validate).toHaveBeenCalledTimes(1);
    } finally {
      validate.mockRestore();
    }
  });
});

test('template has no unexpected resource types', () => {
  const { template } = synth();
  const types = new Set(Object.values(template.toJSON().Resources).map((r: Json) => r.Type));

  expect([...types].sort()).toEqual(
    [
      'AWS::Athena::WorkGroup',
      'AWS::Glue::Database',
      'AWS::Glue::Table',
      'AWS::IAM::Policy',
      'AWS::IAM::Role',
      'AWS::KMS::Key',
      'AWS::KinesisFirehose::DeliveryStream',
      'AWS::Logs::LogGroup',
      'AWS::Logs::LogStream',
      'AWS::S3::Bucket',
      'AWS::S3::BucketPolicy',
    ].sort(),
  );
  expect(Match).toBeDefined();
});
