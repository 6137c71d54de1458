import { App, CfnElement, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { IConstruct } from 'constructs';
import { ModelGateway, ModelGatewayProps } from '../constructs/model-gateway';
import { ModelTarget } from '../lambda/shared/contracts';

type Json = any;

const ACCOUNT = '111122223333';
const HAIKU = 'anthropic.claude-haiku-4-5-20251001-v1:0';
const SONNET = 'anthropic.claude-sonnet-4-5-20250929-v1:0';
const INVOKE = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];

/**
 * Writes CloudFormation intrinsics as text so that ARNs compare as strings:
 * `{ Ref: 'AWS::Partition' }` becomes `${AWS::Partition}` and `Fn::GetAtt`
 * becomes `${LogicalId.Attribute}`.
 */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  return JSON.stringify(value);
}

/** Flattens every intrinsic inside a JSON value, keeping arrays and objects. */
function flattenDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(flattenDeep);
  if (value && typeof value === 'object') {
    const intrinsic = Object.keys(value).some((key) => key === 'Ref' || key.startsWith('Fn::'));
    if (intrinsic) return flatten(value);
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, flattenDeep(inner)]));
  }
  return value;
}

const arn = (rest: string) => `arn:\${AWS::Partition}:bedrock:${rest}`;

/** One stack holding one gateway, with the lookups these tests share. */
class GatewayStack {
  readonly stack: Stack;
  readonly gateway: ModelGateway;
  readonly template: Template;
  readonly resources: Record<string, { Type: string; Properties: Json; DeletionPolicy?: string }>;

  /** @param addCallers adds constructs that use the gateway before the template is synthesized. */
  constructor(props: Partial<ModelGatewayProps> & { route?: ModelTarget[] } = {}, addCallers?: (stack: Stack, gateway: ModelGateway) => void) {
    this.stack = new Stack(new App(), 'Company', { env: { region: 'us-east-1', account: ACCOUNT } });
    const { route, ...rest } = props;
    this.gateway = new ModelGateway(this.stack, 'Gateway', {
      agents: [{ name: 'helper', route: route ?? [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], maxTokensPerCall: 1_024 }],
      ...rest,
    });
    addCallers?.(this.stack, this.gateway);
    this.template = Template.fromStack(this.stack);
    this.resources = this.template.toJSON().Resources;
  }

  logicalId(construct: IConstruct): string {
    const element = (construct.node.defaultChild ?? construct) as CfnElement;
    return this.stack.getLogicalId(element);
  }

  /** Collects the gateway role's statements, with every intrinsic written as text. */
  statements(): Json[] {
    const roleId = this.logicalId(this.gateway.role);
    return Object.values(this.resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((role: Json) => role.Ref === roleId))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement)
      .map(flattenDeep);
  }

  /** Returns the role's statements whose actions start with `prefix`. */
  statementsFor(prefix: string): Json[] {
    return this.statements().filter((s) => [s.Action].flat().some((a: string) => a.startsWith(prefix)));
  }

  runtimeConfig(): Json {
    const fn = this.resources[this.logicalId(this.gateway.function)].Properties;
    return JSON.parse(flatten(fn.Environment.Variables.AGENT_GATEWAY_CONFIG));
  }
}

