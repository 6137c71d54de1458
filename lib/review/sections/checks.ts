import { spawnSync } from 'child_process';
import { compareText } from '../assembly';
import { Block, code, renderBlocks } from '../blocks';
import type { ReviewModel } from '../model';
import type { ReviewInput, ReviewSection, SectionResult } from '../section';
import { SECTION_ORDER } from './order';

/** cdk-nag and other acknowledgements with their reasons, synthesis warnings, and the cfn-lint summary. */
export const checksSection: ReviewSection = {
  id: 'checks',
  title: 'Acknowledgements and checks',
  order: SECTION_ORDER.checks,
  build: (input) => buildChecks(input),
};

interface CfnLintFinding {
  readonly Rule: { readonly Id: string };
  readonly Level: string;
  readonly Message: string;
  readonly Filename: string;
  readonly Location: { readonly Path: readonly (string | number)[]; readonly Start: { readonly LineNumber: number } };
}

/** Result of running cfn-lint on every template. */
export interface CfnLintSummary {
  readonly status: 'run' | 'not run';
  /** Reason cfn-lint did not run. */
  readonly reason?: string;
  readonly version?: string;
  readonly templates: number;
  /** Counts by rule id and level, sorted by rule id. */
  readonly rules: ReadonlyArray<{ readonly rule: string; readonly level: string; readonly count: number; readonly note: string }>;
  readonly errors: number;
}

function buildChecks({ model, options }: ReviewInput): SectionResult {
  const lint = runCfnLint(model, options.cfnLint ?? 'cfn-lint');
  const blocks: Block[] = [
    { kind: 'heading', text: 'Acknowledged findings' },
    {
      kind: 'table',
      headers: ['Construct', 'Rule', 'Reason'],
      rows: model.acknowledgements.map((a) => [code(a.path), code(a.ruleId), a.reason]),
      empty: 'No acknowledgements.',
    },
    { kind: 'heading', text: 'Recorded grant reasons' },
    {
      kind: 'table',
      headers: ['Construct', 'Kind', 'Actions', 'Resources', 'Reason'],
      rows: model.grantReasons.map((g) => [code(g.path), g.kind, code(g.actions.join(', ')), code(g.resources?.join(', ') ?? 'any'), g.reason]),
      empty: 'No grant reasons.',
    },
    { kind: 'heading', text: 'Synthesis warnings' },
    {
      kind: 'table',
      headers: ['Construct', 'Warning'],
      rows: model.warnings.map((w) => [code(w.path), w.message]),
      empty: 'No warnings.',
    },
    { kind: 'heading', text: 'cfn-lint' },
    {
      kind: 'paragraph',
      text:
        lint.status === 'not run'
          ? `cfn-lint: not run (${lint.reason}).`
          : `cfn-lint ${lint.version ?? ''}: ${lint.templates} template(s), ${lint.errors} error(s), ${lint.rules.reduce((n, r) => n + r.count, 0) - lint.errors} other finding(s).`,
    },
    {
      kind: 'table',
      headers: ['Rule', 'Level', 'Count', 'Note'],
      rows: lint.rules.map((r) => [code(r.rule), r.level, String(r.count), r.note]),
      empty: lint.status === 'run' ? 'cfn-lint found nothing.' : 'No cfn-lint results.',
    },
  ];
  return {
    findings: [],
    data: {
      acknowledgements: model.acknowledgements,
      grantReasons: model.grantReasons,
      warnings: model.warnings,
      cfnLint: lint,
    },
    ...renderBlocks(blocks),
  };
}

/**
 * cfn-lint's resource schema can lag behind the Lambda runtimes that
 * aws-cdk-lib lists, so an unknown-runtime finding on a `Runtime` property
 * is counted apart, as scripts/cfn-lint.js does.
 */
function isLaggingRuntimeFinding(finding: CfnLintFinding): boolean {
  return finding.Rule.Id === 'E3030' && finding.Location.Path.at(-1) === 'Runtime' && /^'nodejs\d+\.x' is not one of/.test(finding.Message);
}

/** Runs cfn-lint on every template of the assembly, when the command is on the PATH. */
export function runCfnLint(model: ReviewModel, command: string | false): CfnLintSummary {
  const templates = model.stacks.map((s) => s.templatePath);
  if (command === false) return { status: 'not run', reason: 'turned off with --no-cfn-lint', templates: 0, rules: [], errors: 0 };
  const version = spawnSync(command, ['--version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    return { status: 'not run', reason: `${command} is not on the PATH; install it with "pip install cfn-lint"`, templates: 0, rules: [], errors: 0 };
  }
  const run = spawnSync(command, ['--format', 'json', ...templates], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  let findings: CfnLintFinding[];
  try {
    findings = JSON.parse(run.stdout || '[]') as CfnLintFinding[];
  } catch {
    const detail = (run.stderr || run.stdout || '').trim().split('\n')[0] ?? '';
    return { status: 'not run', reason: `${command} failed: ${detail}`, templates: 0, rules: [], errors: 0 };
  }
  const counts = new Map<string, { rule: string; level: string; count: number; note: string }>();
  let errors = 0;
  for (const finding of findings) {
    const lagging = isLaggingRuntimeFinding(finding);
    const level = finding.Level.toLowerCase();
    const key = `${finding.Rule.Id}\n${level}\n${lagging}`;
    const entry = counts.get(key) ?? {
      rule: finding.Rule.Id,
      level,
      count: 0,
      note: lagging ? `${version.stdout.trim()} predates the Lambda runtime the template uses; not counted as an error` : '',
    };
    entry.count += 1;
    counts.set(key, entry);
    if (level === 'error' && !lagging) errors += 1;
  }
  return {
    status: 'run',
    version: version.stdout.trim().replace(/^cfn-lint\s*/, ''),
    templates: templates.length,
    rules: [...counts.values()].sort((a, b) => compareText(a.rule, b.rule) || compareText(a.level, b.level) || compareText(a.note, b.note)),
    errors,
  };
}
