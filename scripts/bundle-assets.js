#!/usr/bin/env node
// Bundles the library's own Lambda handlers and the worker into dist/assets,
// so that an app using the package needs neither esbuild nor Docker to synth.
'use strict';
const fs = require('fs');
const path = require('path');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..');
const outRoot = path.join(root, 'dist', 'assets');

// Lambda runs the newest Node.js runtime aws-cdk-lib lists and the worker image
// ships Node.js 24, so the bundles may use syntax of Node.js 22 and later.
const assets = [
  { name: 'gateway', entry: 'lambda/gateway/index.ts' },
  { name: 'kill-switch', entry: 'lambda/kill-switch/index.ts' },
  { name: 'feedback', entry: 'lambda/feedback/index.ts' },
  { name: 'approval', entry: 'lambda/approval/index.ts' },
  { name: 'worker', entry: 'lambda/worker/main.ts', extra: ['lambda/worker/Dockerfile'] },
  // The operator command runs on the operator's machine, which the package allows to be Node.js 20.
  { name: 'admin', entry: 'bin/agent-stack-admin.ts', target: 'node20', executable: true },
];

/**
 * Moves the files of `staging` into `outDir`, each with one rename, and then
 * deletes files of `outDir` that the new bundle does not have. A rename
 * replaces a file atomically, so a synth that runs meanwhile, such as a
 * construct test while the package test packs the library, always finds a
 * complete index.js.
 */
function replaceFiles(staging, outDir) {
  fs.mkdirSync(outDir, { recursive: true });
  const built = fs.readdirSync(staging);
  for (const name of built) {
    fs.renameSync(path.join(staging, name), path.join(outDir, name));
  }
  for (const name of fs.readdirSync(outDir)) {
    if (!built.includes(name)) fs.rmSync(path.join(outDir, name), { recursive: true, force: true });
  }
}

async function main() {
  fs.mkdirSync(outRoot, { recursive: true });
  for (const asset of assets) {
    const outDir = path.join(outRoot, asset.name);
    // The staging folder sits beside outDir, so that its files move by rename on one file system.
    const staging = fs.mkdtempSync(path.join(outRoot, `.${asset.name}-`));
    try {
      await bundle(asset, staging);
      replaceFiles(staging, outDir);
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
  }
}

/** Bundles one asset into `outDir`, with its extra files. */
async function bundle(asset, outDir) {
  await esbuild.build({
    entryPoints: [path.join(root, asset.entry)],
    outfile: path.join(outDir, 'index.js'),
    bundle: true,
    platform: 'node',
    target: asset.target ?? 'node22',
    format: 'cjs',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  if (asset.executable) {
    fs.chmodSync(path.join(outDir, 'index.js'), 0o755);
  }
  for (const file of asset.extra ?? []) {
    fs.copyFileSync(path.join(root, file), path.join(outDir, path.basename(file)));
  }
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
