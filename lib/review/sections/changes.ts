import type * as CloudFormationDiff from '@aws-cdk/cloudformation-diff';
import { compareText } from '../assembly';
import { Block, code, renderBlocks } from '../blocks';
import type { ReviewModel, StackModel } from '../model';
import type { ReviewSection, SectionResult } from '../section';
import { SECTION_ORDER } from './order';

/**
 * With `--against`, the change from the previous assembly: IAM changes
 * first, then security group changes, then every other resource, each
 * stack matched by name.
 */
export const changesSection: ReviewSection = {
  id: 'changes',
  title: 'Changes',
  order: SECTION_ORDER.changes,
  build: (input) => (input.previous ? buildChanges(input.model, input.previous) : undefined),
};

type Diff = ReturnType<typeof CloudFormationDiff.fullDiff>;

interface StackChanges {
  readonly stack: string;
  readonly status: 'added' | 'removed' | 'changed' | 'unchanged';
  readonly iam: Array<{ change: '+' | '-'; kind: 'statement' | 'managed policy'; resource: string; effect: string; action: string; principal: string; condition: string }>;
  readonly securityGroups: Array<{ change: '+' | '-'; direction: 'ingress' | 'egress'; group: string; protocol: string; peer: string }>;
  readonly resources: Array<{ logicalId: string; type: string; impact: string; properties: string[] }>;
  readonly other: Array<{ section: string; name: string; change: string }>;
}

function buildChanges(model: ReviewModel, previous: ReviewModel): SectionResult {
  // Loaded here so that the package and a report without --against never load it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const diffModule = require('@aws-cdk/cloudformation-diff') as typeof CloudFormationDiff;
  const names = [...new Set([...model.stacks.map((s) => s.name), ...previous.stacks.map((s) => s.name)])].sort(compareText);
  const stacks = names.map((name) => stackChanges(diffModule, name, previous.stack(name), model.stack(name)));
  const changed = stacks.filter((s) => s.status !== 'unchanged');

  const blocks: Block[] = [
    {
      kind: 'paragraph',
      text: `Compared with the assembly in ${previous.directory}: ${changed.length} of ${stacks.length} stack(s) changed. IAM and security group changes come first.`,
    },
  ];
  for (const s of changed) {
    blocks.push({ kind: 'heading', text: `${s.stack} (${s.status})` });
    blocks.push({
      kind: 'table',
      headers: ['', 'IAM', 'Resource', 'Effect', 'Action', 'Principal', 'Condition'],
      rows: s.iam.map((c) => [c.change, c.kind, code(c.resource), c.effect, code(c.action), code(c.principal), c.condition]),
      empty: 'No IAM changes.',
    });
    blocks.push({
      kind: 'table',
      headers: ['', 'Direction', 'Security group', 'Protocol', 'Peer'],
      rows: s.securityGroups.map((c) => [c.change, c.direction, code(c.group), c.protocol, code(c.peer)]),
      empty: 'No security group changes.',
    });
    blocks.push({
      kind: 'table',
      headers: ['Resource', 'Type', 'Impact', 'Changed properties'],
      rows: s.resources.map((r) => [r.logicalId, r.type, r.impact, r.properties.join(', ')]),
      empty: 'No resource changes.',
    });
    if (s.other.length > 0) {
      blocks.push({ kind: 'table', headers: ['Template section', 'Name', 'Change'], rows: s.other.map((o) => [o.section, o.name, o.change]), empty: '' });
    }
  }
  return { findings: [], data: { against: previous.directory, stacks }, ...renderBlocks(blocks) };
}

function stackChanges(diffModule: typeof CloudFormationDiff, name: string, before: StackModel | undefined, after: StackModel | undefined): StackChanges {
  const diff = diffModule.fullDiff(before?.template ?? {}, after?.template ?? {});
  let status: StackChanges['status'] = diff.isEmpty ? 'unchanged' : 'changed';
  if (!before) status = 'added';
  else if (!after) status = 'removed';
  return { stack: name, status, iam: iamChanges(diff), securityGroups: securityGroupChanges(diff), resources: resourceChanges(diff), other: otherChanges(diff) };
}

function iamChanges(diff: Diff): StackChanges['iam'] {
  const rows: StackChanges['iam'] = [];
  const statements = diff.iamChanges.statements;
  for (const [change, list] of [
    ['+', statements.additions],
    ['-', statements.removals],
  ] as const) {
    for (const statement of list) {
      const r = statement.render();
      rows.push({ change, kind: 'statement', resource: r.resource, effect: r.effect, action: r.action, principal: r.principal, condition: r.condition });
    }
  }
  const managed = diff.iamChanges.managedPolicies;
  for (const [change, list] of [
    ['+', managed.additions],
    ['-', managed.removals],
  ] as const) {
    for (const attachment of list) {
      rows.push({ change, kind: 'managed policy', resource: attachment.identityArn, effect: 'Attach', action: attachment.managedPolicyArn, principal: '', condition: '' });
    }
  }
  return rows.sort((a, b) => compareText(a.resource, b.resource) || compareText(a.change, b.change) || compareText(a.action, b.action));
}

function securityGroupChanges(diff: Diff): StackChanges['securityGroups'] {
  const rows: StackChanges['securityGroups'] = [];
  const groups = diff.securityGroupChanges;
  for (const [direction, collection] of [
    ['ingress', groups.ingress],
    ['egress', groups.egress],
  ] as const) {
    for (const [change, list] of [
      ['+', collection.additions],
      ['-', collection.removals],
    ] as const) {
      for (const rule of list) {
        rows.push({ change, direction, group: rule.groupId, protocol: rule.describeProtocol(), peer: rule.describePeer() });
      }
    }
  }
  return rows.sort((a, b) => compareText(a.group, b.group) || compareText(a.direction, b.direction) || compareText(a.change, b.change) || compareText(a.peer, b.peer));
}

function resourceChanges(diff: Diff): StackChanges['resources'] {
  const rows: StackChanges['resources'] = [];
  diff.resources.forEachDifference((logicalId, change) => {
    if (!change.isDifferent) return;
    rows.push({
      logicalId,
      type: change.resourceType ?? `${change.oldResourceType} to ${change.newResourceType}`,
      impact: change.changeImpact,
      properties: Object.keys(change.propertyUpdates).sort(compareText),
    });
  });
  // IAM and network resources first, in the order the reviewer reads them.
  const rank = (type: string) => (type.startsWith('AWS::IAM::') ? 0 : type.startsWith('AWS::EC2::SecurityGroup') || type.startsWith('AWS::ElasticLoadBalancingV2::') ? 1 : 2);
  return rows.sort((a, b) => rank(a.type) - rank(b.type) || compareText(a.logicalId, b.logicalId));
}

function otherChanges(diff: Diff): StackChanges['other'] {
  const rows: StackChanges['other'] = [];
  const collect = (section: string, collection: Diff['outputs'] | Diff['parameters']) =>
    collection.forEachDifference((name, change) => {
      if (!change.isDifferent) return;
      rows.push({ section, name, change: change.isAddition ? 'added' : change.isRemoval ? 'removed' : 'changed' });
    });
  collect('Parameters', diff.parameters);
  collect('Outputs', diff.outputs);
  return rows.sort((a, b) => compareText(a.section, b.section) || compareText(a.name, b.name));
}
