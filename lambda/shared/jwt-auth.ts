/**
 * Bearer token authentication against an identity provider's JSON Web Key
 * Set, for realtime agents whose callers send their own tokens.
 */
import { IncomingHttpHeaders } from 'http';
import { JWTPayload, createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import { WorkerAuthConfig } from './contracts';
import { Logger } from './logger';
import { Authenticator, reject, userIdFrom } from './auth';
import { ServiceUnavailableError } from './errors';

/** Asymmetric algorithms only, because a key set never contains a shared secret. */
const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

/** Milliseconds jose waits for the key set before the request fails with 503. */
const JWKS_TIMEOUT_MS = 5_000;

/**
 * Checks whether `error` means the key set could not be fetched or read, as
 * opposed to a bad token. jose 6.2 raises the plain JOSEError only when the
 * key set endpoint responds with a status other than 200 or with text that
 * is not JSON, and raises JWKSInvalid when that JSON is not a key set.
 */
function keySetUnavailable(error: unknown): boolean {
  if (!(error instanceof joseErrors.JOSEError)) return true;
  return (
    error instanceof joseErrors.JWKSTimeout ||
    error instanceof joseErrors.JWKSInvalid ||
    error.code === joseErrors.JOSEError.code
  );
}

/** Verifies `Authorization: Bearer` JWTs against the identity provider's key set. */
export class JwtAuthenticator implements Authenticator {
  private readonly keySet;

  constructor(private readonly config: Extract<WorkerAuthConfig, { type: 'jwt' }>) {
    this.keySet = createRemoteJWKSet(new URL(config.jwksUri), { timeoutDuration: JWKS_TIMEOUT_MS });
  }

  async authenticate(
    headers: IncomingHttpHeaders,
    requestId: string,
    log: Logger,
  ): Promise<string> {
    const match = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(headers.authorization ?? '');
    if (!match) reject(requestId, log, 'missing or malformed Authorization header');

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1], this.keySet, {
        issuer: this.config.issuer,
        algorithms: JWT_ALGORITHMS,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      if (keySetUnavailable(error)) {
        log.error('fetching the JSON Web Key Set failed', { jwksUri: this.config.jwksUri }, error);
        throw new ServiceUnavailableError(
          "The identity provider's signing keys could not be fetched; try again later.",
          requestId,
          { cause: error },
        );
      }
      reject(requestId, log, 'token verification failed', error);
    }

    if (!this.audienceMatches(payload)) reject(requestId, log, 'token audience does not match');
    return userIdFrom(payload, this.config.userClaim, requestId, log);
  }

  /**
   * Checks `aud`, or `client_id` for Cognito access tokens, which carry the
   * app client id there and have no `aud` claim.
   */
  private audienceMatches(payload: JWTPayload): boolean {
    const allowed = new Set(this.config.audience);
    if (payload.aud !== undefined) {
      const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      return audiences.some((aud) => allowed.has(aud));
    }
    return (
      payload.token_use === 'access' &&
      typeof payload.client_id === 'string' &&
      allowed.has(payload.client_id)
    );
  }
}
