import type { Writable } from 'node:stream';
import type { GatewayStreamEvent } from '../../shared/contracts';

/**
 * Writes gateway stream events to a Writable as newline-delimited JSON and
 * reports when the reader went away. A Writable that is destroyed or fails
 * before {@link end} aborts {@link signal}, which cancels the model call.
 */
export class StreamEventWriter {
  private readonly controller = new AbortController();
  private ended = false;
  private started = false;

  constructor(private readonly writable: Writable) {
    const onGone = () => {
      if (!this.ended) {
        this.controller.abort(new Error('The stream reader closed the stream before it ended.'));
      }
    };
    writable.once('close', onGone);
    // Without an error listener a failed write would crash the process.
    writable.on('error', onGone);
    if (writable.destroyed) {
      onGone();
    }
  }

  /** Aborted when the Writable closes or fails before the stream ended. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once a `start` event was written, after which no failover may happen. */
  get hasStarted(): boolean {
    return this.started;
  }

  /**
   * Writes one event and waits while the Writable's buffer is full, so that a
   * slow reader slows the model stream down instead of filling memory. Does
   * nothing once the reader went away.
   */
  async write(event: GatewayStreamEvent): Promise<void> {
    if (this.isGone()) {
      return;
    }
    if (event.type === 'start') {
      this.started = true;
    }
    const ready = this.writable.write(`${JSON.stringify(event)}\n`);
    if (!ready) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.writable.off('drain', done);
          this.signal.removeEventListener('abort', done);
          resolve();
        };
        this.writable.once('drain', done);
        this.signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** Ends the Writable and waits until it has flushed, or until the reader went away. */
  async end(): Promise<void> {
    if (this.ended) {
      return;
    }
    this.ended = true;
    if (this.isGone()) {
      return;
    }
    await new Promise<void>((resolve) => {
      this.writable.once('close', resolve);
      this.writable.end(() => resolve());
    });
  }

  private isGone(): boolean {
    return this.signal.aborted || this.writable.destroyed || this.writable.writableEnded;
  }
}
