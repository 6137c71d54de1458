import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { AgentStack } from '../../lib/agent-stack';
import { AgentStackConfigInput } from '../../lib/config';
import { readAssembly } from '../../lib/review/assembly';
import { runReview } from '../../lib/review/cli';
import { buildModel, ReviewModel } from '../../lib/review/model';
import { buildReport, renderReport, Report } from '../../lib/review/report';

export const ROOT = path.resolve(__dirname, '..', '..');
// Skips bundling the tool functions: the report reads templates, not code.
export const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

/** Temporary folders of one test file, removed by `removeTempDirs`. */
const tempDirs: string[] = [];

export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `review-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** Returns the example config, as JSON that a test may change. */
export function exampleConfig(): AgentStackConfigInput {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'agent-stack.config.json'), 'utf8')) as AgentStackConfigInput;
}

/**
 * Synthesizes an app into a new temporary folder and returns the folder.
 * `build` adds the stacks; by default the AgentStack of the example config.
 */
export function synthesize(build: (app: App) => void): string {
  const outdir = tempDir('assembly');
  const app = new App({ outdir, context: NO_BUNDLING });
  build(app);
  app.synth();
  return outdir;
}

/** Synthesizes the AgentStack of a config, after `change` has run on the stack. */
export function synthesizeAgentStack(config: AgentStackConfigInput = exampleConfig(), change?: (stack: AgentStack) => void): string {
  return synthesize((app) => {
    const stack = new AgentStack(app, 'AgentStack', { config, configDir: ROOT });
    change?.(stack);
  });
}

/** Builds the report of an assembly in the test's process, without cfn-lint. */
export async function reviewOf(assemblyDir: string, against?: string): Promise<{ model: ReviewModel; report: Report; files: Record<string, string>; json: any }> {
  const model = buildModel(readAssembly(assemblyDir));
  const previous = against === undefined ? undefined : buildModel(readAssembly(against));
  const report = await buildReport(model, { cfnLint: false }, previous);
  const files = { ...renderReport(report, model) };
  return { model, report, files, json: JSON.parse(files['report.json']) };
}

/** Runs the command as a user would, and returns its exit code and output. */
export async function runCommand(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runReview(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}
