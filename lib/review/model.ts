import { GRANT_REASON_METADATA_KEY, GrantFindingKind } from '../../constructs/grant-reasons';
import { Assembly, AssemblyStack, compareText, constructPathOf, MetadataMap, Template } from './assembly';
import { asList } from './cfn';
import { globMatches } from './glob';

/** Metadata type of `Validations.of(x).acknowledge()` in aws-cdk-lib. */
const ACKNOWLEDGED_RULES_METADATA_KEY = 'aws:cdk:acknowledged-rules';
const WARNING_METADATA_KEY = 'aws:cdk:warning';

/** One resource of a stack's template. */
export interface ResourceModel {
  /** Name of the stack the resource belongs to. */
  readonly stackName: string;
  readonly logicalId: string;
  readonly type: string;
  readonly properties: Record<string, unknown>;
  /**
   * Construct path from the `aws:cdk:path` template metadata or else the
   * assembly's logical id metadata, or the stack name and the logical id
   * when neither has it.
   */
  readonly path: string;
  readonly deletionPolicy?: string;
  readonly updateReplacePolicy?: string;
  readonly metadata: Record<string, unknown>;
}

/** One stack, with its resources sorted by logical id. */
export interface StackModel {
  readonly name: string;
  readonly region?: string;
  readonly account?: string;
  readonly templateFile: string;
  readonly templatePath: string;
  readonly template: Template;
  readonly parent?: string;
  readonly resources: readonly ResourceModel[];
  resource(logicalId: string | undefined): ResourceModel | undefined;
  ofType(...types: string[]): ResourceModel[];
}

/** An acknowledgement of a validation rule, such as a cdk-nag finding, with its reason. */
export interface Acknowledgement {
  /** Construct path the acknowledgement was made on; it covers that construct and everything below it. */
  readonly path: string;
  /** Rule id without aws-cdk-lib's `Annotation::` prefix, such as `AwsSolutions-IAM5[Resource::*]`. */
  readonly ruleId: string;
  readonly reason: string;
}

/** A grant reason recorded with `recordGrantReason`. */
export interface RecordedGrantReason {
  readonly path: string;
  readonly kind: GrantFindingKind;
  readonly actions: readonly string[];
  readonly resources?: readonly string[];
  readonly reason: string;
}

/** A warning that synthesis recorded on a construct. */
export interface SynthWarning {
  readonly path: string;
  readonly message: string;
}

/** Origin and text of the reason for a finding. */
export interface Explanation {
  readonly source: 'acknowledgement' | 'grant-reason';
  /** The acknowledged rule id, for an acknowledgement. */
  readonly ruleId?: string;
  /** Construct path the reason was recorded on. */
  readonly path: string;
  readonly reason: string;
}

/** The stacks of an assembly and what their constructs recorded, as the review sections read them. */
export interface ReviewModel {
  /** Assembly folder as given. */
  readonly directory: string;
  readonly version: string;
  readonly stacks: readonly StackModel[];
  readonly acknowledgements: readonly Acknowledgement[];
  readonly grantReasons: readonly RecordedGrantReason[];
  readonly warnings: readonly SynthWarning[];
  /** Returns the stack with this name. */
  stack(name: string): StackModel | undefined;
  /**
   * Returns the first acknowledgement of one of `ruleIds` made on one of
   * `paths` or on a construct above it, the way cdk-nag matches them.
   */
  acknowledgementFor(paths: readonly string[], ruleIds: readonly string[]): Explanation | undefined;
  /**
   * Returns the grant reason of `kind` recorded on one of `paths` or above
   * it that covers every action in `actions` and, when it names resources,
   * every one of `resources`.
   */
  grantReasonFor(paths: readonly string[], kind: GrantFindingKind, actions: readonly string[], resources: readonly string[]): Explanation | undefined;
}