describe('bedrock grants', () => {
  test('us profile in two regions', () => {
    const east = arn(`us-east-1:${ACCOUNT}:inference-profile/us.${HAIKU}`);
    const west = arn(`us-west-2:${ACCOUNT}:inference-profile/us.${HAIKU}`);
    const synth = new GatewayStack({
      route: [
        { region: 'us-east-1', modelId: `us.${HAIKU}` },
        { region: 'us-west-2', modelId: `us.${HAIKU}` },
      ],
    });

    expect(synth.statementsFor('bedrock:Invoke')).toEqual([
      { Sid: 'InvokeConfiguredTargets', Effect: 'Allow', Action: INVOKE, Resource: [east, west] },
      {
        Effect: 'Allow',
        Action: INVOKE,
        Resource: arn(`*::foundation-model/${HAIKU}`),
        Condition: { StringEquals: { 'bedrock:InferenceProfileArn': [east, west] } },
      },
    ]);
  });

  test('global profile', () => {
    const profile = arn(`us-east-1:${ACCOUNT}:inference-profile/global.${SONNET}`);
    const synth = new GatewayStack({ route: [{ region: 'us-east-1', modelId: `global.${SONNET}` }] });

    expect(synth.statementsFor('bedrock:Invoke')).toEqual([
      { Sid: 'InvokeConfiguredTargets', Effect: 'Allow', Action: INVOKE, Resource: profile },
      {
        Effect: 'Allow',
        Action: INVOKE,
        Resource: [arn(`*::foundation-model/${SONNET}`), arn(`::foundation-model/${SONNET}`)],
        Condition: { StringEquals: { 'bedrock:InferenceProfileArn': profile } },
      },
    ]);
  });

  test('plain model id', () => {
    const synth = new GatewayStack({ route: [{ region: 'eu-west-1', modelId: 'amazon.nova-pro-v1:0' }] });

    expect(synth.statementsFor('bedrock:Invoke')).toEqual([
      { Sid: 'InvokeConfiguredTargets', Effect: 'Allow', Action: INVOKE, Resource: arn('eu-west-1::foundation-model/amazon.nova-pro-v1:0') },
    ]);
  });

  test('region-less model only through global profiles', () => {
    const geo = arn(`eu-west-1:${ACCOUNT}:inference-profile/eu.${SONNET}`);
    const global = arn(`us-east-1:${ACCOUNT}:inference-profile/global.${SONNET}`);
    const synth = new GatewayStack({
      route: [
        { region: 'eu-west-1', modelId: `eu.${SONNET}` },
        { region: 'us-east-1', modelId: `global.${SONNET}` },
      ],
    });
    const conditional = synth.statementsFor('bedrock:Invoke').filter((s) => s.Condition);

    expect(conditional).toEqual([
      {
        Effect: 'Allow',
        Action: INVOKE,
        Resource: arn(`*::foundation-model/${SONNET}`),
        Condition: { StringEquals: { 'bedrock:InferenceProfileArn': [geo, global] } },
      },
      {
        Effect: 'Allow',
        Action: INVOKE,
        Resource: arn(`::foundation-model/${SONNET}`),
        Condition: { StringEquals: { 'bedrock:InferenceProfileArn': global } },
      },
    ]);
  });

  test('no other bedrock actions', () => {
    const synth = new GatewayStack({ route: [{ region: 'us-east-1', modelId: `global.${SONNET}` }] });
    const actions = new Set(synth.statementsFor('bedrock:').flatMap((s) => [s.Action].flat()));

    expect(actions).toEqual(new Set([...INVOKE, 'bedrock:ApplyGuardrail']));
  });

  test('wildcard model acknowledged on the role', () => {
    const synth = new GatewayStack({ route: [{ region: 'us-east-1', modelId: `us.${HAIKU}` }] });
    // aws-cdk-lib records acknowledgements under an `Annotation::` prefix, which cdk-nag strips.
    const acknowledged = synth.gateway.role.node.metadata.flatMap((entry) => Object.keys(entry.data ?? {}).map((id) => id.replace(/^Annotation::/, '')));

    expect(acknowledged).toContain(`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${HAIKU}]`);
  });
});

