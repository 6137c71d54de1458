import { z } from 'zod';
import { GATEWAY_ENV, type GatewayRuntimeConfig } from '../shared/contracts';

const targetSchema = z.strictObject({
  region: z.string().min(1),
  modelId: z.string().min(1),
});

const agentSchema = z.strictObject({
  route: z.array(targetSchema).min(1, 'must list at least one target'),
  maxTokensPerCall: z.number().int().positive(),
});

const positiveMs = z.number().int().positive();

const clientSchema = z.strictObject({
  connectTimeoutMs: positiveMs.optional(),
  firstByteTimeoutMs: positiveMs.optional(),
  attemptTimeoutMs: positiveMs.optional(),
  sdkMaxAttempts: z.number().int().min(1).max(10).optional(),
  requestDeadlineMs: positiveMs.optional(),
});

const breakerSchema = z.strictObject({
  failureThreshold: z.number().int().min(1).optional(),
  cooldownSeconds: z.number().positive().optional(),
  // 0 turns the cache off, so every request reads the state table.
  cacheTtlMs: z.number().int().min(0).optional(),
});

// Version pattern of GuardrailConfiguration in the Bedrock Runtime API reference:
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_GuardrailConfiguration.html
const guardrailSchema = z.strictObject({
  id: z.string().min(1),
  version: z.string().regex(/^(([1-9][0-9]{0,7})|(DRAFT))$/, 'must be DRAFT or a version number'),
  region: z.string().min(1),
});

const runtimeConfigSchema = z.strictObject({
  agents: z.record(z.string().min(1), agentSchema),
  client: clientSchema.optional(),
  breaker: breakerSchema.optional(),
  stateTable: z.string().min(1).optional(),
  guardrail: guardrailSchema.optional(),
});

/**
 * Validates a gateway configuration and throws an Error naming the first
 * invalid path. The ModelGateway construct writes the configuration, so a
 * failure here means the construct and the runtime disagree.
 */
export function validateGatewayConfig(value: unknown, source: string): GatewayRuntimeConfig {
  const parsed = runtimeConfigSchema.safeParse(value);
  if (!parsed.success) {
    const details = parsed.error.issues.slice(0, 3).map((issue) => {
      const path = issue.path.map(String).join('.') || '(root)';
      return `${path}: ${issue.message}`;
    });
    throw new Error(`Invalid gateway configuration in ${source}: ${details.join('; ')}.`);
  }
  return parsed.data;
}

/** Reads and validates the configuration from the `AGENT_GATEWAY_CONFIG` environment variable. */
export function loadGatewayConfigFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): GatewayRuntimeConfig {
  const name = GATEWAY_ENV.config;
  const json = env[name];
  if (json === undefined || json.trim() === '') {
    throw new Error(
      `Environment variable ${name} is not set. The ModelGateway construct sets it to the ` +
        'JSON gateway configuration; set it the same way when running the handler elsewhere.',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    const detail = (error as Error).message;
    throw new Error(`Environment variable ${name} is not valid JSON: ${detail}.`, { cause: error });
  }
  return validateGatewayConfig(value, name);
}
