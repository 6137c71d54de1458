import { Agent as HttpsAgent } from 'node:https';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AwsCredentialIdentity } from '@smithy/types';

/**
 * Milliseconds allowed to open a TCP and TLS connection to Bedrock. A regional
 * endpoint connects in well under a second, so a connection that takes longer
 * is failing and the time is better spent on the next target.
 */
export const BEDROCK_CONNECTION_TIMEOUT_MS = 3_000;

/**
 * Milliseconds one Converse attempt may wait for its response headers, which
 * is where NodeHttpHandler stops this timer. A non-streaming Converse response
 * carries the stop reason and usage, so it arrives after generation ends and
 * this bounds generation time. It stays below the gateway's default Lambda
 * timeout of 120 s, and the invoke step's deadline covers a retry beyond it.
 */
export const BEDROCK_REQUEST_TIMEOUT_MS = 90_000;

/**
 * Attempts per call on one target, the first included. One retry absorbs a
 * transient blip, and more would spend the Lambda's time on a target that the
 * failover step should leave for the next one.
 */
export const BEDROCK_MAX_ATTEMPTS = 2;

/** Milliseconds between TCP keep-alive probes on idle pooled connections. */
export const BEDROCK_KEEP_ALIVE_PROBE_MS = 1_000;

/** Settings of {@link createBedrockClient} that a caller may override. */
export interface BedrockClientOptions {
  /**
   * Static credentials.
   * @default - the SDK's default provider chain (the Lambda role in AWS)
   */
  readonly credentials?: AwsCredentialIdentity;
}

/**
 * Creates the Bedrock Runtime client for one region, speaking HTTP/1.1 over a
 * keep-alive agent. The SDK's default handler for this client is HTTP/2.
 *
 * The endpoint is not set here on purpose: the SDK reads
 * `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (or `AWS_ENDPOINT_URL`) itself, which is
 * how a test points a bundled gateway at a loopback server.
 */
export function createBedrockClient(
  region: string,
  options: BedrockClientOptions = {},
): BedrockRuntimeClient {
  const agentOptions = { keepAlive: true, keepAliveMsecs: BEDROCK_KEEP_ALIVE_PROBE_MS };
  return new BedrockRuntimeClient({
    region,
    credentials: options.credentials,
    maxAttempts: BEDROCK_MAX_ATTEMPTS,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: BEDROCK_CONNECTION_TIMEOUT_MS,
      requestTimeout: BEDROCK_REQUEST_TIMEOUT_MS,
      // Without this flag the SDK only logs a warning when requestTimeout passes.
      throwOnRequestTimeout: true,
      httpsAgent: new HttpsAgent(agentOptions),
      // Plain HTTP is only used when an endpoint override points at a loopback server.
      httpAgent: agentOptions,
    }),
  });
}

/** Factory that returns the Bedrock client for a region. */
export type ClientForRegion = (region: string) => BedrockRuntimeClient;

/**
 * Wraps a client factory so that it runs once per region. Clients hold
 * connection pools, so a container reuses them across invocations.
 */
export function cacheClientsByRegion(create: ClientForRegion): ClientForRegion {
  const clients = new Map<string, BedrockRuntimeClient>();
  return (region) => {
    let client = clients.get(region);
    if (client === undefined) {
      client = create(region);
      clients.set(region, client);
    }
    return client;
  };
}
