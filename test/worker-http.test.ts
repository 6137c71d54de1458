import { Server } from 'http';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { WorkerRuntimeConfig } from '../lambda/shared/contracts';
import { runAgentTask } from '../lambda/worker/agent-loop';
import { UNAUTHORIZED_MESSAGE } from '../lambda/worker/auth';
import { createAuthenticator } from '../lambda/worker/auth-factory';
import { REQUEST_ID_HEADER, startRealtimeServer } from '../lambda/worker/http-server';
import { partitionKey } from '../lambda/worker/memory';
import { errorResponse, textResponse } from './support/bedrock-server';
import { HttpResult, httpRequest } from './support/http-client';
import {
  IdentityServer,
  TEST_AUDIENCE,
  TEST_ISSUER,
  startIdentityServer,
} from './support/jwks-server';
import { AGENT, WorkerHarness, startWorkerHarness, workerConfig } from './support/worker-harness';

const LOAD_BALANCER_ARN =
  'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/agents/50dc6c495c0c9188';
const MAX_BODY_BYTES = 4_096;

let harness: WorkerHarness;
let identity: IdentityServer;
const servers: Server[] = [];

async function serve(config: WorkerRuntimeConfig): Promise<string> {
  const deps = harness.deps(config);
  const { server, port } = await startRealtimeServer(
    {
      config,
      authenticator: createAuthenticator(config.auth, { albPublicKeysUrl: identity.albKeysUrl }),
      runTask: (task, signal) => runAgentTask(task, deps, signal),
      logger: harness.logger,
    },
    0,
    '127.0.0.1',
  );
  servers.push(server);
  return `http://127.0.0.1:${port}/agents/${AGENT}`;
}

let jwtUrl: string;
let albUrl: string;
let openUrl: string;

beforeAll(async () => {
  [harness, identity] = await Promise.all([startWorkerHarness(), startIdentityServer()]);
  const limits = { maxBodyBytes: MAX_BODY_BYTES };
  jwtUrl = await serve(
    workerConfig({
      limits,
      auth: {
        type: 'jwt',
        issuer: TEST_ISSUER,
        audience: [TEST_AUDIENCE],
        jwksUri: identity.jwksUri,
        userClaim: 'sub',
      },
    }),
  );
  albUrl = await serve(
    workerConfig({
      limits,
      auth: {
        type: 'alb-oidc',
        region: 'us-east-1',
        loadBalancerArn: LOAD_BALANCER_ARN,
        userClaim: 'sub',
      },
    }),
  );
  openUrl = await serve(workerConfig({ limits, auth: { type: 'none' } }));
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await Promise.all([harness?.close(), identity?.close()]);
});

beforeEach(() => {
  harness.bedrock.reset();
});

