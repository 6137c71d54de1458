#!/usr/bin/env node
// Synthesizes the app into cdk.out when a source file or the config is newer
// than the last synthesis, then writes the review report of cdk.out to
// review/. Arguments are passed on to the review command, for example
// `npm run review -- --fail-on wildcard,public`.
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

function main() {
  const manifest = path.join(outDir, 'manifest.json');
  const synthesized = fs.existsSync(manifest) ? fs.statSync(manifest).mtimeMs : 0;
  const changed = Math.max(...SOURCES.map((entry) => newestChange(path.join(root, entry))));
  if (changed > synthesized) {
    const status = run('npx', ['cdk', 'synth', '-q', '-o', outDir]);
    if (status !== 0) process.exit(status);
  } else {
    console.log('cdk.out is newer than the sources; not synthesizing again.');
  }
  const reviewArgs = ['--transpile-only', path.join('bin', 'cdk-agent-stack-review.ts'), 'cdk.out', '--out', 'review', ...process.argv.slice(2)];
  process.exit(run('npx', ['ts-node', ...reviewArgs]));
}

main();
