import { compareText } from '../assembly';
import { Block, code, renderBlocks, toned } from '../blocks';
import { asList, CfnValue, flatten, referencedId } from '../cfn';
import { acknowledgedFinding } from '../explain';
import { describeExplanation, Finding, sortFindings } from '../findings';
import { parseStatements } from '../iam';
import type { ResourceModel, ReviewModel, StackModel } from '../model';
import { findSecrets, REDACTED } from '../secrets';
import type { ReviewSection, SectionResult } from '../section';
import { SECTION_ORDER } from './order';

/** Encryption at rest and in transit per data store, log retention, removal policies, the audit pipeline and secrets in environment variables. */
export const dataProtectionSection: ReviewSection = {
  id: 'data-protection',
  title: 'Data protection',
  order: SECTION_ORDER.dataProtection,
  build: ({ model }) => buildDataProtection(model),
};

/** Encryption of one data store. */
interface DataStore {
  readonly stack: StackModel;
  readonly resource: ResourceModel;
  readonly atRest: string;
  /** False when the template leaves the store unencrypted at rest. */
  readonly encryptedAtRest: boolean;
  readonly inTransit: string;
  /** False when the store accepts requests without TLS. */
  readonly tlsRequired: boolean;
  /** cdk-nag rule ids that cover the at-rest and in-transit findings of this type. */
  readonly nagRules: { readonly atRest: string[]; readonly inTransit: string[] };
}

const DATA_STORE_TYPES = [
  'AWS::DynamoDB::Table',
  'AWS::DynamoDB::GlobalTable',
  'AWS::S3::Bucket',
  'AWS::SQS::Queue',
  'AWS::SNS::Topic',
  'AWS::Logs::LogGroup',
  'AWS::KinesisFirehose::DeliveryStream',
  'AWS::Kinesis::Stream',
  'AWS::RDS::DBInstance',
  'AWS::RDS::DBCluster',
  'AWS::EFS::FileSystem',
];

