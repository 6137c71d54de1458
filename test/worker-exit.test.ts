/**
 * The worker's exit path against a real pipe: a child process queues more
 * output than fits in the pipe while this process does not read, then exits.
 * Node writes to a pipe asynchronously on Linux, so a plain process.exit()
 * drops the queued lines and exitAfterOutputDrains must not.
 */
import { ChildProcess, spawn } from 'child_process';
import { join } from 'path';

const EXIT_MODULE = join(__dirname, '..', 'lambda', 'worker', 'exit.ts');
const LINE_COUNT = 4_096;
const LINE = `${'x'.repeat(1_023)}\n`;
const QUEUED_MARKER = 'queued';

/** Child script: queue LINE_COUNT lines, report on stderr, then exit in the chosen way. */
const CHILD_SCRIPT = `
const { exitAfterOutputDrains } = require(${JSON.stringify(EXIT_MODULE)});
const line = ${JSON.stringify(LINE)};
for (let i = 0; i < ${LINE_COUNT}; i++) process.stdout.write(line);
process.stderr.write(${JSON.stringify(`${QUEUED_MARKER}\n`)});
if (process.argv[1] === 'drain') void exitAfterOutputDrains(0);
else process.exit(0);
`;

function startChild(mode: 'drain' | 'exit'): ChildProcess {
  const args = ['-r', require.resolve('ts-node/register/transpile-only'), '-e', CHILD_SCRIPT, mode];
  return spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function waitForMarker(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.includes(QUEUED_MARKER)) resolve();
    });
    child.once('exit', () => {
      if (!text.includes(QUEUED_MARKER)) reject(new Error(`child exited early: ${text}`));
    });
  });
}

/** Reads the child's stdout to its end and returns the number of bytes. */
function readAll(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    let bytes = 0;
    child.stdout!.on('data', (chunk: Buffer) => (bytes += chunk.length));
    child.stdout!.once('close', () => resolve(bytes));
  });
}

function exitCodeOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('worker exit', () => {
  test('plain exit drops queued lines', async () => {
    const child = startChild('exit');
    await waitForMarker(child);
    const code = await exitCodeOf(child);

    const bytes = await readAll(child);

    expect(code).toBe(0);
    expect(bytes).toBeLessThan(LINE_COUNT * LINE.length);
  });

  test('exit waits for stdout to drain', async () => {
    const child = startChild('drain');
    await waitForMarker(child);
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(child.exitCode).toBeNull();
    const bytes = await readAll(child);

    expect(await exitCodeOf(child)).toBe(0);
    expect(bytes).toBe(LINE_COUNT * LINE.length);
  });
});
