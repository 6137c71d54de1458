/**
 * The ModelGateway's response cache table on synthesized templates: its
 * keys, encryption and removal, the gateway's and the operator's grants,
 * the runtime settings, the prop errors, and cdk-nag's AwsSolutionsChecks.
 */
import { App, CfnElement, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ModelGateway, type ModelGatewayAgent, type ModelGatewayResponseCache } from '../constructs/model-gateway';
import { validateGatewayConfig } from '../lambda/gateway/config';

type Json = any;

const ACCOUNT = '111122223333';
const ROUTE = [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }];

/**
 * Writes CloudFormation intrinsics as text, so that the JSON environment
 * parses: `{ Ref: 'Id' }` becomes `${Id}` and `Fn::GetAtt` becomes `${Id.Attribute}`.
 */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  return JSON.stringify(value);
}

/** A stack with a customer key, a gateway of `agents` and an operator role. */
class CacheStack {
  readonly stack: Stack;
  readonly key: kms.Key;
  readonly gateway: ModelGateway;
  readonly operator: iam.Role;

  constructor(agents: ModelGatewayAgent[], options: { grantOperator?: boolean } = {}) {
    this.stack = new Stack(new App(), 'Company', { env: { region: 'us-east-1', account: ACCOUNT } });
    this.key = new kms.Key(this.stack, 'Key', { enableKeyRotation: true });
    this.gateway = new ModelGateway(this.stack, 'Gateway', { agents, encryptionKey: this.key });
    this.operator = new iam.Role(this.stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
    if (options.grantOperator ?? true) {
      this.gateway.grantResponseCachePurge(this.operator);
    }
  }

  template(): Template {
    return Template.fromStack(this.stack);
  }

  ref(construct: { node: { defaultChild?: unknown } }): string {
    return this.stack.getLogicalId(construct.node.defaultChild as CfnElement);
  }

  /** Returns the actions of `role`'s statements whose actions start with `prefix`, per resource. */
  actionsOf(role: iam.Role, prefix: string): Array<{ actions: string[]; resource: unknown }> {
    const roleId = this.ref(role);
    return (Object.values(this.template().findResources('AWS::IAM::Policy')) as Json[])
      .filter((policy) => policy.Properties.Roles.some((r: Json) => r.Ref === roleId))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement)
      .filter((statement: Json) => [statement.Action].flat().some((action: string) => action.startsWith(prefix)))
      .map((statement: Json) => ({ actions: [statement.Action].flat(), resource: statement.Resource }));
  }

  runtimeConfig(): Json {
    const fn = this.template().toJSON().Resources[this.ref(this.gateway.function)].Properties;
    return JSON.parse(flatten(fn.Environment.Variables.AGENT_GATEWAY_CONFIG));
  }
}

function agent(name: string, responseCache?: ModelGatewayResponseCache): ModelGatewayAgent {
  return { name, route: ROUTE, maxTokensPerCall: 1_024, responseCache };
}

describe('response cache table', () => {
  const synth = new CacheStack([agent('faq', { ttl: Duration.minutes(10), scope: 'agent' }), agent('support')]);
  const template = synth.template();
  const tableId = synth.ref(synth.gateway.responseCacheTable!);
  const tableArn = { 'Fn::GetAtt': [tableId, 'Arn'] };
  const keyArn = { 'Fn::GetAtt': [synth.ref(synth.key), 'Arn'] };

  test('keyed by agent and scope with ttl', () => {
    expect(template.toJSON().Resources[tableId].Properties).toMatchObject({
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      BillingMode: 'PAY_PER_REQUEST',
    });
  });

  test('encrypted with the key', () => {
    expect(template.toJSON().Resources[tableId].Properties.SSESpecification).toEqual({
      SSEEnabled: true,
      SSEType: 'KMS',
      KMSMasterKeyId: keyArn,
    });
  });

  test('no point-in-time recovery', () => {
    expect(template.toJSON().Resources[tableId].Properties.PointInTimeRecoverySpecification).toBeUndefined();
  });

  test('deleted with the stack', () => {
    expect(template.toJSON().Resources[tableId].DeletionPolicy).toBe('Delete');
  });

  test('gateway gets and puts items only', () => {
    const onTable = synth.actionsOf(synth.gateway.role, 'dynamodb:').filter((s) => JSON.stringify(s.resource).includes(tableId));

    expect(onTable).toEqual([{ actions: ['dynamodb:GetItem', 'dynamodb:PutItem'], resource: [tableArn] }]);
  });

  test('gateway uses the table key', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: synth.ref(synth.gateway.role) }],
      PolicyDocument: {
        Statement: Match.arrayWith([{ Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'], Resource: keyArn }]),
      },
    });
  });

  test('operator purge grant', () => {
    expect(synth.actionsOf(synth.operator, 'dynamodb:')).toEqual([
      { actions: ['dynamodb:Query', 'dynamodb:BatchWriteItem', 'dynamodb:DeleteItem'], resource: [tableArn] },
    ]);
    expect(synth.actionsOf(synth.operator, 'kms:')).toEqual([{ actions: ['kms:Decrypt'], resource: keyArn }]);
  });

  test('runtime gets the table and settings', () => {
    const config = synth.runtimeConfig();

    expect(config.responseCacheTable).toBe(`\${${tableId}}`);
    expect(config.agents.faq.responseCache).toEqual({ ttlSeconds: 600, scope: 'agent', cacheToolTurns: false });
    expect(config.agents.support.responseCache).toBeUndefined();
  });

  test('runtime accepts the settings', () => {
    const config = { ...synth.runtimeConfig(), responseCacheTable: 'cache-table', stateTable: 'state-table' };
    config.guardrail = { id: 'gr1234abcd', version: '1', region: 'us-east-1' };

    expect(validateGatewayConfig(config, 'test').agents.faq.responseCache?.scope).toBe('agent');
  });
});

