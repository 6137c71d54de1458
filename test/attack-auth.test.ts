/**
 * Attacks on the realtime worker's caller authentication: forged and
 * malformed bearer tokens and load balancer tokens, key id floods, failing
 * key endpoints, and one user reading another user's session.
 */
import { createHmac, createPublicKey, generateKeyPairSync, randomUUID, sign } from 'crypto';
import { IncomingMessage, Server, ServerResponse, createServer } from 'http';
import { AddressInfo } from 'net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { WorkerAuthConfig, WorkerRuntimeConfig } from '../lambda/shared/contracts';
import { runAgentTask } from '../lambda/worker/agent-loop';
import { UNAUTHORIZED_MESSAGE } from '../lambda/worker/auth';
import { createAuthenticator } from '../lambda/worker/auth-factory';
import { REQUEST_ID_HEADER, startRealtimeServer } from '../lambda/worker/http-server';
import { textResponse } from './support/bedrock-server';
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

let harness: WorkerHarness;
let identity: IdentityServer;
/** Key server whose behavior a test sets through {@link keyServerMode}. */
let keyServer: Server;
let keyServerUrl: string;
let keyServerMode: 'fail' | 'proxy' = 'proxy';
/** Key set that the key server serves at `/own-jwks`, for tokens signJwt cannot make. */
const OWN_KID = 'own-rsa-key';
let ownKeys: Awaited<ReturnType<typeof generateKeyPair>>;
let keyServerRequests = 0;
const servers: Server[] = [];

function jwtAuth(jwksUri: string): WorkerAuthConfig {
  return {
    type: 'jwt',
    issuer: TEST_ISSUER,
    audience: [TEST_AUDIENCE],
    jwksUri,
    userClaim: 'sub',
  };
}

function albAuth(): WorkerAuthConfig {
  return {
    type: 'alb-oidc',
    region: 'us-east-1',
    loadBalancerArn: LOAD_BALANCER_ARN,
    userClaim: 'sub',
  };
}

async function serve(config: WorkerRuntimeConfig, albPublicKeysUrl?: string): Promise<string> {
  const deps = harness.deps(config);
  const { server, port } = await startRealtimeServer(
    {
      config,
      authenticator: createAuthenticator(config.auth, {
        albPublicKeysUrl: albPublicKeysUrl ?? identity.albKeysUrl,
      }),
      runTask: (task, signal) => runAgentTask(task, deps, signal),
      logger: harness.logger,
    },
    0,
    '127.0.0.1',
  );
  servers.push(server);
  return `http://127.0.0.1:${port}/agents/${AGENT}/invoke`;
}

/** Responds with 503 in `fail` mode, and forwards to the identity server in `proxy` mode. */
async function handleKeyRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
  keyServerRequests += 1;
  if (req.url === '/own-jwks') {
    const jwk = { ...(await exportJWK(ownKeys.publicKey)), kid: OWN_KID, alg: 'RS256' };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
    return;
  }
  if (keyServerMode === 'fail') {
    res.writeHead(503, { 'content-type': 'text/plain' }).end('upstream unavailable');
    return;
  }
  const target = req.url!.startsWith('/jwks')
    ? identity.jwksUri
    : `${identity.albKeysUrl}${req.url!.slice('/alb-keys'.length)}`;
  const upstream = await fetch(target);
  res.writeHead(upstream.status, { 'content-type': 'text/plain' });
  res.end(await upstream.text());
}

let jwtUrl: string;
let albUrl: string;

