import * as fs from 'fs';
import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

const PACKAGE_NAME = 'cdk-agent-stack';

/** Folder of this package, found from the compiled or the source location of this file. */
function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      const name = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name;
      if (name === PACKAGE_NAME) return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`Cannot find the ${PACKAGE_NAME} package folder above ${__dirname}; reinstall the package.`);
    }
    dir = parent;
  }
}

/**
 * Returns the folder of a pre-bundled runtime asset (`gateway`, `kill-switch`, `feedback`, `approval`, `worker`).
 * The package ships them bundled, so an app needs neither esbuild nor Docker
 * to synthesize.
 */
export function bundledAssetPath(name: 'gateway' | 'kill-switch' | 'feedback' | 'approval' | 'worker'): string {
  const dir = path.join(packageRoot(), 'dist', 'assets', name);
  if (!fs.existsSync(path.join(dir, 'index.js'))) {
    throw new Error(`Missing bundled asset ${dir}/index.js; run "npm run bundle" in ${packageRoot()}.`);
  }
  return dir;
}

/**
 * Returns the newest Node.js Lambda runtime this version of aws-cdk-lib
 * lists. cdk-nag's AwsSolutions-L1 compares against the same list.
 */
export function latestNodeRuntime(): lambda.Runtime {
  const version = (runtime: lambda.Runtime) => Number(/^nodejs(\d+)/.exec(runtime.name)?.[1] ?? 0);
  const candidates = lambda.Runtime.ALL.filter(
    (runtime) => runtime.family === lambda.RuntimeFamily.NODEJS && !runtime.isVariable && version(runtime) > 0,
  );
  return candidates.reduce((newest, runtime) => (version(runtime) > version(newest) ? runtime : newest));
}
