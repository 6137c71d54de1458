/**
 * The ApprovalGate construct on synthesized templates: the table's keys,
 * index, TTL, recovery and encryption, the IAM-authenticated function URL,
 * the expiry sweep, the grants of requesters, deciders and the function,
 * cdk-nag's AWS Solutions checks, and its wiring in AgentStack.
 */
import * as path from 'path';
import { App, CfnElement, Duration, PolicyValidationPluginReport, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { ApprovalGate, type ApprovalGateProps } from '../constructs/approval-gate';
import { AuditLog } from '../constructs/audit-log';
import { AgentStack } from '../lib/agent-stack';
import { ConfigError, loadConfig, validateConfig, type AgentStackConfigInput } from '../lib/config';

type Json = any;
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: Json };

const ROOT = path.resolve(__dirname, '..');
const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
// Bundling is skipped because the checks read the template, not the code.
const CONTEXT = { 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:validateAgainstDefaultRules': true };
const APPROVER_ROLE = `arn:aws:iam::${ACCOUNT}:role/Approvers`;

/** Writes `Ref` and `Fn::GetAtt` as `${LogicalId}` text, and joins `Fn::Join`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  return JSON.stringify(value);
}

function asList<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** A company stack with a gate, a requester role, a decider role and a background queue. */
class GateStack {
  readonly app = new App({ context: CONTEXT });
  readonly stack = new Stack(this.app, 'Company', { env: { region: REGION, account: ACCOUNT } });
  readonly gate: ApprovalGate;
  readonly requester = new iam.Role(this.stack, 'Worker', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  readonly decider = new iam.Role(this.stack, 'Approver', { assumedBy: new iam.AccountPrincipal(ACCOUNT) });
  readonly queue: sqs.Queue;
  private cached?: Json;

  constructor(props: ApprovalGateProps = {}) {
    const key = new kms.Key(this.stack, 'QueueKey', { enableKeyRotation: true });
    const encrypted = { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true };
    const deadLetters = new sqs.Queue(this.stack, 'DeadLetters', encrypted);
    this.queue = new sqs.Queue(this.stack, 'Tasks', { ...encrypted, deadLetterQueue: { queue: deadLetters, maxReceiveCount: 3 } });
    this.gate = new ApprovalGate(this.stack, 'Gate', props);
    this.gate.grantRequest(this.requester);
    this.gate.grantDecide(this.decider);
    this.gate.addContinuationQueue(this.queue);
  }

  get template(): Json {
    this.cached ??= Template.fromStack(this.stack).toJSON();
    return this.cached;
  }

  id(construct: IConstruct): string {
    return this.stack.getLogicalId(construct.node.defaultChild as CfnElement);
  }

  resource(construct: IConstruct): Json {
    return this.template.Resources[this.id(construct)];
  }

  ofType(type: string): Array<[string, Json]> {
    return Object.entries<Json>(this.template.Resources).filter(([, resource]) => resource.Type === type);
  }

  statementsOf(role: iam.IRole): Statement[] {
    const roleId = this.id(role);
    return this.ofType('AWS::IAM::Policy')
      .filter(([, policy]) => asList(policy.Properties.Roles).some((ref: Json) => ref.Ref === roleId))
      .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement);
  }

  actionsOn(role: iam.IRole, resource: string): string[] {
    return this.statementsOf(role)
      .filter((statement) => asList(statement.Resource).some((arn) => flatten(arn) === resource))
      .flatMap((statement) => asList(statement.Action));
  }
}

describe('approval gate audit', () => {
  const app = new App({ context: CONTEXT });
  const stack = new Stack(app, 'Audited', { env: { region: REGION, account: ACCOUNT } });
  const auditLog = new AuditLog(stack, 'Audit', {});
  const gate = new ApprovalGate(stack, 'Gate', { auditLog });
  const template = Template.fromStack(stack).toJSON();
  const functionProps = template.Resources[stack.getLogicalId(gate.function.node.defaultChild as CfnElement)].Properties;
  const streamId = stack.getLogicalId(auditLog.deliveryStream);

  test('function names the audit stream', () => {
    expect(functionProps.Environment.Variables.AGENT_AUDIT_STREAM).toEqual({ Ref: streamId });
  });

  test('function may write to the stream', () => {
    const roleId = stack.getLogicalId(gate.role.node.defaultChild as CfnElement);
    const statements: Statement[] = Object.values<Json>(template.Resources)
      .filter((resource) => resource.Type === 'AWS::IAM::Policy')
      .filter((policy) => asList(policy.Properties.Roles).some((ref: Json) => ref.Ref === roleId))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement);
    const onStream = statements.filter((statement) =>
      asList(statement.Resource).some((arn) => flatten(arn) === `\${${streamId}.Arn}`),
    );

    expect(onStream.flatMap((statement) => asList(statement.Action)).sort()).toEqual(
      ['firehose:PutRecord', 'firehose:PutRecordBatch'],
    );
  });
});

