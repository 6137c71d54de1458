/**
 * Loopback stand-in for the ECS agent's task protection endpoint
 * (`PUT /task-protection/v1/state`), which records every request.
 */
import { createServer } from 'http';
import { AddressInfo } from 'net';

export interface ProtectionRequest {
  readonly ProtectionEnabled: boolean;
  readonly ExpiresInMinutes?: number;
}

export interface EcsAgentServer {
  /** Value for `ECS_AGENT_URI`. */
  readonly uri: string;
  readonly requests: ProtectionRequest[];
  close(): Promise<void>;
}

export async function startEcsAgentServer(): Promise<EcsAgentServer> {
  const requests: ProtectionRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'PUT' || !req.url?.endsWith('/task-protection/v1/state')) {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProtectionRequest;
      requests.push(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          protection: {
            ProtectionEnabled: body.ProtectionEnabled,
            TaskArn: 'arn:aws:ecs:us-east-1:123456789012:task/test',
          },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v4/test-task`,
    requests,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
