/**
 * The AgentFeedback construct on synthesized templates: the listener rule
 * and its authenticate action, the Lambda target and its invoke
 * permission, the table's encryption and recovery, the function's IAM
 * actions and runtime configuration, and cdk-nag's AWS Solutions checks.
 */
import { App, CfnElement, PolicyValidationPluginReport, RemovalPolicy, SecretValue, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AgentEndpoint, EndpointAuth } from '../constructs/agent-endpoint';
import { AgentFeedback, AgentFeedbackProps } from '../constructs/agent-feedback';
import { AgentNetwork } from '../constructs/agent-network';
import { latestNodeRuntime } from '../constructs/assets';

type Json = any;

const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const CERTIFICATE_ARN = `arn:aws:acm:${REGION}:${ACCOUNT}:certificate/2b1f0c1e-0d5e-4b1a-9c4b-1c7f0e9a1b2c`;
// Bundling is skipped because the checks read the template, not the code.
const CONTEXT = { 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:validateAgainstDefaultRules': true };

const JWT_AUTH: EndpointAuth = {
  type: 'jwt',
  issuer: 'https://issuer.example.com/',
  audience: ['agents'],
  jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
};

function cognitoAuth(stack: Stack): EndpointAuth {
  const userPool = cognito.UserPool.fromUserPoolArn(stack, 'Users', `arn:aws:cognito-idp:${REGION}:${ACCOUNT}:userpool/${REGION}_AbCdEf123`);
  return {
    type: 'cognito',
    userPool,
    userPoolClient: cognito.UserPoolClient.fromUserPoolClientId(stack, 'UsersClient', '4p1example0client0id0abcd'),
    userPoolDomain: cognito.UserPoolDomain.fromDomainName(stack, 'UsersDomain', 'agents-login'),
  };
}

const OIDC_AUTH: EndpointAuth = {
  type: 'oidc',
  issuer: 'https://login.example.com/',
  authorizationEndpoint: 'https://login.example.com/authorize',
  tokenEndpoint: 'https://login.example.com/token',
  userInfoEndpoint: 'https://login.example.com/userinfo',
  clientId: 'agents',
  clientSecret: SecretValue.unsafePlainText('test-only-secret'),
};

/** Writes `Ref` and `Fn::GetAtt` as `${LogicalId}` text, and joins `Fn::Join`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  return JSON.stringify(value);
}

/** A small company stack: network, agent endpoint, key and the feedback endpoint on its listener. */
class FeedbackStack {
  readonly app: App;
  readonly stack: Stack;
  readonly key: kms.Key;
  readonly endpoint: AgentEndpoint;
  readonly feedback: AgentFeedback;

  constructor(auth: (stack: Stack) => EndpointAuth = () => JWT_AUTH, props: Partial<AgentFeedbackProps> = {}) {
    this.app = new App({ context: CONTEXT });
    this.stack = new Stack(this.app, 'Company', { env: { region: REGION, account: ACCOUNT } });
    this.key = new kms.Key(this.stack, 'Key', { enableKeyRotation: true });
    const network = new AgentNetwork(this.stack, 'Network', { availabilityZones: [`${REGION}a`, `${REGION}b`] });
    const endpointAuth = auth(this.stack);
    this.endpoint = new AgentEndpoint(this.stack, 'Endpoint', {
      vpc: network.vpc,
      auth: endpointAuth,
      certificateArn: CERTIFICATE_ARN,
    });
    this.feedback = new AgentFeedback(this.stack, 'Feedback', {
      listener: this.endpoint.listener,
      auth: this.endpoint.auth,
      agentNames: ['support', 'nightly-report'],
      encryptionKey: this.key,
      ...props,
    });
  }

  template(): Template {
    return Template.fromStack(this.stack);
  }

  resources(): Record<string, { Type: string; Properties: Json; DeletionPolicy?: string; DependsOn?: string[] }> {
    return this.template().toJSON().Resources;
  }

  logicalId(construct: { node: { defaultChild?: unknown } }): string {
    return this.stack.getLogicalId(construct.node.defaultChild as CfnElement);
  }

  resource(construct: { node: { defaultChild?: unknown } }): Json {
    return this.resources()[this.logicalId(construct)];
  }

  runtimeConfig(): Json {
    const fn = this.resource(this.feedback.function).Properties;
    return JSON.parse(flatten(fn.Environment.Variables.AGENT_FEEDBACK_CONFIG));
  }

  /** Collects the statements of the feedback role's attached policies. */
  roleStatements(): Json[] {
    const roleId = this.logicalId(this.feedback.role);
    return Object.values(this.resources())
      .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((role: Json) => role.Ref === roleId))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement);
  }
}