/** Returns whether `ancestor` is `path` or a construct above it. */
export function coversPath(ancestor: string, path: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

/** Builds the review model of an assembly. */
export function buildModel(assembly: Assembly): ReviewModel {
  const stacks = assembly.stacks.map(stackModel);
  const byName = new Map(stacks.map((s) => [s.name, s]));
  const metadataMaps = [...new Set(assembly.stacks.map((s) => s.metadata))];
  const acknowledgements = dedupe(
    [...metadataMaps.flatMap(acknowledgementsIn), ...stacks.flatMap(templateAcknowledgements)],
    (a) => `${a.path}\n${a.ruleId}`,
  ).sort((a, b) => compareText(a.path, b.path) || compareText(a.ruleId, b.ruleId));
  const grantReasons = metadataMaps.flatMap(grantReasonsIn).sort((a, b) => compareText(a.path, b.path) || compareText(a.reason, b.reason));
  const warnings = dedupe(metadataMaps.flatMap(warningsIn), (w) => `${w.path}\n${w.message}`).sort(
    (a, b) => compareText(a.path, b.path) || compareText(a.message, b.message),
  );

  return {
    directory: assembly.directory,
    version: assembly.version,
    stacks,
    acknowledgements,
    grantReasons,
    warnings,
    stack: (name) => byName.get(name),
    acknowledgementFor(paths, ruleIds) {
      const found = acknowledgements.find((a) => ruleIds.includes(a.ruleId) && paths.some((p) => coversPath(a.path, p)));
      return found && { source: 'acknowledgement', ruleId: found.ruleId, path: found.path, reason: found.reason };
    },
    grantReasonFor(paths, kind, actions, resources) {
      const found = grantReasons.find(
        (g) =>
          g.kind === kind &&
          paths.some((p) => coversPath(g.path, p)) &&
          actions.every((action) => g.actions.some((pattern) => globMatches(pattern, action))) &&
          (g.resources === undefined || resources.every((resource) => g.resources!.some((pattern) => globMatches(pattern, resource, true)))),
      );
      return found && { source: 'grant-reason', path: found.path, reason: found.reason };
    },
  };
}

function stackModel(stack: AssemblyStack): StackModel {
  const resources: ResourceModel[] = Object.entries(stack.template.Resources ?? {})
    .map(([logicalId, resource]) => {
      const metadata = resource.Metadata ?? {};
      const cdkPath = metadata['aws:cdk:path'];
      return {
        stackName: stack.name,
        logicalId,
        type: resource.Type,
        properties: resource.Properties ?? {},
        path: typeof cdkPath === 'string' ? cdkPath : (constructPathOf(stack.metadata, stack.name, logicalId) ?? `${stack.name}/${logicalId}`),
        deletionPolicy: resource.DeletionPolicy,
        updateReplacePolicy: resource.UpdateReplacePolicy,
        metadata,
      };
    })
    .sort((a, b) => compareText(a.logicalId, b.logicalId));
  const byId = new Map(resources.map((r) => [r.logicalId, r]));
  return {
    name: stack.name,
    region: stack.region,
    account: stack.account,
    templateFile: stack.templateFile,
    templatePath: stack.templatePath,
    template: stack.template,
    parent: stack.parent,
    resources,
    resource: (logicalId) => (logicalId === undefined ? undefined : byId.get(logicalId)),
    ofType: (...types) => resources.filter((r) => types.includes(r.type)),
  };
}

function acknowledgementsIn(metadata: MetadataMap): Acknowledgement[] {
  const found: Acknowledgement[] = [];
  for (const [path, entries] of metadata) {
    for (const entry of entries) {
      if (entry.type !== ACKNOWLEDGED_RULES_METADATA_KEY || typeof entry.data !== 'object' || entry.data === null) continue;
      for (const [qualifiedId, reason] of Object.entries(entry.data as Record<string, unknown>)) {
        // aws-cdk-lib writes an id without a namespace as `Annotation::<id>`.
        found.push({ path, ruleId: qualifiedId.replace(/^annotation::/i, ''), reason: String(reason) });
      }
    }
  }
  return found;
}

/** Reads cdk-nag's `cdk_nag.rules_to_suppress` template metadata, which cdk-nag 2 and cdk-nag 3's optional aspect write. */
function templateAcknowledgements(stack: StackModel): Acknowledgement[] {
  return stack.resources.flatMap((resource) => {
    const nag = resource.metadata.cdk_nag as { rules_to_suppress?: Array<{ id?: unknown; reason?: unknown; appliesTo?: unknown }> } | undefined;
    return asList(nag?.rules_to_suppress).flatMap((rule) => {
      const id = String(rule.id ?? '');
      const appliesTo = asList(rule.appliesTo as Array<string | { regex: string }> | undefined);
      const ids = appliesTo.length === 0 ? [id] : appliesTo.map((a) => `${id}[${typeof a === 'string' ? a : a.regex}]`);
      return ids.map((ruleId) => ({ path: resource.path, ruleId, reason: String(rule.reason ?? '') }));
    });
  });
}

function grantReasonsIn(metadata: MetadataMap): RecordedGrantReason[] {
  const found: RecordedGrantReason[] = [];
  for (const [path, entries] of metadata) {
    for (const entry of entries) {
      if (entry.type !== GRANT_REASON_METADATA_KEY) continue;
      const data = entry.data as Partial<RecordedGrantReason> | undefined;
      if (!data || (data.kind !== 'wildcard' && data.kind !== 'cross-region') || typeof data.reason !== 'string') continue;
      found.push({ path, kind: data.kind, actions: asList(data.actions as string[] | undefined).map(String), resources: data.resources?.map(String), reason: data.reason });
    }
  }
  return found;
}

function warningsIn(metadata: MetadataMap): SynthWarning[] {
  const found: SynthWarning[] = [];
  for (const [path, entries] of metadata) {
    for (const entry of entries) {
      if (entry.type === WARNING_METADATA_KEY) found.push({ path, message: String(entry.data) });
    }
  }
  return found;
}

function dedupe<T>(items: T[], key: (item: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const k = key(item);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
