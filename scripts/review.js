#!/usr/bin/env node
// Writes the review report of cdk.out to review/, after synthesizing the
// default app into cdk.out when a source file or the config is newer than
// the last synthesis. Arguments are passed on to the review command, for
// example `npm run review -- --fail-on wildcard,public`. An assembly folder
// among them (`npm run review -- cdk.out.other`) replaces cdk.out and is
// reviewed as it is, without synthesizing.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'cdk.out');
const SOURCES = ['bin', 'lib', 'constructs', 'lambda', 'examples', 'agent-stack.config.json', 'cdk.json'];

/** Returns the newest modification time of the files under `entry`, in milliseconds. */
function newestChange(entry) {
  if (!fs.existsSync(entry)) return 0;
  const stat = fs.statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...fs.readdirSync(entry).map((name) => newestChange(path.join(entry, name))));
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/** Options of the review command that take a value, so that the value is not read as an assembly folder. */
const VALUE_OPTIONS = new Set(['--out', '--against', '--fail-on']);

/** Returns whether `args` contain a positional argument, the assembly folder to review. */
function namesAssembly(args) {
  for (let i = 0; i < args.length; i += 1) {
    if (VALUE_OPTIONS.has(args[i])) i += 1;
    else if (!args[i].startsWith('-')) return true;
  }
  return false;
}

function main() {
  const args = process.argv.slice(2);
  if (namesAssembly(args)) {
    const reviewArgs = ['--transpile-only', path.join('bin', 'cdk-agent-stack-review.ts'), '--out', 'review', ...args];
    process.exit(run('npx', ['ts-node', ...reviewArgs]));
  }
  const manifest = path.join(outDir, 'manifest.json');
  const synthesized = fs.existsSync(manifest) ? fs.statSync(manifest).mtimeMs : 0;
  const changed = Math.max(...SOURCES.map((entry) => newestChange(path.join(root, entry))));
  if (changed > synthesized) {
    const status = run('npx', ['cdk', 'synth', '-q', '-o', outDir]);
    if (status !== 0) process.exit(status);
  } else {
    // The check compares only file times, so cdk.out from `cdk synth -c config=OTHER` is reviewed as it is.
    console.log('cdk.out is newer than the sources; not synthesizing again. Pass an assembly folder to review another one.');
  }
  const reviewArgs = ['--transpile-only', path.join('bin', 'cdk-agent-stack-review.ts'), 'cdk.out', '--out', 'review', ...args];
  process.exit(run('npx', ['ts-node', ...reviewArgs]));
}

main();