function actionsOf(statement: Json): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

describe('listener rule', () => {
  const synth = new FeedbackStack();
  const rule = () => synth.resource(synth.feedback.rule).Properties;

  test('matches path and method', () => {
    expect(rule().Conditions).toEqual(
      expect.arrayContaining([
        { Field: 'path-pattern', PathPatternConfig: { Values: ['/feedback'] } },
        { Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['POST'] } },
      ]),
    );
    expect(rule().Conditions).toHaveLength(2);
  });

  test('default priority', () => {
    expect(rule().Priority).toBe(5);
  });

  test('on the endpoint listener', () => {
    expect(rule().ListenerArn).toEqual({ Ref: synth.logicalId(synth.endpoint.listener) });
  });

  test('jwt forwards directly', () => {
    expect(rule().Actions).toEqual([
      { Type: 'forward', TargetGroupArn: { Ref: synth.logicalId(synth.feedback.targetGroup) } },
    ]);
  });

  test('custom priority', () => {
    const custom = new FeedbackStack(() => JWT_AUTH, { priority: 42 });
    expect(custom.resource(custom.feedback.rule).Properties.Priority).toBe(42);
  });

  test('cognito authenticates first', () => {
    const cognitoSynth = new FeedbackStack(cognitoAuth);
    const actions = cognitoSynth.resource(cognitoSynth.feedback.rule).Properties.Actions;

    expect(actions).toHaveLength(2);
    expect(actions[0]).toMatchObject({
      Type: 'authenticate-cognito',
      Order: 1,
      AuthenticateCognitoConfig: {
        UserPoolArn: `arn:aws:cognito-idp:${REGION}:${ACCOUNT}:userpool/${REGION}_AbCdEf123`,
        UserPoolClientId: '4p1example0client0id0abcd',
        UserPoolDomain: 'agents-login',
        OnUnauthenticatedRequest: 'deny',
      },
    });
    expect(actions[1]).toMatchObject({ Type: 'forward', Order: 2 });
  });

  test('oidc authenticates first', () => {
    const oidcSynth = new FeedbackStack(() => OIDC_AUTH);
    const actions = oidcSynth.resource(oidcSynth.feedback.rule).Properties.Actions;

    expect(actions[0]).toMatchObject({
      Type: 'authenticate-oidc',
      Order: 1,
      AuthenticateOidcConfig: {
        Issuer: 'https://login.example.com/',
        ClientId: 'agents',
        OnUnauthenticatedRequest: 'deny',
      },
    });
    expect(actions[1]).toMatchObject({ Type: 'forward', Order: 2 });
  });
});

describe('lambda target', () => {
  const synth = new FeedbackStack();

  test('target group holds the function', () => {
    const group = synth.resource(synth.feedback.targetGroup);
    expect(group.Properties.TargetType).toBe('lambda');
    expect(group.Properties.Targets).toEqual([
      { Id: { 'Fn::GetAtt': [synth.logicalId(synth.feedback.function), 'Arn'] } },
    ]);
  });

  test('invoke permission scoped to account', () => {
    const permissions = synth.template().findResources('AWS::Lambda::Permission', {
      Properties: { Principal: 'elasticloadbalancing.amazonaws.com' },
    });
    expect(Object.values(permissions)).toHaveLength(1);
    const [permission] = Object.values(permissions) as Json[];
    expect(permission.Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [synth.logicalId(synth.feedback.function), 'Arn'] },
      Principal: 'elasticloadbalancing.amazonaws.com',
      SourceAccount: ACCOUNT,
    });
  });

  test('target group waits for permission', () => {
    const permissionId = Object.keys(
      synth.template().findResources('AWS::Lambda::Permission', { Properties: { Principal: 'elasticloadbalancing.amazonaws.com' } }),
    )[0];
    expect(synth.resource(synth.feedback.targetGroup).DependsOn).toContain(permissionId);
  });
});

