import { z } from 'zod';
import { GATEWAY_ENV, type GatewayRuntimeConfig } from '../shared/contracts';

const targetSchema = z.strictObject({
  region: z.string().min(1),
  modelId: z.string().min(1),
});

const responseCacheSchema = z
  .strictObject({
    ttlSeconds: z.number().int().positive(),
    scope: z.enum(['user', 'agent']),
    cacheToolTurns: z.boolean(),
  })
  .refine((cache) => !(cache.scope === 'agent' && cache.cacheToolTurns), {
    error: 'cacheToolTurns must be false with scope agent, because tool results carry one user\'s data',
    path: ['cacheToolTurns'],
  });

const agentSchema = z.strictObject({
  route: z.array(targetSchema).min(1, 'must list at least one target'),
  maxTokensPerCall: z.number().int().positive(),
  toolResultChecks: z.strictObject({ trustedTools: z.array(z.string().min(1)).optional() }).optional(),
  promptCache: z.enum(['auto', 'off', 'always']).optional(),
  expectedCallsPer5Minutes: z.number().int().min(0).optional(),
  responseCache: responseCacheSchema.optional(),
  budgetAgent: z.string().min(1).optional(),
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

const spendLimitsSchema = z.strictObject({
  tokens: z.number().int().positive().optional(),
  usd: z.number().positive().optional(),
});

const windowLimitsSchema = z.strictObject({
  daily: spendLimitsSchema.optional(),
  monthly: spendLimitsSchema.optional(),
});

const rateLimitsSchema = z.strictObject({
  requestsPerMinute: z.number().int().positive().optional(),
  tokensPerMinute: z.number().int().positive().optional(),
});

const priceSchema = z.strictObject({
  inputPerMillion: z.number().min(0),
  outputPerMillion: z.number().min(0),
  cacheReadPerMillion: z.number().min(0),
  cacheWritePerMillion: z.number().min(0),
});

const budgetSchema = z.strictObject({
  table: z.string().min(1),
  leaseSeconds: z.number().int().positive(),
  failOpen: z.boolean(),
  allowAnonymous: z.boolean(),
  stack: windowLimitsSchema.optional(),
  agents: z.record(
    z.string().min(1),
    z.strictObject({
      agent: windowLimitsSchema.optional(),
      perUser: windowLimitsSchema.optional(),
      agentRate: rateLimitsSchema.optional(),
      perUserRate: rateLimitsSchema.optional(),
    }),
  ),
  prices: z.record(z.string().min(1), priceSchema),
});

const runtimeConfigSchema = z.strictObject({
  agents: z.record(z.string().min(1), agentSchema),
  client: clientSchema.optional(),
  breaker: breakerSchema.optional(),
  stateTable: z.string().min(1).optional(),
  guardrail: guardrailSchema.optional(),
  budget: budgetSchema.optional(),
  responseCacheTable: z.string().min(1).optional(),
});

/** Lists each route target without a price as `agents.<agent>.route model <id>`, when a budget is set. */
function findUnpricedTargets(config: GatewayRuntimeConfig): string[] {
  const prices = config.budget?.prices;
  if (prices === undefined) {
    return [];
  }
  const unpriced: string[] = [];
  for (const [agent, agentConfig] of Object.entries(config.agents)) {
    for (const target of agentConfig.route) {
      if (!Object.hasOwn(prices, target.modelId)) {
        unpriced.push(`agents.${agent}.route model ${target.modelId}`);
      }
    }
  }
  return unpriced;
}

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
  const cached = Object.keys(parsed.data.agents).filter((agent) => parsed.data.agents[agent].responseCache);
  if (cached.length > 0 && parsed.data.responseCacheTable === undefined) {
    throw new Error(
      `Invalid gateway configuration in ${source}: agents ${cached.join(', ')} have a responseCache, ` +
        'but responseCacheTable is missing. Name the response cache table, or remove responseCache.',
    );
  }
  const strays = Object.entries(parsed.data.agents).filter(
    ([, agent]) => agent.budgetAgent !== undefined && !Object.hasOwn(parsed.data.agents, agent.budgetAgent),
  );
  if (strays.length > 0) {
    const [name, agent] = strays[0];
    throw new Error(
      `Invalid gateway configuration in ${source}: agents.${name}.budgetAgent is ${agent.budgetAgent}, ` +
        'which is not a configured agent. Name one of the agents, or remove budgetAgent.',
    );
  }
  const unpriced = findUnpricedTargets(parsed.data);
  if (unpriced.length > 0) {
    throw new Error(
      `Invalid gateway configuration in ${source}: budget.prices has no price for ` +
        `${unpriced.join(', ')}. Add a price for every model id on an agent's route.`,
    );
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
