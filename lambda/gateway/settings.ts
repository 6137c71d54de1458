import type {
  GatewayBreakerSettings,
  GatewayClientSettings,
  GatewayRuntimeConfig,
} from '../shared/contracts';

/**
 * Milliseconds allowed to open a TCP and TLS connection to Bedrock. The
 * handshakes take two or three round trips, by estimate under 300 ms even
 * across a continent, so a connection that takes a second is failing, and
 * the time is better spent on the next target.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000;

/**
 * Milliseconds from sending a request to the response headers, for streaming
 * calls. ConverseStream sends its headers before the model generates, so ten
 * seconds without them means the target is overloaded or unreachable.
 */
export const DEFAULT_FIRST_BYTE_TIMEOUT_MS = 10_000;

/**
 * Milliseconds one target may take for a buffered Converse call, SDK retries
 * included. Converse sends its headers only after generation ends, so this
 * also bounds generation. At an estimated 70 to 100 output tokens per
 * second, a minute covers 3,000 to 6,000 tokens, and two targets still fit
 * the gateway's default Lambda timeout of 120 s.
 */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 60_000;

/**
 * Attempts the SDK makes on one target, the first included. The gateway
 * fails over instead of retrying, because on a throttle the SDK
 * (@smithy/core 3.41) backs off a random 0 to 1000 ms before its retry.
 * `npm run bench:gateway` measured that at about 500 ms p50 added to each
 * failover, while moving to the next target costs about 2 ms.
 */
export const DEFAULT_SDK_MAX_ATTEMPTS = 1;

/**
 * Consecutive failures that open a target's breaker. One or two errors
 * happen on a healthy target, such as a short burst of throttling, while
 * five in a row are a pattern.
 */
export const DEFAULT_FAILURE_THRESHOLD = 5;

/**
 * Seconds an open breaker skips its target before one probe may try it.
 * Bedrock's quotas count requests and tokens per minute, so half a minute
 * lets a throttled target recover while a recovered one gets its traffic
 * back soon.
 */
export const DEFAULT_COOLDOWN_SECONDS = 30;

/**
 * Milliseconds an instance trusts breaker state it read from the state table.
 * One read per target and instance every two seconds bounds the table's load
 * at any request rate, and a breaker change reaches every instance within
 * two seconds. The ModelGateway construct's default is the same.
 */
export const DEFAULT_BREAKER_CACHE_TTL_MS = 2_000;

/** Client settings with every default applied. */
export interface ResolvedClientSettings extends Omit<GatewayClientSettings, 'requestDeadlineMs'> {
  /** Unset means the deadline comes from the Lambda's remaining time alone. */
  readonly requestDeadlineMs?: number;
}

/** Applies the defaults to the configuration's client settings. */
export function resolveClientSettings(config: GatewayRuntimeConfig): ResolvedClientSettings {
  const client = config.client ?? {};
  return {
    connectTimeoutMs: client.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    firstByteTimeoutMs: client.firstByteTimeoutMs ?? DEFAULT_FIRST_BYTE_TIMEOUT_MS,
    attemptTimeoutMs: client.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS,
    sdkMaxAttempts: client.sdkMaxAttempts ?? DEFAULT_SDK_MAX_ATTEMPTS,
    requestDeadlineMs: client.requestDeadlineMs,
  };
}

/** Applies the defaults to the configuration's breaker settings. */
export function resolveBreakerSettings(config: GatewayRuntimeConfig): GatewayBreakerSettings {
  const breaker = config.breaker ?? {};
  return {
    failureThreshold: breaker.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD,
    cooldownSeconds: breaker.cooldownSeconds ?? DEFAULT_COOLDOWN_SECONDS,
    cacheTtlMs: breaker.cacheTtlMs ?? DEFAULT_BREAKER_CACHE_TTL_MS,
  };
}
