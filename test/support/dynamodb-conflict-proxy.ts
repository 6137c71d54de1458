/**
 * A loopback HTTP proxy in front of DynamoDB Local that cancels chosen
 * TransactWriteItems calls with `TransactionConflict` reasons, as DynamoDB
 * does when concurrent transactions touch the same item. DynamoDB Local
 * (2026-01-16) runs transactions one at a time and never reports a
 * conflict: 50 concurrent transactions on one item, raced by 50 single
 * writes, all succeeded. The proxy lets tests reach the retry path anyway.
 */
import { createServer, request as httpRequest, type Server } from 'http';
import type { AddressInfo } from 'net';

export interface ConflictProxy {
  readonly endpoint: string;
  /** TransactWriteItems calls the proxy cancelled so far. */
  readonly conflicts: () => number;
  close(): Promise<void>;
}

const TRANSACT_TARGET = 'DynamoDB_20120810.TransactWriteItems';

/**
 * Starts the proxy on 127.0.0.1. `shouldConflict` receives the 1-based
 * number of each TransactWriteItems call and returns true to cancel it.
 */
export async function startConflictProxy(
  upstream: string,
  shouldConflict: (call: number) => boolean,
): Promise<ConflictProxy> {
  const target = new URL(upstream);
  let calls = 0;
  let conflicts = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.headers['x-amz-target'] === TRANSACT_TARGET && shouldConflict(++calls)) {
        conflicts += 1;
        const items = (JSON.parse(body.toString('utf8')).TransactItems ?? []) as unknown[];
        const reasons = items.map((_, i) => ({ Code: i === 0 ? 'TransactionConflict' : 'None' }));
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(
          JSON.stringify({
            __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
            message: 'Transaction cancelled, please refer cancellation reasons for specific reasons',
            CancellationReasons: reasons,
          }),
        );
        return;
      }
      const forward = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (upstreamResponse) => {
          res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
          upstreamResponse.pipe(res);
        },
      );
      forward.on('error', (error) => res.destroy(error));
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    conflicts: () => conflicts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
