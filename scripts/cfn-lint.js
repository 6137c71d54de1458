#!/usr/bin/env node
// Synthesizes the app and runs cfn-lint on every template in cdk.out.
// Exits non-zero on any cfn-lint error, except the one listed below.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'cdk.out');

// cfn-lint's resource schema can lag behind the Lambda runtimes that
// aws-cdk-lib lists. The stack uses the newest runtime aws-cdk-lib lists,
// so an unknown-runtime finding on a Runtime property is reported and
// skipped; every other finding counts.
function isLaggingRuntimeFinding(finding) {
  return (
    finding.Rule.Id === 'E3030' &&
    finding.Location.Path.at(-1) === 'Runtime' &&
    /^'nodejs\d+\.x' is not one of/.test(finding.Message)
  );
}

function main() {
  const versionCheck = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' });
  if (versionCheck.status !== 0) {
    console.error('cfn-lint is not on the PATH; install it with "pip install cfn-lint".');
    process.exit(2);
  }
  const extra = process.argv.slice(2);
  execFileSync('npx', ['cdk', 'synth', '-q', '-o', outDir, ...extra], { cwd: root, stdio: 'inherit' });
  const templates = fs.readdirSync(outDir).filter((f) => f.endsWith('.template.json')).map((f) => path.join(outDir, f));
  const run = spawnSync('cfn-lint', ['--format', 'json', ...templates], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.error) throw run.error;
  const findings = JSON.parse(run.stdout || '[]');
  let errors = 0;
  for (const finding of findings) {
    const where = `${path.relative(root, finding.Filename)}:${finding.Location.Start.LineNumber} ${finding.Location.Path.join('/')}`;
    if (isLaggingRuntimeFinding(finding)) {
      console.log(`skipped ${finding.Rule.Id} ${where}: ${finding.Message.slice(0, 60)}... (${versionCheck.stdout.trim()} predates this runtime)`);
      continue;
    }
    const level = finding.Level.toLowerCase();
    if (level === 'error') errors += 1;
    console.log(`${level} ${finding.Rule.Id} ${where}: ${finding.Message}`);
  }
  console.log(`cfn-lint: ${templates.length} template(s), ${errors} error(s), ${findings.length - errors} other finding(s)`);
  process.exit(errors > 0 ? 1 : 0);
}

main();
