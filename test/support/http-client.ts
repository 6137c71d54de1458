/** Minimal HTTP client for the worker tests: one connection per request, no pooling. */
import { request } from 'http';

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  readonly json: any;
}

export interface HttpOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  /** A string is sent with Content-Length; chunks are sent one by one, chunked. */
  readonly body?: string | string[];
}

export function httpRequest(url: string, options: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        responded = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.once('error', reject);
      },
    );
    // A server that rejects a body early closes the connection while the body
    // is still being written, which fails the write after the response came.
    req.on('error', (error) => (responded ? undefined : reject(error)));
    if (Array.isArray(options.body)) {
      for (const chunk of options.body) req.write(chunk);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}
