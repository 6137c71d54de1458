import { GATEWAY_ENV } from '../shared/contracts';
import { loadGatewayConfigFromEnv } from './config';
import { createGatewayHandler, type GatewayHandler } from './handler';
import { createGatewayServices } from './services';
import { createGatewayStreamHandler, type GatewayStreamHandler } from './stream/handler';
import { selectLambdaEntry } from './stream/lambda-entry';

export * from './bedrock-client';
export * from './breaker';
export * from './breaker-store';
export * from './breaker-table';
export * from './call-metrics';
export * from './classify';
export { loadGatewayConfigFromEnv, validateGatewayConfig } from './config';
export * from './failover';
export * from './handler';
export * from './pipeline';
export * from './response-cache';
export * from './services';
export * from './settings';
export * from './stream/handler';
export * from './stream/lambda-entry';
export { StreamCancelledError, type StreamGatewayContext } from './stream/stream-step';
export * from './stream/usage';

interface DefaultHandlers {
  readonly buffered: GatewayHandler;
  readonly streamed: GatewayStreamHandler;
}

let defaultHandlers: DefaultHandlers | undefined;

/** Builds both handlers on one set of services, so that they share clients and breakers. */
function createDefaultHandlers(): DefaultHandlers {
  const config = loadGatewayConfigFromEnv();
  const services = createGatewayServices({ config }, GATEWAY_ENV.config);
  return {
    buffered: createGatewayHandler({ config, services }),
    streamed: createGatewayStreamHandler({ config, services }),
  };
}

const bufferedEntry: GatewayHandler = (event, lambdaContext) => {
  defaultHandlers ??= createDefaultHandlers();
  return defaultHandlers.buffered(event, lambdaContext);
};

const streamedEntry: GatewayStreamHandler = (event, writable, lambdaContext) => {
  defaultHandlers ??= createDefaultHandlers();
  return defaultHandlers.streamed(event, writable, lambdaContext);
};

/**
 * Lambda entry point. The handlers are built on the first invocation, so
 * that their Bedrock clients live as long as the container, and a
 * configuration error fails the invocation with a message rather than the
 * module import. In a Lambda Node.js runtime it streams `stream: true`
 * requests and writes the buffered result of any other (see
 * selectLambdaEntry). Elsewhere it is the buffered handler.
 */
export const handler: GatewayHandler = selectLambdaEntry(bufferedEntry, streamedEntry);
