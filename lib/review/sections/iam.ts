import { compareText } from '../assembly';
import { Block, Cell, code, renderBlocks, toned } from '../blocks';
import { parseArn, STACK_REGION_TOKEN } from '../cfn';
import { describeExplanation, Finding, sortFindings } from '../findings';
import { allowsActionLike, collectRoles, describeCondition, describePrincipals, RoleGrant, RoleModel } from '../iam';
import type { ReviewModel, StackModel } from '../model';
import type { ReviewSection, SectionResult } from '../section';
import { SECTION_ORDER } from './order';

/** Action pattern whose grants the report lists as Bedrock model access. */
export const BEDROCK_INVOKE_PATTERN = 'bedrock:Invoke*';

/** Every IAM role with its trust policy, actions and resources, and the wildcard, cross-region and managed-policy grants. */
export const iamSection: ReviewSection = {
  id: 'iam',
  title: 'IAM roles',
  order: SECTION_ORDER.iam,
  build: ({ model }) => buildIam(model),
};

function buildIam(model: ReviewModel): SectionResult {
  const roles = model.stacks.flatMap((stack) => collectRoles(stack).map((role) => ({ stack, role })));
  const findings = sortFindings(roles.flatMap(({ stack, role }) => roleFindings(model, stack, role)));
  const bedrockInvokeRoles = roles
    .filter(({ role }) => role.grants.some((g) => allowsActionLike(g.statement, BEDROCK_INVOKE_PATTERN)))
    .map(({ stack, role }) => `${stack.name}/${role.resource.logicalId}`)
    .sort(compareText);

  const blocks: Block[] = [
    {
      kind: 'paragraph',
      text: `${roles.length} role(s). A wildcard or cross-region grant is explained when a cdk-nag acknowledgement or a recorded grant reason covers it, and unexplained otherwise.`,
    },
    { kind: 'heading', text: `Roles allowed ${BEDROCK_INVOKE_PATTERN}` },
    { kind: 'list', items: bedrockInvokeRoles.length > 0 ? bedrockInvokeRoles : ['none'] },
    { kind: 'heading', text: 'Findings' },
    {
      kind: 'table',
      headers: ['Kind', 'Role', 'Grant', 'Reason'],
      rows: findings.map((f) => [f.kind, `${f.stack}/${f.logicalId}`, code(f.subject), toned(describeExplanation(f), f.explanation ? 'ok' : 'bad')]),
      empty: 'No wildcard, cross-region or managed-policy grants.',
    },
    ...roles.flatMap(({ stack, role }) => roleBlocks(stack, role)),
  ];

  return {
    findings,
    data: {
      bedrockInvokeRoles,
      roles: roles.map(({ stack, role }) => roleData(stack, role)),
    },
    ...renderBlocks(blocks),
  };
}

function roleFindings(model: ReviewModel, stack: StackModel, role: RoleModel): Finding[] {
  const found = new Map<string, Finding>();
  const add = (finding: Omit<Finding, 'section' | 'stack' | 'logicalId'>) => {
    const full: Finding = { section: 'iam', stack: stack.name, logicalId: role.resource.logicalId, ...finding };
    const key = `${full.kind}\n${full.subject}`;
    // Keep an explained copy over an unexplained one of the same grant.
    if (!found.has(key) || (found.get(key)!.explanation === undefined && full.explanation !== undefined)) found.set(key, full);
  };

  for (const arn of role.managedPolicyArns) {
    if (!arn.includes(':iam::aws:policy/')) continue;
    add({
      kind: 'managed-policy',
      path: role.resource.path,
      subject: arn,
      message: 'AWS managed policy: its actions and resources are defined outside this template and can change.',
      explanation: model.acknowledgementFor([role.resource.path], [`AwsSolutions-IAM4[Policy::${arn}]`]),
    });
  }

  for (const grant of role.grants) {
    const { statement } = grant;
    if (statement.effect !== 'Allow') continue;
    const paths = [grant.source.path, role.resource.path];
    const wildcard = (subject: string, ruleId: string, message: string, resources: readonly string[]) =>
      add({
        kind: 'wildcard',
        path: grant.source.path,
        subject,
        message,
        explanation:
          model.acknowledgementFor(paths, [ruleId]) ?? model.grantReasonFor(paths, 'wildcard', statement.actions, resources),
      });

    for (const action of statement.actions.filter((a) => a.includes('*'))) {
      wildcard(`Action::${action}`, `AwsSolutions-IAM5[Action::${action}]`, `Allows every action matching ${action}.`, statement.resources);
    }
    for (const action of statement.notActions) {
      wildcard(`NotAction::${action}`, `AwsSolutions-IAM5[NotAction::${action}]`, `Allows every action except ${action}.`, statement.resources);
    }
    for (const resource of statement.resources.filter((r) => r.includes('*'))) {
      wildcard(`Resource::${resource}`, `AwsSolutions-IAM5[Resource::${resource}]`, `Grants ${statement.actions.join(', ')} on ${resource}.`, [resource]);
    }
    for (const resource of statement.notResources) {
      wildcard(`NotResource::${resource}`, `AwsSolutions-IAM5[NotResource::${resource}]`, `Grants on every resource except ${resource}.`, [resource]);
    }
    for (const resource of statement.resources) {
      const region = crossRegion(stack, resource);
      if (region === undefined) continue;
      add({
        kind: 'cross-region',
        path: grant.source.path,
        subject: resource,
        message: `Grants ${statement.actions.join(', ')} in ${region}.`,
        explanation: model.grantReasonFor(paths, 'cross-region', statement.actions, [resource]),
      });
    }
  }
  return [...found.values()];
}

