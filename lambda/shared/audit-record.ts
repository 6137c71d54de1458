import {
  AUDIT_FULL_TEXT_ENV,
  AUDIT_STREAM_ENV,
  type AuditDecision,
  type AuditKind,
  type AuditRecord,
  type AuditTokens,
} from './audit';
import { canonicalJson, sha256Hex } from './canonical';
import type { Usage } from './contracts';

/** Every {@link AuditKind}, for validation and for the Glue table's documentation. */
export const AUDIT_KINDS = ['model-call', 'budget', 'guard', 'tool-call', 'approval'] as const;

/** Every {@link AuditDecision}. */
export const AUDIT_DECISIONS = [
  'allowed',
  'completed',
  'rejected',
  'blocked',
  'failed',
  'pending',
  'approved',
  'denied',
  'expired',
] as const;

// Fails to compile when a kind or decision is added to the types but not to the lists above.
const everyKindListed: Exclude<AuditKind, (typeof AUDIT_KINDS)[number]> extends never ? true : never = true;
const everyDecisionListed: Exclude<AuditDecision, (typeof AUDIT_DECISIONS)[number]> extends never
  ? true
  : never = true;
void everyKindListed;
void everyDecisionListed;

/** JSON type of one audit record field. `tokens` is an {@link AuditTokens} object. */
export type AuditFieldType = 'string' | 'number' | 'boolean' | 'tokens';

/** Type and constraints of one field of {@link AuditRecord}, for validation and the Glue table. */
export interface AuditFieldSpec {
  readonly type: AuditFieldType;
  readonly required: boolean;
  /** Values a string field may take. */
  readonly values?: readonly string[];
  /** Pattern a string field must match. */
  readonly pattern?: RegExp;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
// ISO 8601 in UTC as Date.prototype.toISOString writes it.
const ISO_UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const optionalString: AuditFieldSpec = { type: 'string', required: false };
const optionalHash: AuditFieldSpec = { type: 'string', required: false, pattern: SHA256_HEX };

/**
 * Every field of an audit record, in the order of the Glue table's columns.
 * The mapped type makes the compiler reject a field of AuditRecord that is
 * missing here.
 */
export const AUDIT_RECORD_FIELDS: { readonly [K in keyof Required<AuditRecord>]: AuditFieldSpec } = {
  time: { type: 'string', required: true, pattern: ISO_UTC_TIME },
  requestId: { type: 'string', required: true },
  agent: { type: 'string', required: true },
  userId: optionalString,
  sessionId: optionalString,
  kind: { type: 'string', required: true, values: AUDIT_KINDS },
  decision: { type: 'string', required: true, values: AUDIT_DECISIONS },
  reason: optionalString,
  model: optionalString,
  region: optionalString,
  tokens: { type: 'tokens', required: false },
  costUsd: { type: 'number', required: false },
  promptSha256: optionalHash,
  outputSha256: optionalHash,
  promptText: optionalString,
  outputText: optionalString,
  tool: optionalString,
  argumentsSha256: optionalHash,
  approvalId: optionalString,
  approver: optionalString,
  layer: optionalString,
  textOmitted: { type: 'boolean', required: false },
};

const TOKEN_FIELDS: Record<keyof AuditTokens, boolean> = {
  input: true,
  output: true,
  total: true,
  cacheRead: false,
  cacheWrite: false,
};

function isCount(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) >= 0;
}

function tokensProblems(value: unknown): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return ['tokens must be an object with input, output and total counts'];
  }
  const tokens = value as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(tokens)) {
    if (!Object.hasOwn(TOKEN_FIELDS, key)) {
      problems.push(`tokens.${key} is not a token field; expected one of ${Object.keys(TOKEN_FIELDS).join(', ')}`);
    }
  }
  for (const [key, required] of Object.entries(TOKEN_FIELDS)) {
    const count = tokens[key];
    if (count === undefined) {
      if (required) problems.push(`tokens.${key} is missing`);
    } else if (!isCount(count)) {
      problems.push(`tokens.${key} must be a whole number of 0 or more (got ${JSON.stringify(count)})`);
    }
  }
  return problems;
}

