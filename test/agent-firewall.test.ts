/**
 * The AgentFirewall construct on synthesized templates. The tests cover each
 * rule with its action and overrides, the body statements' oversize handling
 * and text transformations, the regex pattern sets, the load balancer
 * association, the logging destination and its redacted fields, and the
 * metrics. cdk-nag's AWS Solutions checks and aws-cdk-lib's CloudFormation
 * validation run on the synthesized stack.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App, CfnElement, CloudFormationValidatePlugin, PolicyValidationPluginReport, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AgentEndpoint } from '../constructs/agent-endpoint';
import { AgentFirewall, AgentFirewallProps, WAF_LOG_PREFIX } from '../constructs/agent-firewall';
import { AgentNetwork } from '../constructs/agent-network';
import { INJECTION_PATTERNS, WAF_MAX_PATTERNS_PER_SET } from '../lambda/shared/injection-patterns';
import { AgentStack } from '../lib/agent-stack';

type Json = any;

const ROOT = path.resolve(__dirname, '..');
const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const CERTIFICATE_ARN = `arn:aws:acm:${REGION}:${ACCOUNT}:certificate/2b1f0c1e-0d5e-4b1a-9c4b-1c7f0e9a1b2c`;
// Bundling is skipped because the checks read the template, not the code.
const CONTEXT = { 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:validateAgainstDefaultRules': true };

/** A company stack: network, the agents' load balancer and the firewall in front of it. */
class FirewallStack {
  readonly app: App;
  readonly stack: Stack;
  readonly endpoint: AgentEndpoint;
  readonly firewall: AgentFirewall;

  constructor(props: Partial<AgentFirewallProps> = {}, associate = true) {
    this.app = new App({ context: CONTEXT });
    this.stack = new Stack(this.app, 'Company', { env: { region: REGION, account: ACCOUNT } });
    const network = new AgentNetwork(this.stack, 'Network', { availabilityZones: [`${REGION}a`, `${REGION}b`] });
    this.endpoint = new AgentEndpoint(this.stack, 'Endpoint', {
      vpc: network.vpc,
      auth: { type: 'jwt', issuer: 'https://issuer.example.com/', audience: ['agents'], jwksUri: 'https://issuer.example.com/jwks.json' },
      certificateArn: CERTIFICATE_ARN,
    });
    this.firewall = new AgentFirewall(this.stack, 'Firewall', {
      loadBalancer: associate ? this.endpoint.loadBalancer : undefined,
      ...props,
    });
  }

  template(): Template {
    return Template.fromStack(this.stack);
  }

  logicalId(construct: { node: { defaultChild?: unknown } } | CfnElement): string {
    const element = construct instanceof CfnElement ? construct : (construct.node.defaultChild as CfnElement);
    return this.stack.getLogicalId(element);
  }

  webAcl(): Json {
    return this.template().toJSON().Resources[this.logicalId(this.firewall.webAcl)].Properties;
  }

  rule(name: string): Json {
    const rule = this.webAcl().Rules.find((r: Json) => r.Name === name);
    if (!rule) throw new Error(`No rule ${name}; the web ACL has ${this.webAcl().Rules.map((r: Json) => r.Name).join(', ')}.`);
    return rule;
  }

  injectionRules(): Json[] {
    return this.webAcl().Rules.filter((r: Json) => r.Name.startsWith(AgentFirewall.INJECTION_RULE_PREFIX));
  }

  resourcesOfType(type: string): Json[] {
    return Object.values(this.template().findResources(type));
  }
}

const EXPECTED_SET_COUNT = Math.ceil(INJECTION_PATTERNS.length / WAF_MAX_PATTERNS_PER_SET);

