import { compareText } from './assembly';
import { escapeHtml, escapeMarkdown } from './blocks';
import { asList, CfnValue, isLiteral } from './cfn';
import type { ResourceModel, ReviewModel } from './model';

/**
 * Plaintext values in environment variables that look like secrets. The
 * value is kept only so that the report can scrub it from every output; it
 * is never written.
 */
export interface SecretInEnvironment {
  readonly stack: string;
  readonly resource: ResourceModel;
  readonly variable: string;
  /** Pattern that matched, such as `aws-access-key-id`, or `name` for a variable name that suggests a secret. */
  readonly kind: string;
  readonly value: string;
}

/** Value patterns of well-known credential formats. */
const VALUE_PATTERNS: ReadonlyArray<[string, RegExp]> = [
  ['aws-access-key-id', /\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b/],
  ['private-key', /-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/],
  ['jwt', /\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+/],
  ['github-token', /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})/],
  ['slack-token', /\bxox[abeprcd]-[A-Za-z0-9-]{10,}/],
  ['stripe-secret-key', /\b[sr]k_live_[A-Za-z0-9]{20,}/],
  ['google-api-key', /\bAIza[0-9A-Za-z_-]{35}\b/],
  ['bearer-token', /\bBearer [A-Za-z0-9._~+/-]{20,}=*/i],
  ['password-in-url', /[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i],
  ['password-assignment', /\b(?:password|passwd|pwd|secret|api[_-]?key|token)\s*[=:]\s*[^\s&;,'"}]{4,}/i],
];

/** Variable names that suggest a secret value. */
const SECRET_NAME = /(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|client[_-]?secret|auth[_-]?key)/i;
/** Names of variables that hold a reference to a secret or a setting about it, not the secret itself. */
const REFERENCE_NAME = /(_|^)(ARN|NAME|ID|URL|URI|TABLE|QUEUE|TOPIC|BUCKET|PARAM(ETER)?|PATH|REGION|ENDPOINT|HEADER|CLAIM|TTL|SECONDS|MS|ENABLED|ISSUER|AUDIENCE|LIMIT|COUNT|MAX|MIN|TYPE|MODE|FILE)$/i;
/** Values that are no secret, whatever their variable's name. */
const HARMLESS_VALUE = /^(true|false|yes|no|on|off|none|null|undefined|\d+(\.\d+)?|arn:.*|\{\{resolve:.*\}\})$/i;

/**
 * Finds literal environment values of Lambda functions and ECS task
 * definitions that look like secrets: a known credential format anywhere in
 * the literal text of a value, or a literal value of a variable whose name
 * suggests a secret.
 */
export function findSecrets(model: ReviewModel): SecretInEnvironment[] {
  const found: SecretInEnvironment[] = [];
  for (const stack of model.stacks) {
    for (const resource of stack.ofType('AWS::Lambda::Function', 'AWS::ECS::TaskDefinition')) {
      for (const [variable, value] of environmentOf(resource)) {
        const kind = secretKind(variable, value);
        if (kind) found.push({ stack: stack.name, resource, variable, kind: kind.kind, value: kind.text });
      }
    }
  }
  return found.sort((a, b) => compareText(a.stack, b.stack) || compareText(a.resource.logicalId, b.resource.logicalId) || compareText(a.variable, b.variable));
}

function environmentOf(resource: ResourceModel): Array<[string, CfnValue]> {
  if (resource.type === 'AWS::Lambda::Function') {
    const variables = (resource.properties.Environment as { Variables?: Record<string, CfnValue> } | undefined)?.Variables ?? {};
    return Object.entries(variables);
  }
  return asList(resource.properties.ContainerDefinitions as Array<{ Name?: string; Environment?: Array<{ Name?: string; Value?: CfnValue }> }>).flatMap((container) =>
    asList(container.Environment).map((entry): [string, CfnValue] => [`${container.Name ?? 'container'}/${entry.Name ?? ''}`, entry.Value]),
  );
}

/** Returns the literal strings of a value: the value itself, or the string parts of an `Fn::Join`. */
function literalParts(value: CfnValue): string[] {
  if (typeof value === 'string') return [value];
  const join = (value as { 'Fn::Join'?: [string, CfnValue[]] } | undefined)?.['Fn::Join'];
  if (Array.isArray(join)) return asList(join[1]).flatMap(literalParts);
  return [];
}

function secretKind(variable: string, value: CfnValue): { kind: string; text: string } | undefined {
  for (const part of literalParts(value)) {
    for (const [kind, pattern] of VALUE_PATTERNS) {
      const match = pattern.exec(part);
      if (match) return { kind, text: match[0] };
    }
  }
  const name = variable.split('/').pop() ?? variable;
  if (isLiteral(value) && value.trim() !== '' && SECRET_NAME.test(name) && !REFERENCE_NAME.test(name) && !HARMLESS_VALUE.test(value.trim())) {
    return { kind: 'name', text: value };
  }
  return undefined;
}

/** Marker that replaces a secret value in every output. */
export const REDACTED = '[REDACTED]';

/** Replaces every occurrence of the given secret values in `text`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let result = text;
  // Longer values first, so that a value containing a shorter one is replaced whole.
  for (const secret of [...new Set(secrets)].sort((a, b) => b.length - a.length)) {
    if (secret.length === 0) continue;
    result = result.split(secret).join(REDACTED);
    // The same value as it appears escaped in JSON, HTML or Markdown output.
    for (const variant of [JSON.stringify(secret).slice(1, -1), escapeHtml(secret), escapeMarkdown(secret)]) {
      if (variant !== secret) result = result.split(variant).join(REDACTED);
    }
  }
  return result;
}
