import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// Packs the library, installs the tarball in a scratch app outside the
// repository and synthesizes there, so that nothing resolves from the
// repository's own node_modules and the app has no TypeScript, esbuild or
// Docker to fall back on.

const root = path.resolve(__dirname, '..');

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync(command, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('packed library', () => {
  let scratch: string;
  let template: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
  let assemblyDir: string;

  beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-stack-consumer-'));
    const packOutput = run('npm', ['pack', '--silent', '--pack-destination', scratch], root).trim().split('\n');
    const tarball = path.join(scratch, packOutput[packOutput.length - 1]);

    const peers = require(path.join(root, 'package.json')).peerDependencies as Record<string, string>;
    fs.writeFileSync(
      path.join(scratch, 'package.json'),
      JSON.stringify({ name: 'company-agents', private: true, version: '1.0.0' }),
    );
    run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        tarball,
        ...Object.entries(peers).map(([name, range]) => `${name}@${range}`),
      ],
      scratch,
    );

    // A company app in plain JavaScript. Its tools are existing functions,
    // so nothing needs bundling.
    const config = JSON.parse(fs.readFileSync(path.join(root, 'agent-stack.config.json'), 'utf8'));
    for (const agent of config.agents) {
      for (const tool of agent.tools) {
        const name = tool.name.replace(/_/g, '-');
        tool.handler = { functionArn: `arn:aws:lambda:us-east-1:111122223333:function:${name}` };
        delete tool.timeoutSeconds;
        delete tool.maxConcurrency;
      }
    }
    fs.writeFileSync(path.join(scratch, 'agents.json'), JSON.stringify(config));
    fs.writeFileSync(
      path.join(scratch, 'app.js'),
      [
        "const { App } = require('aws-cdk-lib');",
        "const { AgentStack, loadConfig } = require('cdk-agent-stack');",
        "const app = new App({ outdir: 'cdk.out' });",
        "new AgentStack(app, 'CompanyAgents', { config: loadConfig('agents.json') });",
        'app.synth();',
      ].join('\n'),
    );

    // An unusable Docker binary proves that synthesis never builds an image.
    const env = { ...process.env, CDK_DOCKER: path.join(scratch, 'no-docker') };
    run(process.execPath, ['app.js'], scratch, env);
    assemblyDir = path.join(scratch, 'cdk.out');
    const templateFile = path.join(assemblyDir, 'CompanyAgents.template.json');
    template = JSON.parse(fs.readFileSync(templateFile, 'utf8'));
  }, 300_000);

  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  function assetDirs(): string[] {
    return fs.readdirSync(assemblyDir).filter((name) => name.startsWith('asset.'));
  }

  test('resolves from its own install', () => {
    const resolved = require.resolve('cdk-agent-stack', { paths: [scratch] });
    expect(resolved.startsWith(path.join(scratch, 'node_modules'))).toBe(true);
  });

  test('installs without typescript or esbuild', () => {
    expect(fs.existsSync(path.join(scratch, 'node_modules', 'typescript'))).toBe(false);
    expect(fs.existsSync(path.join(scratch, 'node_modules', 'esbuild'))).toBe(false);
  });

  test('ships the operator command', () => {
    const bin = path.join(scratch, 'node_modules', '.bin', 'agent-stack-admin');

    const help = run(bin, ['--help'], scratch);

    expect(help).toContain('Usage: agent-stack-admin <command> [options]');
    expect(help).toContain('set-limit (--agent NAME | --stack)');
  });

  test('ships the review command', () => {
    const bin = path.join(scratch, 'node_modules', '.bin', 'cdk-agent-stack-review');

    const help = run(bin, ['--help'], scratch);

    expect(help).toContain('Usage: cdk-agent-stack-review [ASSEMBLY] [options]');
  });

  test('review command reports on the app', () => {
    const bin = path.join(scratch, 'node_modules', '.bin', 'cdk-agent-stack-review');

    run(bin, ['cdk.out', '--out', 'review', '--no-cfn-lint'], scratch);

    const report = JSON.parse(fs.readFileSync(path.join(scratch, 'review', 'report.json'), 'utf8'));
    expect(report.stacks).toEqual(['CompanyAgents']);
    expect(report.sections.iam.data.bedrockInvokeRoles).toEqual([expect.stringMatching(/^CompanyAgents\/GatewayRole/)]);
    expect(fs.readFileSync(path.join(scratch, 'review', 'report.html'), 'utf8')).toContain('<svg');
  });

  test('ships declarations', () => {
    const types = path.join(scratch, 'node_modules', 'cdk-agent-stack', 'dist', 'lib', 'index.d.ts');
    expect(fs.readFileSync(types, 'utf8')).toContain('agent-stack');
  });

  test('synthesizes functions from bundles', () => {
    const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    const descriptions = functions.map((fn) => String(fn.Properties?.Description).split(':')[0]);
    expect(descriptions).toEqual(expect.arrayContaining(['KillSwitch', 'ModelGateway']));
    // Every function's code is a pre-bundled asset folder, never a Docker or esbuild build.
    for (const fn of functions) {
      const code = fn.Properties?.Code as { S3Key?: unknown };
      const assetHash = String(code.S3Key).replace(/\.zip$/, '');
      const bundle = path.join(assemblyDir, `asset.${assetHash}`, 'index.js');
      expect(fs.statSync(bundle).size).toBeGreaterThan(10_000);
    }
  });

  test('stages the worker image source', () => {
    const worker = assetDirs().find((dir) => fs.existsSync(path.join(assemblyDir, dir, 'Dockerfile')));
    expect(worker).toBeDefined();
    const dockerfile = fs.readFileSync(path.join(assemblyDir, worker!, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM .*node:(2[2-9]|[3-9]\d)/m);
    expect(fs.existsSync(path.join(assemblyDir, worker!, 'index.js'))).toBe(true);
  });

  test('creates both agent services', () => {
    const services = Object.values(template.Resources).filter((r) => r.Type === 'AWS::ECS::Service');
    expect(services).toHaveLength(2);
  });
});