describe('web acl', () => {
  const synth = new FirewallStack();

  test('regional with allow default', () => {
    const acl = synth.webAcl();
    expect(acl.Scope).toBe('REGIONAL');
    expect(acl.DefaultAction).toEqual({ Allow: {} });
  });

  test('web acl metrics enabled', () => {
    expect(synth.webAcl().VisibilityConfig).toEqual({
      CloudWatchMetricsEnabled: true,
      MetricName: synth.firewall.webAclName,
      SampledRequestsEnabled: false,
    });
  });

  test('rules in documented priority order', () => {
    const rules = synth.webAcl().Rules.map((r: Json) => [r.Name, r.Priority]);
    expect(rules).toEqual([
      ['AWS-AWSManagedRulesAmazonIpReputationList', 0],
      ['RateLimitPerIp', 1],
      ['AWS-AWSManagedRulesCommonRuleSet', 2],
      ['AWS-AWSManagedRulesKnownBadInputsRuleSet', 3],
      ...Array.from({ length: EXPECTED_SET_COUNT }, (_, i) => [`PromptInjection${i + 1}`, 100 + i]),
    ]);
  });

  test('ruleNames match the template', () => {
    expect(synth.firewall.ruleNames).toEqual(synth.webAcl().Rules.map((r: Json) => r.Name));
  });

  test('every rule publishes a metric', () => {
    for (const rule of synth.webAcl().Rules) {
      expect(rule.VisibilityConfig).toEqual({ CloudWatchMetricsEnabled: true, MetricName: rule.Name, SampledRequestsEnabled: false });
    }
  });

  test('sampled requests when enabled', () => {
    const sampled = new FirewallStack({ sampledRequests: true });
    for (const rule of sampled.webAcl().Rules) {
      expect(rule.VisibilityConfig.SampledRequestsEnabled).toBe(true);
    }
  });

  test('custom response bodies are json errors', () => {
    const bodies = synth.webAcl().CustomResponseBodies;
    expect(JSON.parse(bodies['rate-limited'].Content).error.name).toBe('RateLimitedError');
    expect(JSON.parse(bodies['injection-blocked'].Content).error).toMatchObject({ name: 'GuardrailBlockedError', layer: 'pattern' });
    expect(bodies['rate-limited'].ContentType).toBe('APPLICATION_JSON');
    expect(bodies['injection-blocked'].ContentType).toBe('APPLICATION_JSON');
  });
});