function buildDataProtection(model: ReviewModel): SectionResult {
  const stores = model.stacks.flatMap((stack) => stack.ofType(...DATA_STORE_TYPES).map((resource) => describeStore(stack, resource)));
  stores.sort((a, b) => compareText(a.stack.name, b.stack.name) || compareText(a.resource.type, b.resource.type) || compareText(a.resource.logicalId, b.resource.logicalId));
  const findings: Finding[] = [];
  const add = (kind: Finding['kind'], stack: StackModel, resource: ResourceModel, subject: string, message: string, explanation: Finding['explanation']) =>
    findings.push({ kind, section: 'data-protection', stack: stack.name, logicalId: resource.logicalId, path: resource.path, subject, message, explanation });

  for (const store of stores) {
    if (!store.encryptedAtRest) {
      add('unencrypted', store.stack, store.resource, `${store.resource.type} at rest`, `Stored data is not encrypted: ${store.atRest}.`, acknowledgedFinding(model, [store.resource.path], 'unencrypted', store.nagRules.atRest));
    }
    if (!store.tlsRequired) {
      add('unencrypted', store.stack, store.resource, `${store.resource.type} in transit`, `Requests without TLS are accepted: ${store.inTransit}.`, acknowledgedFinding(model, [store.resource.path], 'unencrypted', store.nagRules.inTransit));
    }
  }

  const logGroups = model.stacks.flatMap((stack) => logRetention(stack));
  for (const group of logGroups.filter((g) => g.days === undefined)) {
    add('log-retention', group.stack, group.resource, group.name, 'Logs are kept forever.', acknowledgedFinding(model, [group.resource.path], 'log-retention'));
  }

  const retained = stores.filter((s) => s.resource.type !== 'AWS::Logs::LogGroup');
  for (const store of retained.filter((s) => removalOf(s.resource) === 'Delete')) {
    add('removal', store.stack, store.resource, store.resource.type, 'The data is deleted when the resource is removed from the stack or replaced.', acknowledgedFinding(model, [store.resource.path], 'removal'));
  }

  const secrets = findSecrets(model);
  for (const secret of secrets) {
    add(
      'secret',
      model.stack(secret.stack)!,
      secret.resource,
      `${secret.variable}=${REDACTED}`,
      `The environment variable holds a plaintext value that looks like a secret (${secret.kind === 'name' ? 'by its name' : secret.kind}); move it to Secrets Manager or SSM Parameter Store.`,
      undefined,
    );
  }

  const pipelines = model.stacks.flatMap((stack) => auditPipelines(stack));
  const buckets = model.stacks.flatMap((stack) => stack.ofType('AWS::S3::Bucket').map((resource) => ({ stack, resource, lock: objectLockOf(resource) })));
  const sorted = sortFindings(findings);

  const blocks: Block[] = [
    { kind: 'heading', text: 'Findings' },
    {
      kind: 'table',
      headers: ['Kind', 'Resource', 'Subject', 'Reason'],
      rows: sorted.map((f) => [f.kind, `${f.stack}/${f.logicalId}`, code(f.subject), toned(describeExplanation(f), f.explanation ? 'ok' : f.kind === 'removal' || f.kind === 'log-retention' ? 'muted' : 'bad')]),
      empty: 'No unencrypted data stores, logs kept forever, deleted data or secrets in environment variables.',
    },
    { kind: 'heading', text: 'Data stores' },
    {
      kind: 'table',
      headers: ['Stack', 'Resource', 'Type', 'At rest', 'In transit', 'On removal'],
      rows: stores.map((s) => [
        s.stack.name,
        s.resource.logicalId,
        s.resource.type,
        toned(s.atRest, s.encryptedAtRest ? undefined : 'bad'),
        toned(s.inTransit, s.tlsRequired ? undefined : 'bad'),
        removalOf(s.resource),
      ]),
      empty: 'No data stores.',
    },
    { kind: 'heading', text: 'Audit pipeline' },
    {
      kind: 'table',
      headers: ['Stack', 'Delivery stream', 'Destination bucket', 'Object Lock', 'Encryption'],
      rows: pipelines.map((p) => [p.stack.name, p.stream.logicalId, p.bucket?.logicalId ?? code(p.bucketArn), p.bucket ? describeObjectLock(objectLockOf(p.bucket)) : 'bucket not in this template', p.encryption]),
      empty: 'No Firehose delivery stream to S3, so no audit pipeline in this assembly.',
    },
    { kind: 'heading', text: 'Object Lock of buckets' },
    {
      kind: 'table',
      headers: ['Stack', 'Bucket', 'Object Lock'],
      rows: buckets.map((b) => [b.stack.name, b.resource.logicalId, describeObjectLock(b.lock)]),
      empty: 'No S3 buckets.',
    },
    { kind: 'heading', text: 'Log retention' },
    {
      kind: 'table',
      headers: ['Stack', 'Log group', 'Retention', 'Key'],
      rows: logGroups.map((g) => [g.stack.name, g.name, toned(g.days === undefined ? 'never expires' : `${g.days} days`, g.days === undefined ? 'bad' : undefined), g.key]),
      empty: 'No log groups.',
    },
    { kind: 'heading', text: 'Secrets in environment variables' },
    {
      kind: 'table',
      headers: ['Stack', 'Resource', 'Variable', 'Looks like', 'Value'],
      rows: secrets.map((s) => [s.stack, s.resource.logicalId, code(s.variable), s.kind === 'name' ? 'a secret, by its name' : s.kind, REDACTED]),
      empty: 'No plaintext environment values that look like secrets.',
    },
  ];

  return {
    findings: sorted,
    data: {
      dataStores: stores.map((s) => ({
        stack: s.stack.name,
        logicalId: s.resource.logicalId,
        type: s.resource.type,
        atRest: s.atRest,
        encryptedAtRest: s.encryptedAtRest,
        inTransit: s.inTransit,
        tlsRequired: s.tlsRequired,
        deletionPolicy: removalOf(s.resource),
        updateReplacePolicy: s.resource.updateReplacePolicy ?? 'Delete',
      })),
      auditPipelines: pipelines.map((p) => ({
        stack: p.stack.name,
        deliveryStream: p.stream.logicalId,
        bucket: p.bucket?.logicalId ?? p.bucketArn,
        objectLock: p.bucket ? objectLockOf(p.bucket) : null,
        encryption: p.encryption,
      })),
      buckets: buckets.map((b) => ({ stack: b.stack.name, logicalId: b.resource.logicalId, objectLock: b.lock })),
      logGroups: logGroups.map((g) => ({ stack: g.stack.name, logicalId: g.resource.logicalId, name: g.name, retentionDays: g.days ?? null, key: g.key })),
      secrets: secrets.map((s) => ({ stack: s.stack, logicalId: s.resource.logicalId, variable: s.variable, kind: s.kind, value: REDACTED })),
    },
    ...renderBlocks(blocks),
  };
}

