import * as fs from 'fs';
import * as path from 'path';
import { CfnElement, Stack } from 'aws-cdk-lib';
import * as cr from 'aws-cdk-lib/custom-resources';
import * as iam from 'aws-cdk-lib/aws-iam';
import { IConstruct } from 'constructs';
import { crossRegionGrantReason } from '../constructs/model-gateway-iam';
import { AgentStack } from '../lib/agent-stack';
import { exampleConfig, removeTempDirs, reviewOf, runCommand, synthesizeAgentStack, tempDir } from './support/review';

type Json = any;

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

function findingsOf(json: Json, kind: string, logicalIdOf?: string): Json[] {
  return json.findings.filter((f: Json) => f.kind === kind && (logicalIdOf === undefined || f.logicalId === logicalIdOf));
}

afterAll(removeTempDirs);

describe('iam section of the example stack', () => {
  let json: Json;
  let gatewayRole = '';
  let assembly = '';

  beforeAll(async () => {
    assembly = synthesizeAgentStack(exampleConfig(), (stack) => {
      gatewayRole = logicalId(stack.gateway.role);
    });
    ({ json } = await reviewOf(assembly));
  }, 120_000);

  test('only the gateway may invoke bedrock', () => {
    expect(json.sections.iam.data.bedrockInvokeRoles).toEqual([`AgentStack/${gatewayRole}`]);
  });

  test('lists every role of the template', () => {
    const template = JSON.parse(fs.readFileSync(path.join(assembly, 'AgentStack.template.json'), 'utf8'));
    const expected = Object.entries(template.Resources)
      .filter(([, r]) => (r as Json).Type === 'AWS::IAM::Role')
      .map(([id]) => id)
      .sort();
    const roles = json.sections.iam.data.roles.map((r: Json) => r.logicalId);

    expect(roles).toEqual(expected);
    expect(roles).toContain(gatewayRole);
  });

  test('gateway role shows trust and actions', () => {
    const role = json.sections.iam.data.roles.find((r: Json) => r.logicalId === gatewayRole);

    expect(role.trust[0].principals).toEqual([{ type: 'Service', value: 'lambda.amazonaws.com' }]);
    expect(role.statements.flatMap((s: Json) => s.actions)).toEqual(expect.arrayContaining(['bedrock:InvokeModel', 'bedrock:ApplyGuardrail']));
  });

  test('cross-region targets are the failover regions', () => {
    const subjects = findingsOf(json, 'cross-region', gatewayRole).map((f: Json) => f.subject);

    expect(subjects).toEqual([
      'arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0',
      'arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0',
      'arn:<AWS::Partition>:bedrock:us-east-2:<AWS::AccountId>:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0',
      'arn:<AWS::Partition>:bedrock:us-west-2:<AWS::AccountId>:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0',
    ]);
  });

  test('cross-region grants carry the gateway reason', () => {
    for (const finding of findingsOf(json, 'cross-region', gatewayRole)) {
      expect(finding.explanation.source).toBe('grant-reason');
      expect(finding.explanation.path).toBe('AgentStack/Gateway/Role');
      expect(finding.explanation.reason).toMatch(/fail over across the configured targets in us-east-1, us-east-2, us-west-2/);
    }
  });

  test('region wildcard explained by its acknowledgement', () => {
    const wildcard = findingsOf(json, 'wildcard', gatewayRole);

    expect(wildcard.map((f: Json) => f.subject)).toEqual([
      'Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0',
      'Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0',
    ]);
    expect(wildcard.map((f: Json) => f.explanation.ruleId)).toEqual([
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0]',
    ]);
  });

  test('no unexplained wildcard or cross-region grant', () => {
    const open = json.findings.filter((f: Json) => ['wildcard', 'cross-region'].includes(f.kind) && !f.explained);
    expect(open).toEqual([]);
  });

  test('fail-on wildcard passes', async () => {
    const { code } = await runCommand([assembly, '--out', tempDir('report'), '--no-cfn-lint', '--fail-on', 'wildcard,cross-region']);
    expect(code).toBe(0);
  }, 60_000);
});