describe('managed rule groups', () => {
  const synth = new FirewallStack();

  test.each([
    ['AWS-AWSManagedRulesAmazonIpReputationList', 'AWSManagedRulesAmazonIpReputationList'],
    ['AWS-AWSManagedRulesCommonRuleSet', 'AWSManagedRulesCommonRuleSet'],
    ['AWS-AWSManagedRulesKnownBadInputsRuleSet', 'AWSManagedRulesKnownBadInputsRuleSet'],
  ])('%s keeps its own actions', (ruleName, groupName) => {
    const rule = synth.rule(ruleName);
    expect(rule.OverrideAction).toEqual({ None: {} });
    expect(rule.Statement.ManagedRuleGroupStatement).toMatchObject({ VendorName: 'AWS', Name: groupName });
  });

  test('SizeRestrictions_BODY counts', () => {
    const statement = synth.rule('AWS-AWSManagedRulesCommonRuleSet').Statement.ManagedRuleGroupStatement;
    expect(statement.RuleActionOverrides).toEqual([{ Name: 'SizeRestrictions_BODY', ActionToUse: { Count: {} } }]);
  });

  test('other default groups override nothing', () => {
    for (const name of ['AWS-AWSManagedRulesAmazonIpReputationList', 'AWS-AWSManagedRulesKnownBadInputsRuleSet']) {
      expect(synth.rule(name).Statement.ManagedRuleGroupStatement.RuleActionOverrides).toBeUndefined();
    }
  });

  test('extra core rule set counts', () => {
    const custom = new FirewallStack({ coreRuleSetCountRules: ['CrossSiteScripting_BODY', 'SizeRestrictions_BODY'] });
    const overrides = custom.rule('AWS-AWSManagedRulesCommonRuleSet').Statement.ManagedRuleGroupStatement.RuleActionOverrides;
    expect(overrides).toEqual([
      { Name: 'SizeRestrictions_BODY', ActionToUse: { Count: {} } },
      { Name: 'CrossSiteScripting_BODY', ActionToUse: { Count: {} } },
    ]);
  });

  test('block oversize keeps SizeRestrictions_BODY blocking', () => {
    const blocking = new FirewallStack({ oversizeBody: 'block' });
    expect(blocking.rule('AWS-AWSManagedRulesCommonRuleSet').Statement.ManagedRuleGroupStatement.RuleActionOverrides).toBeUndefined();
  });

  test('extra groups follow the defaults', () => {
    const extra = new FirewallStack({
      managedRuleGroups: [
        { name: 'AWSManagedRulesSQLiRuleSet', version: 'Version_2.0', countRules: ['SQLi_BODY'] },
        { name: 'AWSManagedRulesLinuxRuleSet' },
      ],
    });
    const sqli = extra.rule('AWS-AWSManagedRulesSQLiRuleSet');
    const linux = extra.rule('AWS-AWSManagedRulesLinuxRuleSet');

    expect(sqli.Priority).toBe(10);
    expect(linux.Priority).toBe(11);
    expect(sqli.OverrideAction).toEqual({ None: {} });
    expect(sqli.Statement.ManagedRuleGroupStatement).toEqual({
      VendorName: 'AWS',
      Name: 'AWSManagedRulesSQLiRuleSet',
      Version: 'Version_2.0',
      RuleActionOverrides: [{ Name: 'SQLi_BODY', ActionToUse: { Count: {} } }],
    });
    expect(linux.VisibilityConfig.MetricName).toBe('AWS-AWSManagedRulesLinuxRuleSet');
  });

  test('repeated default group rejected', () => {
    expect(() => new FirewallStack({ managedRuleGroups: [{ name: 'AWSManagedRulesCommonRuleSet' }] })).toThrow(
      /managedRuleGroups\[0\] repeats AWS\/AWSManagedRulesCommonRuleSet/,
    );
  });

  test('repeated extra group rejected', () => {
    const groups = [{ name: 'AWSManagedRulesSQLiRuleSet' }, { name: 'AWSManagedRulesSQLiRuleSet' }];
    expect(() => new FirewallStack({ managedRuleGroups: groups })).toThrow(/managedRuleGroups\[1\] repeats/);
  });

  test('invalid group name rejected', () => {
    expect(() => new FirewallStack({ managedRuleGroups: [{ name: 'SQLi rules' }] })).toThrow(
      /managedRuleGroups\[0\]\.name "SQLi rules" is invalid/,
    );
  });
});

describe('rate limit', () => {
  test('default 1000 per ip per 5 minutes', () => {
    const rule = new FirewallStack().rule('RateLimitPerIp');
    expect(rule.Statement.RateBasedStatement).toEqual({ Limit: 1000, EvaluationWindowSec: 300, AggregateKeyType: 'IP' });
  });

  test('blocks with 429', () => {
    const rule = new FirewallStack().rule('RateLimitPerIp');
    expect(rule.Action).toEqual({ Block: { CustomResponse: { ResponseCode: 429, CustomResponseBodyKey: 'rate-limited' } } });
  });

  test('custom limit', () => {
    const rule = new FirewallStack({ rateLimit: 250 }).rule('RateLimitPerIp');
    expect(rule.Statement.RateBasedStatement.Limit).toBe(250);
  });

  test.each([[9], [2_000_000_001], [100.5]])('rejects limit %p', (rateLimit) => {
    expect(() => new FirewallStack({ rateLimit })).toThrow(new RegExp(`rateLimit ${rateLimit} is invalid`));
  });
});

