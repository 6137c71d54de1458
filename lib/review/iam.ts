import { compareText } from './assembly';
import { asList, CfnValue, flatten, flattenLikeCdkNag, referencedId, referencedIds } from './cfn';
import { globMatches, globsOverlap } from './glob';
import type { ResourceModel, StackModel } from './model';

/** One principal of a statement, such as `Service lambda.amazonaws.com` or `AWS *`. */
export interface Principal {
  readonly type: string;
  readonly value: string;
}

/** One policy statement, with resources and principals written as flattened text. */
export interface Statement {
  readonly sid?: string;
  readonly effect: 'Allow' | 'Deny';
  readonly actions: readonly string[];
  readonly notActions: readonly string[];
  readonly resources: readonly string[];
  readonly notResources: readonly string[];
  readonly principals: readonly Principal[];
  readonly condition?: Record<string, unknown>;
  /** Logical ids the resources refer to. */
  readonly resourceIds: readonly string[];
}

/** Parses the statements of a policy document. */
export function parseStatements(document: CfnValue): Statement[] {
  const statements = asList((document as { Statement?: unknown } | undefined)?.Statement as Record<string, unknown>[] | undefined);
  return statements.map((s) => ({
    sid: typeof s.Sid === 'string' ? s.Sid : undefined,
    effect: s.Effect === 'Deny' ? 'Deny' : 'Allow',
    actions: asList(s.Action as CfnValue[]).map(flattenLikeCdkNag),
    notActions: asList(s.NotAction as CfnValue[]).map(flattenLikeCdkNag),
    resources: asList(s.Resource as CfnValue[]).map(flattenLikeCdkNag),
    notResources: asList(s.NotResource as CfnValue[]).map(flattenLikeCdkNag),
    principals: [...parsePrincipals(s.Principal), ...parsePrincipals(s.NotPrincipal).map((p) => ({ type: `Not${p.type}`, value: p.value }))],
    condition: (s.Condition as Record<string, unknown> | undefined) ?? undefined,
    resourceIds: [...referencedIds(s.Resource)].sort(compareText),
  }));
}

function parsePrincipals(principal: unknown): Principal[] {
  if (principal === undefined) return [];
  if (typeof principal === 'string') return [{ type: 'AWS', value: principal }];
  return Object.entries(principal as Record<string, CfnValue>)
    .flatMap(([type, values]) => asList(values).map((value) => ({ type, value: flatten(value) })))
    .sort((a, b) => compareText(a.type, b.type) || compareText(a.value, b.value));
}

/** Returns whether an Allow statement grants some action that matches `pattern`. */
export function allowsActionLike(statement: Statement, pattern: string): boolean {
  if (statement.effect !== 'Allow') return false;
  if (statement.notActions.length > 0) {
    // NotAction allows every action it does not name. An excluded pattern
    // that matches `pattern` itself, `*` included, excludes all it matches.
    return !statement.notActions.some((excluded) => globMatches(excluded, pattern));
  }
  return statement.actions.some((action) => globsOverlap(action, pattern));
}

/** Origin of a statement of a role. */
export interface GrantSource {
  readonly kind: 'inline' | 'policy' | 'managed-policy';
  /** The resource that contains the statement: the role for inline policies, and the policy otherwise. */
  readonly logicalId: string;
  readonly path: string;
  readonly policyName?: string;
}

/** One statement of a role's permissions. */
export interface RoleGrant {
  readonly source: GrantSource;
  readonly statement: Statement;
}

/** An IAM role of a template with everything the template grants it. */
export interface RoleModel {
  readonly resource: ResourceModel;
  readonly trust: readonly Statement[];
  /** Managed policies attached by ARN, such as AWS managed policies, flattened. */
  readonly managedPolicyArns: readonly string[];
  readonly grants: readonly RoleGrant[];
  /** Resources whose properties refer to the role, other than policies: who uses it. */
  readonly usedBy: readonly ResourceModel[];
  /** Whether the role belongs to a CloudFormation custom resource's function, such as the CDK's own providers. */
  readonly customResource: boolean;
}