/** Returns the DeletionPolicy, which CloudFormation takes as Delete when it is absent. */
function removalOf(resource: ResourceModel): string {
  return resource.deletionPolicy ?? 'Delete';
}

function keyName(stack: StackModel, key: CfnValue): string {
  const target = stack.resource(referencedId(key));
  return target ? `KMS key ${target.logicalId}` : `KMS key ${flatten(key)}`;
}

/**
 * Returns whether the resource policy of a bucket, queue or topic denies
 * requests without TLS (`aws:SecureTransport` false).
 */
function deniesInsecureTransport(stack: StackModel, resource: ResourceModel, policyType: string, targetProperty: string): boolean {
  return stack.ofType(policyType).some((policy) => {
    const targets = asList(policy.properties[targetProperty] as CfnValue[]).map(referencedId);
    if (!targets.includes(resource.logicalId)) return false;
    return parseStatements(policy.properties.PolicyDocument).some((s) => {
      if (s.effect !== 'Deny') return false;
      const bool = (s.condition?.Bool ?? {}) as Record<string, unknown>;
      return String(bool['aws:SecureTransport']) === 'false';
    });
  });
}

function describeStore(stack: StackModel, resource: ResourceModel): DataStore {
  const p = resource.properties;
  const base = { stack, resource, nagRules: { atRest: [] as string[], inTransit: [] as string[] } };
  switch (resource.type) {
    case 'AWS::DynamoDB::Table':
    case 'AWS::DynamoDB::GlobalTable': {
      // DynamoDB encrypts every table at rest, with an AWS owned key unless the table names another, and serves only HTTPS.
      // Source: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/EncryptionAtRest.html
      const sse = p.SSESpecification as { SSEEnabled?: boolean; KMSMasterKeyId?: CfnValue } | undefined;
      let atRest = 'AWS owned key (DynamoDB default)';
      if (sse?.SSEEnabled) atRest = sse.KMSMasterKeyId !== undefined ? keyName(stack, sse.KMSMasterKeyId) : 'AWS managed key (aws/dynamodb)';
      return { ...base, atRest, encryptedAtRest: true, inTransit: 'HTTPS only (DynamoDB endpoints)', tlsRequired: true };
    }
    case 'AWS::S3::Bucket': {
      // S3 encrypts every new object with SSE-S3 when the bucket names no other default, since 2023-01-05.
      // Source: https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingServerSideEncryption.html
      const rule = asList((p.BucketEncryption as { ServerSideEncryptionConfiguration?: unknown[] } | undefined)?.ServerSideEncryptionConfiguration)[0] as
        | { ServerSideEncryptionByDefault?: { SSEAlgorithm?: string; KMSMasterKeyID?: CfnValue } }
        | undefined;
      const byDefault = rule?.ServerSideEncryptionByDefault;
      const atRest = !byDefault
        ? 'SSE-S3 (S3 default)'
        : byDefault.SSEAlgorithm === 'AES256'
          ? 'SSE-S3'
          : `SSE-KMS with ${byDefault.KMSMasterKeyID !== undefined ? keyName(stack, byDefault.KMSMasterKeyID) : 'the AWS managed key (aws/s3)'}`;
      const tls = deniesInsecureTransport(stack, resource, 'AWS::S3::BucketPolicy', 'Bucket');
      return {
        ...base,
        nagRules: { atRest: [], inTransit: ['AwsSolutions-S10'] },
        atRest,
        encryptedAtRest: true,
        inTransit: tls ? 'TLS required by the bucket policy' : 'the bucket policy does not deny requests without TLS',
        tlsRequired: tls,
      };
    }
    case 'AWS::SQS::Queue': {
      // A queue that sets neither a KMS key nor SqsManagedSseEnabled is encrypted with SSE-SQS.
      // Source: https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_sqs-readme.html
      const encrypted = p.KmsMasterKeyId !== undefined || p.SqsManagedSseEnabled !== false;
      const atRest = p.KmsMasterKeyId !== undefined ? keyName(stack, p.KmsMasterKeyId) : encrypted ? 'SSE-SQS' : 'not encrypted (SqsManagedSseEnabled is false)';
      const tls = deniesInsecureTransport(stack, resource, 'AWS::SQS::QueuePolicy', 'Queues');
      return {
        ...base,
        nagRules: { atRest: ['AwsSolutions-SQS2'], inTransit: ['AwsSolutions-SQS4'] },
        atRest,
        encryptedAtRest: encrypted,
        inTransit: tls ? 'TLS required by the queue policy' : 'the queue policy does not deny requests without TLS',
        tlsRequired: tls,
      };
    }
    case 'AWS::SNS::Topic': {
      const tls = deniesInsecureTransport(stack, resource, 'AWS::SNS::TopicPolicy', 'Topics');
      return {
        ...base,
        nagRules: { atRest: ['AwsSolutions-SNS2'], inTransit: ['AwsSolutions-SNS3'] },
        atRest: p.KmsMasterKeyId !== undefined ? keyName(stack, p.KmsMasterKeyId) : 'not encrypted (no KmsMasterKeyId)',
        encryptedAtRest: p.KmsMasterKeyId !== undefined,
        inTransit: tls ? 'TLS required by the topic policy' : 'the topic policy does not deny requests without TLS',
        tlsRequired: tls,
      };
    }
    case 'AWS::Logs::LogGroup':
      // CloudWatch Logs encrypts all log data at rest; a KMS key replaces its own key.
      // Source: https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
      return { ...base, atRest: p.KmsKeyId !== undefined ? keyName(stack, p.KmsKeyId) : 'CloudWatch Logs service key', encryptedAtRest: true, inTransit: 'HTTPS only (CloudWatch Logs endpoints)', tlsRequired: true };
    case 'AWS::KinesisFirehose::DeliveryStream': {
      const input = p.DeliveryStreamEncryptionConfigurationInput as { KeyType?: string; KeyARN?: CfnValue } | undefined;
      let atRest = 'buffered without server-side encryption';
      if (input) atRest = input.KeyARN !== undefined ? keyName(stack, input.KeyARN) : (input.KeyType ?? 'AWS_OWNED_CMK');
      return { ...base, atRest, encryptedAtRest: input !== undefined || p.DeliveryStreamType === 'KinesisStreamAsSource', inTransit: 'HTTPS only (Firehose endpoints)', tlsRequired: true };
    }
    case 'AWS::Kinesis::Stream': {
      const encryption = p.StreamEncryption as { KeyId?: CfnValue } | undefined;
      return { ...base, atRest: encryption ? keyName(stack, encryption.KeyId) : 'not encrypted (no StreamEncryption)', encryptedAtRest: encryption !== undefined, inTransit: 'HTTPS only (Kinesis endpoints)', tlsRequired: true };
    }
    case 'AWS::EFS::FileSystem':
      return { ...base, nagRules: { atRest: ['AwsSolutions-EFS1'], inTransit: [] }, atRest: p.Encrypted === true ? (p.KmsKeyId !== undefined ? keyName(stack, p.KmsKeyId) : 'AWS managed key') : 'not encrypted', encryptedAtRest: p.Encrypted === true, inTransit: 'set by each mount', tlsRequired: true };
    default:
      // RDS instances and clusters.
      return {
        ...base,
        nagRules: { atRest: ['AwsSolutions-RDS2'], inTransit: [] },
        atRest: p.StorageEncrypted === true ? (p.KmsKeyId !== undefined ? keyName(stack, p.KmsKeyId) : 'AWS managed key (aws/rds)') : 'not encrypted (StorageEncrypted is not true)',
        encryptedAtRest: p.StorageEncrypted === true,
        inTransit: 'set by the database parameter group',
        tlsRequired: true,
      };
  }
}

