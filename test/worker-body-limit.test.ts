/**
 * The realtime worker's body size limit as the config sets it. AgentStack
 * caps a realtime agent's limits.maxBodyBytes at firewall.maxBodyBytes. The
 * worker started with that runtime configuration responds to a larger body
 * with 413 and a JSON error, and serves a body at the limit.
 */
import * as fs from 'fs';
import { Server } from 'http';
import * as path from 'path';
import { App, CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { WorkerRuntimeConfig } from '../lambda/shared/contracts';
import { runAgentTask } from '../lambda/worker/agent-loop';
import { createAuthenticator } from '../lambda/worker/auth-factory';
import { REQUEST_ID_HEADER, startRealtimeServer } from '../lambda/worker/http-server';
import { AgentStack } from '../lib/agent-stack';
import { textResponse } from './support/bedrock-server';
import { httpRequest } from './support/http-client';
import { AGENT, WorkerHarness, startWorkerHarness, workerConfig } from './support/worker-harness';

type Json = any;

const ROOT = path.resolve(__dirname, '..');
const FIREWALL_MAX_BODY_BYTES = 2_048;

/** Writes `Ref` and `Fn::GetAtt` as `${LogicalId}` text, and joins `Fn::Join`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Json;
  if (intrinsic?.Ref) return `\${${intrinsic.Ref}}`;
  if (intrinsic?.['Fn::GetAtt']) return `\${${intrinsic['Fn::GetAtt'].join('.')}}`;
  if (intrinsic?.['Fn::Join']) return intrinsic['Fn::Join'][1].map(flatten).join(intrinsic['Fn::Join'][0]);
  return JSON.stringify(value);
}

/** Synthesizes the example stack with firewall.maxBodyBytes set and returns the support agent's worker limits. */
function synthesizedLimits(): WorkerRuntimeConfig['limits'] {
  const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'agent-stack.config.json'), 'utf8'));
  config.firewall = { maxBodyBytes: FIREWALL_MAX_BODY_BYTES };
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new AgentStack(app, 'AgentStack', { config, configDir: ROOT });
  const taskDefinition = stack.agents[AGENT].taskDefinition.node.defaultChild as CfnElement;
  const resources = Template.fromStack(stack).toJSON().Resources;
  const environment = resources[stack.getLogicalId(taskDefinition)].Properties.ContainerDefinitions[0].Environment;
  const variable = environment.find((e: Json) => e.Name === 'AGENT_WORKER_CONFIG');
  return JSON.parse(flatten(variable.Value)).limits;
}

/** Returns a JSON invoke body of exactly `bytes` bytes. */
function bodyOfSize(bytes: number): string {
  const empty = JSON.stringify({ message: '' });
  return JSON.stringify({ message: 'x'.repeat(bytes - Buffer.byteLength(empty)) });
}

let harness: WorkerHarness;
let server: Server;
let url: string;
let maxBodyBytes: number;

beforeAll(async () => {
  const limits = synthesizedLimits();
  maxBodyBytes = limits.maxBodyBytes;
  harness = await startWorkerHarness();
  const config = workerConfig({ limits, auth: { type: 'none' } });
  const deps = harness.deps(config);
  const started = await startRealtimeServer(
    {
      config,
      authenticator: createAuthenticator(config.auth),
      runTask: (task, signal) => runAgentTask(task, deps, signal),
      logger: harness.logger,
    },
    0,
    '127.0.0.1',
  );
  server = started.server;
  url = `http://127.0.0.1:${started.port}/agents/${AGENT}/invoke`;
});

afterAll(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await harness?.close();
});

beforeEach(() => {
  harness.bedrock.reset();
});

test('stack caps the worker limit', () => {
  expect(maxBodyBytes).toBe(FIREWALL_MAX_BODY_BYTES);
});

test('body over the limit gets a json 413', async () => {
  const body = bodyOfSize(maxBodyBytes + 1);
  const result = await httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  expect(result.status).toBe(413);
  expect(result.headers['content-type']).toBe('application/json');
  expect(result.json.error).toEqual({
    name: 'PayloadTooLargeError',
    message: `The request body is larger than this agent's limit of ${FIREWALL_MAX_BODY_BYTES} bytes; send a shorter message.`,
    requestId: result.headers[REQUEST_ID_HEADER],
  });
  expect(harness.bedrock.requests).toHaveLength(0);
});

test('chunked body over the limit gets a json 413', async () => {
  const body = bodyOfSize(maxBodyBytes + 512);
  const chunks = body.match(/.{1,256}/g) ?? [];
  const result = await httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunks });

  expect(result.status).toBe(413);
  expect(result.headers['content-type']).toBe('application/json');
  expect(result.json.error.name).toBe('PayloadTooLargeError');
  expect(harness.bedrock.requests).toHaveLength(0);
});

test('body at the limit is served', async () => {
  harness.bedrock.script(textResponse('Done.', { usage: { inputTokens: 600, outputTokens: 2 } }));
  const body = bodyOfSize(maxBodyBytes);
  expect(Buffer.byteLength(body)).toBe(maxBodyBytes);

  const result = await httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  expect(result.status).toBe(200);
  expect(result.json.output).toBe('Done.');
});
