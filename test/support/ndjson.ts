/**
 * Readers of newline-delimited JSON for the streaming tests: a Writable that
 * a streaming handler writes to, and an HTTP client that reads a streamed
 * response. Both collect events as they arrive, so that a test can wait for
 * one while the stream is still open.
 */
import { request } from 'http';
import { Writable } from 'stream';

/** Resolves as `promise` does, or rejects when it takes longer than `timeoutMs`. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const error = new Error(`${what} did not happen within ${timeoutMs} ms`);
    timer = setTimeout(() => reject(error), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Events parsed so far, with a bounded wait for the next matching one. */
export class EventCollector<T> {
  readonly events: T[] = [];
  private tail = '';
  private readonly waiters = new Set<() => void>();

  /** Parses the complete lines of `chunk` and keeps the incomplete rest. */
  push(chunk: Buffer | string): void {
    const lines = (this.tail + chunk.toString()).split('\n');
    this.tail = lines.pop() ?? '';
    for (const line of lines.filter((text) => text.trim() !== '')) {
      this.events.push(JSON.parse(line) as T);
    }
    this.waiters.forEach((wake) => wake());
  }

  /** Resolves with the first event that matches, or rejects after `timeoutMs`. */
  waitFor(predicate: (event: T) => boolean, timeoutMs = 5_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find(predicate);
        if (found !== undefined) {
          cleanup();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        const seen = JSON.stringify(this.events);
        reject(new Error(`No matching event within ${timeoutMs} ms; received ${seen}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}

/** Creates a Writable that collects the events written to it. */
export function createEventSink<T>(): { writable: Writable; collector: EventCollector<T> } {
  const collector = new EventCollector<T>();
  const writable = new Writable({
    write(chunk: Buffer, _encoding, done) {
      collector.push(chunk);
      done();
    },
    final(done) {
      // A body without a newline at its end, such as one JSON result, is one event too.
      collector.push('\n');
      done();
    },
  });
  return { writable, collector };
}

/** A streamed HTTP response being read. */
export interface StreamedHttpResponse<T> {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly collector: EventCollector<T>;
  /** Resolves when the response has ended. */
  readonly ended: Promise<void>;
  /** Drops the connection, as a caller that goes away. */
  abort(): void;
}

/** Sends a request and resolves once the response headers arrive, reading the body as events. */
export function streamHttpRequest<T>(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<StreamedHttpResponse<T>> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        const collector = new EventCollector<T>();
        const ended = new Promise<void>((done) => {
          res.on('data', (chunk: Buffer) => collector.push(chunk));
          res.once('end', () => done());
          res.once('close', () => done());
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          collector,
          ended,
          abort: () => req.destroy(),
        });
      },
    );
    req.once('error', reject);
    req.end(options.body);
  });
}