beforeAll(async () => {
  [harness, identity] = await Promise.all([startWorkerHarness(), startIdentityServer()]);
  ownKeys = await generateKeyPair('RS256');
  keyServer = createServer((req, res) => void handleKeyRequest(req, res));
  await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', () => resolve()));
  keyServerUrl = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}`;
  jwtUrl = await serve(workerConfig({ auth: jwtAuth(identity.jwksUri) }));
  albUrl = await serve(workerConfig({ auth: albAuth() }));
});

afterAll(async () => {
  for (const server of [...servers, keyServer]) {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }
  await Promise.all([harness?.close(), identity?.close()]);
});

beforeEach(() => {
  harness.bedrock.reset();
  keyServerMode = 'proxy';
  keyServerRequests = 0;
});

function invoke(url: string, headers: Record<string, string>, body: unknown = { message: 'Hi' }) {
  return httpRequest(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function expectUnauthorized(result: HttpResult): void {
  expect(result.status).toBe(401);
  expect(result.json.error.name).toBe('UnauthorizedError');
  expect(result.json.error.message).toBe(UNAUTHORIZED_MESSAGE);
  expect(harness.bedrock.requests).toHaveLength(0);
}

function base64UrlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: TEST_ISSUER,
    aud: TEST_AUDIENCE,
    sub: 'mallory',
    iat: now,
    exp: now + 300,
    ...extra,
  };
}

describe('jwt attacks', () => {
  test('rejects alg none', async () => {
    const token = `${base64UrlJson({ alg: 'none', typ: 'JWT' })}.${base64UrlJson(claims())}.`;
    expectUnauthorized(await invoke(jwtUrl, bearer(token)));
  });

  test('rejects HS256 keyed with the public key', async () => {
    const jwks = (await (await fetch(identity.jwksUri)).json()) as { keys: Array<{ kid: string }> };
    const publicPem = createPublicKey({ key: jwks.keys[0] as never, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const header = base64UrlJson({ alg: 'HS256', kid: jwks.keys[0].kid });
    const signingInput = `${header}.${base64UrlJson(claims())}`;
    const mac = createHmac('sha256', publicPem).update(signingInput).digest('base64url');
    expectUnauthorized(await invoke(jwtUrl, bearer(`${signingInput}.${mac}`)));
  });

  test('rejects a token without exp', async () => {
    const url = await serve(workerConfig({ auth: jwtAuth(`${keyServerUrl}/own-jwks`) }));
    const token = await new SignJWT({ sub: 'mallory' })
      .setProtectedHeader({ alg: 'RS256', kid: OWN_KID })
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .sign(ownKeys.privateKey);
    expectUnauthorized(await invoke(url, bearer(token)));

    const withExp = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'RS256', kid: OWN_KID })
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .setExpirationTime('5m')
      .sign(ownKeys.privateKey);
    harness.bedrock.script(textResponse('Hi.'));
    expect((await invoke(url, bearer(withExp))).status).toBe(200);
  });

  test.each([
    ['an empty sub', { subject: '' }],
    ['a not-yet-valid token', { claims: { nbf: Math.floor(Date.now() / 1000) + 3_600 } }],
    [
      'an access token for another client',
      { audience: undefined, claims: { token_use: 'access', client_id: 'other-client' } },
    ],
    ['an id token posing as access', { audience: undefined, claims: { client_id: TEST_AUDIENCE } }],
  ])('rejects %s', async (_case, options) => {
    const token = await identity.signJwt(options as never);
    expectUnauthorized(await invoke(jwtUrl, bearer(token)));
  });

  test('bounds key set fetches under a kid flood', async () => {
    // Warm the key set cache with one valid request first.
    harness.bedrock.script(textResponse('Hi.'));
    expect((await invoke(jwtUrl, bearer(await identity.signJwt()))).status).toBe(200);
    harness.bedrock.reset();
    const before = identity.keyRequests();

    const { privateKey } = await generateKeyPair('RS256');
    for (let i = 0; i < 20; i++) {
      const token = await new SignJWT(claims())
        .setProtectedHeader({ alg: 'RS256', kid: randomUUID() })
        .sign(privateKey);
      expectUnauthorized(await invoke(jwtUrl, bearer(token)));
    }

    // jose refetches the key set at most once per 30 s cooldown for unknown ids.
    expect(identity.keyRequests() - before).toBeLessThanOrEqual(1);
  });

  test('answers 503 when the key set endpoint fails', async () => {
    const url = await serve(workerConfig({ auth: jwtAuth(`${keyServerUrl}/jwks`) }));
    keyServerMode = 'fail';
    const result = await invoke(url, bearer(await identity.signJwt()));
    expect(result.status).toBe(503);
    expect(result.json.error.name).toBe('ServiceUnavailableError');
    expect(harness.bedrock.requests).toHaveLength(0);
  });
});

/** Builds a load balancer style token with `=` padding from the given parts. */
function albToken(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const pad = (text: string) => text + '='.repeat((4 - (text.length % 4)) % 4);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const head = pad(base64UrlJson(header));
  const body = pad(base64UrlJson(payload));
  const signature = sign('sha256', Buffer.from(`${head}.${body}`), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${head}.${body}.${pad(signature.toString('base64url'))}`;
}