describe('feedback table', () => {
  const synth = new FeedbackStack();
  const table = () => synth.resource(synth.feedback.table);

  test('keys', () => {
    expect(table().Properties.KeySchema).toEqual([
      { AttributeName: 'requestId', KeyType: 'HASH' },
      { AttributeName: 'userId', KeyType: 'RANGE' },
    ]);
  });

  test('encrypted with the given key', () => {
    expect(table().Properties.SSESpecification).toEqual({
      SSEEnabled: true,
      SSEType: 'KMS',
      KMSMasterKeyId: { 'Fn::GetAtt': [synth.logicalId(synth.key), 'Arn'] },
    });
  });

  test('point-in-time recovery', () => {
    expect(table().Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  test('retained by default', () => {
    expect(table().DeletionPolicy).toBe('Retain');
  });

  test('removal policy prop', () => {
    const destroy = new FeedbackStack(() => JWT_AUTH, { removalPolicy: RemovalPolicy.DESTROY });
    expect(destroy.resource(destroy.feedback.table).DeletionPolicy).toBe('Delete');
  });
});

describe('function', () => {
  const synth = new FeedbackStack();
  const fn = () => synth.resource(synth.feedback.function).Properties;

  test('newest node runtime', () => {
    expect(fn().Runtime).toBe(latestNodeRuntime().name);
  });

  test('environment encrypted', () => {
    expect(fn().KmsKeyArn).toEqual({ 'Fn::GetAtt': [synth.logicalId(synth.key), 'Arn'] });
  });

  test('log group with retention', () => {
    const group = synth.resource(synth.feedback.logGroup).Properties;
    expect(group.RetentionInDays).toBe(90);
    expect(group.KmsKeyId).toEqual({ 'Fn::GetAtt': [synth.logicalId(synth.key), 'Arn'] });
    expect(fn().LoggingConfig.LogGroup).toEqual({ Ref: synth.logicalId(synth.feedback.logGroup) });
  });

  test('log retention prop', () => {
    const custom = new FeedbackStack(() => JWT_AUTH, { logRetention: logs.RetentionDays.ONE_YEAR });
    expect(custom.resource(custom.feedback.logGroup).Properties.RetentionInDays).toBe(365);
  });

  test('jwt runtime config', () => {
    expect(synth.runtimeConfig()).toEqual({
      table: `\${${synth.logicalId(synth.feedback.table)}}`,
      agents: ['support', 'nightly-report'],
      auth: {
        type: 'jwt',
        issuer: 'https://issuer.example.com/',
        audience: ['agents'],
        jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
        userClaim: 'sub',
      },
    });
  });

  test('same auth as agent workers', () => {
    expect(synth.runtimeConfig().auth).toEqual(synth.endpoint.workerAuth());
  });

  test('cognito pins the load balancer', () => {
    const cognitoSynth = new FeedbackStack(cognitoAuth);
    expect(cognitoSynth.runtimeConfig().auth).toEqual({
      type: 'alb-oidc',
      region: REGION,
      loadBalancerArn: `\${${cognitoSynth.logicalId(cognitoSynth.endpoint.loadBalancer)}}`,
      userClaim: 'sub',
    });
  });
});

describe('iam', () => {
  const synth = new FeedbackStack();

  test('dynamodb PutItem only', () => {
    const dynamodbStatements = synth.roleStatements().filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    expect(dynamodbStatements).toHaveLength(1);
    expect(actionsOf(dynamodbStatements[0])).toEqual(['dynamodb:PutItem']);
    expect(dynamodbStatements[0].Resource).toEqual(
      expect.arrayContaining([{ 'Fn::GetAtt': [synth.logicalId(synth.feedback.table), 'Arn'] }]),
    );
  });

  test('no wildcard actions', () => {
    const actions = synth.roleStatements().flatMap(actionsOf);
    expect(actions.filter((action) => action.includes('*'))).toEqual([]);
  });

  test('no managed policies', () => {
    expect(synth.resource(synth.feedback.role).Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('key use limited', () => {
    const kmsActions = synth.roleStatements().flatMap(actionsOf).filter((action) => action.startsWith('kms:'));
    expect(new Set(kmsActions)).toEqual(new Set(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey']));
  });
});

describe('props validation', () => {
  test('empty agent list', () => {
    expect(() => new FeedbackStack(() => JWT_AUTH, { agentNames: [] })).toThrow(/agentNames is empty/);
  });

  test('imported listener needs arn', () => {
    const stack = new Stack(new App({ context: CONTEXT }), 'Company', { env: { region: REGION, account: ACCOUNT } });
    const listener = elbv2.ApplicationListener.fromApplicationListenerAttributes(stack, 'Listener', {
      listenerArn: `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:listener/app/agents/50dc6c495c0c9188/f2f7dc8efc522ab2`,
      securityGroup: ec2.SecurityGroup.fromSecurityGroupId(stack, 'Group', 'sg-0123456789abcdef0'),
    });
    const create = (loadBalancerArn?: string) =>
      new AgentFeedback(stack, `Feedback${loadBalancerArn ? 'WithArn' : ''}`, {
        listener,
        auth: cognitoAuth(stack),
        loadBalancerArn,
        agentNames: ['support'],
        encryptionKey: new kms.Key(stack, `Key${loadBalancerArn ? 'WithArn' : ''}`),
      });

    expect(() => create()).toThrow(/auth type cognito needs loadBalancerArn/);
  });

  test('imported listener with arn', () => {
    const stack = new Stack(new App({ context: CONTEXT }), 'Company', { env: { region: REGION, account: ACCOUNT } });
    const loadBalancerArn = `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/app/agents/50dc6c495c0c9188`;
    const listener = elbv2.ApplicationListener.fromApplicationListenerAttributes(stack, 'Listener', {
      listenerArn: `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:listener/app/agents/50dc6c495c0c9188/f2f7dc8efc522ab2`,
      securityGroup: ec2.SecurityGroup.fromSecurityGroupId(stack, 'Group', 'sg-0123456789abcdef0'),
    });
    const feedback = new AgentFeedback(stack, 'Feedback', {
      listener,
      auth: OIDC_AUTH,
      loadBalancerArn,
      agentNames: ['support'],
      encryptionKey: new kms.Key(stack, 'Key'),
      priority: 7,
    });

    const fn = Template.fromStack(stack).toJSON().Resources[stack.getLogicalId(feedback.function.node.defaultChild as CfnElement)];
    const config = JSON.parse(flatten(fn.Properties.Environment.Variables.AGENT_FEEDBACK_CONFIG));
    expect(config.auth).toEqual({ type: 'alb-oidc', region: REGION, loadBalancerArn, userClaim: 'sub' });
  });
});

function describeViolations(report: PolicyValidationPluginReport): string[] {
  return report.violations.map((v) => {
    const where = v.violatingResources.map((r) => r.constructPath ?? r.resourceLogicalId).join(', ');
    return `${v.ruleName} (${v.severity}) at ${where}`;
  });
}

describe.each([
  ['jwt', () => JWT_AUTH],
  ['cognito', cognitoAuth],
  ['oidc', () => OIDC_AUTH],
] as Array<[string, (stack: Stack) => EndpointAuth]>)('nag with %s auth', (_name, auth) => {
  const synth = new FeedbackStack(auth);
  const nag = new AwsSolutionsChecks(synth.app);
  Validations.of(synth.app).addPlugins(nag);
  let reports: PolicyValidationPluginReport[] = [];
  let synthError: unknown;

  beforeAll(() => {
    const spy = jest.spyOn(nag, 'validate');
    try {
      synth.app.synth();
    } catch (error) {
      // In a test, synthesis throws the validation report when a check fails.
      synthError = error;
    }
    reports = spy.mock.results.map((r) => r.value);
  });

  test('synthesis passes validation', () => {
    expect(synthError).toBeUndefined();
  });

  test('aws solutions checks ran', () => {
    expect(reports).toHaveLength(1);
  });

  test('no unacknowledged findings', () => {
    expect(reports.flatMap(describeViolations)).toEqual([]);
  });

  test('feedback acknowledges nothing', () => {
    const acknowledged = synth.feedback.node
      .findAll()
      .flatMap((construct) => construct.node.metadata.filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY));
    expect(acknowledged).toEqual([]);
  });
});
