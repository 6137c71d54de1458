/**
 * Defaults and checks of the gateway's client, breaker, state-table and
 * guardrail settings.
 */
import type { NodeHttpHandler } from '@smithy/node-http-handler';
import * as constructDefaults from '../constructs/gateway-settings';
import {
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_BREAKER_CACHE_TTL_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_COOLDOWN_SECONDS,
  DEFAULT_FAILURE_THRESHOLD,
  DEFAULT_FIRST_BYTE_TIMEOUT_MS,
  DEFAULT_SDK_MAX_ATTEMPTS,
  createBedrockClient,
  resolveBreakerSettings,
  resolveClientSettings,
  validateGatewayConfig,
} from '../lambda/gateway';

const AGENTS = {
  support: {
    route: [{ region: 'us-east-1', modelId: 'us.amazon.nova-pro-v1:0' }],
    maxTokensPerCall: 1,
  },
};

describe('gateway setting defaults', () => {
  test('client defaults', () => {
    expect(resolveClientSettings({ agents: AGENTS })).toEqual({
      connectTimeoutMs: 1_000,
      firstByteTimeoutMs: 10_000,
      attemptTimeoutMs: 60_000,
      sdkMaxAttempts: 1,
      requestDeadlineMs: undefined,
    });
  });

  test('breaker defaults', () => {
    expect(resolveBreakerSettings({ agents: AGENTS })).toEqual({
      failureThreshold: 5,
      cooldownSeconds: 30,
      cacheTtlMs: 2_000,
    });
  });

  test('match the construct defaults', () => {
    expect(DEFAULT_CONNECT_TIMEOUT_MS).toBe(constructDefaults.DEFAULT_CONNECT_TIMEOUT_MS);
    expect(DEFAULT_FIRST_BYTE_TIMEOUT_MS).toBe(constructDefaults.DEFAULT_FIRST_BYTE_TIMEOUT_MS);
    expect(DEFAULT_ATTEMPT_TIMEOUT_MS).toBe(constructDefaults.DEFAULT_ATTEMPT_TIMEOUT_MS);
    expect(DEFAULT_SDK_MAX_ATTEMPTS).toBe(constructDefaults.DEFAULT_SDK_MAX_ATTEMPTS);
    expect(DEFAULT_FAILURE_THRESHOLD).toBe(constructDefaults.DEFAULT_FAILURE_THRESHOLD);
    expect(DEFAULT_COOLDOWN_SECONDS).toBe(constructDefaults.DEFAULT_COOLDOWN_SECONDS);
    expect(DEFAULT_BREAKER_CACHE_TTL_MS).toBe(constructDefaults.DEFAULT_BREAKER_CACHE_TTL_MS);
  });

  test('keeps configured values', () => {
    const config = {
      agents: AGENTS,
      client: { attemptTimeoutMs: 250, requestDeadlineMs: 900 },
      breaker: { cacheTtlMs: 0 },
    };

    expect(resolveClientSettings(config)).toMatchObject({
      attemptTimeoutMs: 250,
      requestDeadlineMs: 900,
    });
    expect(resolveBreakerSettings(config).cacheTtlMs).toBe(0);
  });
});

describe('Bedrock client settings', () => {
  test('applies timeouts and attempts', async () => {
    const settings = { connectTimeoutMs: 123, firstByteTimeoutMs: 456, sdkMaxAttempts: 3 };
    const client = createBedrockClient('eu-west-1', { settings });
    try {
      const handler = client.config.requestHandler as NodeHttpHandler;
      // The handler resolves its options on first use. An aborted signal makes
      // this call reject before it opens any connection.
      const request = { protocol: 'http:', hostname: '127.0.0.1', path: '/', headers: {} };
      await handler
        .handle(request as never, { abortSignal: AbortSignal.abort() })
        .catch(() => undefined);
      expect(handler.httpHandlerConfigs()).toMatchObject({
        connectionTimeout: 123,
        requestTimeout: 456,
        throwOnRequestTimeout: true,
      });
      expect(await client.config.maxAttempts()).toBe(3);
    } finally {
      client.destroy();
    }
  });
});

describe('gateway configuration checks', () => {
  test.each<[string, Record<string, unknown>, string]>([
    ['zero failure threshold', { breaker: { failureThreshold: 0 } }, 'breaker.failureThreshold'],
    ['negative cooldown', { breaker: { cooldownSeconds: -1 } }, 'breaker.cooldownSeconds'],
    ['fractional timeout', { client: { attemptTimeoutMs: 1.5 } }, 'client.attemptTimeoutMs'],
    ['too many attempts', { client: { sdkMaxAttempts: 11 } }, 'client.sdkMaxAttempts'],
    ['unknown client field', { client: { retries: 3 } }, 'client'],
    ['empty state table', { stateTable: '' }, 'stateTable'],
    ['guardrail version', { guardrail: { id: 'gr1', version: 'v1', region: 'us-east-1' } }, 'guardrail.version'],
    ['missing guardrail region', { guardrail: { id: 'gr1', version: '1' } }, 'guardrail.region'],
  ])('rejects %s', (_case, settings, path) => {
    expect(() => validateGatewayConfig({ agents: AGENTS, ...settings }, 'test')).toThrow(
      new RegExp(`Invalid gateway configuration in test: ${path.replace('.', '\\.')}`),
    );
  });

  test('accepts every setting', () => {
    const config = {
      agents: AGENTS,
      client: {
        connectTimeoutMs: 1_000,
        firstByteTimeoutMs: 10_000,
        attemptTimeoutMs: 60_000,
        sdkMaxAttempts: 2,
        requestDeadlineMs: 115_000,
      },
      breaker: { failureThreshold: 5, cooldownSeconds: 30, cacheTtlMs: 2_000 },
      stateTable: 'gateway-state',
      guardrail: { id: 'gr1234abcd', version: 'DRAFT', region: 'us-east-1' },
    };

    expect(validateGatewayConfig(config, 'test')).toEqual(config);
  });
});
