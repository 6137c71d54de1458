/**
 * The audit log inside AgentStack: the config section reaches the bucket,
 * and the gateway and every agent get the stream's environment and may put
 * records on it, and nothing more.
 */
import * as path from 'path';
import { App, CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AUDIT_FULL_TEXT_ENV, AUDIT_STREAM_ENV } from '../lambda/shared/audit';
import { AgentStack } from '../lib/agent-stack';
import { AgentStackConfigInput, ConfigError, loadConfig, validateConfig } from '../lib/config';

type Json = any;

const ROOT = path.resolve(__dirname, '..');
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

function exampleConfig(): AgentStackConfigInput {
  return JSON.parse(JSON.stringify(loadConfig(path.join(ROOT, 'agent-stack.config.json'))));
}

function synth(config: AgentStackConfigInput): { stack: AgentStack; template: Template; resources: Record<string, Json> } {
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'AgentStack', { config, configDir: ROOT });
  const template = Template.fromStack(stack);
  return { stack, template, resources: template.toJSON().Resources };
}

/** Returns every statement of the policies attached to role `roleId`. */
function statementsOf(resources: Record<string, Json>, roleId: string): Json[] {
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((role: Json) => role.Ref === roleId))
    .flatMap((r) => r.Properties.PolicyDocument.Statement);
}

describe('audit log in the stack', () => {
  const { stack, resources } = synth(exampleConfig());
  const streamId = stack.getLogicalId(stack.audit.deliveryStream);
  const streamArn = { 'Fn::GetAtt': [streamId, 'Arn'] };
  const roleId = (construct: { node: { defaultChild?: unknown } }) => stack.getLogicalId(construct.node.defaultChild as CfnElement);

  test('records use the stack key', () => {
    const bucket = resources[stack.getLogicalId(stack.audit.bucket.node.defaultChild as CfnElement)];
    const keyId = bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.KMSMasterKeyID;

    expect(keyId).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(stack.key.node.defaultChild as CfnElement), 'Arn'] });
  });

  test('gateway gets the stream', () => {
    const fn = resources[stack.getLogicalId(stack.gateway.function.node.defaultChild as CfnElement)];
    const variables = fn.Properties.Environment.Variables;

    expect(variables[AUDIT_STREAM_ENV]).toEqual({ Ref: streamId });
    expect(variables[AUDIT_FULL_TEXT_ENV]).toBe('false');
  });

  test('gateway may put records', () => {
    const statements = statementsOf(resources, roleId(stack.gateway.role));

    expect(statements).toContainEqual({ Effect: 'Allow', Action: ['firehose:PutRecord', 'firehose:PutRecordBatch'], Resource: streamArn });
  });

  test.each(['support', 'research'])('agent %s gets the stream', (name) => {
    const service = stack.agents[name];
    const taskDefinition = resources[stack.getLogicalId(service.taskDefinition.node.defaultChild as CfnElement)];
    const environment = taskDefinition.Properties.ContainerDefinitions[0].Environment;

    expect(environment).toContainEqual({ Name: AUDIT_STREAM_ENV, Value: { Ref: streamId } });
    expect(environment).toContainEqual({ Name: AUDIT_FULL_TEXT_ENV, Value: 'false' });
  });

  test.each(['support', 'research'])('agent %s may put records', (name) => {
    const statements = statementsOf(resources, roleId(stack.agents[name].taskDefinition.taskRole));

    expect(statements).toContainEqual({ Effect: 'Allow', Action: ['firehose:PutRecord', 'firehose:PutRecordBatch'], Resource: streamArn });
  });

  test('no other role may put records', () => {
    const writers = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .filter((r) => JSON.stringify(r.Properties.PolicyDocument).includes('firehose:PutRecord'))
      .flatMap((r) => r.Properties.Roles.map((role: Json) => role.Ref))
      .sort();

    // The gateway, the workers and the approval decision function write records; nothing else does.
    const expected = [
      roleId(stack.gateway.role),
      ...Object.values(stack.agents).map((a) => roleId(a.taskDefinition.taskRole)),
      roleId(stack.approvals!.role),
    ];
    expect(writers).toEqual(expected.sort());
  });

  test('outputs name bucket, database and workgroup', () => {
    const outputs = Template.fromStack(stack).toJSON().Outputs;

    expect(Object.keys(outputs)).toEqual(expect.arrayContaining(['AuditBucketName', 'AuditDatabaseName', 'AuditWorkGroupName']));
  });
});

describe('audit config', () => {
  test('defaults', () => {
    expect(validateConfig(exampleConfig()).audit).toEqual({
      retentionMode: 'GOVERNANCE',
      retentionDays: 365,
      fullText: false,
      infrequentAccessAfterDays: 30,
      instantRetrievalAfterDays: 90,
    });
  });

  test('settings reach the bucket and the environment', () => {
    const config = { ...exampleConfig(), audit: { retentionMode: 'COMPLIANCE' as const, retentionDays: 2_555, fullText: true, expireAfterDays: 3_650 } };
    const { stack, resources } = synth(config);
    const bucket = resources[stack.getLogicalId(stack.audit.bucket.node.defaultChild as CfnElement)].Properties;
    const fn = resources[stack.getLogicalId(stack.gateway.function.node.defaultChild as CfnElement)];

    expect(bucket.ObjectLockConfiguration.Rule.DefaultRetention).toEqual({ Mode: 'COMPLIANCE', Days: 2_555 });
    expect(bucket.LifecycleConfiguration.Rules[0].ExpirationInDays).toBe(3_650);
    expect(fn.Properties.Environment.Variables[AUDIT_FULL_TEXT_ENV]).toBe('true');
  });

  test.each<[string, Json, RegExp]>([
    ['unknown mode', { retentionMode: 'LEGAL_HOLD' }, /\$\.audit\.retentionMode/],
    ['zero retention', { retentionDays: 0 }, /\$\.audit\.retentionDays/],
    ['unknown key', { retention: 30 }, /\$\.audit/],
    ['glacier before IA', { infrequentAccessAfterDays: 60, instantRetrievalAfterDays: 45 }, /\$\.audit\.instantRetrievalAfterDays: must exceed infrequentAccessAfterDays \(60\)/],
    ['expiry inside retention', { retentionDays: 400, expireAfterDays: 200 }, /\$\.audit\.expireAfterDays: must be at least 400/],
  ])('rejects %s', (_name, audit, message) => {
    const config = { ...exampleConfig(), audit };

    expect(() => validateConfig(config)).toThrow(ConfigError);
    expect(() => validateConfig(config)).toThrow(message);
  });
});