function invoke(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  return httpRequest(`${url}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Checks the uniform 401 and that the worker logged `reason` as the actual cause. */
function expectUnauthorized(result: HttpResult, reason: RegExp): void {
  expect(result.status).toBe(401);
  const logged = harness.logs.find(
    (line) =>
      line.message === 'authentication failed' &&
      line.requestId === result.headers[REQUEST_ID_HEADER],
  );
  expect(`${logged?.reason}: ${logged?.errorName ?? ''}`).toMatch(reason);
  expect(result.json.error).toEqual({
    name: 'UnauthorizedError',
    message: UNAUTHORIZED_MESSAGE,
    requestId: result.headers[REQUEST_ID_HEADER],
  });
  expect(harness.bedrock.requests).toHaveLength(0);
}

async function storedTurns(userId: string, sessionId: string) {
  const output = await harness.dynamo.documentClient.send(
    new QueryCommand({
      TableName: harness.dynamo.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': partitionKey({ agent: AGENT, userId, sessionId }) },
    }),
  );
  return output.Items ?? [];
}

describe('realtime invoke with jwt auth', () => {
  test('answers a caller with a valid token', async () => {
    harness.bedrock.script(
      textResponse('Hello Ann.', { usage: { inputTokens: 10, outputTokens: 3 } }),
    );
    const token = await identity.signJwt({ subject: 'user-42' });

    const result = await invoke(
      jwtUrl,
      { message: 'Hi', sessionId: 'web-1' },
      { authorization: `Bearer ${token}` },
    );

    expect(result.status).toBe(200);
    expect(result.json).toEqual({
      sessionId: 'web-1',
      output: 'Hello Ann.',
      stopReason: 'end_turn',
      iterations: 1,
      usage: { inputTokens: 10, outputTokens: 3, totalTokens: 13 },
      requestId: result.headers[REQUEST_ID_HEADER],
    });
    expect(await storedTurns('user-42', 'web-1')).toHaveLength(2);
  });

  test('starts a new session when none is given', async () => {
    harness.bedrock.script(textResponse('Hi.'));
    const token = await identity.signJwt();
    const result = await invoke(jwtUrl, { message: 'Hi' }, { authorization: `Bearer ${token}` });
    expect(result.status).toBe(200);
    expect(result.json.sessionId).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('accepts a Cognito access token by client_id', async () => {
    harness.bedrock.script(textResponse('Hi.'));
    const token = await identity.signJwt({
      audience: undefined,
      claims: { token_use: 'access', client_id: TEST_AUDIENCE },
    });
    const result = await invoke(jwtUrl, { message: 'Hi' }, { authorization: `Bearer ${token}` });
    expect(result.status).toBe(200);
  });

  test('rejects a missing token', async () => {
    expectUnauthorized(
      await invoke(jwtUrl, { message: 'Hi' }),
      /missing or malformed Authorization/,
    );
  });

  test('rejects a forged token', async () => {
    const token = await identity.signJwt({ forged: true });
    const result = await invoke(jwtUrl, { message: 'Hi' }, { authorization: `Bearer ${token}` });
    expectUnauthorized(result, /JWSSignatureVerificationFailed/);
  });

  test('rejects an expired token', async () => {
    const token = await identity.signJwt({ expiresInSeconds: -60 });
    const result = await invoke(jwtUrl, { message: 'Hi' }, { authorization: `Bearer ${token}` });
    expectUnauthorized(result, /JWTExpired/);
  });

  test('rejects a token for another audience', async () => {
    const token = await identity.signJwt({ audience: 'some-other-client' });
    const result = await invoke(jwtUrl, { message: 'Hi' }, { authorization: `Bearer ${token}` });
    expectUnauthorized(result, /audience does not match/);
  });

  test('rejects a token from another issuer', async () => {
    const token = await identity.signJwt({ issuer: 'https://attacker.test.invalid/' });
    const result = await invoke(jwtUrl, { message: 'Hi' }, { authorization: `Bearer ${token}` });
    expectUnauthorized(result, /JWTClaimValidationFailed/);
  });

  test('rejects a user id in the body', async () => {
    const token = await identity.signJwt({ subject: 'user-42' });
    const result = await invoke(
      jwtUrl,
      { message: 'Hi', userId: 'admin' },
      { authorization: `Bearer ${token}` },
    );
    expect(result.status).toBe(400);
    expect(result.json.error.name).toBe('InvalidRequestError');
    expect(result.json.error.message).toMatch(/Unknown field\(s\) userId/);
  });
});

describe('realtime invoke with alb-oidc auth', () => {
  test('answers a caller with a padded load balancer token', async () => {
    harness.bedrock.script(textResponse('Hello.'));
    const token = identity.signAlbToken({ subject: 'alb-user-7', signer: LOAD_BALANCER_ARN });
    expect(token).toContain('=');

    const result = await invoke(
      albUrl,
      { message: 'Hi', sessionId: 'alb-1' },
      { 'x-amzn-oidc-data': token },
    );

    expect(result.status).toBe(200);
    expect(await storedTurns('alb-user-7', 'alb-1')).toHaveLength(2);
  });

  test('rejects a forged load balancer token', async () => {
    const token = identity.signAlbToken({ signer: LOAD_BALANCER_ARN, forged: true });
    const result = await invoke(albUrl, { message: 'Hi' }, { 'x-amzn-oidc-data': token });
    expectUnauthorized(result, /invalid signature/);
  });

  test('rejects a token from another load balancer', async () => {
    const token = identity.signAlbToken({ signer: LOAD_BALANCER_ARN.replace('agents', 'other') });
    const result = await invoke(albUrl, { message: 'Hi' }, { 'x-amzn-oidc-data': token });
    expectUnauthorized(result, /signed by another load balancer/);
  });

  test('rejects an expired load balancer token', async () => {
    const token = identity.signAlbToken({ signer: LOAD_BALANCER_ARN, expiresInSeconds: -5 });
    const result = await invoke(albUrl, { message: 'Hi' }, { 'x-amzn-oidc-data': token });
    expectUnauthorized(result, /token expired/);
  });

  test('rejects an unknown key id and caches the miss', async () => {
    const kid = '0b7d3c7e-5f41-4b0e-8d8e-0c2d7b1f9a11';
    const first = identity.signAlbToken({ signer: LOAD_BALANCER_ARN, kid });
    expectUnauthorized(
      await invoke(albUrl, { message: 'Hi' }, { 'x-amzn-oidc-data': first }),
      new RegExp(`no public key with kid ${kid}`),
    );
    const requestsAfterFirst = identity.keyRequests();

    const second = identity.signAlbToken({ signer: LOAD_BALANCER_ARN, kid, subject: 'other' });
    const result = await invoke(albUrl, { message: 'Hi' }, { 'x-amzn-oidc-data': second });

    expectUnauthorized(result, /no public key with kid/);
    expect(identity.keyRequests()).toBe(requestsAfterFirst);
  });

  test('ignores a bearer token', async () => {
    const token = await identity.signJwt();
    const result = await invoke(albUrl, { message: 'Hi' }, { authorization: `Bearer ${token}` });
    expectUnauthorized(result, /missing x-amzn-oidc-data/);
  });
});

describe('realtime request handling', () => {
  test('rejects a declared body above maxBodyBytes with 413', async () => {
    const result = await invoke(openUrl, { message: 'x'.repeat(MAX_BODY_BYTES) });
    expect(result.status).toBe(413);
    expect(result.json.error.name).toBe('PayloadTooLargeError');
    expect(result.json.error.message).toMatch(/limit of 4096 bytes/);
    expect(result.headers.connection).toBe('close');
  });

  test('rejects a streamed body above maxBodyBytes with 413', async () => {
    const chunk = 'x'.repeat(1_024);
    const result = await httpRequest(`${openUrl}/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: ['{"message":"', ...Array<string>(8).fill(chunk), '"}'],
    });
    expect(result.status).toBe(413);
    expect(harness.bedrock.requests).toHaveLength(0);
  });

  test.each([
    ['invalid JSON', '{"message": ', /not valid JSON/],
    ['a missing message', { sessionId: 'abc' }, /Field message is missing/],
    ['an empty message', { message: '   ' }, /Field message is missing or empty/],
    ['an invalid session id', { message: 'Hi', sessionId: 'a#b' }, /Field sessionId must be/],
    ['an array', [1, 2], /must be a JSON object/],
  ])('rejects %s with 400', async (_case, body, message) => {
    const result = await invoke(openUrl, body);
    expect(result.status).toBe(400);
    expect(result.json.error.name).toBe('InvalidRequestError');
    expect(result.json.error.message).toMatch(message);
    expect(result.json.error.requestId).toBe(result.headers[REQUEST_ID_HEADER]);
  });

  test('answers an unknown path with 404', async () => {
    const result = await httpRequest(`${openUrl.replace(AGENT, 'billing')}/invoke`, {
      method: 'POST',
    });
    expect(result.status).toBe(404);
    expect(result.json.error.name).toBe('NotFoundError');
  });

  test('answers a wrong method with 405', async () => {
    const result = await httpRequest(`${openUrl}/invoke`);
    expect(result.status).toBe(405);
    expect(result.json.error.name).toBe('MethodNotAllowedError');
  });

  test('answers health checks without authentication', async () => {
    const result = await httpRequest(`${jwtUrl}/health`);
    expect(result.status).toBe(200);
    expect(result.json).toEqual({ status: 'ok', agent: AGENT });
  });

  test('maps a model failure to 502 with the request id', async () => {
    harness.bedrock.script(errorResponse(500, 'InternalServerException'));
    const result = await invoke(openUrl, { message: 'Hi' });
    expect(result.status).toBe(502);
    expect(result.json.error.name).toBe('AllTargetsFailedError');
    expect(result.json.error.requestId).toBe(result.headers[REQUEST_ID_HEADER]);
  });

  test('uses the anonymous user without auth', async () => {
    harness.bedrock.script(textResponse('Hi.'));
    const result = await invoke(openUrl, { message: 'Hi', sessionId: 'anon-1' });
    expect(result.status).toBe(200);
    expect(await storedTurns('anonymous', 'anon-1')).toHaveLength(2);
  });
});
