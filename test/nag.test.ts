import * as fs from 'fs';
import * as path from 'path';
import { App, CfnResource, CloudFormationValidatePlugin, PolicyValidationPluginReport, Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { AgentStack } from '../lib/agent-stack';
import { loadConfig } from '../lib/config';

const ROOT = path.resolve(__dirname, '..');

// Bundling is skipped because the checks read the template, not the code.
// Without validateAgainstDefaultRules, aws-cdk-lib reports errors of its
// built-in CloudFormation validation as warnings and synthesis succeeds.
const CONTEXT = { 'aws:cdk:bundling-stacks': [], '@aws-cdk/core:validateAgainstDefaultRules': true };

// Reasons that give no cause for accepting a finding.
const PLACEHOLDER_REASON = /\b(todo|tbd|fixme|n\/a|not needed|false positive|suppress(ed)?)\b/i;

interface Acknowledgement {
  readonly ruleId: string;
  readonly constructPath: string;
  readonly reason: string;
}

/** Collects every `Validations.of(x).acknowledge()` in the tree, with the construct it was made on. */
function acknowledgementsIn(root: IConstruct): Acknowledgement[] {
  return root.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, string>).map(([qualifiedId, reason]) => ({
          // aws-cdk-lib records an id without a namespace under `Annotation::`, which cdk-nag strips.
          ruleId: qualifiedId.replace(/^annotation::/i, ''),
          constructPath: construct.node.path,
          reason,
        })),
      ),
  );
}

/**
 * Returns the findings cdk-nag makes when acknowledgements are ignored. cdk-nag 3 has
 * no option for this, so the pack's private acknowledgement check is
 * replaced on this one instance.
 */
function findingsIgnoringAcknowledgements(root: IConstruct): Array<{ ruleId: string; constructPath: string }> {
  const pack = new AwsSolutionsChecks();
  (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
  return pack
    .validateScope(root)
    .violations.flatMap((v) => v.violatingResources.map((r) => ({ ruleId: v.ruleName, constructPath: r.constructPath ?? '' })));
}

function describeViolations(report: PolicyValidationPluginReport): string[] {
  return report.violations.map((v) => {
    const where = v.violatingResources.map((r) => r.constructPath ?? r.resourceLogicalId).join(', ');
    return `${v.ruleName} (${v.severity}) at ${where}`;
  });
}

describe('example stack validation', () => {
  const app = new App({ context: CONTEXT });
  new AgentStack(app, 'AgentStack', { config: loadConfig(path.join(ROOT, 'agent-stack.config.json')), configDir: ROOT });
  const nag = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(nag);

  let nagReports: PolicyValidationPluginReport[] = [];
  let cfnReports: PolicyValidationPluginReport[] = [];
  let assemblyDir: string | undefined;
  let synthError: unknown;

  beforeAll(() => {
    const nagSpy = jest.spyOn(nag, 'validate');
    const cfnSpy = jest.spyOn(CloudFormationValidatePlugin.prototype, 'validate');
    try {
      assemblyDir = app.synth().directory;
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

  test('aws solutions checks ran', () => {
    expect(nagReports).toHaveLength(1);
  });

  test('no unacknowledged nag findings', () => {
    expect(nagReports.flatMap(describeViolations)).toEqual([]);
  });

  test('cloudformation validation ran', () => {
    expect(cfnReports).toHaveLength(1);
  });

  test('no cloudformation validation errors', () => {
    const errors = cfnReports.map((report) => ({
      ...report,
      violations: report.violations.filter((v) => v.severity === 'error' || v.severity === 'fatal'),
    }));

    expect(errors.flatMap(describeViolations)).toEqual([]);
  });

  test('validation report is empty', () => {
    const report = JSON.parse(fs.readFileSync(path.join(assemblyDir ?? '', 'validation-report.json'), 'utf8'));
    const violations = report.pluginReports.flatMap((r: { pluginName: string; violations: Array<{ ruleName: string }> }) =>
      r.violations.map((v) => `${r.pluginName}: ${v.ruleName}`),
    );

    expect(violations).toEqual([]);
  });

  test('acknowledgements give specific reasons', () => {
    const acknowledgements = acknowledgementsIn(app);
    const vague = acknowledgements.filter(
      (a) => a.reason.trim().split(/\s+/).length < 8 || PLACEHOLDER_REASON.test(a.reason) || a.reason.includes(a.ruleId),
    );

    expect(acknowledgements.length).toBeGreaterThan(0);
    expect(vague).toEqual([]);
  });

  test('acknowledgements match findings', () => {
    const findings = findingsIgnoringAcknowledgements(app);
    const unused = acknowledgementsIn(app)
      .filter((a) => a.ruleId.startsWith('AwsSolutions-'))
      .filter(
        (a) =>
          !findings.some(
            (f) => f.ruleId === a.ruleId && (f.constructPath === a.constructPath || f.constructPath.startsWith(`${a.constructPath}/`)),
          ),
      );

    expect(unused).toEqual([]);
  });
});

// The checks above pass when nothing is reported. These tests show that the
// same setup fails synthesis when something is.
describe('validation setup', () => {
  test('nag finding fails synthesis', () => {
    const app = new App({ context: CONTEXT });
    const stack = new Stack(app, 'Canary');
    new sqs.Queue(stack, 'Queue', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

    expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
  });

  test('invalid property fails synthesis', () => {
    const app = new App({ context: CONTEXT });
    const stack = new Stack(app, 'Canary');
    new CfnResource(stack, 'Queue', { type: 'AWS::SQS::Queue', properties: { VisibilityTimeout: 'one hour' } });

    expect(() => app.synth()).toThrow(/VisibilityTimeout/);
  });
});

describe('tool wildcard reasons', () => {
  test('recorded reason satisfies cdk-nag', () => {
    const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'agent-stack.config.json'), 'utf8'));
    const reason = 'The search tool reads any document of the company knowledge base bucket.';
    config.agents[1].tools[0].policyStatements = [
      { actions: ['s3:GetObject'], resources: ['arn:aws:s3:::company-kb/*'], reason },
    ];
    const app = new App({ context: CONTEXT });
    new AgentStack(app, 'Wildcards', { config, configDir: ROOT });
    const nag = new AwsSolutionsChecks(app);
    Validations.of(app).addPlugins(nag);
    const nagSpy = jest.spyOn(nag, 'validate');

    app.synth();

    const report = nagSpy.mock.results[0].value as PolicyValidationPluginReport;
    expect(report.violations).toEqual([]);
    expect(acknowledgementsIn(app)).toContainEqual(
      expect.objectContaining({ ruleId: 'AwsSolutions-IAM5[Resource::arn:aws:s3:::company-kb/*]', reason }),
    );
  });
});
