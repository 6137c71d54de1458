/**
 * Helpers for reading CloudFormation values in a synthesized template:
 * intrinsic functions written as text, references to logical ids, and ARNs.
 */

/** Any JSON value of a template. */
export type CfnValue = unknown;

/** Returns a value that may be one item or a list as a list. */
export function asList<T>(value: T | T[] | undefined | null): T[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Writes a value as text: `{ Ref: X }` becomes `<X>`, `Fn::GetAtt` becomes
 * `<X.Attr>`, `Fn::Join` joins its parts, and `${X}` in `Fn::Sub` strings
 * becomes `<X>`. Anything else is written as JSON.
 */
export function flatten(value: CfnValue): string {
  return flattenWith(value, (text) => text.replace(/\$\{([^}]*)\}/g, '<$1>'));
}

/**
 * Writes a value exactly as cdk-nag 3 writes the details of its findings,
 * so that a finding can be matched with an acknowledgement: like
 * {@link flatten}, except that every `${` and every `}` of a string is
 * replaced, as cdk-nag does.
 */
export function flattenLikeCdkNag(value: CfnValue): string {
  return flattenWith(value, (text) => text.replace(/\$\{/g, '<').replace(/\}/g, '>'));
}

function flattenWith(value: CfnValue, text: (value: string) => string): string {
  const visit = (v: CfnValue): string => {
    if (v === undefined) return '';
    if (typeof v === 'string') return text(v);
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (isObject(v)) {
      if (Array.isArray(v['Fn::Join'])) {
        const [delimiter, items] = v['Fn::Join'] as [string, CfnValue[]];
        return asList(items).map(visit).join(delimiter);
      }
      if (v['Fn::Sub'] !== undefined) {
        const sub = v['Fn::Sub'];
        return visit(Array.isArray(sub) ? sub[0] : sub);
      }
      if (Array.isArray(v['Fn::GetAtt'])) {
        const [resource, attribute] = v['Fn::GetAtt'] as [CfnValue, CfnValue];
        return `<${visit(resource)}.${visit(attribute)}>`;
      }
      if (v['Fn::ImportValue'] !== undefined) return visit(v['Fn::ImportValue']);
      if (v.Ref !== undefined) return `<${visit(v.Ref)}>`;
    }
    return JSON.stringify(v);
  };
  return visit(value);
}

/** Returns whether a value is a plain string, with no intrinsic function. */
export function isLiteral(value: CfnValue): value is string {
  return typeof value === 'string' && !value.includes('${');
}

/**
 * Returns the logical id a value refers to with `Ref` or `Fn::GetAtt`, or
 * undefined for anything else.
 */
export function referencedId(value: CfnValue): string | undefined {
  if (!isObject(value)) return undefined;
  if (typeof value.Ref === 'string') return value.Ref;
  const getAtt = value['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  if (typeof getAtt === 'string') return getAtt.split('.')[0];
  return undefined;
}

/**
 * Collects every logical id that a value refers to anywhere inside it,
 * through `Ref`, `Fn::GetAtt` and `${X}` or `${X.Attr}` in `Fn::Sub`.
 * Pseudo parameters such as `AWS::Region` are left out.
 */
export function referencedIds(value: CfnValue, into: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) {
    for (const item of value) referencedIds(item, into);
    return into;
  }
  if (!isObject(value)) return into;
  const direct = referencedId(value);
  if (direct !== undefined && !direct.startsWith('AWS::')) into.add(direct);
  const sub = value['Fn::Sub'];
  if (sub !== undefined) {
    const text = Array.isArray(sub) ? sub[0] : sub;
    if (typeof text === 'string') {
      for (const match of text.matchAll(/\$\{([^}!.]+)(?:\.[^}]*)?\}/g)) {
        if (!match[1].startsWith('AWS::')) into.add(match[1]);
      }
    }
  }
  for (const item of Object.values(value)) referencedIds(item, into);
  return into;
}

/** The parts of an ARN, as text in the flattened form of {@link flatten}. */
export interface ArnParts {
  readonly partition: string;
  readonly service: string;
  readonly region: string;
  readonly account: string;
  readonly resource: string;
}

/** Splits a flattened ARN into its parts, or returns undefined for text that is no ARN. */
export function parseArn(arn: string): ArnParts | undefined {
  const parts = splitOutsideReferences(arn, ':');
  if (parts.length < 6 || parts[0] !== 'arn') return undefined;
  return { partition: parts[1], service: parts[2], region: parts[3], account: parts[4], resource: parts.slice(5).join(':') };
}

/** Splits text at `separator`, except inside `<...>` references such as `<AWS::Partition>`. */
function splitOutsideReferences(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '<') depth += 1;
    if (char === '>' && depth > 0) depth -= 1;
    if (char === separator && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

/** Pseudo parameter a flattened region can take, which stands for the stack's own region. */
export const STACK_REGION_TOKEN = '<AWS::Region>';