describe('prompt-injection rules', () => {
  const synth = new FirewallStack();

  test('one rule per pattern set', () => {
    expect(synth.injectionRules()).toHaveLength(EXPECTED_SET_COUNT);
    expect(synth.firewall.patternSets).toHaveLength(EXPECTED_SET_COUNT);
  });

  test('pattern sets hold every pattern in order', () => {
    const sets = synth.firewall.patternSets.map(
      (set) => synth.template().toJSON().Resources[synth.logicalId(set)].Properties,
    );
    for (const set of sets) {
      expect(set.Scope).toBe('REGIONAL');
      expect(set.RegularExpressionList.length).toBeLessThanOrEqual(WAF_MAX_PATTERNS_PER_SET);
    }
    expect(sets.flatMap((set) => set.RegularExpressionList)).toEqual(INJECTION_PATTERNS.map((p) => p.source));
  });

  test('rules reference their pattern sets', () => {
    synth.injectionRules().forEach((rule, index) => {
      expect(rule.Statement.RegexPatternSetReferenceStatement.Arn).toEqual({
        'Fn::GetAtt': [synth.logicalId(synth.firewall.patternSets[index]), 'Arn'],
      });
    });
  });

  test('body oversize handling continues', () => {
    for (const rule of synth.injectionRules()) {
      expect(rule.Statement.RegexPatternSetReferenceStatement.FieldToMatch).toEqual({ Body: { OversizeHandling: 'CONTINUE' } });
    }
  });

  test('decode, lowercase and compress whitespace', () => {
    for (const rule of synth.injectionRules()) {
      expect(rule.Statement.RegexPatternSetReferenceStatement.TextTransformations).toEqual([
        { Priority: 0, Type: 'JS_DECODE' },
        { Priority: 1, Type: 'LOWERCASE' },
        { Priority: 2, Type: 'COMPRESS_WHITE_SPACE' },
      ]);
    }
  });

  test('blocks with a json 400', () => {
    for (const rule of synth.injectionRules()) {
      expect(rule.Action).toEqual({ Block: { CustomResponse: { ResponseCode: 400, CustomResponseBodyKey: 'injection-blocked' } } });
    }
  });

  test('count action', () => {
    const counting = new FirewallStack({ injectionAction: 'count' });
    for (const rule of counting.injectionRules()) {
      expect(rule.Action).toEqual({ Count: {} });
    }
  });

  test('block oversize matches', () => {
    const blocking = new FirewallStack({ oversizeBody: 'block' });
    for (const rule of blocking.injectionRules()) {
      expect(rule.Statement.RegexPatternSetReferenceStatement.FieldToMatch).toEqual({ Body: { OversizeHandling: 'MATCH' } });
    }
  });

  test('custom patterns split by ten', () => {
    const patterns = Array.from({ length: 21 }, (_, i) => ({ id: `p${i}`, source: `phrase number ${i}`, description: 'test' }));
    const custom = new FirewallStack({ injectionPatterns: patterns });
    const sizes = custom.firewall.patternSets.map(
      (set) => custom.template().toJSON().Resources[custom.logicalId(set)].Properties.RegularExpressionList.length,
    );
    expect(sizes).toEqual([10, 10, 1]);
    expect(custom.injectionRules().map((r) => r.Name)).toEqual(['PromptInjection1', 'PromptInjection2', 'PromptInjection3']);
  });

  test('pattern outside the subset rejected', () => {
    const patterns = [{ id: 'captures', source: '(ignore) previous', description: 'test' }];
    expect(() => new FirewallStack({ injectionPatterns: patterns })).toThrow(/AgentFirewall: Injection pattern captures is outside the WAF regex subset/);
  });

  test('empty pattern list rejected', () => {
    expect(() => new FirewallStack({ injectionPatterns: [] })).toThrow(/injectionPatterns is empty/);
  });
});

describe('association', () => {
  test('associates the load balancer', () => {
    const synth = new FirewallStack();
    const associations = synth.resourcesOfType('AWS::WAFv2::WebACLAssociation');
    expect(associations).toHaveLength(1);
    expect(associations[0].Properties).toEqual({
      ResourceArn: { Ref: synth.logicalId(synth.endpoint.loadBalancer) },
      WebACLArn: { 'Fn::GetAtt': [synth.logicalId(synth.firewall.webAcl), 'Arn'] },
    });
  });

  test('none without a load balancer', () => {
    const synth = new FirewallStack({}, false);
    expect(synth.resourcesOfType('AWS::WAFv2::WebACLAssociation')).toHaveLength(0);
  });

  test('associate adds one later', () => {
    const synth = new FirewallStack({}, false);
    synth.firewall.associate(synth.endpoint.loadBalancer);
    const associations = synth.resourcesOfType('AWS::WAFv2::WebACLAssociation');
    expect(associations).toHaveLength(1);
    expect(associations[0].Properties.ResourceArn).toEqual({ Ref: synth.logicalId(synth.endpoint.loadBalancer) });
  });
});