describe('guardrail', () => {
  const synth = new GatewayStack();
  const guardrailId = synth.logicalId(synth.gateway.guardrail!);

  test('apply grant on its arn', () => {
    expect(synth.statementsFor('bedrock:ApplyGuardrail')).toEqual([
      { Sid: 'ApplyGuardrail', Effect: 'Allow', Action: 'bedrock:ApplyGuardrail', Resource: `\${${guardrailId}.GuardrailArn}` },
    ]);
  });

  test('high content filters', () => {
    const filters = synth.resources[guardrailId].Properties.ContentPolicyConfig.FiltersConfig;

    expect(filters).toEqual([
      { Type: 'HATE', InputStrength: 'HIGH', OutputStrength: 'HIGH' },
      { Type: 'INSULTS', InputStrength: 'HIGH', OutputStrength: 'HIGH' },
      { Type: 'SEXUAL', InputStrength: 'HIGH', OutputStrength: 'HIGH' },
      { Type: 'VIOLENCE', InputStrength: 'HIGH', OutputStrength: 'HIGH' },
      { Type: 'MISCONDUCT', InputStrength: 'HIGH', OutputStrength: 'HIGH' },
      { Type: 'PROMPT_ATTACK', InputStrength: 'HIGH', OutputStrength: 'NONE' },
    ]);
  });

  test('no optional policies by default', () => {
    const properties = synth.resources[guardrailId].Properties;

    expect(properties.TopicPolicyConfig).toBeUndefined();
    expect(properties.WordPolicyConfig).toBeUndefined();
    expect(properties.SensitiveInformationPolicyConfig).toBeUndefined();
    expect(properties.KmsKeyArn).toBeUndefined();
  });

  test('version of the guardrail', () => {
    synth.template.resourceCountIs('AWS::Bedrock::GuardrailVersion', 1);
    synth.template.hasResourceProperties('AWS::Bedrock::GuardrailVersion', {
      GuardrailIdentifier: { 'Fn::GetAtt': [guardrailId, 'GuardrailId'] },
    });
  });

  test('runtime applies the version', () => {
    const versionId = synth.stack.getLogicalId(synth.gateway.guardrail!.version);

    expect(synth.runtimeConfig().guardrail).toEqual({
      id: `\${${guardrailId}.GuardrailId}`,
      version: `\${${versionId}.Version}`,
      region: 'us-east-1',
    });
  });

  test('new settings publish a new version', () => {
    const description = (s: GatewayStack) => s.resources[s.stack.getLogicalId(s.gateway.guardrail!.version)].Properties.Description;
    const changed = new GatewayStack({ guardrail: { words: ['coupon'] } });

    expect(description(changed)).not.toEqual(description(synth));
    expect(description(new GatewayStack())).toEqual(description(synth));
  });

  test('settings mapped to policies', () => {
    const custom = new GatewayStack({
      guardrail: {
        contentFilters: { insults: { inputStrength: 'LOW', outputStrength: 'MEDIUM' } },
        promptAttack: { inputStrength: 'MEDIUM' },
        deniedTopics: [{ name: 'Legal advice', definition: 'Advice on laws, contracts or court cases.', examples: ['Can I sue them?'] }],
        words: ['coupon hack'],
        managedWordLists: ['PROFANITY'],
        piiEntities: [{ type: 'CREDIT_DEBIT_CARD_NUMBER', action: 'ANONYMIZE', appliesTo: ['output'] }],
        blockedInputMessage: 'Not here.',
        blockedOutputMessage: 'Not this.',
      },
    });
    const properties = custom.resources[custom.logicalId(custom.gateway.guardrail!)].Properties;

    expect(properties.ContentPolicyConfig.FiltersConfig).toContainEqual({ Type: 'INSULTS', InputStrength: 'LOW', OutputStrength: 'MEDIUM' });
    expect(properties.ContentPolicyConfig.FiltersConfig).toContainEqual({ Type: 'PROMPT_ATTACK', InputStrength: 'MEDIUM', OutputStrength: 'NONE' });
    expect(properties.TopicPolicyConfig).toEqual({
      TopicsConfig: [{ Name: 'Legal advice', Definition: 'Advice on laws, contracts or court cases.', Examples: ['Can I sue them?'], Type: 'DENY' }],
    });
    expect(properties.WordPolicyConfig).toEqual({ WordsConfig: [{ Text: 'coupon hack' }], ManagedWordListsConfig: [{ Type: 'PROFANITY' }] });
    expect(properties.SensitiveInformationPolicyConfig).toEqual({
      PiiEntitiesConfig: [
        {
          Type: 'CREDIT_DEBIT_CARD_NUMBER',
          Action: 'ANONYMIZE',
          InputAction: 'ANONYMIZE',
          OutputAction: 'ANONYMIZE',
          InputEnabled: false,
          OutputEnabled: true,
        },
      ],
    });
    expect(properties.BlockedInputMessaging).toBe('Not here.');
    expect(properties.BlockedOutputsMessaging).toBe('Not this.');
  });

  test('encrypted with the given key', () => {
    const stack = new Stack(new App(), 'Keyed', { env: { region: 'us-east-1', account: ACCOUNT } });
    const key = new kms.Key(stack, 'Key');
    const gateway = new ModelGateway(stack, 'Gateway', {
      agents: [{ name: 'helper', route: [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], maxTokensPerCall: 1 }],
      encryptionKey: key,
    });
    const template = Template.fromStack(stack);
    const keyArn = { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as CfnElement), 'Arn'] };

    template.hasResourceProperties('AWS::Bedrock::Guardrail', { KmsKeyArn: keyArn });
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: stack.getLogicalId(gateway.role.node.defaultChild as CfnElement) }],
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'kms:Decrypt', Resource: keyArn })]) },
    });
  });
});

