import * as fs from 'fs';
import * as path from 'path';
import { AssemblyError, readAssembly } from './assembly';
import { FindingKind, GATE_KINDS, unexplained } from './findings';
import { buildModel } from './model';
import { buildReport, renderReport } from './report';

export const USAGE = `Usage: cdk-agent-stack-review [ASSEMBLY] [options]

Reads a cloud assembly folder (default: cdk.out), with every stack, stage
and nested stack in it, and writes report.html, report.md, report.json and
architecture.svg for a security reviewer.

Options:
  --out DIR          folder to write the report to (default: review)
  --against PATH     previous cloud assembly to compare with; the report
                     lists IAM and security group changes first
  --fail-on KINDS    comma-separated finding kinds that make the command
                     exit with 1 when a finding of that kind has no
                     recorded reason: ${GATE_KINDS.join(', ')}
  --no-cfn-lint      do not run cfn-lint, even when it is on the PATH
  -h, --help         print this help

Exit codes: 0 when the report is written, 1 when --fail-on matched an
unexplained finding (the report is still written), 2 for invalid options
or an unreadable assembly.
`;

/** Output streams of the command. */
export interface ReviewIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

interface ParsedArgs {
  readonly assembly: string;
  readonly out: string;
  readonly against?: string;
  readonly failOn: FindingKind[];
  readonly cfnLint: boolean;
  readonly help: boolean;
}

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): ParsedArgs {
  const positional: string[] = [];
  let out = 'review';
  let against: string | undefined;
  let failOn: FindingKind[] = [];
  let cfnLint = true;
  let help = false;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${arg} needs a value.`);
      i += 1;
      return next;
    };
    switch (arg) {
      case '-h':
      case '--help':
        help = true;
        break;
      case '--out':
        out = value();
        break;
      case '--against':
        against = value();
        break;
      case '--fail-on':
        failOn = parseKinds(value());
        break;
      case '--no-cfn-lint':
        cfnLint = false;
        break;
      default:
        if (arg.startsWith('-')) throw new UsageError(`Unknown option ${arg}.`);
        positional.push(arg);
    }
  }
  if (positional.length > 1) throw new UsageError(`Give one assembly folder, not ${positional.length}: ${positional.join(' ')}.`);
  return { assembly: positional[0] ?? 'cdk.out', out, against, failOn, cfnLint, help };
}

function parseKinds(list: string): FindingKind[] {
  const kinds = list.split(',').map((k) => k.trim()).filter(Boolean);
  const invalid = kinds.filter((k) => !GATE_KINDS.includes(k as FindingKind));
  if (invalid.length > 0 || kinds.length === 0) {
    throw new UsageError(`--fail-on ${JSON.stringify(list)} is invalid; expected a comma-separated list of ${GATE_KINDS.join(', ')}.`);
  }
  return kinds as FindingKind[];
}

/** Runs the review command and returns its exit code. */
export async function runReview(argv: readonly string[], io: ReviewIo): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    io.stdout(USAGE);
    return 0;
  }

  let model;
  let previous;
  try {
    model = buildModel(readAssembly(args.assembly));
    previous = args.against === undefined ? undefined : buildModel(readAssembly(args.against));
  } catch (error) {
    if (!(error instanceof AssemblyError)) throw error;
    io.stderr(`${error.message}\n`);
    return 2;
  }

  const report = await buildReport(model, { cfnLint: args.cfnLint ? 'cfn-lint' : false }, previous);
  const files = renderReport(report, model);
  fs.mkdirSync(args.out, { recursive: true });
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(args.out, name), text);

  const open = unexplained(report.findings, GATE_KINDS);
  io.stdout(
    `Wrote ${Object.keys(files).map((name) => path.join(args.out, name)).join(', ')}: ` +
      `${report.stacks.length} stack(s), ${report.findings.length} finding(s), ${open.length} unexplained of kinds ${GATE_KINDS.join(', ')}.\n`,
  );
  const failing = unexplained(report.findings, args.failOn);
  if (failing.length > 0) {
    for (const f of failing) io.stderr(`unexplained ${f.kind}: ${f.stack}/${f.logicalId} ${f.subject}\n`);
    io.stderr(`${failing.length} unexplained finding(s) of kinds ${args.failOn.join(', ')}; record a reason or fix the grant.\n`);
    return 1;
  }
  return 0;
}