interface LogRetention {
  readonly stack: StackModel;
  readonly resource: ResourceModel;
  readonly name: string;
  readonly days?: number;
  readonly key: string;
}

function logRetention(stack: StackModel): LogRetention[] {
  const groups = stack.ofType('AWS::Logs::LogGroup').map((resource) => {
    const p = resource.properties;
    return {
      stack,
      resource,
      name: p.LogGroupName === undefined ? resource.logicalId : flatten(p.LogGroupName),
      days: typeof p.RetentionInDays === 'number' ? p.RetentionInDays : undefined,
      key: p.KmsKeyId !== undefined ? keyName(stack, p.KmsKeyId) : 'CloudWatch Logs service key',
    };
  });
  // A function without a log group of its own writes to /aws/lambda/<name>, which Lambda creates without a retention.
  const implicit = stack
    .ofType('AWS::Lambda::Function')
    .filter((fn) => {
      const configured = (fn.properties.LoggingConfig as { LogGroup?: unknown } | undefined)?.LogGroup;
      if (configured !== undefined) return false;
      return !stack.ofType('AWS::Logs::LogGroup', 'Custom::LogRetention').some((g) => JSON.stringify(g.properties).includes(`"Ref":"${fn.logicalId}"`));
    })
    .map((fn) => ({ stack, resource: fn, name: `/aws/lambda/<${fn.logicalId}> (created by Lambda)`, days: undefined, key: 'CloudWatch Logs service key' }));
  return [...groups, ...implicit];
}