describe('company guardrail', () => {
  const synth = new GatewayStack({ guardrail: { guardrailId: 'companyguard01', guardrailVersion: '4' } });

  test('no guardrail created', () => {
    synth.template.resourceCountIs('AWS::Bedrock::Guardrail', 0);
    synth.template.resourceCountIs('AWS::Bedrock::GuardrailVersion', 0);
  });

  test('apply grant on its arn', () => {
    expect(synth.statementsFor('bedrock:ApplyGuardrail')).toEqual([
      {
        Sid: 'ApplyGuardrail',
        Effect: 'Allow',
        Action: 'bedrock:ApplyGuardrail',
        Resource: arn(`us-east-1:${ACCOUNT}:guardrail/companyguard01`),
      },
    ]);
  });

  test('runtime applies it', () => {
    expect(synth.runtimeConfig().guardrail).toEqual({ id: 'companyguard01', version: '4', region: 'us-east-1' });
  });

  test('guardrail in another region', () => {
    const other = new GatewayStack({ guardrail: { guardrailId: 'companyguard01', guardrailVersion: '4', guardrailRegion: 'eu-west-1' } });

    expect(other.runtimeConfig().guardrail).toEqual({ id: 'companyguard01', version: '4', region: 'eu-west-1' });
    expect(other.gateway.guardrailRegion).toBe('eu-west-1');
    expect(other.statementsFor('bedrock:ApplyGuardrail')[0].Resource).toBe(arn(`eu-west-1:${ACCOUNT}:guardrail/companyguard01`));
  });

  test('draft version warns', () => {
    const draft = new GatewayStack({ guardrail: { guardrailId: 'companyguard01', guardrailVersion: 'DRAFT' } });

    Annotations.fromStack(draft.stack).hasWarning('/Company/Gateway', Match.stringLikeRegexp('cdk-agent-stack:guardrailDraft'));
  });

  test('published version does not warn', () => {
    Annotations.fromStack(synth.stack).hasNoWarning('*', Match.stringLikeRegexp('cdk-agent-stack:guardrailDraft'));
  });
});

describe('state table', () => {
  const stack = new Stack(new App(), 'Keyed', { env: { region: 'us-east-1', account: ACCOUNT } });
  const key = new kms.Key(stack, 'Key');
  const gateway = new ModelGateway(stack, 'Gateway', {
    agents: [{ name: 'helper', route: [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], maxTokensPerCall: 1 }],
    encryptionKey: key,
  });
  const template = Template.fromStack(stack);
  const tableId = stack.getLogicalId(gateway.stateTable.node.defaultChild as CfnElement);
  const keyArn = { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as CfnElement), 'Arn'] };
  const roleRef = { Ref: stack.getLogicalId(gateway.role.node.defaultChild as CfnElement) };

  test('keyed by pk with ttl', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      BillingMode: 'PAY_PER_REQUEST',
    });
  });

  test('recoverable and encrypted', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: keyArn },
    });
  });

  test('retained', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  test('gateway reads and writes items only', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [roleRef],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Effect: 'Allow',
            Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
            Resource: [{ 'Fn::GetAtt': [tableId, 'Arn'] }],
          },
        ]),
      },
    });
  });

  test('gateway uses the table key', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [roleRef],
      PolicyDocument: {
        Statement: Match.arrayWith([{ Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'], Resource: keyArn }]),
      },
    });
  });

  test('no other dynamodb actions', () => {
    const policies = Object.values(template.findResources('AWS::IAM::Policy')) as Json[];
    const actions = policies
      .filter((p) => p.Properties.Roles.some((r: Json) => r.Ref === roleRef.Ref))
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .flatMap((s: Json) => [s.Action].flat())
      .filter((a: string) => a.startsWith('dynamodb:'));

    expect(actions.sort()).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
  });

  test('runtime gets the table name', () => {
    const fn = template.toJSON().Resources[stack.getLogicalId(gateway.function.node.defaultChild as CfnElement)].Properties;
    const config = JSON.parse(flatten(fn.Environment.Variables.AGENT_GATEWAY_CONFIG));

    expect(config.stateTable).toBe(`\${${tableId}}`);
  });
});

