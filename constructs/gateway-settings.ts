import type { GatewayBreakerSettings, GatewayClientSettings } from '../lambda/shared/contracts';

/**
 * Defaults and checks for the gateway's Bedrock client and circuit breaker.
 * The config loader and the ModelGateway construct both resolve settings
 * here, so the two can never disagree on a default. The README explains
 * each value.
 */

/** Default time to open a TCP and TLS connection to Bedrock. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000;
/** Default time from sending a request to the first byte of the response. */
export const DEFAULT_FIRST_BYTE_TIMEOUT_MS = 10_000;
/** Default time one buffered attempt may take in total. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 60_000;
/** Default number of attempts the SDK makes on one target, the first included. */
export const DEFAULT_SDK_MAX_ATTEMPTS = 1;
/** Largest margin kept between the request deadline and the Lambda timeout. */
export const MAX_DEADLINE_MARGIN_MS = 5_000;

/** Default consecutive failures that open a target's breaker. */
export const DEFAULT_FAILURE_THRESHOLD = 5;
/** Default time an open breaker skips its target. */
export const DEFAULT_COOLDOWN_SECONDS = 30;
/** Default time an instance trusts breaker state read from the state table. */
export const DEFAULT_BREAKER_CACHE_TTL_MS = 2_000;

/**
 * Allowed TTL of a response cache in seconds: 1 second to 365 days. The
 * upper bound only catches a value given in the wrong unit.
 */
export const RESPONSE_CACHE_TTL_RANGE = { min: 1, max: 365 * 24 * 3600 } as const;

/** Allowed range of a whole-number setting. */
export interface SettingRange {
  readonly min: number;
  readonly max: number;
}

/**
 * Allowed ranges of the client settings. A deadline or attempt longer than
 * 900 s, the Lambda maximum, could never be reached.
 */
export const CLIENT_SETTING_RANGES: Record<keyof GatewayClientSettings, SettingRange> = {
  connectTimeoutMs: { min: 100, max: 60_000 },
  firstByteTimeoutMs: { min: 100, max: 900_000 },
  attemptTimeoutMs: { min: 100, max: 900_000 },
  sdkMaxAttempts: { min: 1, max: 10 },
  requestDeadlineMs: { min: 100, max: 900_000 },
};

/** Allowed ranges of the breaker settings. */
export const BREAKER_SETTING_RANGES: Record<keyof GatewayBreakerSettings, SettingRange> = {
  failureThreshold: { min: 1, max: 1_000 },
  cooldownSeconds: { min: 1, max: 3_600 },
  cacheTtlMs: { min: 0, max: 60_000 },
};

/** One problem in gateway settings, relative to the settings object. */
export interface SettingsIssue {
  /** Path below the settings object, such as `['requestDeadlineMs']`. */
  readonly path: ReadonlyArray<string | number>;
  readonly message: string;
  readonly value?: unknown;
}

/**
 * Returns the default request deadline for a Lambda timeout: the timeout
 * minus 5 s, or minus a tenth of it for timeouts under 50 s. The margin
 * leaves time to settle usage, write the audit record and return an error
 * before Lambda stops the invocation.
 */
export function defaultRequestDeadlineMs(lambdaTimeoutMs: number): number {
  return lambdaTimeoutMs - Math.min(MAX_DEADLINE_MARGIN_MS, Math.floor(lambdaTimeoutMs / 10));
}

/**
 * Fills in every client setting left out. Each default is capped at the
 * next wider bound (connect at first byte, first byte at attempt, attempt
 * at the deadline), so a short Lambda timeout never makes the defaults
 * invalid. Settings given explicitly are kept as they are and checked by
 * {@link clientSettingsIssues}.
 */
export function resolveClientSettings(
  lambdaTimeoutMs: number,
  options: Partial<GatewayClientSettings> = {},
): GatewayClientSettings {
  const requestDeadlineMs = options.requestDeadlineMs ?? defaultRequestDeadlineMs(lambdaTimeoutMs);
  const attemptTimeoutMs = options.attemptTimeoutMs ?? Math.min(DEFAULT_ATTEMPT_TIMEOUT_MS, requestDeadlineMs);
  const firstByteTimeoutMs = options.firstByteTimeoutMs ?? Math.min(DEFAULT_FIRST_BYTE_TIMEOUT_MS, attemptTimeoutMs);
  const connectTimeoutMs = options.connectTimeoutMs ?? Math.min(DEFAULT_CONNECT_TIMEOUT_MS, firstByteTimeoutMs);
  return {
    connectTimeoutMs,
    firstByteTimeoutMs,
    attemptTimeoutMs,
    sdkMaxAttempts: options.sdkMaxAttempts ?? DEFAULT_SDK_MAX_ATTEMPTS,
    requestDeadlineMs,
  };
}

