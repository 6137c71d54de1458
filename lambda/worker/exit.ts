/**
 * Ends the worker process without losing its last log and metric lines.
 *
 * Node writes to stdout and stderr asynchronously when they are pipes on
 * POSIX systems, and `process.exit()` does not wait for pending writes. See
 * "A note on process I/O" in https://nodejs.org/api/process.html#a-note-on-process-io
 * A container's stdout is a pipe to its log driver. A worker that logged or
 * wrote metrics just before it exited could therefore drop those lines.
 */

/**
 * Time to wait for stdout and stderr to drain before exiting anyway. It
 * bounds the exit only when the log driver stops reading, because ECS kills
 * the container after its stop timeout in any case.
 */
export const DRAIN_TIMEOUT_MS = 5_000;

/** Resolves once `stream` has written every chunk queued before this call, or after `timeoutMs`. */
function drain(stream: NodeJS.WriteStream, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    // A stream writes its chunks in order, so the callback of an empty write
    // runs once every earlier chunk has reached the pipe. It also runs with
    // an error when the pipe is closed, and then nothing more can be written.
    stream.write('', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Resolves once stdout and stderr have written what is queued, or after `timeoutMs`. */
export async function drainOutput(timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
  await Promise.all([drain(process.stdout, timeoutMs), drain(process.stderr, timeoutMs)]);
}

/** Exits with `code` once stdout and stderr have drained, or after `timeoutMs`. */
export async function exitAfterOutputDrains(
  code: number,
  timeoutMs = DRAIN_TIMEOUT_MS,
): Promise<never> {
  await drainOutput(timeoutMs);
  process.exit(code);
}