// Construct ids of the singleton functions that aws-cdk-lib adds for its own custom resources.
const CDK_PROVIDER_PATH = /(CustomResourceProvider|AWS679f53fac002430cb0da5b7982bd2287|LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a|BucketNotificationsHandler050a0587b7544547bf325f094a3db834|\/framework-on(Event|IsComplete|Timeout))/;

/** Collects every role of a stack, sorted by logical id. */
export function collectRoles(stack: StackModel): RoleModel[] {
  const policies = stack.ofType('AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy');
  const customResourceFunctions = customResourceFunctionIds(stack);
  return stack.ofType('AWS::IAM::Role').map((role) => {
    const props = role.properties;
    const inline: RoleGrant[] = asList(props.Policies as Array<{ PolicyName?: CfnValue; PolicyDocument?: CfnValue }>).flatMap((policy) =>
      parseStatements(policy.PolicyDocument).map((statement) => ({
        source: { kind: 'inline' as const, logicalId: role.logicalId, path: role.path, policyName: flatten(policy.PolicyName) },
        statement,
      })),
    );
    const managedArns: string[] = [];
    const managedInTemplate = new Set<string>();
    for (const arn of asList(props.ManagedPolicyArns as CfnValue[])) {
      const id = referencedId(arn);
      const target = stack.resource(id);
      if (target?.type === 'AWS::IAM::ManagedPolicy') managedInTemplate.add(target.logicalId);
      else managedArns.push(flattenLikeCdkNag(arn));
    }
    const attached: RoleGrant[] = policies
      .filter((p) => managedInTemplate.has(p.logicalId) || asList(p.properties.Roles as CfnValue[]).some((r) => referencedId(r) === role.logicalId))
      .flatMap((policy) =>
        parseStatements(policy.properties.PolicyDocument).map((statement) => ({
          source: {
            kind: policy.type === 'AWS::IAM::Policy' ? ('policy' as const) : ('managed-policy' as const),
            logicalId: policy.logicalId,
            path: policy.path,
            policyName: policy.properties.PolicyName === undefined ? undefined : flatten(policy.properties.PolicyName),
          },
          statement,
        })),
      );
    const usedBy = stack.resources.filter(
      (r) => r.logicalId !== role.logicalId && !r.type.startsWith('AWS::IAM::') && referencedIds(r.properties).has(role.logicalId),
    );
    const customResource =
      CDK_PROVIDER_PATH.test(role.path) || usedBy.some((r) => customResourceFunctions.has(r.logicalId) || CDK_PROVIDER_PATH.test(r.path));
    return {
      resource: role,
      trust: parseStatements(props.AssumeRolePolicyDocument),
      managedPolicyArns: managedArns.sort(compareText),
      grants: [...inline, ...attached],
      usedBy,
      customResource,
    };
  });
}

/** Returns the logical ids of functions that a custom resource names as its service token. */
function customResourceFunctionIds(stack: StackModel): Set<string> {
  const ids = new Set<string>();
  for (const resource of stack.resources) {
    if (!resource.type.startsWith('Custom::') && resource.type !== 'AWS::CloudFormation::CustomResource') continue;
    const id = referencedId(resource.properties.ServiceToken);
    if (id) ids.add(id);
  }
  return ids;
}

/** Describes the principals of a trust policy or resource policy statement. */
export function describePrincipals(statement: Statement): string {
  return statement.principals.map((p) => `${p.type} ${p.value}`).join(', ');
}

/** Writes a condition block compactly, or returns an empty string. */
export function describeCondition(condition: Record<string, unknown> | undefined): string {
  if (!condition) return '';
  return Object.entries(condition)
    .sort(([a], [b]) => compareText(a, b))
    .map(([operator, clauses]) =>
      Object.entries(clauses as Record<string, CfnValue>)
        .sort(([a], [b]) => compareText(a, b))
        .map(([key, value]) => `${operator} ${key} = ${asList(value).map(flatten).join(' | ')}`)
        .join('; '),
    )
    .join('; ');
}