describe('iam section after a wildcard grant', () => {
  let json: Json;
  let assembly = '';
  let taskRole = '';

  beforeAll(async () => {
    assembly = synthesizeAgentStack(exampleConfig(), (stack: AgentStack) => {
      const role = stack.agents.support.taskDefinition.taskRole;
      role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['bedrock:*'], resources: ['*'] }));
      taskRole = logicalId(role);
    });
    ({ json } = await reviewOf(assembly));
  }, 120_000);

  test('task role joins the bedrock set', () => {
    expect(json.sections.iam.data.bedrockInvokeRoles).toEqual(['AgentStack/GatewayRole85066176', `AgentStack/${taskRole}`].sort());
  });

  test('wildcards of the grant are unexplained', () => {
    const open = findingsOf(json, 'wildcard', taskRole).filter((f: Json) => !f.explained);
    expect(open.map((f: Json) => f.subject)).toEqual(['Action::bedrock:*', 'Resource::*']);
  });

  test('fail-on wildcard fails', async () => {
    const { code, stderr } = await runCommand([assembly, '--out', tempDir('report'), '--no-cfn-lint', '--fail-on', 'wildcard']);

    expect(code).toBe(1);
    expect(stderr).toContain(`unexplained wildcard: AgentStack/${taskRole} Action::bedrock:*`);
  }, 60_000);
});

describe('iam section with a second realtime agent and a custom resource', () => {
  let json: Json;
  let providerRole = '';

  beforeAll(async () => {
    const config = exampleConfig() as Json;
    const second = JSON.parse(JSON.stringify(config.agents[0]));
    second.name = 'sales';
    second.tools = [];
    delete second.budget;
    config.agents.push(second);
    const assembly = synthesizeAgentStack(config, (stack) => {
      const call = new cr.AwsCustomResource(stack, 'ReadParameter', {
        onCreate: { service: 'SSM', action: 'getParameter', parameters: { Name: 'agents' }, physicalResourceId: cr.PhysicalResourceId.of('agents') },
        policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
        installLatestAwsSdk: false,
      });
      const provider = stack.node.findChild('AWS679f53fac002430cb0da5b7982bd2287');
      providerRole = logicalId(provider.node.findChild('ServiceRole'));
      expect(call).toBeDefined();
    });
    ({ json } = await reviewOf(assembly));
  }, 120_000);

  test('new agent role is listed', () => {
    const roles = json.sections.iam.data.roles.map((r: Json) => r.logicalId);
    expect(roles.filter((id: string) => id.startsWith('agentsales'))).toHaveLength(2);
  });

  test('bedrock set is still the gateway', () => {
    expect(json.sections.iam.data.bedrockInvokeRoles).toEqual(['AgentStack/GatewayRole85066176']);
  });

  test('custom resource role with managed policy', () => {
    const role = json.sections.iam.data.roles.find((r: Json) => r.logicalId === providerRole);

    expect(role.customResource).toBe(true);
    expect(role.managedPolicyArns).toEqual(['arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole']);
    expect(findingsOf(json, 'managed-policy', providerRole).map((f: Json) => f.explained)).toEqual([false]);
  });

  test('custom resource wildcard is flagged', () => {
    const policyFindings = json.findings.filter((f: Json) => f.kind === 'wildcard' && f.path.includes('ReadParameter'));
    expect(policyFindings.map((f: Json) => f.subject)).toEqual(['Resource::*']);
    expect(policyFindings[0].explained).toBe(false);
  });
});

describe('gateway cross-region grant reason', () => {
  test('none for plain models in the stack region', () => {
    expect(crossRegionGrantReason([{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }], 'us-east-1')).toBeUndefined();
  });

  test('names the regions of the targets', () => {
    const reason = crossRegionGrantReason(
      [
        { region: 'us-west-2', modelId: 'amazon.nova-pro-v1:0' },
        { region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' },
      ],
      'us-east-1',
    );

    expect(reason?.kind).toBe('cross-region');
    expect(reason?.actions).toEqual(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
    expect(reason?.reason).toMatch(/configured targets in us-east-1, us-west-2,/);
  });

  test('given for a profile in the stack region', () => {
    const reason = crossRegionGrantReason([{ region: 'us-east-1', modelId: 'us.amazon.nova-pro-v1:0' }], 'us-east-1');
    expect(reason?.resources).toEqual(['arn:*:bedrock:*']);
  });
});
