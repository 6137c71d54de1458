#!/usr/bin/env node
// Review report command: turns a synthesized cloud assembly into a report a
// security reviewer reads before anything is deployed.
import { runReview } from '../lib/review/cli';

runReview(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
