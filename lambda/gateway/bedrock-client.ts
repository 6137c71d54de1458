import { Agent as HttpsAgent } from 'node:https';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AwsCredentialIdentity } from '@smithy/types';
import type { GatewayClientSettings } from '../shared/contracts';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_FIRST_BYTE_TIMEOUT_MS,
  DEFAULT_SDK_MAX_ATTEMPTS,
} from './settings';

/** Milliseconds between TCP keep-alive probes on idle pooled connections. */
export const BEDROCK_KEEP_ALIVE_PROBE_MS = 1_000;

/** Timeouts and retries of one Bedrock client. */
export type BedrockClientSettings = Pick<
  GatewayClientSettings,
  'connectTimeoutMs' | 'firstByteTimeoutMs' | 'sdkMaxAttempts'
>;

/** Settings of {@link createBedrockClient} that a caller may override. */
export interface BedrockClientOptions {
  /**
   * Static credentials.
   * @default - the SDK's default provider chain (the Lambda role in AWS)
   */
  readonly credentials?: AwsCredentialIdentity;
  /**
   * Timeouts and retries.
   * @default - DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_FIRST_BYTE_TIMEOUT_MS and
   * DEFAULT_SDK_MAX_ATTEMPTS
   */
  readonly settings?: BedrockClientSettings;
  /**
   * Endpoint URL, for a loopback server in tests.
   * @default - the SDK resolves the regional endpoint
   */
  readonly endpoint?: string;
}

/**
 * Creates the Bedrock Runtime client for one region, speaking HTTP/1.1 over a
 * keep-alive agent. The SDK's default handler for this client is HTTP/2.
 *
 * `requestTimeout` is the time to the response headers, because
 * NodeHttpHandler stops that timer when they arrive. That is the first byte
 * of a stream. A buffered Converse call sends its headers only after
 * generation, so it passes its own `requestTimeout` per call.
 *
 * Without an `endpoint` option the SDK reads `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`
 * (or `AWS_ENDPOINT_URL`) itself, which is how a test points a bundled
 * gateway at a loopback server.
 */
export function createBedrockClient(
  region: string,
  options: BedrockClientOptions = {},
): BedrockRuntimeClient {
  const settings = options.settings ?? {
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    firstByteTimeoutMs: DEFAULT_FIRST_BYTE_TIMEOUT_MS,
    sdkMaxAttempts: DEFAULT_SDK_MAX_ATTEMPTS,
  };
  const agentOptions = { keepAlive: true, keepAliveMsecs: BEDROCK_KEEP_ALIVE_PROBE_MS };
  return new BedrockRuntimeClient({
    region,
    endpoint: options.endpoint,
    credentials: options.credentials,
    maxAttempts: settings.sdkMaxAttempts,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: settings.connectTimeoutMs,
      requestTimeout: settings.firstByteTimeoutMs,
      // Without this flag the SDK only logs a warning when requestTimeout passes.
      throwOnRequestTimeout: true,
      httpsAgent: new HttpsAgent(agentOptions),
      // Plain HTTP is only used when an endpoint override points at a loopback server.
      httpAgent: agentOptions,
    }),
  });
}

/**
 * Factory that returns the Bedrock client for a region, given the gateway's
 * client settings, which a factory should pass to {@link createBedrockClient}.
 */
export type ClientForRegion = (
  region: string,
  settings: BedrockClientSettings,
) => BedrockRuntimeClient;

/**
 * Wraps a client factory so that it runs once per region. Clients hold
 * connection pools, so a container reuses them across invocations.
 */
export function cacheClientsByRegion(
  create: ClientForRegion,
  settings: BedrockClientSettings,
): (region: string) => BedrockRuntimeClient {
  const clients = new Map<string, BedrockRuntimeClient>();
  return (region) => {
    let client = clients.get(region);
    if (client === undefined) {
      client = create(region, settings);
      clients.set(region, client);
    }
    return client;
  };
}
