import { compareText } from './assembly';
import type { Explanation } from './model';

/**
 * Kinds of finding. `--fail-on` accepts only the kinds in
 * {@link GATE_KINDS}, so the others are shown for the reviewer and cannot
 * fail a run.
 */
export type FindingKind =
  | 'wildcard'
  | 'cross-region'
  | 'public'
  | 'unencrypted'
  | 'secret'
  | 'managed-policy'
  | 'log-retention'
  | 'removal'
  | 'internet-egress';

/** Kinds a pipeline can gate on with `--fail-on`. */
export const GATE_KINDS: readonly FindingKind[] = ['wildcard', 'cross-region', 'public', 'unencrypted', 'secret'];

/** One thing a reviewer should look at, with the recorded reason when there is one. */
export interface Finding {
  readonly kind: FindingKind;
  /** Id of the section that reported it. */
  readonly section: string;
  readonly stack: string;
  readonly logicalId: string;
  readonly path: string;
  /** Subject of the finding, such as an action, an ARN or a listener. */
  readonly subject: string;
  readonly message: string;
  /** The recorded reason; undefined when the finding is unexplained. */
  readonly explanation?: Explanation;
}

/** Sorts findings by kind, stack, logical id, subject and message. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      compareText(a.kind, b.kind) ||
      compareText(a.stack, b.stack) ||
      compareText(a.logicalId, b.logicalId) ||
      compareText(a.subject, b.subject) ||
      compareText(a.message, b.message),
  );
}

/** Returns the unexplained findings of the given kinds. */
export function unexplained(findings: readonly Finding[], kinds: readonly FindingKind[]): Finding[] {
  return findings.filter((f) => kinds.includes(f.kind) && f.explanation === undefined);
}

/** Describes how a finding is explained, or `unexplained`. */
export function describeExplanation(finding: Finding): string {
  const e = finding.explanation;
  if (!e) return 'unexplained';
  const origin = e.source === 'acknowledgement' ? `acknowledged ${e.ruleId} at ${e.path}` : `grant reason at ${e.path}`;
  return `${e.reason} (${origin})`;
}
