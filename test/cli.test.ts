import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// Runs bin/app.ts through the cdk CLI the way a user does. The app is run
// with ts-node directly instead of the cdk.json command, which also
// rebundles the runtime assets that the test setup has bundled already.

const ROOT = path.resolve(__dirname, '..');
const CDK_CLI = path.join(ROOT, 'node_modules', 'aws-cdk', 'bin', 'cdk');
const TS_NODE = path.join(ROOT, 'node_modules', 'ts-node', 'dist', 'bin.js');
const APP = `"${process.execPath}" "${TS_NODE}" --transpile-only --prefer-ts-exts bin/app.ts`;

/** A stack trace line such as `    at loadConfig (/work/lib/config.ts:12:3)`. */
const STACK_FRAME = /^\s+at /m;

/**
 * Returns an environment without the machine's AWS settings, so that the
 * CLI finds no credentials and makes no STS or instance metadata call. It
 * also turns off telemetry and the version check, as cdk.json does for
 * notices and telemetry.
 */
function offlineEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    AWS_CONFIG_FILE: path.join(home, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
    CDK_DISABLE_VERSION_CHECK: 'true',
    // The CDK runs `npx esbuild` to bundle tools, and npm would otherwise
    // look up its registry for an update notice.
    npm_config_update_notifier: 'false',
  };
}

function cdkSynth(scratch: string, extraArgs: string[]) {
  const args = [CDK_CLI, 'synth', '--quiet', '--no-notices', '--output', path.join(scratch, 'cdk.out'), '--app', APP, ...extraArgs];
  const result = spawnSync(process.execPath, args, {
    cwd: ROOT,
    env: offlineEnv(scratch),
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}`, error: result.error };
}

describe('cdk synth', () => {
  let scratch: string;

  beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-cli-'));
  });

  afterAll(() => {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  test('bad config fails with its path', () => {
    const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'agent-stack.config.json'), 'utf8'));
    config.agents[0].scaling.minTasks = 11;
    const file = path.join(scratch, 'bad.config.json');
    fs.writeFileSync(file, JSON.stringify(config));

    const run = cdkSynth(scratch, ['--context', `config=${file}`]);

    expect(run.error).toBeUndefined();
    expect(run.status).not.toBe(0);
    expect(run.output).toContain(`Invalid ${file}:`);
    expect(run.output).toContain('$.agents[0].scaling.minTasks: exceeds maxTasks (10) (got 11)');
    expect(run.output).not.toMatch(STACK_FRAME);
  });

  test('example config synthesizes', () => {
    const run = cdkSynth(scratch, []);

    expect(run.error).toBeUndefined();
    // Matching on both fields shows the CLI output when the status is wrong.
    expect({ status: run.status, output: run.output }).toMatchObject({ status: 0 });
    expect(fs.existsSync(path.join(scratch, 'cdk.out', 'AgentStack.template.json'))).toBe(true);
  });
});
