import type { FindingKind } from './findings';
import type { Explanation, ReviewModel } from './model';

/**
 * Prefix of acknowledgement ids that explain a review finding of one kind on
 * a construct and everything below it, for findings that no cdk-nag rule
 * covers: `Validations.of(construct).acknowledge({ id:
 * 'cdk-agent-stack-review:public', reason })`.
 */
export const REVIEW_ACKNOWLEDGEMENT_PREFIX = 'cdk-agent-stack-review:';

/**
 * Returns the acknowledgement that explains a finding of `kind` on one of
 * `paths`: one of the given cdk-nag rule ids, or the review's own id for the
 * kind.
 */
export function acknowledgedFinding(model: ReviewModel, paths: readonly string[], kind: FindingKind, nagRuleIds: readonly string[] = []): Explanation | undefined {
  return model.acknowledgementFor(paths, [...nagRuleIds, `${REVIEW_ACKNOWLEDGEMENT_PREFIX}${kind}`]);
}
