import { loadGatewayConfigFromEnv } from './config';
import { createGatewayHandler, type GatewayHandler } from './handler';

export * from './bedrock-client';
export * from './breaker';
export * from './breaker-store';
export * from './breaker-table';
export * from './classify';
export { loadGatewayConfigFromEnv, validateGatewayConfig } from './config';
export * from './failover';
export * from './handler';
export * from './pipeline';
export * from './services';
export * from './settings';

let defaultHandler: GatewayHandler | undefined;

/**
 * Lambda entry point. The handler is built on the first invocation, so that
 * its Bedrock clients live as long as the container, and a configuration
 * error fails the invocation with a message rather than the module import.
 */
export const handler: GatewayHandler = (event, lambdaContext) => {
  defaultHandler ??= createGatewayHandler({ config: loadGatewayConfigFromEnv() });
  return defaultHandler(event, lambdaContext);
};
