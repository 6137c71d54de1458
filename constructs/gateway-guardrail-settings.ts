/**
 * Settings of the Bedrock guardrail the gateway creates and their defaults.
 * The config loader and the ModelGateway construct both resolve guardrail
 * settings here, and `gateway-guardrail-checks.ts` validates them. Value sets and lengths follow the
 * `AWS::Bedrock::Guardrail` resource schema and the Bedrock API reference:
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GuardrailTopicConfig.html
 */

/** Filter strengths, from no filtering to the strictest. */
export const GUARDRAIL_FILTER_STRENGTHS = ['NONE', 'LOW', 'MEDIUM', 'HIGH'] as const;
export type GuardrailFilterStrength = (typeof GUARDRAIL_FILTER_STRENGTHS)[number];

/** Harmful-content categories, keyed by their setting name. */
export const GUARDRAIL_CONTENT_CATEGORIES = {
  hate: 'HATE',
  insults: 'INSULTS',
  sexual: 'SEXUAL',
  violence: 'VIOLENCE',
  misconduct: 'MISCONDUCT',
} as const;
export type GuardrailContentCategory = keyof typeof GUARDRAIL_CONTENT_CATEGORIES;

/** PII entity types the sensitive-information filter detects. */
export const GUARDRAIL_PII_TYPES = [
  'ADDRESS', 'AGE', 'AWS_ACCESS_KEY', 'AWS_SECRET_KEY', 'CA_HEALTH_NUMBER', 'CA_SOCIAL_INSURANCE_NUMBER',
  'CREDIT_DEBIT_CARD_CVV', 'CREDIT_DEBIT_CARD_EXPIRY', 'CREDIT_DEBIT_CARD_NUMBER', 'DRIVER_ID', 'EMAIL',
  'INTERNATIONAL_BANK_ACCOUNT_NUMBER', 'IP_ADDRESS', 'LICENSE_PLATE', 'MAC_ADDRESS', 'NAME', 'PASSWORD', 'PHONE',
  'PIN', 'SWIFT_CODE', 'UK_NATIONAL_HEALTH_SERVICE_NUMBER', 'UK_NATIONAL_INSURANCE_NUMBER',
  'UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER', 'URL', 'USERNAME', 'US_BANK_ACCOUNT_NUMBER', 'US_BANK_ROUTING_NUMBER',
  'US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER', 'US_PASSPORT_NUMBER', 'US_SOCIAL_SECURITY_NUMBER',
  'VEHICLE_IDENTIFICATION_NUMBER',
] as const;
export type GuardrailPiiType = (typeof GUARDRAIL_PII_TYPES)[number];

/** Managed word lists Bedrock provides. */
export const GUARDRAIL_MANAGED_WORD_LISTS = ['PROFANITY'] as const;
export type GuardrailManagedWordList = (typeof GUARDRAIL_MANAGED_WORD_LISTS)[number];

/** Limits of the Bedrock guardrail API. */
export const GUARDRAIL_LIMITS = {
  messageChars: 500,
  topics: 30,
  topicNameChars: 100,
  topicDefinitionChars: 200,
  topicExamples: 5,
  topicExampleChars: 100,
  words: 10_000,
  wordChars: 100,
} as const;

/** Topic names may contain letters, digits, spaces and `-_!?.`. */
export const GUARDRAIL_TOPIC_NAME = /^[0-9a-zA-Z-_ !?.]+$/;
/** Guardrail ids are lower-case letters and digits, at most 64 characters. */
export const GUARDRAIL_ID = /^[a-z0-9]{1,64}$/;
/** A published version number, or `DRAFT` for the working copy. */
export const GUARDRAIL_VERSION = /^([1-9][0-9]{0,7}|DRAFT)$/;

/** Filter strengths for prompts and for model responses. */
export interface GuardrailFilterStrengths {
  /**
   * Strength applied to prompts.
   *
   * @default 'HIGH'
   */
  readonly inputStrength?: GuardrailFilterStrength;

  /**
   * Strength applied to model responses.
   *
   * @default 'HIGH'
   */
  readonly outputStrength?: GuardrailFilterStrength;
}

/** The prompt-attack filter, which detects jailbreaks and prompt injection in prompts. */
export interface GuardrailPromptAttackFilter {
  /**
   * Strength applied to prompts.
   *
   * @default 'HIGH'
   */
  readonly inputStrength?: GuardrailFilterStrength;

  /**
   * Strength applied to model responses. Bedrock evaluates prompt attacks in
   * prompts only and rejects any other value.
   *
   * @default 'NONE'
   */
  readonly outputStrength?: 'NONE';
}

/** A topic the guardrail blocks in prompts and responses. */
export interface GuardrailDeniedTopic {
  /** Topic name: letters, digits, spaces and `-_!?.`, at most 100 characters. */
  readonly name: string;
  /** Description of the topic, at most 200 characters. */
  readonly definition: string;
  /**
   * Example prompts of the topic, at most 5 of 100 characters each.
   *
   * @default []
   */
  readonly examples?: string[];
}

