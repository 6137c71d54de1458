import type { IConstruct } from 'constructs';

/**
 * Construct metadata type under which a construct records why one of its
 * grants is broader than a single resource in the stack's region. The
 * review command (`cdk-agent-stack-review`) reads these entries from the
 * cloud assembly and shows the reason next to the grant instead of flagging
 * it as unexplained.
 */
export const GRANT_REASON_METADATA_KEY = 'cdk-agent-stack:grant-reason';

/**
 * Kind of review finding a grant reason explains: `wildcard` for a `*` in an
 * action or resource, `cross-region` for a resource in another region than
 * the stack's, or in every region.
 */
export type GrantFindingKind = 'wildcard' | 'cross-region';

/** Reason a grant of a role is as broad as it is. */
export interface GrantReason {
  /** Kind of finding the reason explains. */
  readonly kind: GrantFindingKind;

  /**
   * IAM actions of the grant, `*` and `?` allowed. A statement is explained
   * only when every one of its actions matches one of these.
   */
  readonly actions: string[];

  /**
   * Resources the reason covers, in the text form the review uses (and
   * cdk-nag 3 uses in its finding ids): `Ref` written as `<Id>`, `Fn::GetAtt`
   * as `<Id.Attr>` and pseudo parameters as `<AWS::Partition>`. `*` and `?`
   * match any text.
   *
   * @default - every resource of the matching statements
   */
  readonly resources?: string[];

  /** The reason, for a security reviewer. */
  readonly reason: string;
}

/**
 * Records why grants of the role or policy at `scope`, or of any construct
 * below it, are broader than one resource in the stack's region. Nothing is
 * deployed: the entry only appears in the cloud assembly's metadata.
 */
export function recordGrantReason(scope: IConstruct, reason: GrantReason): void {
  if (reason.reason.trim() === '') {
    throw new Error(`recordGrantReason: reason is empty at ${scope.node.path}; say why the ${reason.kind} grant is needed.`);
  }
  if (reason.actions.length === 0) {
    throw new Error(`recordGrantReason: actions is empty at ${scope.node.path}; list the IAM actions of the grant.`);
  }
  scope.node.addMetadata(
    GRANT_REASON_METADATA_KEY,
    { kind: reason.kind, actions: [...reason.actions], resources: reason.resources ? [...reason.resources] : undefined, reason: reason.reason },
    { stackTrace: false },
  );
}
