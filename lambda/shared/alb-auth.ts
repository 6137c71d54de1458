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
import { WorkerAuthConfig } from './contracts';
import { Logger } from './logger';
import { Authenticator, reject, userIdFrom } from './auth';
import { ServiceUnavailableError } from './errors';

export const ALB_OIDC_HEADER = 'x-amzn-oidc-data';

/** Key ids are UUIDs; the check keeps the key URL from being steered elsewhere. */
const KID_PATTERN = /^[A-Za-z0-9-]{1,128}$/;
const PART_PATTERN = /^[A-Za-z0-9_-]+={0,2}$/;
const KEY_FETCH_TIMEOUT_MS = 5_000;
/** Public keys kept, by kid. Misses never take their place. */
const MAX_CACHED_KEYS = 100;
/** Key ids the endpoint did not know, kept so that a repeated made-up id costs no fetch. */
const MAX_CACHED_MISSES = 1_000;
/**
 * Fetches of key ids not cached yet, per window. Past it, tokens with new ids
 * get 503 without a fetch, so a flood of made-up ids costs at most this many
 * fetches per window. The load balancer rotates its key rarely, so a real
 * new id fits within the limit unless such a flood is running.
 */
const MAX_KEY_FETCHES_PER_WINDOW = 10;
const KEY_FETCH_WINDOW_MS = 60_000;

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
   * Public keys by `kid`, found or still being fetched. The load balancer
   * rotates keys by issuing new ids.
   */
  private readonly keys = new Map<string, Promise<KeyObject | undefined>>();
  /** Key ids for which the endpoint returned 4xx, oldest first. */
  private readonly misses = new Set<string>();
  private fetchWindowStartMs = 0;
  private fetchesInWindow = 0;
  private fetchLimitLogged = false;

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

    // Checked before the key fetch, so that tokens naming another load balancer
    // cost no fetch. The signature check below covers the header.
    if (this.config.loadBalancerArn && header.signer !== this.config.loadBalancerArn) {
      reject(requestId, log, 'token signed by another load balancer');
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

    // The load balancer puts `exp` in the header; a payload `exp` is checked too.
    const now = Math.floor(Date.now() / 1000);
    const expiries = [header.exp, claims.exp].filter((exp) => exp !== undefined);
    if (expiries.length === 0 || expiries.some((exp) => typeof exp !== 'number' || exp <= now)) {
      reject(requestId, log, 'token expired or without exp');
    }
    return userIdFrom(claims, this.config.userClaim, requestId, log);
  }

  private publicKey(kid: string, requestId: string, log: Logger): Promise<KeyObject | undefined> {
    if (this.misses.has(kid)) return Promise.resolve(undefined);
    let key = this.keys.get(kid);
    if (!key) {
      this.countFetch(requestId, log);
      if (this.keys.size >= MAX_CACHED_KEYS) {
        this.keys.delete(this.keys.keys().next().value!);
      }
      key = this.fetchKey(kid, requestId, log);
      this.keys.set(kid, key);
      key.then(
        (found) => {
          if (found) return;
          this.keys.delete(kid);
          this.rememberMiss(kid);
        },
        // A failed fetch is forgotten, so the next request tries again.
        () => this.keys.delete(kid),
      );
    }
    return key;
  }

  private rememberMiss(kid: string): void {
    if (this.misses.size >= MAX_CACHED_MISSES) {
      this.misses.delete(this.misses.values().next().value!);
    }
    this.misses.add(kid);
  }

  /** Counts one fetch against the window, or raises 503 when the window is used up. */
  private countFetch(requestId: string, log: Logger): void {
    const now = Date.now();
    if (now - this.fetchWindowStartMs >= KEY_FETCH_WINDOW_MS) {
      this.fetchWindowStartMs = now;
      this.fetchesInWindow = 0;
      this.fetchLimitLogged = false;
    }
    if (this.fetchesInWindow >= MAX_KEY_FETCHES_PER_WINDOW) {
      // Logged once per window, because a flood would repeat it for every request.
      if (!this.fetchLimitLogged) {
        log.warn('load balancer key fetch limit reached; rejecting tokens with new kids', {
          limit: MAX_KEY_FETCHES_PER_WINDOW,
          windowMs: KEY_FETCH_WINDOW_MS,
        });
        this.fetchLimitLogged = true;
      }
      throw new ServiceUnavailableError(
        "The load balancer's public key could not be fetched; try again later.",
        requestId,
      );
    }
    this.fetchesInWindow += 1;
  }

  /**
   * Fetches a key. Returns undefined for an unknown id, for which the endpoint
   * returns 4xx, and raises 503 on a network failure or any other status.
   */
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
    if (!response.ok && (response.status < 400 || response.status >= 500)) {
      await response.body?.cancel();
      log.error('fetching the load balancer public key failed', { url, status: response.status });
      throw new ServiceUnavailableError(
        "The load balancer's public key could not be fetched; try again later.",
        requestId,
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