describe('provisioned concurrency', () => {
  test('alias with provisioned concurrency', () => {
    const synth = new GatewayStack({ provisionedConcurrency: 3 });

    synth.template.resourceCountIs('AWS::Lambda::Version', 1);
    synth.template.hasResourceProperties('AWS::Lambda::Alias', {
      Name: 'live',
      FunctionName: { Ref: synth.logicalId(synth.gateway.function) },
      ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 3 },
    });
    expect(synth.gateway.invokeTarget).toBe(synth.gateway.alias);
  });

  test('invoke grant on the alias', () => {
    let caller: iam.Role | undefined;
    const synth = new GatewayStack({ provisionedConcurrency: 1 }, (stack, gateway) => {
      caller = new iam.Role(stack, 'Caller', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
      gateway.grantInvoke(caller);
    });

    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: synth.logicalId(caller!) }],
      PolicyDocument: { Statement: [{ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { Ref: synth.logicalId(synth.gateway.alias!) } }] },
    });
  });

  test('none at zero', () => {
    const synth = new GatewayStack();

    synth.template.resourceCountIs('AWS::Lambda::Alias', 0);
    synth.template.resourceCountIs('AWS::Lambda::Version', 0);
    expect(synth.gateway.invokeTarget).toBe(synth.gateway.function);
  });

  test('invoke grant on the function at zero', () => {
    let caller: iam.Role | undefined;
    const synth = new GatewayStack({}, (stack, gateway) => {
      caller = new iam.Role(stack, 'Caller', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
      gateway.grantInvoke(caller);
    });

    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: synth.logicalId(caller!) }],
      PolicyDocument: {
        Statement: [{ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': [synth.logicalId(synth.gateway.function), 'Arn'] } }],
      },
    });
  });
});

describe('runtime config', () => {
  const route = [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }];

  test('trusted tools in the environment', () => {
    const synth = new GatewayStack({ agents: [{ name: 'helper', route, maxTokensPerCall: 1_024, trustedTools: ['lookup_order'] }] });

    expect(synth.runtimeConfig().agents.helper.toolResultChecks).toEqual({ trustedTools: ['lookup_order'] });
  });

  test('prompt cache settings in the environment', () => {
    const synth = new GatewayStack({
      agents: [{ name: 'helper', route, maxTokensPerCall: 1_024, promptCache: 'off', expectedCallsPer5Minutes: 12 }],
    });

    const helper = synth.runtimeConfig().agents.helper;

    expect(helper.promptCache).toBe('off');
    expect(helper.expectedCallsPer5Minutes).toBe(12);
  });

  test('auto prompt cache left out', () => {
    const synth = new GatewayStack({ agents: [{ name: 'helper', route, maxTokensPerCall: 1_024, promptCache: 'auto' }] });

    expect(synth.runtimeConfig().agents.helper).not.toHaveProperty('promptCache');
  });

  test('tool result checks turned off', () => {
    const synth = new GatewayStack({
      agents: [{ name: 'helper', route, maxTokensPerCall: 1_024, checkToolResults: false, trustedTools: ['lookup_order'] }],
    });

    expect(synth.runtimeConfig().agents.helper).toEqual({ route, maxTokensPerCall: 1_024 });
  });

  test('defaults in the environment', () => {
    const synth = new GatewayStack();
    const config = synth.runtimeConfig();

    expect(config.agents).toEqual({
      helper: { route: [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], maxTokensPerCall: 1_024, toolResultChecks: {} },
    });
    expect(config.client).toEqual({
      connectTimeoutMs: 1_000,
      firstByteTimeoutMs: 10_000,
      attemptTimeoutMs: 60_000,
      sdkMaxAttempts: 1,
      requestDeadlineMs: 115_000,
    });
    expect(config.breaker).toEqual({ failureThreshold: 5, cooldownSeconds: 30, cacheTtlMs: 2_000 });
  });

  test('given settings in the environment', () => {
    const synth = new GatewayStack({
      timeout: Duration.seconds(30),
      client: { firstByteTimeoutMs: 5_000, sdkMaxAttempts: 3 },
      breaker: { failureThreshold: 2, cooldownSeconds: 60, cacheTtlMs: 500 },
    });
    const config = synth.runtimeConfig();

    expect(config.client).toEqual({
      connectTimeoutMs: 1_000,
      firstByteTimeoutMs: 5_000,
      attemptTimeoutMs: 27_000,
      sdkMaxAttempts: 3,
      requestDeadlineMs: 27_000,
    });
    expect(config.breaker).toEqual({ failureThreshold: 2, cooldownSeconds: 60, cacheTtlMs: 500 });
  });
});