function fieldProblems(name: string, spec: AuditFieldSpec, value: unknown): string[] {
  switch (spec.type) {
    case 'tokens':
      return tokensProblems(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) && value >= 0
        ? []
        : [`${name} must be a finite number of 0 or more (got ${JSON.stringify(value)})`];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${name} must be true or false (got ${JSON.stringify(value)})`];
    case 'string':
      if (typeof value !== 'string' || value.length === 0) {
        return [`${name} must be a non-empty string (got ${JSON.stringify(value)})`];
      }
      if (spec.values !== undefined && !spec.values.includes(value)) {
        return [`${name} must be one of ${spec.values.join(', ')} (got ${JSON.stringify(value)})`];
      }
      if (spec.pattern !== undefined && !spec.pattern.test(value)) {
        return [`${name} does not match ${spec.pattern} (got ${JSON.stringify(value)})`];
      }
      return [];
  }
}

/** Checks that a text field is the text its hash field was computed from. */
function textHashProblems(record: Record<string, unknown>, text: string, hash: string): string[] {
  const value = record[text];
  if (typeof value !== 'string') {
    return [];
  }
  if (record[hash] === undefined) {
    return [`${text} needs ${hash}, the SHA-256 of the same text`];
  }
  return sha256Hex(value) === record[hash] ? [] : [`${hash} is not the SHA-256 of ${text}`];
}

/**
 * Returns every way `value` differs from the audit record schema, or an
 * empty list for a valid record. It checks required and unknown fields,
 * types, kinds and decisions, the time (ISO 8601 in UTC) and the hashes
 * (64 lower-case hex digits). A prompt or output text must hash to its hash.
 */
export function auditRecordProblems(value: unknown): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [`an audit record must be a JSON object (got ${value === null ? 'null' : typeof value})`];
  }
  const record = value as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(record)) {
    if (!Object.hasOwn(AUDIT_RECORD_FIELDS, key) && record[key] !== undefined) {
      problems.push(`${key} is not an audit record field`);
    }
  }
  for (const [name, spec] of Object.entries(AUDIT_RECORD_FIELDS) as Array<[string, AuditFieldSpec]>) {
    const field = record[name];
    if (field === undefined) {
      if (spec.required) problems.push(`${name} is missing`);
      continue;
    }
    problems.push(...fieldProblems(name, spec, field));
  }
  if (typeof record.time === 'string' && ISO_UTC_TIME.test(record.time) && Number.isNaN(Date.parse(record.time))) {
    problems.push(`time is not a valid date (got ${JSON.stringify(record.time)})`);
  }
  problems.push(...textHashProblems(record, 'promptText', 'promptSha256'));
  problems.push(...textHashProblems(record, 'outputText', 'outputSha256'));
  return problems;
}

/** Raises an error that lists every problem of `value`, or returns it typed as an audit record. */
export function validateAuditRecord(value: unknown): AuditRecord {
  const problems = auditRecordProblems(value);
  if (problems.length > 0) {
    throw new Error(`Invalid audit record: ${problems.join('; ')}. Fix the code that builds the record.`);
  }
  return value as AuditRecord;
}

/** Request data that {@link buildAuditRecord} turns into a record. */
export interface AuditRecordInput
  extends Omit<
    AuditRecord,
    'time' | 'promptSha256' | 'outputSha256' | 'promptText' | 'outputText' | 'argumentsSha256' | 'textOmitted'
  > {
  /**
   * Prompt of a model call: system prompt, messages and tools, as one value.
   * The record keeps the SHA-256 of its canonical JSON, and the JSON itself
   * when full text is enabled.
   */
  readonly prompt?: unknown;
  /** Output of a model call, such as the Converse output message, kept like `prompt`. */
  readonly output?: unknown;
  /** Arguments of a tool call. The record keeps only their SHA-256. */
  readonly arguments?: unknown;
  /** @default - the time of the call */
  readonly time?: Date;
}

/** Settings of {@link buildAuditRecord}. */
export interface AuditRecordOptions {
  /** Keep the canonical JSON of the prompt and output as text beside their hashes. */
  readonly fullText: boolean;
}

/**
 * Builds an audit record from request data. The prompt, output and tool
 * arguments are serialized as canonical JSON (see canonicalJson) and kept
 * as their SHA-256, so equal content gives equal hashes whatever its key
 * order. With `fullText`, `promptText` and `outputText` are that JSON, so a
 * reviewer can check each text against its hash. Fields left undefined are
 * left out of the record.
 */
export function buildAuditRecord(input: AuditRecordInput, options: AuditRecordOptions): AuditRecord {
  const { prompt, output, arguments: toolArguments, time, ...fields } = input;
  const promptJson = prompt === undefined ? undefined : canonicalJson(prompt);
  const outputJson = output === undefined ? undefined : canonicalJson(output);
  const record: AuditRecord = {
    ...fields,
    time: (time ?? new Date()).toISOString(),
    promptSha256: promptJson === undefined ? undefined : sha256Hex(promptJson),
    outputSha256: outputJson === undefined ? undefined : sha256Hex(outputJson),
    promptText: options.fullText ? promptJson : undefined,
    outputText: options.fullText ? outputJson : undefined,
    argumentsSha256: toolArguments === undefined ? undefined : sha256Hex(canonicalJson(toolArguments)),
  };
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as AuditRecord;
}

/** Returns the token counts of a model call in the audit record's shape. */
export function auditTokensOf(usage: Usage): AuditTokens {
  return {
    input: usage.inputTokens,
    output: usage.outputTokens,
    total: usage.totalTokens,
    ...(usage.cacheReadInputTokens === undefined ? {} : { cacheRead: usage.cacheReadInputTokens }),
    ...(usage.cacheWriteInputTokens === undefined ? {} : { cacheWrite: usage.cacheWriteInputTokens }),
  };
}

/** Audit settings of a process, read from its environment. */
export interface AuditSettings {
  /** Name of the Firehose stream; undefined when the deployment has no audit log. */
  readonly streamName?: string;
  /** Keep prompt and output text in records. */
  readonly fullText: boolean;
}

/**
 * Reads {@link AUDIT_STREAM_ENV} and {@link AUDIT_FULL_TEXT_ENV}. An empty
 * stream name counts as unset. Full text is off unless the variable is
 * `true`, and a value other than `true` or `false` raises an error, so a
 * typo cannot turn on full text or leave a deployment unsure which it has.
 */
export function readAuditSettings(env: NodeJS.ProcessEnv = process.env): AuditSettings {
  const streamName = env[AUDIT_STREAM_ENV] === '' ? undefined : env[AUDIT_STREAM_ENV];
  const fullText = env[AUDIT_FULL_TEXT_ENV];
  if (fullText !== undefined && fullText !== 'true' && fullText !== 'false') {
    throw new Error(
      `${AUDIT_FULL_TEXT_ENV} is ${JSON.stringify(fullText)}, but it must be true or false; ` +
        'set it to true to keep prompt and output text in audit records, or leave it unset.',
    );
  }
  return { streamName, fullText: fullText === 'true' };
}
