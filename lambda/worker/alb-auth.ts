/**
 * Verifies the `x-amzn-oidc-data` header that an Application Load Balancer
 * adds after its OIDC or Cognito authenticate action. The load balancer
 * signs it with ES256 and publishes the public key as PEM under its region's
 * key endpoint, named by the token's `kid`.
 *
 * The token is not a standard JWT: the load balancer encodes its parts as
 * base64url with `=` padding and signs the padded text, see "User claims
 * encoding and signature verification" in
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html
 * JWT libraries, jose included, reject padded parts, so the signature is
 * checked here with node:crypto over the parts exactly as received.
 */
import { KeyObject, createPublicKey, verify } from 'crypto';
import { IncomingHttpHeaders } from 'http';
import { WorkerAuthConfig } from '../shared/contracts';
import { Logger } from '../shared/logger';
import { Authenticator, reject, userIdFrom } from './auth';
import { ServiceUnavailableError } from './errors';

export const ALB_OIDC_HEADER = 'x-amzn-oidc-data';

/** Key ids are UUIDs; the check keeps the key URL from being steered elsewhere. */
const KID_PATTERN = /^[A-Za-z0-9-]{1,128}$/;
const PART_PATTERN = /^[A-Za-z0-9_-]+={0,2}$/;
const KEY_FETCH_TIMEOUT_MS = 5_000;
/**
 * Cached key lookups, unknown ids included, so that tokens with made-up ids
 * cannot make the worker fetch a key for every request or grow the cache.
 */
const MAX_CACHED_KEYS = 100;

function decodePart(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(
      Buffer.from(part.replace(/=+$/, ''), 'base64url').toString('utf8'),
    );
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Authenticates callers through the load balancer's signed user claims. */
export class AlbOidcAuthenticator implements Authenticator {
  private readonly keysUrl: string;
  /**
   * Public keys by `kid`, or undefined for an id the endpoint does not know.
   * The load balancer rotates keys by issuing new ids.
   */
  private readonly keys = new Map<string, Promise<KeyObject | undefined>>();

  constructor(
    private readonly config: Extract<WorkerAuthConfig, { type: 'alb-oidc' }>,
    keysUrl?: string,
  ) {
    this.keysUrl = keysUrl ?? `https://public-keys.auth.elb.${config.region}.amazonaws.com`;
  }

  async authenticate(
    headers: IncomingHttpHeaders,
    requestId: string,
    log: Logger,
  ): Promise<string> {
    const token = headers[ALB_OIDC_HEADER];
    if (typeof token !== 'string') reject(requestId, log, `missing ${ALB_OIDC_HEADER} header`);

    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((part) => PART_PATTERN.test(part))) {
      reject(requestId, log, `malformed ${ALB_OIDC_HEADER} header`);
    }
    const header = decodePart(parts[0]);
    const claims = decodePart(parts[1]);
    if (!header || !claims) reject(requestId, log, 'undecodable token header or payload');
    if (header.alg !== 'ES256')
      reject(requestId, log, `unexpected algorithm ${String(header.alg)}`);
    if (typeof header.kid !== 'string' || !KID_PATTERN.test(header.kid)) {
      reject(requestId, log, 'missing or malformed kid');
    }

    const key = await this.publicKey(header.kid, requestId, log);
    if (!key) reject(requestId, log, `no public key with kid ${header.kid}`);
    const signature = Buffer.from(parts[2].replace(/=+$/, ''), 'base64url');
    const signed = verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      { key, dsaEncoding: 'ieee-p1363' },
      signature,
    );
    if (!signed) reject(requestId, log, 'invalid signature');

    if (this.config.loadBalancerArn && header.signer !== this.config.loadBalancerArn) {
      reject(requestId, log, 'token signed by another load balancer');
    }
    // The load balancer puts `exp` in the header; a payload `exp` is checked too.
    const now = Math.floor(Date.now() / 1000);
    const expiries = [header.exp, claims.exp].filter((exp) => exp !== undefined);
    if (expiries.length === 0 || expiries.some((exp) => typeof exp !== 'number' || exp <= now)) {
      reject(requestId, log, 'token expired or without exp');
    }
    return userIdFrom(claims, this.config.userClaim, requestId, log);
  }

  private publicKey(kid: string, requestId: string, log: Logger): Promise<KeyObject | undefined> {
    let key = this.keys.get(kid);
    if (!key) {
      if (this.keys.size >= MAX_CACHED_KEYS) {
        this.keys.delete(this.keys.keys().next().value!);
      }
      key = this.fetchKey(kid, requestId, log);
      this.keys.set(kid, key);
      // A fetch that failed on the network is forgotten, so the next request tries again.
      key.catch(() => this.keys.delete(kid));
    }
    return key;
  }

  /** Fetches a key; returns undefined for an unknown id and throws 503 on a network failure. */
  private async fetchKey(
    kid: string,
    requestId: string,
    log: Logger,
  ): Promise<KeyObject | undefined> {
    const url = `${this.keysUrl}/${kid}`;
    let response: Response;
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(KEY_FETCH_TIMEOUT_MS) });
    } catch (error) {
      log.error('fetching the load balancer public key failed', { url }, error);
      throw new ServiceUnavailableError(
        "The load balancer's public key could not be fetched; try again later.",
        requestId,
        { cause: error },
      );
    }
    if (!response.ok) {
      // An unknown kid returns 4xx, because the load balancer never issued it.
      await response.body?.cancel();
      log.warn('load balancer public key not found', { url, status: response.status });
      return undefined;
    }
    try {
      return createPublicKey(await response.text());
    } catch (error) {
      log.warn('load balancer public key is not a PEM key', { url }, error);
      return undefined;
    }
  }
}
