import { App, CfnElement, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { ModelGateway } from '../constructs/model-gateway';
import { MODEL_PRICES, priceTarget } from '../constructs/model-prices';
import { TokenBudget, TokenBudgetProps } from '../constructs/token-budget';
import { ModelTarget } from '../lambda/shared/contracts';

type Json = any;

const ACCOUNT = '111122223333';
const HAIKU = 'anthropic.claude-haiku-4-5-20251001-v1:0';
const SONNET = 'anthropic.claude-sonnet-4-5-20250929-v1:0';
const NOVA = 'amazon.nova-pro-v1:0';
const HAIKU_LIST = { inputPerMillion: 1, outputPerMillion: 5, cacheReadPerMillion: 0.1, cacheWritePerMillion: 1.25 };
const HAIKU_REGIONAL = { inputPerMillion: 1.1, outputPerMillion: 5.5, cacheReadPerMillion: 0.11, cacheWritePerMillion: 1.375 };

/** Writes `Ref` and `Fn::GetAtt` as `${LogicalId}` text, and joins `Fn::Join`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  return JSON.stringify(value);
}

/** One stack with a budget and a gateway that enforces it. */
class BudgetStack {
  readonly stack: Stack;
  readonly key: kms.Key;
  readonly budget: TokenBudget;
  readonly gateway: ModelGateway;
  readonly template: Template;
  readonly resources: Record<string, { Type: string; Properties: Json; DeletionPolicy?: string }>;

  constructor(props: TokenBudgetProps = {}, route: ModelTarget[] = [{ region: 'us-east-1', modelId: `us.${HAIKU}` }], timeout?: Duration) {
    this.stack = new Stack(new App(), 'Company', { env: { region: 'us-east-1', account: ACCOUNT } });
    this.key = new kms.Key(this.stack, 'Key');
    this.budget = new TokenBudget(this.stack, 'Budget', { encryptionKey: this.key, ...props });
    this.gateway = new ModelGateway(this.stack, 'Gateway', {
      agents: [{ name: 'helper', route, maxTokensPerCall: 1_024 }],
      budget: this.budget,
      timeout,
    });
    this.template = Template.fromStack(this.stack);
    this.resources = this.template.toJSON().Resources;
  }

  logicalId(construct: { node: { defaultChild?: unknown } }): string {
    return this.stack.getLogicalId(construct.node.defaultChild as CfnElement);
  }

  runtimeConfig(): Json {
    const fn = this.resources[this.logicalId(this.gateway.function)].Properties;
    return JSON.parse(flatten(fn.Environment.Variables.AGENT_GATEWAY_CONFIG));
  }

  /** Collects the statements of the gateway role's attached policies. */
  gatewayStatements(): Json[] {
    const roleId = this.logicalId(this.gateway.role);
    return Object.values(this.resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((role: Json) => role.Ref === roleId))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement);
  }
}