/**
 * Returns the region a resource ARN names when it is not the stack's own
 * region (`every region` for a wildcard), or undefined for a resource in the
 * stack's region, a global resource and anything that is no ARN.
 */
export function crossRegion(stack: StackModel, resource: string): string | undefined {
  const arn = parseArn(resource);
  if (!arn || arn.region === '' || arn.region === STACK_REGION_TOKEN) return undefined;
  if (arn.region.includes('*') || arn.region.includes('?')) return arn.region === '*' ? 'every region' : `regions ${arn.region}`;
  if (arn.region === stack.region) return undefined;
  return stack.region === undefined ? `${arn.region} (the stack's region is chosen at deploy time)` : arn.region;
}

function roleBlocks(stack: StackModel, role: RoleModel): Block[] {
  const r = role.resource;
  const facts = [
    `Path: ${r.path}`,
    `Trusted by: ${role.trust.map(describePrincipals).join('; ') || 'nobody'}${role.trust.some((t) => t.condition) ? ` (conditions: ${role.trust.map((t) => describeCondition(t.condition)).filter(Boolean).join('; ')})` : ''}`,
    `Used by: ${role.usedBy.map((u) => `${u.logicalId} (${u.type})`).join(', ') || 'nothing in this template'}`,
    `Managed policies: ${role.managedPolicyArns.join(', ') || 'none'}`,
  ];
  if (role.customResource) facts.push('Role of a custom resource provider function');
  return [
    { kind: 'heading', text: `${stack.name}/${r.logicalId}` },
    { kind: 'list', items: facts },
    {
      kind: 'table',
      headers: ['Effect', 'Actions', 'Resources', 'Condition', 'From'],
      rows: role.grants.map(grantRow),
      empty: 'No statements in this template.',
    },
  ];
}

function grantRow(grant: RoleGrant): Cell[] {
  const s = grant.statement;
  const actions = s.notActions.length > 0 ? `NOT ${s.notActions.join(', ')}` : s.actions.join(', ');
  const resources = s.notResources.length > 0 ? `NOT ${s.notResources.join(', ')}` : s.resources.join(', ');
  return [s.effect, code(actions), code(resources), describeCondition(s.condition), `${grant.source.kind} ${grant.source.logicalId}`];
}

function roleData(stack: StackModel, role: RoleModel): unknown {
  return {
    stack: stack.name,
    logicalId: role.resource.logicalId,
    path: role.resource.path,
    customResource: role.customResource,
    usedBy: role.usedBy.map((u) => u.logicalId),
    trust: role.trust.map((t) => ({ effect: t.effect, principals: t.principals, actions: t.actions, condition: t.condition ?? null })),
    managedPolicyArns: role.managedPolicyArns,
    statements: role.grants.map((g) => ({
      source: g.source.logicalId,
      sourceKind: g.source.kind,
      sid: g.statement.sid ?? null,
      effect: g.statement.effect,
      actions: g.statement.actions,
      notActions: g.statement.notActions,
      resources: g.statement.resources,
      notResources: g.statement.notResources,
      condition: g.statement.condition ?? null,
    })),
  };
}