describe('gateway prop errors', () => {
  const build = (props: Partial<ModelGatewayProps> & { route?: ModelTarget[] }) => () => new GatewayStack(props);

  test('deadline at the timeout', () => {
    expect(build({ timeout: Duration.seconds(60), client: { requestDeadlineMs: 60_000 } })).toThrow(
      /client\.requestDeadlineMs must be below the Lambda timeout of 60000 ms \(timeout\).*\(got 60000\)/,
    );
  });

  test('attempt above the deadline', () => {
    expect(build({ client: { requestDeadlineMs: 50_000, attemptTimeoutMs: 55_000 } })).toThrow(
      /client\.attemptTimeoutMs exceeds requestDeadlineMs \(50000\).*\(got 55000\)/,
    );
  });

  test('negative expected calls', () => {
    const agents = [{ name: 'helper', route: [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], maxTokensPerCall: 1_024, expectedCallsPer5Minutes: -1 }];

    expect(build({ agents })).toThrow(/agent helper: expectedCallsPer5Minutes must be a whole number of 0 or more \(got -1\)/);
  });

  test('unknown prompt cache mode', () => {
    const agents = [{ name: 'helper', route: [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], maxTokensPerCall: 1_024, promptCache: 'sometimes' as never }];

    expect(build({ agents })).toThrow(/agent helper: promptCache must be 'auto', 'off' or 'always' \(got "sometimes"\)/);
  });

  test('fractional sdk attempts', () => {
    expect(build({ client: { sdkMaxAttempts: 1.5 } })).toThrow(/client\.sdkMaxAttempts must be a whole number from 1 to 10 \(got 1.5\)/);
  });

  test('cache ttl at the cooldown', () => {
    expect(build({ breaker: { cooldownSeconds: 1, cacheTtlMs: 1_000 } })).toThrow(/breaker\.cacheTtlMs must be below the cooldown of 1000 ms/);
  });

  test('negative provisioned concurrency', () => {
    expect(build({ provisionedConcurrency: -1 })).toThrow(/provisionedConcurrency must be a whole number of 0 or more \(got -1\)/);
  });

  test('existing guardrail with settings', () => {
    const guardrail = { guardrailId: 'companyguard01', guardrailVersion: '1', words: ['coupon'] } as Json;

    expect(build({ guardrail })).toThrow(/cannot be combined with words/);
  });

  test('invalid guardrail id', () => {
    expect(build({ guardrail: { guardrailId: 'Company-Guard', guardrailVersion: '1' } })).toThrow(
      /guardrail\.guardrailId must be 1 to 64 lower-case letters and digits \(got "Company-Guard"\)/,
    );
  });

  test('invalid guardrail version', () => {
    expect(build({ guardrail: { guardrailId: 'companyguard01', guardrailVersion: 'latest' } })).toThrow(
      /guardrail\.guardrailVersion must be a version number/,
    );
  });

  test('prompt attack on output', () => {
    const guardrail = { promptAttack: { outputStrength: 'HIGH' } } as Json;

    expect(build({ guardrail })).toThrow(/settings\.promptAttack\.outputStrength must be NONE.*\(got "HIGH"\)/);
  });

  test('guardrail without filters', () => {
    const none = { inputStrength: 'NONE', outputStrength: 'NONE' } as const;
    const guardrail = {
      contentFilters: { hate: none, insults: none, sexual: none, violence: none, misconduct: none },
      promptAttack: { inputStrength: 'NONE' as const },
    };

    expect(build({ guardrail })).toThrow(/has no filter/);
  });

  test('topic definition too long', () => {
    const guardrail = { deniedTopics: [{ name: 'Legal advice', definition: 'x'.repeat(201) }] };

    expect(build({ guardrail })).toThrow(/settings\.deniedTopics\[0\]\.definition must be 1 to 200 characters long/);
  });

  test('routes beyond the environment limit', () => {
    const route = Array.from({ length: 30 }, () => ({ region: 'us-east-1', modelId: `us.${'m'.repeat(60)}` }));

    expect(build({ route })).toThrow(/takes up to \d+ bytes of the function environment, above the 3584/);
  });
});
