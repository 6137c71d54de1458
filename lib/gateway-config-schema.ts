import { z } from 'zod';
import {
  GUARDRAIL_CONTENT_CATEGORIES,
  GUARDRAIL_FILTER_STRENGTHS,
  GUARDRAIL_ID,
  GUARDRAIL_LIMITS,
  GUARDRAIL_MANAGED_WORD_LISTS,
  GUARDRAIL_PII_TYPES,
  GUARDRAIL_TOPIC_NAME,
  GUARDRAIL_VERSION,
  resolveGuardrailSettings,
} from '../constructs/gateway-guardrail-settings';
import {
  BREAKER_SETTING_RANGES,
  CLIENT_SETTING_RANGES,
  DEFAULT_BREAKER_CACHE_TTL_MS,
  DEFAULT_COOLDOWN_SECONDS,
  DEFAULT_FAILURE_THRESHOLD,
  resolveClientSettings,
  SettingRange,
} from '../constructs/gateway-settings';

/**
 * Schema of the `gateway` and `guardrail` sections of the config. The
 * defaults come from the constructs' settings modules, which the
 * ModelGateway construct uses too.
 */

const intIn = (range: SettingRange) => z.number().int().min(range.min).max(range.max);

const clientSchema = z
  .strictObject({
    connectTimeoutMs: intIn(CLIENT_SETTING_RANGES.connectTimeoutMs).optional(),
    firstByteTimeoutMs: intIn(CLIENT_SETTING_RANGES.firstByteTimeoutMs).optional(),
    attemptTimeoutMs: intIn(CLIENT_SETTING_RANGES.attemptTimeoutMs).optional(),
    sdkMaxAttempts: intIn(CLIENT_SETTING_RANGES.sdkMaxAttempts).optional(),
    requestDeadlineMs: intIn(CLIENT_SETTING_RANGES.requestDeadlineMs).optional(),
  })
  .prefault({});

const breakerSchema = z
  .strictObject({
    failureThreshold: intIn(BREAKER_SETTING_RANGES.failureThreshold).default(DEFAULT_FAILURE_THRESHOLD),
    cooldownSeconds: intIn(BREAKER_SETTING_RANGES.cooldownSeconds).default(DEFAULT_COOLDOWN_SECONDS),
    cacheTtlMs: intIn(BREAKER_SETTING_RANGES.cacheTtlMs).default(DEFAULT_BREAKER_CACHE_TTL_MS),
  })
  .prefault({});

export const gatewaySchema = z
  .strictObject({
    memoryMiB: z.number().int().min(128).max(10_240).default(1_024),
    timeoutSeconds: z.number().int().min(1).max(900).default(120),
    /** Place the gateway in the VPC, where it needs NAT egress to reach Bedrock in other regions. */
    inVpc: z.boolean().default(false),
    /** Execution environments kept initialized; billed for every hour they are configured. */
    provisionedConcurrency: z.number().int().min(0).max(1_000).default(0),
    client: clientSchema,
    breaker: breakerSchema,
  })
  .prefault({})
  // The client defaults depend on the Lambda timeout, so they are filled in here.
  .transform((gateway) => ({ ...gateway, client: resolveClientSettings(gateway.timeoutSeconds * 1_000, gateway.client) }));

const strengthSchema = z.enum(GUARDRAIL_FILTER_STRENGTHS);
const strengthsSchema = z.strictObject({ inputStrength: strengthSchema.optional(), outputStrength: strengthSchema.optional() });
const categories = Object.keys(GUARDRAIL_CONTENT_CATEGORIES) as Array<keyof typeof GUARDRAIL_CONTENT_CATEGORIES>;
const limits = GUARDRAIL_LIMITS;

const guardrailSettingsShape = {
  contentFilters: z.strictObject(Object.fromEntries(categories.map((c) => [c, strengthsSchema.optional()])) as Record<(typeof categories)[number], z.ZodOptional<typeof strengthsSchema>>).optional(),
  promptAttack: z
    .strictObject({
      inputStrength: strengthSchema.optional(),
      outputStrength: z
        .literal('NONE', { error: 'must be NONE, because Bedrock applies the prompt-attack filter to prompts only; remove it or set "NONE"' })
        .optional(),
    })
    .optional(),
  deniedTopics: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(limits.topicNameChars).regex(GUARDRAIL_TOPIC_NAME, 'expected letters, digits, spaces and -_!?.'),
        definition: z.string().min(1).max(limits.topicDefinitionChars),
        examples: z.array(z.string().min(1).max(limits.topicExampleChars)).max(limits.topicExamples).optional(),
      }),
    )
    .max(limits.topics)
    .optional(),
  words: z.array(z.string().min(1).max(limits.wordChars)).max(limits.words).optional(),
  managedWordLists: z.array(z.enum(GUARDRAIL_MANAGED_WORD_LISTS)).optional(),
  piiEntities: z
    .array(
      z.strictObject({
        type: z.enum(GUARDRAIL_PII_TYPES),
        action: z.enum(['BLOCK', 'ANONYMIZE']),
        appliesTo: z.array(z.enum(['input', 'output'])).min(1, 'list "input", "output" or both, or remove the entity').optional(),
      }),
    )
    .optional(),
  blockedInputMessage: z.string().min(1).max(limits.messageChars).optional(),
  blockedOutputMessage: z.string().min(1).max(limits.messageChars).optional(),
};

/**
 * Either `{ "existing": { "id", "version" } }` for a guardrail that exists
 * already, or settings for the guardrail the stack creates. Both at once
 * are rejected, because the settings would be silently ignored.
 */
export const guardrailSchema = z
  .strictObject({
    existing: z
      .strictObject({
        id: z.string().regex(GUARDRAIL_ID, 'expected a guardrail id: 1 to 64 lower-case letters and digits'),
        version: z.string().regex(GUARDRAIL_VERSION, 'expected a published version number such as "1", or DRAFT'),
        /** Region the guardrail lives in; the stack's region when left out. */
        region: z.string().regex(/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/, 'expected an AWS region such as us-east-1').optional(),
      })
      .optional(),
    ...guardrailSettingsShape,
  })
  .prefault({})
  .superRefine((guardrail, context) => {
    const settings = Object.keys(guardrail).filter((key) => key !== 'existing');
    if (guardrail.existing !== undefined && settings.length > 0) {
      context.addIssue({
        code: 'custom',
        path: ['existing'],
        input: guardrail.existing,
        message: `cannot be combined with ${settings.join(', ')}; remove existing to let the stack create the guardrail, or remove the settings to use your own`,
      });
    }
  })
  .transform(({ existing, ...settings }) => (existing ? { existing } : resolveGuardrailSettings(settings)));

export type GatewayConfig = z.output<typeof gatewaySchema>;
export type GuardrailConfig = z.output<typeof guardrailSchema>;
