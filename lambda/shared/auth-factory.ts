/** Selects the authenticator that an agent's `auth` setting names. */
import { WorkerAuthConfig } from './contracts';
import { AlbOidcAuthenticator } from './alb-auth';
import { Authenticator, NoAuthenticator } from './auth';
import { JwtAuthenticator } from './jwt-auth';

export interface AuthenticatorOptions {
  /** Base URL of the load balancer's public keys; see {@link AlbOidcAuthenticator}. */
  readonly albPublicKeysUrl?: string;
}

/** Creates the authenticator that `config` selects. */
export function createAuthenticator(
  config: WorkerAuthConfig,
  options: AuthenticatorOptions = {},
): Authenticator {
  switch (config.type) {
    case 'none':
      return new NoAuthenticator();
    case 'jwt':
      return new JwtAuthenticator(config);
    case 'alb-oidc':
      return new AlbOidcAuthenticator(config, options.albPublicKeysUrl);
  }
}