/** Fills in every breaker setting left out. */
export function resolveBreakerSettings(options: Partial<GatewayBreakerSettings> = {}): GatewayBreakerSettings {
  return {
    failureThreshold: options.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD,
    cooldownSeconds: options.cooldownSeconds ?? DEFAULT_COOLDOWN_SECONDS,
    cacheTtlMs: options.cacheTtlMs ?? DEFAULT_BREAKER_CACHE_TTL_MS,
  };
}

/** Checks that every setting is a whole number within its range. */
export function rangeIssues<T extends object>(settings: T, ranges: Record<keyof T, SettingRange>): SettingsIssue[] {
  const issues: SettingsIssue[] = [];
  for (const field of Object.keys(ranges) as Array<keyof T & string>) {
    const value = settings[field] as unknown;
    const { min, max } = ranges[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      issues.push({ path: [field], message: `must be a whole number from ${min} to ${max}`, value });
    }
  }
  return issues;
}

/**
 * Checks that the client timeouts nest inside each other and inside the
 * Lambda timeout: connect <= first byte <= attempt <= deadline < timeout.
 *
 * @param timeoutName names the Lambda timeout setting in messages.
 */
export function clientSettingsIssues(
  client: GatewayClientSettings,
  lambdaTimeoutMs: number,
  timeoutName: string,
): SettingsIssue[] {
  const issues: SettingsIssue[] = [];
  if (client.requestDeadlineMs >= lambdaTimeoutMs) {
    issues.push({
      path: ['requestDeadlineMs'],
      message:
        `must be below the Lambda timeout of ${lambdaTimeoutMs} ms (${timeoutName}), so that the gateway ` +
        `can still settle usage and return an error after the deadline; use at most ${defaultRequestDeadlineMs(lambdaTimeoutMs)} ` +
        `or raise ${timeoutName}`,
      value: client.requestDeadlineMs,
    });
  }
  const nested: Array<[keyof GatewayClientSettings, keyof GatewayClientSettings]> = [
    ['attemptTimeoutMs', 'requestDeadlineMs'],
    ['firstByteTimeoutMs', 'attemptTimeoutMs'],
    ['connectTimeoutMs', 'firstByteTimeoutMs'],
  ];
  for (const [inner, outer] of nested) {
    if (client[inner] > client[outer]) {
      issues.push({
        path: [inner],
        message:
          outer === 'requestDeadlineMs'
            ? `exceeds ${outer} (${client[outer]}), which must stay below the Lambda timeout of ${lambdaTimeoutMs} ms; ` +
              `lower ${inner}, or raise ${timeoutName} and with it ${outer}`
            : `exceeds ${outer} (${client[outer]}); lower ${inner} or raise ${outer}`,
        value: client[inner],
      });
    }
  }
  return issues;
}

/**
 * Checks that an instance's cached breaker state expires before the
 * cooldown ends, so that no instance skips a target after the cooldown.
 */
export function breakerSettingsIssues(breaker: GatewayBreakerSettings): SettingsIssue[] {
  const cooldownMs = breaker.cooldownSeconds * 1_000;
  if (breaker.cacheTtlMs >= cooldownMs) {
    return [
      {
        path: ['cacheTtlMs'],
        message:
          `must be below the cooldown of ${cooldownMs} ms (cooldownSeconds), or instances keep skipping a ` +
          'target after its breaker closed; lower cacheTtlMs or raise cooldownSeconds',
        value: breaker.cacheTtlMs,
      },
    ];
  }
  return [];
}

/** Formats a settings path as `prefix.a.b[2]` for construct error messages. */
export function formatSettingsPath(prefix: string, path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((text, segment) => (typeof segment === 'number' ? `${text}[${segment}]` : `${text}.${segment}`), prefix);
}