describe('response cache defaults', () => {
  test('user scope without tool turns', () => {
    const synth = new CacheStack([agent('support', { ttl: Duration.seconds(90) })]);

    expect(synth.runtimeConfig().agents.support.responseCache).toEqual({ ttlSeconds: 90, scope: 'user', cacheToolTurns: false });
  });

  test('no table without a cache', () => {
    const synth = new CacheStack([agent('support')], { grantOperator: false });

    synth.template().resourceCountIs('AWS::DynamoDB::Table', 1);
    expect(synth.gateway.responseCacheTable).toBeUndefined();
    expect(synth.runtimeConfig().responseCacheTable).toBeUndefined();
  });

  test('purge grant without a cache', () => {
    expect(() => new CacheStack([agent('support')])).toThrow(
      /grantResponseCachePurge needs a response cache table, which the gateway creates only when an agent sets responseCache/,
    );
  });
});

describe('response cache prop errors', () => {
  const build = (cache: ModelGatewayResponseCache) => () => new CacheStack([agent('faq', cache)], { grantOperator: false });

  test('agent scope with tool turns', () => {
    expect(build({ ttl: Duration.minutes(5), scope: 'agent', cacheToolTurns: true })).toThrow(
      /agent faq: responseCache\.cacheToolTurns cannot be true with scope 'agent', because tool results carry one user's data/,
    );
  });

  test('user scope with tool turns', () => {
    expect(build({ ttl: Duration.minutes(5), scope: 'user', cacheToolTurns: true })).not.toThrow();
  });

  test('fractional ttl', () => {
    expect(build({ ttl: Duration.millis(1_500) })).toThrow(/agent faq: responseCache\.ttl must be whole seconds from 1 to 31536000 \(got 1\.5 s\)/);
  });

  test('zero ttl', () => {
    expect(build({ ttl: Duration.seconds(0) })).toThrow(/responseCache\.ttl must be whole seconds from 1 to 31536000 \(got 0 s\)/);
  });

  test('ttl above a year', () => {
    expect(build({ ttl: Duration.days(366) })).toThrow(/responseCache\.ttl must be whole seconds from 1 to 31536000 \(got 31622400 s\)/);
  });

  test('unknown scope', () => {
    expect(build({ ttl: Duration.minutes(5), scope: 'stack' as never })).toThrow(/responseCache\.scope must be 'user' or 'agent' \(got "stack"\)/);
  });
});

describe('response cache checks', () => {
  test('no aws solutions findings', () => {
    const synth = new CacheStack([agent('faq', { ttl: Duration.minutes(10) })]);
    const report = new AwsSolutionsChecks().validateScope(synth.gateway.responseCacheTable!);
    const findings = report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`));

    expect(findings).toEqual([]);
  });

  test('only point-in-time recovery acknowledged', () => {
    const synth = new CacheStack([agent('faq', { ttl: Duration.minutes(10) })]);
    const acknowledged = synth.gateway.responseCacheTable!.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) => Object.keys(entry.data as Record<string, string>));

    expect(acknowledged.map((id) => id.replace(/^annotation::/i, ''))).toEqual(['AwsSolutions-DDB3']);
  });
});