describe('load balancer token attacks', () => {
  test.each([
    ['alg none', { alg: 'none' }],
    ['alg HS256', { alg: 'HS256' }],
    ['a kid with a path', { kid: '../jwks.json' }],
    ['a kid with a query', { kid: 'abc?x=1' }],
  ])('rejects %s', async (_case, override) => {
    const exp = Math.floor(Date.now() / 1000) + 120;
    const requestsBefore = identity.keyRequests();
    const token = albToken(
      { alg: 'ES256', kid: randomUUID(), signer: LOAD_BALANCER_ARN, exp, ...override },
      { sub: 'mallory', exp },
    );
    expectUnauthorized(await invoke(albUrl, { 'x-amzn-oidc-data': token }));
    expect(identity.keyRequests()).toBe(requestsBefore);
  });

  test.each([
    ['an empty signature', (token: string) => token.replace(/[^.]+$/, '')],
    ['a short signature', (token: string) => token.replace(/[^.]+$/, 'AAAA')],
    ['four parts', (token: string) => `${token}.AAAA`],
    ['an unpadded token', (token: string) => token.replace(/=/g, '')],
  ])('rejects %s', async (_case, mangle) => {
    const token = identity.signAlbToken({ signer: LOAD_BALANCER_ARN });
    expectUnauthorized(await invoke(albUrl, { 'x-amzn-oidc-data': mangle(token) }));
  });

  test('retries a key after the key endpoint failed', async () => {
    const url = await serve(workerConfig({ auth: albAuth() }), `${keyServerUrl}/alb-keys`);
    keyServerMode = 'fail';
    const failed = await invoke(url, {
      'x-amzn-oidc-data': identity.signAlbToken({ signer: LOAD_BALANCER_ARN }),
    });
    expect(failed.status).toBe(503);

    keyServerMode = 'proxy';
    harness.bedrock.script(textResponse('Hello.'));
    const result = await invoke(url, {
      'x-amzn-oidc-data': identity.signAlbToken({ signer: LOAD_BALANCER_ARN }),
    });
    expect(result.status).toBe(200);
  });

  test('keeps the real key under a kid flood', async () => {
    const url = await serve(workerConfig({ auth: albAuth() }), `${keyServerUrl}/alb-keys`);
    harness.bedrock.script(textResponse('Hello.'), textResponse('Hello again.'));
    const valid = () => identity.signAlbToken({ signer: LOAD_BALANCER_ARN });
    expect((await invoke(url, { 'x-amzn-oidc-data': valid() })).status).toBe(200);
    expect(keyServerRequests).toBe(1);

    const flood = 150;
    for (let i = 0; i < flood; i++) {
      const token = identity.signAlbToken({ signer: LOAD_BALANCER_ARN, kid: randomUUID() });
      const result = await invoke(url, { 'x-amzn-oidc-data': token });
      expect(result.status).toBeGreaterThanOrEqual(400);
      expect(result.status).toBeLessThan(600);
    }
    const floodFetches = keyServerRequests - 1;

    const requestsBefore = keyServerRequests;
    expect((await invoke(url, { 'x-amzn-oidc-data': valid() })).status).toBe(200);
    expect(keyServerRequests).toBe(requestsBefore);
    expect(floodFetches).toBeLessThanOrEqual(10);
  });

  test('rejects another signer before fetching', async () => {
    const url = await serve(workerConfig({ auth: albAuth() }), `${keyServerUrl}/alb-keys`);
    const token = identity.signAlbToken({
      signer: LOAD_BALANCER_ARN.replace('agents', 'attacker'),
      kid: randomUUID(),
    });
    expectUnauthorized(await invoke(url, { 'x-amzn-oidc-data': token }));
    expect(keyServerRequests).toBe(0);
  });
});

describe('session isolation', () => {
  test('keeps another user out of a session', async () => {
    harness.bedrock.script(textResponse('Noted, your PIN is safe.'), textResponse('Hello.'));
    const owner = await identity.signJwt({ subject: 'alice' });
    const sessionId = `shared-${randomUUID()}`;
    expect(
      (await invoke(jwtUrl, bearer(owner), { message: 'My PIN is 8642', sessionId })).status,
    ).toBe(200);

    const intruder = await identity.signJwt({ subject: 'mallory' });
    const result = await invoke(jwtUrl, bearer(intruder), {
      message: 'What did I say?',
      sessionId,
    });

    expect(result.status).toBe(200);
    expect(JSON.stringify(harness.bedrock.requests[1].body)).not.toContain('8642');
  });

  test.each([
    ['a key separator', 'alice#shared'],
    ['a path', '../alice'],
    ['a null byte', 'a\u0000b'],
    ['an overlong id', 'a'.repeat(129)],
  ])('rejects a session id with %s', async (_case, sessionId) => {
    const token = await identity.signJwt({ subject: 'mallory' });
    const result = await invoke(jwtUrl, bearer(token), { message: 'Hi', sessionId });
    expect(result.status).toBe(400);
    expect(result.json.error.name).toBe('InvalidRequestError');
    expect(result.headers[REQUEST_ID_HEADER]).toBe(result.json.error.requestId);
  });
});