describe('ledger table', () => {
  const synth = new BudgetStack();
  const table = () => synth.resources[synth.logicalId(synth.budget.table)];

  test('keys and ttl', () => {
    expect(table().Properties.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(table().Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
  });

  test('on demand with recovery', () => {
    expect(table().Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table().Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  test('encrypted with the given key', () => {
    expect(table().Properties.SSESpecification).toEqual({
      SSEEnabled: true,
      SSEType: 'KMS',
      KMSMasterKeyId: { 'Fn::GetAtt': [synth.logicalId(synth.key), 'Arn'] },
    });
  });

  test('retained by default', () => {
    expect(table().DeletionPolicy).toBe('Retain');
  });

  test('removal policy honored', () => {
    const destroyed = new BudgetStack({ removalPolicy: RemovalPolicy.DESTROY });

    expect(destroyed.resources[destroyed.logicalId(destroyed.budget.table)].DeletionPolicy).toBe('Delete');
  });
});

describe('ledger grant', () => {
  const synth = new BudgetStack();
  const tableArn = { 'Fn::GetAtt': [synth.logicalId(synth.budget.table), 'Arn'] };
  const keyArn = { 'Fn::GetAtt': [synth.logicalId(synth.key), 'Arn'] };

  test('exact dynamodb actions on the table', () => {
    const onTable = synth.gatewayStatements().filter((s) => JSON.stringify(s.Resource).includes(synth.logicalId(synth.budget.table)));

    expect(onTable).toEqual([
      {
        Effect: 'Allow',
        Action: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Query',
          'dynamodb:ConditionCheckItem',
        ],
        Resource: [tableArn],
      },
    ]);
  });

  test('no transact or scan action', () => {
    const actions = synth.gatewayStatements().flatMap((s) => [s.Action].flat());

    expect(actions).not.toContain('dynamodb:TransactWriteItems');
    expect(actions).not.toContain('dynamodb:Scan');
  });

  test('kms actions on the key', () => {
    const onKey = synth.gatewayStatements().filter((s) => JSON.stringify(s.Resource) === JSON.stringify(keyArn));

    expect(onKey.flatMap((s) => [s.Action].flat()).sort()).toEqual(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey']);
  });

  test('grant returns an iam grant', () => {
    const stack = new Stack(new App(), 'Other');
    const budget = new TokenBudget(stack, 'Budget');
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });

    expect(budget.grantLedger(role).success).toBe(true);
  });
});

describe('gateway runtime config', () => {
  test('defaults', () => {
    const budget = new BudgetStack().runtimeConfig().budget;

    expect(budget.leaseSeconds).toBe(900);
    expect(budget.failOpen).toBe(false);
    expect(budget.allowAnonymous).toBe(false);
    expect(budget.agents).toEqual({});
    expect(budget.stack).toBeUndefined();
  });

  test('table name of the ledger', () => {
    const synth = new BudgetStack();

    expect(synth.runtimeConfig().budget.table).toBe(`\${${synth.logicalId(synth.budget.table)}}`);
  });

  test('limits and settings', () => {
    const stackLimits = { daily: { usd: 100 }, monthly: { tokens: 50_000_000, usd: 2_000 } };
    const helper = { perUser: { daily: { usd: 2 } }, agentRate: { tokensPerMinute: 100_000 }, perUserRate: { requestsPerMinute: 10 } };
    const synth = new BudgetStack({
      lease: Duration.minutes(30),
      failOpen: true,
      allowAnonymous: true,
      stack: stackLimits,
      agents: { helper },
    });
    const budget = synth.runtimeConfig().budget;

    expect(budget.leaseSeconds).toBe(1_800);
    expect(budget.failOpen).toBe(true);
    expect(budget.allowAnonymous).toBe(true);
    expect(budget.stack).toEqual(stackLimits);
    expect(budget.agents).toEqual({ helper });
  });

  test('price for every target id', () => {
    const route = [
      { region: 'us-east-1', modelId: `us.${HAIKU}` },
      { region: 'us-west-2', modelId: `us.${HAIKU}` },
      { region: 'us-east-1', modelId: `global.${SONNET}` },
      { region: 'us-east-1', modelId: NOVA },
    ];

    const prices = new BudgetStack({}, route).runtimeConfig().budget.prices;

    expect(Object.keys(prices).sort()).toEqual([NOVA, `global.${SONNET}`, `us.${HAIKU}`]);
    expect(prices[`global.${SONNET}`]).toEqual(MODEL_PRICES[SONNET].price);
    expect(prices[NOVA]).toEqual(MODEL_PRICES[NOVA].price);
  });

  test('geographic profile priced through its model', () => {
    const prices = new BudgetStack().runtimeConfig().budget.prices;

    expect(prices[`us.${HAIKU}`]).toEqual(HAIKU_REGIONAL);
  });

  test('regional premium configurable', () => {
    const prices = new BudgetStack({ regionalPremiumPercent: 0 }).runtimeConfig().budget.prices;

    expect(prices[`us.${HAIKU}`]).toEqual(HAIKU_LIST);
  });

  test('override by profile id', () => {
    const price = { inputPerMillion: 0.9, outputPerMillion: 4.5, cacheReadPerMillion: 0.09, cacheWritePerMillion: 1.1 };
    const prices = new BudgetStack({ prices: { [`us.${HAIKU}`]: price } }).runtimeConfig().budget.prices;

    expect(prices[`us.${HAIKU}`]).toEqual(price);
  });

  test('override by model id', () => {
    const price = { inputPerMillion: 2, outputPerMillion: 8, cacheReadPerMillion: 0.2, cacheWritePerMillion: 2.5 };
    const model = 'example.custom-model-v1:0';
    const prices = new BudgetStack({ prices: { [model]: price } }, [{ region: 'eu-west-1', modelId: `eu.${model}` }]).runtimeConfig().budget.prices;

    expect(prices[`eu.${model}`]).toEqual(price);
  });

  test('no budget, no budget config', () => {
    const stack = new Stack(new App(), 'Plain', { env: { region: 'us-east-1', account: ACCOUNT } });
    const gateway = new ModelGateway(stack, 'Gateway', { agents: [{ name: 'helper', route: [{ region: 'us-east-1', modelId: NOVA }], maxTokensPerCall: 1 }] });
    const fn = Template.fromStack(stack).toJSON().Resources[stack.getLogicalId(gateway.function.node.defaultChild as CfnElement)];

    expect(JSON.parse(flatten(fn.Properties.Environment.Variables.AGENT_GATEWAY_CONFIG)).budget).toBeUndefined();
  });
});

describe('price lookup', () => {
  const options = { regionalPremiumPercent: 10 };

  test.each([
    [HAIKU, HAIKU_REGIONAL, 'table with regional premium'],
    [`us.${HAIKU}`, HAIKU_REGIONAL, 'table with regional premium'],
    [`eu.${HAIKU}`, HAIKU_REGIONAL, 'table with regional premium'],
    [`apac.${HAIKU}`, HAIKU_REGIONAL, 'table with regional premium'],
    [`global.${HAIKU}`, HAIKU_LIST, 'table'],
    [`us.${NOVA}`, MODEL_PRICES[NOVA].price, 'table'],
  ])('%s', (targetId, price, source) => {
    expect(priceTarget(targetId, options)).toEqual({ price, source });
  });

  test('unknown model has no price', () => {
    expect(priceTarget('us.example.unknown-v1:0', options)).toBeUndefined();
  });

  test('every entry names its source and date', () => {
    for (const entry of Object.values(MODEL_PRICES)) {
      expect(entry.source).toMatch(/^https:\/\//);
      expect(entry.readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });
});

describe('budget errors', () => {
  test('missing price names model and agent', () => {
    const route = [{ region: 'us-east-1', modelId: 'us.example.unknown-v1:0' }];

    expect(() => new BudgetStack({}, route)).toThrow(
      /TokenBudget: no price for us\.example\.unknown-v1:0 \(route of helper\)\..*prices\["example\.unknown-v1:0"\]/,
    );
  });

  test('lease not above the timeout', () => {
    expect(() => new BudgetStack({ lease: Duration.seconds(120) })).toThrow(
      /budget has a lease of 120 s, which must be longer than the timeout of 120 s.*raise the lease/,
    );
  });

  test('lease above the timeout', () => {
    expect(() => new BudgetStack({ lease: Duration.seconds(121) })).not.toThrow();
  });

  test('lease below a minute', () => {
    expect(() => new BudgetStack({ lease: Duration.seconds(30) }, undefined, Duration.seconds(10))).toThrow(
      /TokenBudget: lease must be whole seconds from 60 to 43200 \(got "30 s"\)/,
    );
  });

  test('limits for an unknown agent', () => {
    expect(() => new BudgetStack({ agents: { writer: { perUser: { daily: { usd: 1 } } } } })).toThrow(
      /budget has limits for agent "writer", which the gateway does not serve; expected one of helper/,
    );
  });

  test('daily cap above monthly', () => {
    expect(() => new BudgetStack({ stack: { daily: { usd: 200 }, monthly: { usd: 100 } } })).toThrow(
      /stack\.daily\.usd exceeds monthly\.usd \(100\).*\(got 200\)/,
    );
  });

  test('negative price', () => {
    const price = { inputPerMillion: -1, outputPerMillion: 5, cacheReadPerMillion: 0.1, cacheWritePerMillion: 1.25 };

    expect(() => new BudgetStack({ prices: { [HAIKU]: price } })).toThrow(/prices\.anthropic\.claude-haiku.*inputPerMillion must be a number from 0 to 10000 \(got -1\)/);
  });

  test('fractional rate limit', () => {
    expect(() => new BudgetStack({ agents: { helper: { perUserRate: { requestsPerMinute: 1.5 } } } })).toThrow(
      /agents\.helper\.perUserRate\.requestsPerMinute must be a whole number from 1 to 1000000 \(got 1.5\)/,
    );
  });

  test('regional premium above 100', () => {
    expect(() => new BudgetStack({ regionalPremiumPercent: 150 })).toThrow(/regionalPremiumPercent must be a number from 0 to 100 \(got 150\)/);
  });
});

describe('kill switch', () => {
  const synth = new BudgetStack({ agents: { helper: { agent: { daily: { tokens: 50_000 } } } } });
  const killSwitch = synth.budget.killSwitch;
  const tableArn = { 'Fn::GetAtt': [synth.logicalId(synth.budget.table), 'Arn'] };
  const functionArn = { 'Fn::GetAtt': [synth.logicalId(killSwitch.function), 'Arn'] };
  const roleStatements = (): Json[] => {
    const roleId = synth.logicalId(killSwitch.role);
    return Object.values(synth.resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((role: Json) => role.Ref === roleId))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement);
  };

  test('function with its config', () => {
    const fn = synth.resources[synth.logicalId(killSwitch.function)].Properties;
    const config = JSON.parse(flatten(fn.Environment.Variables.KILL_SWITCH_CONFIG));

    expect(fn.Handler).toBe('index.handler');
    expect(fn.Role).toEqual({ 'Fn::GetAtt': [synth.logicalId(killSwitch.role), 'Arn'] });
    expect(fn.LoggingConfig.LogGroup).toEqual({ Ref: synth.logicalId(killSwitch.logGroup) });
    expect(config).toEqual({
      table: `\${${synth.logicalId(synth.budget.table)}}`,
      leaseSeconds: 900,
      agents: { helper: { agent: { daily: { tokens: 50_000 } } } },
    });
  });

  test('runs every five minutes', () => {
    const rule = synth.resources[synth.logicalId(killSwitch.schedule)].Properties;

    expect(rule.ScheduleExpression).toBe('rate(5 minutes)');
    expect(rule.Targets).toEqual([expect.objectContaining({ Arn: functionArn })]);
    synth.template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: functionArn,
      SourceArn: { 'Fn::GetAtt': [synth.logicalId(killSwitch.schedule), 'Arn'] },
    });
  });

  test('exact dynamodb actions on the table', () => {
    const onTable = roleStatements().filter((s) => JSON.stringify(s.Resource).includes(synth.logicalId(synth.budget.table)));

    expect(onTable).toEqual([
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Query'],
        Resource: [tableArn],
      },
    ]);
  });

  test('role cannot call Bedrock', () => {
    const actions = roleStatements().flatMap((s) => [s.Action].flat());

    expect(actions.filter((action) => action.startsWith('bedrock:'))).toEqual([]);
    expect(actions).not.toContain('dynamodb:Scan');
  });

  test('gateway reads suspensions', () => {
    const actions = synth.gatewayStatements().flatMap((s) => [s.Action].flat());

    expect(actions).toContain('dynamodb:GetItem');
  });

  test('alarm topic subscribes function', () => {
    const stack = new Stack(new App(), 'Alarms');
    const budget = new TokenBudget(stack, 'Budget');
    const topic = new sns.Topic(stack, 'Alarms');

    budget.addAlarmTopic(topic);

    const template = Template.fromStack(stack);
    const fnArn = { 'Fn::GetAtt': [stack.getLogicalId(budget.killSwitch.function.node.defaultChild as CfnElement), 'Arn'] };
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'lambda', Endpoint: fnArn });
    template.hasResourceProperties('AWS::Lambda::Permission', { Principal: 'sns.amazonaws.com', FunctionName: fnArn });
  });
});