interface ObjectLock {
  readonly enabled: boolean;
  readonly mode: string | null;
  readonly days: number | null;
  readonly years: number | null;
}

function objectLockOf(bucket: ResourceModel): ObjectLock {
  const p = bucket.properties;
  const retention = (p.ObjectLockConfiguration as { Rule?: { DefaultRetention?: { Mode?: string; Days?: number; Years?: number } } } | undefined)?.Rule?.DefaultRetention;
  return {
    enabled: p.ObjectLockEnabled === true || (p.ObjectLockConfiguration as { ObjectLockEnabled?: string } | undefined)?.ObjectLockEnabled === 'Enabled',
    mode: retention?.Mode ?? null,
    days: retention?.Days ?? null,
    years: retention?.Years ?? null,
  };
}

function describeObjectLock(lock: ObjectLock): string {
  if (!lock.enabled) return 'off';
  if (!lock.mode) return 'on, no default retention';
  const period = lock.days !== null ? `${lock.days} days` : `${lock.years} years`;
  return `${lock.mode}, ${period}`;
}

interface AuditPipeline {
  readonly stack: StackModel;
  readonly stream: ResourceModel;
  readonly bucket?: ResourceModel;
  readonly bucketArn: string;
  readonly encryption: string;
}

function auditPipelines(stack: StackModel): AuditPipeline[] {
  return stack.ofType('AWS::KinesisFirehose::DeliveryStream').flatMap((stream) => {
    const p = stream.properties;
    const destination = (p.ExtendedS3DestinationConfiguration ?? p.S3DestinationConfiguration) as
      | { BucketARN?: CfnValue; EncryptionConfiguration?: { KMSEncryptionConfig?: { AWSKMSKeyARN?: CfnValue }; NoEncryptionConfig?: string } }
      | undefined;
    if (!destination) return [];
    const kms = destination.EncryptionConfiguration?.KMSEncryptionConfig?.AWSKMSKeyARN;
    return [
      {
        stack,
        stream,
        bucket: stack.resource(referencedId(destination.BucketARN)),
        bucketArn: flatten(destination.BucketARN),
        encryption: kms !== undefined ? `objects written with ${keyName(stack, kms)}` : "objects take the bucket's default encryption",
      },
    ];
  });
}
