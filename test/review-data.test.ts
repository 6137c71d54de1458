import * as fs from 'fs';
import * as path from 'path';
import { App, CfnElement, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { IConstruct } from 'constructs';
import { exampleConfig, removeTempDirs, reviewOf, synthesize, synthesizeAgentStack } from './support/review';

type Json = any;

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);
}

const ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const PASSWORD = 'correct-horse-battery-staple';

afterAll(removeTempDirs);

describe('data protection of the example stack', () => {
  let json: Json;
  let assembly = '';
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    assembly = synthesizeAgentStack(exampleConfig(), (stack) => {
      ids.key = logicalId(stack.key);
      ids.memory = logicalId(stack.memory.table);
      ids.queue = logicalId(stack.agents.research.queue!);
    });
    ({ json } = await reviewOf(assembly));
  }, 120_000);

  test('memory table uses the stack key', () => {
    const table = json.sections['data-protection'].data.dataStores.find((s: Json) => s.logicalId === ids.memory);
    expect(table).toMatchObject({ atRest: `KMS key ${ids.key}`, encryptedAtRest: true, tlsRequired: true, deletionPolicy: 'Retain' });
  });

  test('task queue uses the stack key', () => {
    const queue = json.sections['data-protection'].data.dataStores.find((s: Json) => s.logicalId === ids.queue);
    expect(queue.atRest).toBe(`KMS key ${ids.key}`);
    expect(queue.tlsRequired).toBe(true);
  });

  test('every log group has a retention', () => {
    const forever = json.sections['data-protection'].data.logGroups.filter((g: Json) => g.retentionDays === null);
    expect(forever).toEqual([]);
  });

  test('no secrets and no unencrypted store', () => {
    expect(json.findings.filter((f: Json) => f.section === 'data-protection' && ['secret', 'unencrypted'].includes(f.kind))).toEqual([]);
  });

  test('audit pipelines match the template', () => {
    const template = JSON.parse(fs.readFileSync(path.join(assembly, 'AgentStack.template.json'), 'utf8'));
    const streams = Object.entries(template.Resources).filter(([, r]) => (r as Json).Type === 'AWS::KinesisFirehose::DeliveryStream');
    const pipelines = json.sections['data-protection'].data.auditPipelines;

    expect(pipelines.map((p: Json) => p.deliveryStream)).toEqual(streams.map(([id]) => id).sort());
    for (const pipeline of pipelines) {
      const retention = template.Resources[pipeline.bucket].Properties.ObjectLockConfiguration?.Rule?.DefaultRetention;
      expect({ mode: pipeline.objectLock.mode, days: pipeline.objectLock.days }).toEqual({ mode: retention?.Mode ?? null, days: retention?.Days ?? null });
    }
  });
});

describe('data protection of a hand-built stack', () => {
  let json: Json;
  let files: Record<string, string>;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const assembly = synthesize((app: App) => {
      const stack = new Stack(app, 'Audit', { env: { region: 'eu-west-1' } });
      const bucket = new s3.Bucket(stack, 'AuditBucket', {
        objectLockEnabled: true,
        objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(400)),
        enforceSSL: true,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      const role = new iam.Role(stack, 'DeliveryRole', { assumedBy: new iam.ServicePrincipal('firehose.amazonaws.com') });
      bucket.grantWrite(role);
      const stream = new firehose.CfnDeliveryStream(stack, 'AuditStream', {
        extendedS3DestinationConfiguration: { bucketArn: bucket.bucketArn, roleArn: role.roleArn },
      });
      const topic = new sns.Topic(stack, 'Plain');
      const fn = new lambda.Function(stack, 'Leaky', {
        runtime: lambda.Runtime.NODEJS_22_X,
        handler: 'index.handler',
        code: lambda.Code.fromInline('exports.handler = async () => 1;'),
        environment: { UPSTREAM_KEY_ID: ACCESS_KEY, DB_PASSWORD: PASSWORD, SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:db', MAX_TOKENS: '100' },
      });
      fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
      const api = new apigwv2.CfnApi(stack, 'ApprovalApi', { name: 'approvals', protocolType: 'HTTP' });
      const authorizer = new apigwv2.CfnAuthorizer(stack, 'ApprovalAuthorizer', {
        apiId: api.ref,
        name: 'jwt',
        authorizerType: 'JWT',
        identitySource: ['$request.header.Authorization'],
        jwtConfiguration: { issuer: 'https://issuer.example.com/', audience: ['approvers'] },
      });
      new apigwv2.CfnRoute(stack, 'ApprovalDecide', { apiId: api.ref, routeKey: 'POST /approvals/{id}', authorizationType: 'JWT', authorizerId: authorizer.ref });
      ids.bucket = logicalId(bucket);
      ids.stream = stack.getLogicalId(stream);
      ids.topic = logicalId(topic);
      ids.fn = logicalId(fn);
    });
    ({ json, files } = await reviewOf(assembly));
  }, 120_000);

  test('audit pipeline with object lock', () => {
    expect(json.sections['data-protection'].data.auditPipelines).toEqual([
      {
        stack: 'Audit',
        deliveryStream: ids.stream,
        bucket: ids.bucket,
        objectLock: { enabled: true, mode: 'COMPLIANCE', days: 400, years: null },
        encryption: "objects take the bucket's default encryption",
      },
    ]);
  });

  test('topic without a key is unencrypted', () => {
    const subjects = json.findings.filter((f: Json) => f.kind === 'unencrypted' && f.logicalId === ids.topic).map((f: Json) => f.subject);
    expect(subjects).toEqual(['AWS::SNS::Topic at rest', 'AWS::SNS::Topic in transit']);
  });

  test('secrets flagged by value and name', () => {
    const secrets = json.sections['data-protection'].data.secrets;
    expect(secrets).toEqual([
      { stack: 'Audit', logicalId: ids.fn, variable: 'DB_PASSWORD', kind: 'name', value: '[REDACTED]' },
      { stack: 'Audit', logicalId: ids.fn, variable: 'UPSTREAM_KEY_ID', kind: 'aws-access-key-id', value: '[REDACTED]' },
    ]);
  });

  test('secret values appear in no output', () => {
    for (const [name, text] of Object.entries(files)) {
      expect({ name, leaks: text.includes(ACCESS_KEY) || text.includes(PASSWORD) }).toEqual({ name, leaks: false });
    }
  });

  test('function without log group keeps logs forever', () => {
    const finding = json.findings.find((f: Json) => f.kind === 'log-retention' && f.logicalId === ids.fn);
    expect(finding).toBeDefined();
  });

  test('open function url is public', () => {
    const urls = json.findings.filter((f: Json) => f.kind === 'public' && f.section === 'resource-policies');
    expect(urls.map((f: Json) => f.explained)).toEqual([false]);
    expect(urls[0].subject).toMatch(/^function URL of </);
  });

  test('approval api authenticates with jwt', () => {
    expect(json.sections['resource-policies'].data.approvalApi).toEqual([
      { stack: 'Audit', logicalId: 'ApprovalDecide', method: 'POST', route: '/approvals/{id}', authorization: 'JWT', detail: 'issuer https://issuer.example.com/, audience approvers' },
    ]);
  });

  test('bucket policy requires tls', () => {
    const bucket = json.sections['data-protection'].data.dataStores.find((s: Json) => s.logicalId === ids.bucket);
    expect(bucket).toMatchObject({ atRest: 'SSE-S3 (S3 default)', tlsRequired: true, deletionPolicy: 'Retain' });
  });
});