describe('logging', () => {
  const synth = new FirewallStack();
  const logging = () => synth.resourcesOfType('AWS::WAFv2::LoggingConfiguration')[0].Properties;

  test('log group name has the waf prefix', () => {
    const group = synth.template().toJSON().Resources[synth.logicalId(synth.firewall.logGroup)].Properties;
    expect(group.LogGroupName.startsWith(WAF_LOG_PREFIX)).toBe(true);
    expect(group.RetentionInDays).toBe(90);
  });

  test('destination is the log group arn without suffix', () => {
    const destination = logging().LogDestinationConfigs;
    expect(destination).toHaveLength(1);
    const joined = destination[0]['Fn::Join'][1].map((part: Json) => (typeof part === 'string' ? part : JSON.stringify(part))).join('');
    // Ref of a log group is its name.
    expect(joined).toBe(
      `arn:{"Ref":"AWS::Partition"}:logs:${REGION}:${ACCOUNT}:log-group:{"Ref":"${synth.logicalId(synth.firewall.logGroup)}"}`,
    );
  });

  test('logs the web acl', () => {
    expect(logging().ResourceArn).toEqual({ 'Fn::GetAtt': [synth.logicalId(synth.firewall.webAcl), 'Arn'] });
  });

  test('authorization and cookie redacted', () => {
    expect(logging().RedactedFields).toEqual([{ SingleHeader: { Name: 'authorization' } }, { SingleHeader: { Name: 'cookie' } }]);
  });

  test('extra headers redacted', () => {
    const custom = new FirewallStack({ redactedHeaders: ['X-Api-Key', 'Authorization'] });
    const fields = custom.resourcesOfType('AWS::WAFv2::LoggingConfiguration')[0].Properties.RedactedFields;
    expect(fields).toEqual([
      { SingleHeader: { Name: 'authorization' } },
      { SingleHeader: { Name: 'cookie' } },
      { SingleHeader: { Name: 'x-api-key' } },
    ]);
  });

  test('keeps blocked and counted requests', () => {
    expect(logging().LoggingFilter).toEqual({
      DefaultBehavior: 'DROP',
      Filters: [
        {
          Behavior: 'KEEP',
          Requirement: 'MEETS_ANY',
          Conditions: [
            { ActionCondition: { Action: 'BLOCK' } },
            { ActionCondition: { Action: 'COUNT' } },
            { ActionCondition: { Action: 'EXCLUDED_AS_COUNT' } },
          ],
        },
      ],
    });
  });

  test('all requests when asked', () => {
    const all = new FirewallStack({ logAllRequests: true });
    expect(all.resourcesOfType('AWS::WAFv2::LoggingConfiguration')[0].Properties.LoggingFilter).toBeUndefined();
  });

  test('encrypted with the given key', () => {
    const app = new App({ context: CONTEXT });
    const stack = new Stack(app, 'Keyed', { env: { region: REGION, account: ACCOUNT } });
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const firewall = new AgentFirewall(stack, 'Firewall', { encryptionKey: key, logRetention: logs.RetentionDays.ONE_YEAR });
    const group = Template.fromStack(stack).toJSON().Resources[stack.getLogicalId(firewall.logGroup.node.defaultChild as CfnElement)].Properties;

    expect(group.KmsKeyId).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as CfnElement), 'Arn'] });
    expect(group.RetentionInDays).toBe(365);
  });
});

