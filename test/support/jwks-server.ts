/**
 * Loopback identity server for the worker's authentication tests. It serves
 * a JSON Web Key Set for bearer tokens and the load balancer's public key
 * endpoint for `x-amzn-oidc-data` tokens, and signs tokens of both kinds.
 */
import { generateKeyPairSync, sign } from 'crypto';
import { createServer } from 'http';
import { AddressInfo } from 'net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

export const TEST_ISSUER = 'https://issuer.test.invalid/';
export const TEST_AUDIENCE = 'agent-client';

export interface JwtOptions {
  readonly subject?: string;
  readonly audience?: string | string[];
  readonly issuer?: string;
  /** Seconds until expiry; negative gives an expired token. @default 300 */
  readonly expiresInSeconds?: number;
  /** Extra claims, or `audience: undefined` with these to send no `aud`. */
  readonly claims?: Record<string, unknown>;
  /** Signs with a key that is not in the key set but claims its `kid`. */
  readonly forged?: boolean;
}

export interface AlbTokenOptions {
  readonly subject?: string;
  /** ARN of the signing load balancer, written to the header's `signer`. */
  readonly signer: string;
  /** @default 120 */
  readonly expiresInSeconds?: number;
  readonly forged?: boolean;
  /** Key id in the header. @default - the id of the key this server publishes */
  readonly kid?: string;
}

export interface IdentityServer {
  readonly jwksUri: string;
  /** Base URL of the load balancer public keys, for `AGENT_ALB_PUBLIC_KEYS_URL`. */
  readonly albKeysUrl: string;
  /** Number of requests for keys so far. */
  keyRequests(): number;
  signJwt(options?: JwtOptions): Promise<string>;
  signAlbToken(options: AlbTokenOptions): string;
  close(): Promise<void>;
}

const JWT_KID = 'test-rsa-key';
const ALB_KID = '4d1e6c62-0f7e-4a5c-9b37-2f1d7d0c9e51';

/** base64url with `=` padding, which is how the load balancer encodes its tokens. */
function paddedBase64Url(data: Buffer): string {
  const text = data.toString('base64url');
  return text + '='.repeat((4 - (text.length % 4)) % 4);
}

export async function startIdentityServer(): Promise<IdentityServer> {
  const jwtKeys = await generateKeyPair('RS256');
  const forgedJwtKeys = await generateKeyPair('RS256');
  const publicJwk = {
    ...(await exportJWK(jwtKeys.publicKey)),
    kid: JWT_KID,
    alg: 'RS256',
    use: 'sig',
  };
  const albKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const forgedAlbKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  let requests = 0;

  const server = createServer((req, res) => {
    requests += 1;
    if (req.url === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [publicJwk] }));
    } else if (req.url === `/alb-keys/${ALB_KID}`) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(albKeys.publicKey.export({ format: 'pem', type: 'spki' }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    jwksUri: `${base}/.well-known/jwks.json`,
    albKeysUrl: `${base}/alb-keys`,
    keyRequests: () => requests,

    async signJwt(options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const audience = 'audience' in options ? options.audience : TEST_AUDIENCE;
      const jwt = new SignJWT({ ...options.claims })
        .setProtectedHeader({ alg: 'RS256', kid: JWT_KID })
        .setIssuer(options.issuer ?? TEST_ISSUER)
        .setSubject(options.subject ?? 'user-1')
        .setIssuedAt(now - 600)
        .setExpirationTime(now + (options.expiresInSeconds ?? 300));
      if (audience !== undefined) jwt.setAudience(audience);
      return jwt.sign(options.forged ? forgedJwtKeys.privateKey : jwtKeys.privateKey);
    },

    // Built by hand because jose writes no padding, and the test must send
    // what the load balancer sends.
    signAlbToken(options) {
      const exp = Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 120);
      const header = paddedBase64Url(
        Buffer.from(
          JSON.stringify({
            typ: 'JWT',
            kid: options.kid ?? ALB_KID,
            alg: 'ES256',
            iss: TEST_ISSUER,
            client: TEST_AUDIENCE,
            signer: options.signer,
            exp,
          }),
        ),
      );
      const payload = paddedBase64Url(
        Buffer.from(
          JSON.stringify({
            sub: options.subject ?? 'alb-user-1',
            email: 'user@example.com',
            exp,
            iss: TEST_ISSUER,
          }),
        ),
      );
      const key = options.forged ? forgedAlbKey : albKeys.privateKey;
      const signature = sign('sha256', Buffer.from(`${header}.${payload}`), {
        key,
        dsaEncoding: 'ieee-p1363',
      });
      return `${header}.${payload}.${paddedBase64Url(signature)}`;
    },

    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