describe('approval gate table', () => {
  const synth = new GateStack();
  const table = () => synth.resource(synth.gate.table).Properties;

  test('keyed by approval id', () => {
    expect(table().KeySchema).toEqual([{ AttributeName: 'approvalId', KeyType: 'HASH' }]);
  });

  test('indexes pending requests by agent and deadline', () => {
    expect(table().GlobalSecondaryIndexes).toEqual([
      {
        IndexName: 'pending-by-agent',
        KeySchema: [
          { AttributeName: 'pendingAgent', KeyType: 'HASH' },
          { AttributeName: 'deadlineMs', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
  });

  test('expires items by ttl', () => {
    expect(table().TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
  });

  test('has point-in-time recovery', () => {
    expect(table().PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  test('is encrypted with the gate key', () => {
    expect(table().SSESpecification).toMatchObject({ SSEEnabled: true, SSEType: 'KMS' });
    expect(flatten(table().SSESpecification.KMSMasterKeyId)).toBe(`\${${synth.id(synth.gate.key)}.Arn}`);
  });

  test('is retained by default', () => {
    expect(synth.resource(synth.gate.table).DeletionPolicy).toBe('Retain');
  });

  test('created key rotates', () => {
    expect(synth.resource(synth.gate.key).Properties.EnableKeyRotation).toBe(true);
  });
});

describe('approval gate endpoint', () => {
  const synth = new GateStack();
  const functionArn = () => `\${${synth.id(synth.gate.function)}.Arn}`;

  test('function url uses iam auth', () => {
    const urls = synth.ofType('AWS::Lambda::Url');

    expect(urls).toHaveLength(1);
    expect(urls[0][1].Properties.AuthType).toBe('AWS_IAM');
    expect(flatten(urls[0][1].Properties.TargetFunctionArn)).toBe(functionArn());
  });

  test('decider may invoke only through the url', () => {
    const statements = synth.statementsOf(synth.decider);

    expect(statements).toEqual([
      expect.objectContaining({
        Action: 'lambda:InvokeFunctionUrl',
        Condition: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
      }),
      expect.objectContaining({ Action: 'lambda:InvokeFunction', Condition: { Bool: { 'lambda:InvokedViaFunctionUrl': true } } }),
    ]);
  });

  test('outside approver in resource policy', () => {
    const outside = new GateStack({ approvers: [new iam.ArnPrincipal(APPROVER_ROLE)] });
    const permissions = outside
      .ofType('AWS::Lambda::Permission')
      .map(([, permission]) => permission.Properties)
      .filter((properties) => properties.Principal === APPROVER_ROLE);

    expect(permissions).toEqual([
      expect.objectContaining({ Action: 'lambda:InvokeFunctionUrl', FunctionUrlAuthType: 'AWS_IAM' }),
      expect.objectContaining({ Action: 'lambda:InvokeFunction', InvokedViaFunctionUrl: true }),
    ]);
  });

  test('sweep runs every five minutes', () => {
    const rule = synth.resource(synth.gate.sweepSchedule).Properties;

    expect(rule.ScheduleExpression).toBe('rate(5 minutes)');
    expect(flatten(rule.Targets[0].Arn)).toBe(functionArn());
  });

  test('function environment is encrypted', () => {
    const properties = synth.resource(synth.gate.function).Properties;

    expect(flatten(properties.KmsKeyArn)).toBe(`\${${synth.id(synth.gate.key)}.Arn}`);
    expect(JSON.parse(flatten(properties.Environment.Variables.AGENT_APPROVAL_CONFIG).replace(/\$\{[^}]+\}/g, 'x'))).toEqual({ table: 'x' });
  });

  test('created topic is encrypted and requires tls', () => {
    const topics = synth.ofType('AWS::SNS::Topic');
    const policies = synth.ofType('AWS::SNS::TopicPolicy').flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement);

    expect(topics).toHaveLength(1);
    expect(flatten(topics[0][1].Properties.KmsMasterKeyId)).toBe(`\${${synth.id(synth.gate.key)}.Arn}`);
    expect(policies).toContainEqual(expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }));
  });
});

describe('approval gate grants', () => {
  const synth = new GateStack();
  const tableArn = () => `\${${synth.id(synth.gate.table)}.Arn}`;

  test('requester writes only the table', () => {
    expect(synth.actionsOn(synth.requester, tableArn())).toEqual(['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem']);
    const indexAccess = synth.statementsOf(synth.requester).filter((s) => asList(s.Resource).some((arn) => flatten(arn).includes('/index/')));
    expect(indexAccess).toEqual([]);
  });

  test('requester publishes to the topic', () => {
    expect(synth.actionsOn(synth.requester, `\${${synth.id(synth.gate.topic)}}`)).toEqual(['sns:Publish']);
  });

  test('requester uses the gate key', () => {
    expect(synth.actionsOn(synth.requester, `\${${synth.id(synth.gate.key)}.Arn}`)).toEqual(
      expect.arrayContaining(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey']),
    );
  });

  test('function decides without writing new items', () => {
    expect(synth.actionsOn(synth.gate.role, tableArn())).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    expect(synth.actionsOn(synth.gate.role, `${tableArn()}/index/pending-by-agent`)).toEqual(['dynamodb:Query', 'dynamodb:Scan']);
  });

  test('function sends continuations to the queue', () => {
    expect(synth.actionsOn(synth.gate.role, `\${${synth.id(synth.queue)}.Arn}`)).toEqual(['sqs:SendMessage']);
  });

  test('no statement allows every resource', () => {
    const roles = [synth.gate.role, synth.requester, synth.decider];
    const wildcard = roles.flatMap((role) => synth.statementsOf(role)).filter((s) => asList(s.Resource).includes('*'));

    expect(wildcard).toEqual([]);
  });
});

describe('approval gate props', () => {
  test('expiry default is a day', () => {
    expect(new GateStack().gate.workerConfig.expirySeconds).toBe(86_400);
  });

  test('given topic is used', () => {
    const app = new App({ context: CONTEXT });
    const stack = new Stack(app, 'Company', { env: { region: REGION, account: ACCOUNT } });
    const topic = new sns.Topic(stack, 'Alarms', { masterKey: new kms.Key(stack, 'AlarmKey', { enableKeyRotation: true }) });
    const gate = new ApprovalGate(stack, 'Gate', { topic });

    expect(gate.topic).toBe(topic);
    expect(Object.keys(Template.fromStack(stack).findResources('AWS::SNS::Topic'))).toEqual([
      stack.getLogicalId(topic.node.defaultChild as CfnElement),
    ]);
  });

  test('emails subscribe to the topic', () => {
    const synth = new GateStack({ notificationEmails: ['approvers@example.com'] });

    expect(synth.ofType('AWS::SNS::Subscription').map(([, s]) => s.Properties)).toEqual([
      expect.objectContaining({ Protocol: 'email', Endpoint: 'approvers@example.com' }),
    ]);
  });

  test.each([
    [{ expiry: Duration.seconds(30) }, /expiry is 30 seconds/],
    [{ expiry: Duration.days(31) }, /expiry is 2678400 seconds/],
    [{ sweepInterval: Duration.seconds(90) }, /sweepInterval is 90 seconds/],
  ] as Array<[ApprovalGateProps, RegExp]>)('rejects %o', (props, message) => {
    expect(() => new GateStack(props)).toThrow(message);
  });
});

describe('approval gate nag', () => {
  const synth = new GateStack({ approvers: [new iam.ArnPrincipal(APPROVER_ROLE)] });
  const nag = new AwsSolutionsChecks(synth.app);
  Validations.of(synth.app).addPlugins(nag);
  let reports: PolicyValidationPluginReport[] = [];
  let synthError: unknown;

  beforeAll(() => {
    const spy = jest.spyOn(nag, 'validate');
    try {
      synth.app.synth();
    } catch (error) {
      synthError = error;
    }
    reports = spy.mock.results.map((result) => result.value);
  });

  test('has no findings', () => {
    expect(synthError).toBeUndefined();
    expect(reports).toHaveLength(1);
    expect(reports.flatMap((report) => report.violations.map((v) => v.ruleName))).toEqual([]);
  });
});

describe('approval gate in AgentStack', () => {
  const config = loadConfig(path.join(ROOT, 'agent-stack.config.json'));

  function synthStack(input: AgentStackConfigInput = config) {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new AgentStack(app, 'AgentStack', { config: input, configDir: ROOT });
    return { stack, template: Template.fromStack(stack).toJSON() };
  }

  function workerConfigOf(template: Json, agent: string): Json {
    const [, taskDefinition] = Object.entries<Json>(template.Resources).find(
      ([id, resource]) => resource.Type === 'AWS::ECS::TaskDefinition' && id.startsWith(`agent${agent}`),
    )!;
    const variable = taskDefinition.Properties.ContainerDefinitions[0].Environment.find((e: Json) => e.Name === 'AGENT_WORKER_CONFIG');
    return JSON.parse(flatten(variable.Value));
  }

  const example = synthStack();

  test('gate exists for a high-impact tool', () => {
    expect(example.stack.approvals).toBeDefined();
  });

  test('every worker gets the approval settings', () => {
    const gate = example.stack.approvals!;
    const tableRef = `\${${example.stack.getLogicalId(gate.table.node.defaultChild as CfnElement)}}`;
    const alarmTopicRef = `\${${example.stack.getLogicalId(example.stack.observability.alarmTopic.node.defaultChild as CfnElement)}}`;

    for (const agent of ['support', 'research']) {
      expect(workerConfigOf(example.template, agent).approvals).toEqual({ table: tableRef, topicArn: alarmTopicRef, expirySeconds: 86_400 });
    }
  });

  test('background queue receives continuations', () => {
    const gate = example.stack.approvals!;
    const queueId = example.stack.getLogicalId(example.stack.agents.research.queue!.node.defaultChild as CfnElement);
    const roleId = example.stack.getLogicalId(gate.role.node.defaultChild as CfnElement);
    const statements = Object.values<Json>(example.template.Resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && asList(r.Properties.Roles).some((ref: Json) => ref.Ref === roleId))
      .flatMap((r) => r.Properties.PolicyDocument.Statement);

    expect(statements).toContainEqual(expect.objectContaining({ Action: 'sqs:SendMessage', Resource: { 'Fn::GetAtt': [queueId, 'Arn'] } }));
  });

  test('outputs the url and table name', () => {
    expect(Object.keys(example.template.Outputs)).toEqual(expect.arrayContaining(['ApprovalUrl', 'ApprovalsTableName']));
  });

  test('no gate without high-impact tools', () => {
    const lowOnly = {
      ...config,
      agents: config.agents.map((agent) => ({ ...agent, tools: agent.tools.filter((tool) => tool.impact === 'low') })),
    };
    const { stack, template } = synthStack(lowOnly);

    expect(stack.approvals).toBeUndefined();
    expect(workerConfigOf(template, 'support').approvals).toBeUndefined();
    expect(Object.values<Json>(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Url')).toEqual([]);
  });

  test('config rejects a user as approver', () => {
    const input = { ...config, approvals: { approverRoleArns: [`arn:aws:iam::${ACCOUNT}:user/alice`] } };
    let error: unknown;
    try {
      validateConfig(input);
    } catch (caught) {
      error = caught;
    }

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((issue) => issue.path)).toEqual(['$.approvals.approverRoleArns[0]']);
  });

  test('config sets expiry, approvers and emails', () => {
    const { stack, template } = synthStack({
      ...config,
      approvals: { expiryMinutes: 30, approverRoleArns: [APPROVER_ROLE], notificationEmails: ['approvers@example.com'] },
    });
    const gate = stack.approvals!;
    const gateTopicRef = `\${${stack.getLogicalId(gate.topic.node.defaultChild as CfnElement)}}`;
    const permissions = Object.values<Json>(template.Resources).filter(
      (r) => r.Type === 'AWS::Lambda::Permission' && r.Properties.Principal === APPROVER_ROLE,
    );

    expect(workerConfigOf(template, 'support').approvals).toMatchObject({ expirySeconds: 1_800, topicArn: gateTopicRef });
    expect(gate.topic).not.toBe(stack.observability.alarmTopic);
    expect(permissions.map((p) => p.Properties.Action).sort()).toEqual(['lambda:InvokeFunction', 'lambda:InvokeFunctionUrl']);
  });
});