describe('metrics', () => {
  const synth = new FirewallStack();

  test('blocked requests of one rule', () => {
    const metric = synth.firewall.metricBlockedRequests('RateLimitPerIp');
    expect(metric.namespace).toBe('AWS/WAFV2');
    expect(metric.metricName).toBe('BlockedRequests');
    expect(metric.dimensions).toEqual({ Region: REGION, Rule: 'RateLimitPerIp', WebACL: synth.firewall.webAclName });
    expect(metric.statistic).toBe('Sum');
  });

  test('whole web acl uses ALL', () => {
    expect(synth.firewall.metricAllowedRequests().dimensions).toMatchObject({ Rule: 'ALL' });
    expect(synth.firewall.metricCountedRequests().dimensions).toMatchObject({ Rule: 'ALL' });
  });

  test('web acl name matches the template', () => {
    expect(synth.webAcl().Name).toBe(synth.firewall.webAclName);
  });

  test('unknown rule rejected', () => {
    expect(() => synth.firewall.metricBlockedRequests('NoSuchRule')).toThrow(/no rule named NoSuchRule/);
  });
});

function describeViolations(report: PolicyValidationPluginReport): string[] {
  return report.violations.map((v) => {
    const where = v.violatingResources.map((r) => r.constructPath ?? r.resourceLogicalId).join(', ');
    return `${v.ruleName} (${v.severity}) at ${where}`;
  });
}

describe('validation', () => {
  const synth = new FirewallStack({ managedRuleGroups: [{ name: 'AWSManagedRulesSQLiRuleSet' }] });
  const nag = new AwsSolutionsChecks(synth.app);
  Validations.of(synth.app).addPlugins(nag);
  let nagReports: PolicyValidationPluginReport[] = [];
  let cfnReports: PolicyValidationPluginReport[] = [];
  let synthError: unknown;

  beforeAll(() => {
    const nagSpy = jest.spyOn(nag, 'validate');
    const cfnSpy = jest.spyOn(CloudFormationValidatePlugin.prototype, 'validate');
    try {
      synth.app.synth();
    } catch (error) {
      // In a test, synthesis throws the validation report when a check fails.
      synthError = error;
    }
    nagReports = nagSpy.mock.results.map((r) => r.value);
    cfnReports = cfnSpy.mock.results.map((r) => r.value);
    cfnSpy.mockRestore();
  });

  test('synthesis passes validation', () => {
    expect(synthError).toBeUndefined();
  });

  test('no unacknowledged nag findings', () => {
    expect(nagReports).toHaveLength(1);
    expect(nagReports.flatMap(describeViolations)).toEqual([]);
  });

  test('no cloudformation validation errors', () => {
    expect(cfnReports).toHaveLength(1);
    const errors = cfnReports.flatMap((report) =>
      describeViolations({ ...report, violations: report.violations.filter((v) => v.severity === 'error' || v.severity === 'fatal') }),
    );
    expect(errors).toEqual([]);
  });

  test('firewall acknowledges nothing', () => {
    const acknowledged = synth.firewall.node
      .findAll()
      .flatMap((construct) => construct.node.metadata.filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY));
    expect(acknowledged).toEqual([]);
  });
});

/** Builds AgentStack from the example config after `mutate` changed it. */
function agentStack(mutate: (config: Json) => void = () => {}): { stack: AgentStack; template: Template } {
  const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'agent-stack.config.json'), 'utf8'));
  mutate(config);
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new AgentStack(app, 'AgentStack', { config, configDir: ROOT });
  return { stack, template: Template.fromStack(stack) };
}

/** Writes `Ref` and `Fn::GetAtt` as `${LogicalId}` text, and joins `Fn::Join`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  return JSON.stringify(value);
}

/** Parses the limits of one agent's worker from its container environment. */
function workerLimits(stack: AgentStack, template: Template, agentName: string): Json {
  const taskDefinitionId = stack.getLogicalId(stack.agents[agentName].taskDefinition.node.defaultChild as CfnElement);
  const environment = template.toJSON().Resources[taskDefinitionId].Properties.ContainerDefinitions[0].Environment;
  const variable = environment.find((e: Json) => e.Name === 'AGENT_WORKER_CONFIG');
  return JSON.parse(flatten(variable.Value)).limits;
}