/** Direction a filter applies to: prompts (`input`) or model responses (`output`). */
export type GuardrailDirection = 'input' | 'output';

/** A PII entity type and what the guardrail does when it finds one. */
export interface GuardrailPiiEntity {
  readonly type: GuardrailPiiType;
  /** `BLOCK` replaces the whole text with the blocked message; `ANONYMIZE` masks the entity. */
  readonly action: 'BLOCK' | 'ANONYMIZE';
  /**
   * Whether the filter checks prompts, model responses or both.
   *
   * @default ['input', 'output']
   */
  readonly appliesTo?: GuardrailDirection[];
}

/** Settings of a guardrail the gateway creates. */
export interface GatewayGuardrailSettings {
  /**
   * Content filter strengths per category.
   *
   * @default - HIGH on prompts and responses for every category
   */
  readonly contentFilters?: Partial<Record<GuardrailContentCategory, GuardrailFilterStrengths>>;

  /**
   * The prompt-attack filter.
   *
   * @default - HIGH on prompts
   */
  readonly promptAttack?: GuardrailPromptAttackFilter;

  /**
   * Topics blocked in prompts and responses, at most 30.
   *
   * @default []
   */
  readonly deniedTopics?: GuardrailDeniedTopic[];

  /**
   * Custom words and phrases blocked in prompts and responses.
   *
   * @default []
   */
  readonly words?: string[];

  /**
   * Managed word lists blocked in prompts and responses.
   *
   * @default []
   */
  readonly managedWordLists?: GuardrailManagedWordList[];

  /**
   * PII entity types to block or mask.
   *
   * @default []
   */
  readonly piiEntities?: GuardrailPiiEntity[];

  /**
   * Text returned in place of a blocked prompt, at most 500 characters.
   *
   * @default - a short refusal that names the usage policy
   */
  readonly blockedInputMessage?: string;

  /**
   * Text returned in place of a blocked response, at most 500 characters.
   *
   * @default - a short refusal that names the usage policy
   */
  readonly blockedOutputMessage?: string;
}

/** A guardrail that exists already, such as a company-wide one. */
export interface ExistingGuardrail {
  /** Guardrail id: lower-case letters and digits, such as `abc123def456`. */
  readonly guardrailId: string;
  /** Published version number, such as `3`. `DRAFT` is accepted with a synth warning. */
  readonly guardrailVersion: string;
  /**
   * Region the guardrail exists in. The gateway names the guardrail in calls
   * to targets in this region and applies it with ApplyGuardrail there for
   * targets in any other region.
   *
   * @default - the stack's region
   */
  readonly guardrailRegion?: string;
}

/** Guardrail settings with every default applied. */
export interface ResolvedGuardrailSettings {
  readonly contentFilters: Record<GuardrailContentCategory, Required<GuardrailFilterStrengths>>;
  readonly promptAttack: Required<GuardrailPromptAttackFilter>;
  readonly deniedTopics: Array<Required<GuardrailDeniedTopic>>;
  readonly words: string[];
  readonly managedWordLists: GuardrailManagedWordList[];
  readonly piiEntities: Array<Required<GuardrailPiiEntity>>;
  readonly blockedInputMessage: string;
  readonly blockedOutputMessage: string;
}

export const DEFAULT_BLOCKED_INPUT_MESSAGE = 'Sorry, this request cannot be processed because it breaks our usage policy.';
export const DEFAULT_BLOCKED_OUTPUT_MESSAGE = 'Sorry, the response was withheld because it breaks our usage policy.';

/** Fills in every guardrail setting left out. */
export function resolveGuardrailSettings(options: GatewayGuardrailSettings = {}): ResolvedGuardrailSettings {
  const categories = Object.keys(GUARDRAIL_CONTENT_CATEGORIES) as GuardrailContentCategory[];
  const contentFilters = Object.fromEntries(
    categories.map((category) => {
      const strengths = options.contentFilters?.[category];
      return [category, { inputStrength: strengths?.inputStrength ?? 'HIGH', outputStrength: strengths?.outputStrength ?? 'HIGH' }];
    }),
  ) as ResolvedGuardrailSettings['contentFilters'];
  return {
    contentFilters,
    promptAttack: {
      inputStrength: options.promptAttack?.inputStrength ?? 'HIGH',
      outputStrength: options.promptAttack?.outputStrength ?? 'NONE',
    },
    deniedTopics: (options.deniedTopics ?? []).map((topic) => ({ ...topic, examples: topic.examples ?? [] })),
    words: options.words ?? [],
    managedWordLists: options.managedWordLists ?? [],
    piiEntities: (options.piiEntities ?? []).map((entity) => ({ ...entity, appliesTo: entity.appliesTo ?? ['input', 'output'] })),
    blockedInputMessage: options.blockedInputMessage ?? DEFAULT_BLOCKED_INPUT_MESSAGE,
    blockedOutputMessage: options.blockedOutputMessage ?? DEFAULT_BLOCKED_OUTPUT_MESSAGE,
  };
}