describe('agent stack firewall', () => {
  const { stack, template } = agentStack();

  test('example stack has one web acl', () => {
    template.resourceCountIs('AWS::WAFv2::WebACL', 1);
    expect(stack.firewall).toBeDefined();
  });

  test('associated with the endpoint', () => {
    template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', {
      ResourceArn: { Ref: stack.getLogicalId(stack.endpoint!.loadBalancer.node.defaultChild as CfnElement) },
    });
  });

  test('logs encrypted with the stack key', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: Match.stringLikeRegexp(`^${WAF_LOG_PREFIX}`),
      KmsKeyId: { 'Fn::GetAtt': [stack.getLogicalId(stack.key.node.defaultChild as CfnElement), 'Arn'] },
      RetentionInDays: 90,
    });
  });

  test('config settings reach the rules', () => {
    const custom = agentStack((config) => {
      config.firewall = {
        rateLimit: 300,
        managedRuleGroups: [{ name: 'AWSManagedRulesSQLiRuleSet', countRules: ['SQLi_BODY'] }],
        coreRuleSetCountRules: ['CrossSiteScripting_BODY'],
        injectionAction: 'count',
      };
    });
    const acl = Object.values(custom.template.findResources('AWS::WAFv2::WebACL'))[0].Properties;
    const rule = (name: string) => acl.Rules.find((r: Json) => r.Name === name);

    expect(rule('RateLimitPerIp').Statement.RateBasedStatement.Limit).toBe(300);
    expect(rule('AWS-AWSManagedRulesSQLiRuleSet').Statement.ManagedRuleGroupStatement.RuleActionOverrides).toEqual([
      { Name: 'SQLi_BODY', ActionToUse: { Count: {} } },
    ]);
    expect(rule('AWS-AWSManagedRulesCommonRuleSet').Statement.ManagedRuleGroupStatement.RuleActionOverrides).toEqual([
      { Name: 'SizeRestrictions_BODY', ActionToUse: { Count: {} } },
      { Name: 'CrossSiteScripting_BODY', ActionToUse: { Count: {} } },
    ]);
    expect(rule('PromptInjection1').Action).toEqual({ Count: {} });
  });

  test('disabled by config', () => {
    const disabled = agentStack((config) => {
      config.firewall = { enabled: false };
    });
    disabled.template.resourceCountIs('AWS::WAFv2::WebACL', 0);
    expect(disabled.stack.firewall).toBeUndefined();
  });

  test('none without an endpoint', () => {
    const background = agentStack((config) => {
      config.agents = config.agents.filter((agent: Json) => agent.mode === 'background');
      delete config.endpoint;
    });
    background.template.resourceCountIs('AWS::WAFv2::WebACL', 0);
    Annotations.fromStack(background.stack).hasNoWarning('*', Match.stringLikeRegexp('firewall'));
  });

  test('warns when enabled without an endpoint', () => {
    const background = agentStack((config) => {
      config.agents = config.agents.filter((agent: Json) => agent.mode === 'background');
      delete config.endpoint;
      config.firewall = { enabled: true };
    });
    background.template.resourceCountIs('AWS::WAFv2::WebACL', 0);
    Annotations.fromStack(background.stack).hasWarning('*', Match.stringLikeRegexp('firewall.enabled'));
  });

  test('maxBodyBytes caps realtime workers', () => {
    const capped = agentStack((config) => {
      config.firewall = { maxBodyBytes: 16_384 };
    });
    expect(workerLimits(capped.stack, capped.template, 'support').maxBodyBytes).toBe(16_384);
    expect(workerLimits(capped.stack, capped.template, 'research').maxBodyBytes).toBe(262_144);
  });

  test('lower agent limit kept', () => {
    const capped = agentStack((config) => {
      config.firewall = { maxBodyBytes: 16_384 };
      config.agents.find((agent: Json) => agent.name === 'support').limits = { maxBodyBytes: 4_096 };
    });
    expect(workerLimits(capped.stack, capped.template, 'support').maxBodyBytes).toBe(4_096);
  });

  test('default limit without the cap', () => {
    expect(workerLimits(stack, template, 'support').maxBodyBytes).toBe(262_144);
  });
});
