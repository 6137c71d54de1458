import * as fs from 'fs';
import * as path from 'path';

/** One construct metadata entry of a cloud assembly. */
export interface MetadataEntry {
  readonly type: string;
  readonly data?: unknown;
}

/** Metadata entries by construct path, without the leading slash. */
export type MetadataMap = ReadonlyMap<string, readonly MetadataEntry[]>;

/** A CloudFormation template as JSON. */
export interface Template {
  readonly Resources?: Record<string, TemplateResource>;
  readonly [key: string]: unknown;
}

/** One resource of a template. */
export interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly Metadata?: Record<string, unknown>;
  readonly DeletionPolicy?: string;
  readonly UpdateReplacePolicy?: string;
  readonly DependsOn?: unknown;
  readonly Condition?: string;
}

/** One stack of an assembly: a top-level stack, a stack of a stage, or a nested stack. */
export interface AssemblyStack {
  /**
   * Unique name of the stack in the report: the artifact's display name
   * (`Stack`, or `Stage/Stack` in a stage), and for a nested stack the
   * construct path of the nested stack.
   */
  readonly name: string;
  /** Template file, relative to the root assembly folder. */
  readonly templateFile: string;
  /** Template file as an absolute path. */
  readonly templatePath: string;
  readonly template: Template;
  /** Deployment region, or undefined when the stack is environment-agnostic. */
  readonly region?: string;
  /** Deployment account, or undefined when the stack is environment-agnostic. */
  readonly account?: string;
  /** Construct metadata; a nested stack shares the map of its top-level stack. */
  readonly metadata: MetadataMap;
  /** Name of the parent stack of a nested stack. */
  readonly parent?: string;
  /** Logical id of the nested stack's resource in its parent. */
  readonly parentLogicalId?: string;
}

/** The stacks of a cloud assembly, with those of its stages and their nested stacks, sorted by name. */
export interface Assembly {
  /** Folder the assembly was read from, as given. */
  readonly directory: string;
  /** Cloud assembly schema version from manifest.json. */
  readonly version: string;
  readonly stacks: readonly AssemblyStack[];
}

/** Raised when a folder is not a readable cloud assembly. */
export class AssemblyError extends Error {
  override readonly name = 'AssemblyError';
}

interface ManifestArtifact {
  readonly type: string;
  readonly environment?: string;
  readonly displayName?: string;
  readonly properties?: Record<string, unknown>;
  readonly metadata?: Record<string, MetadataEntry[]>;
  readonly additionalMetadataFile?: string;
}

interface Manifest {
  readonly version: string;
  readonly artifacts?: Record<string, ManifestArtifact>;
}

function readJson<T>(file: string, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new AssemblyError(`Cannot read the ${what} ${file}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new AssemblyError(`The ${what} ${file} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * Reads a cloud assembly folder (such as `cdk.out`): every stack artifact,
 * the stacks of every stage (a nested assembly folder), and every nested
 * stack whose template the parent names as an asset.
 */
export function readAssembly(directory: string): Assembly {
  const manifestFile = path.join(directory, 'manifest.json');
  if (!fs.existsSync(manifestFile)) {
    throw new AssemblyError(`${directory} is not a cloud assembly: manifest.json is missing. Run "cdk synth" first, or give the folder it writes (cdk.out by default).`);
  }
  const manifest = readJson<Manifest>(manifestFile, 'assembly manifest');
  const stacks: AssemblyStack[] = [];
  readArtifacts(path.resolve(directory), path.resolve(directory), manifest, stacks);
  stacks.sort((a, b) => compareText(a.name, b.name));
  return { directory, version: manifest.version, stacks };
}

function readArtifacts(root: string, folder: string, manifest: Manifest, into: AssemblyStack[]): void {
  const artifacts = Object.entries(manifest.artifacts ?? {}).sort(([a], [b]) => compareText(a, b));
  for (const [id, artifact] of artifacts) {
    if (artifact.type === 'aws:cloudformation:stack') {
      into.push(...readStack(root, folder, id, artifact));
    } else if (artifact.type === 'cdk:cloud-assembly') {
      const directoryName = String(artifact.properties?.directoryName ?? '');
      const nested = path.join(folder, directoryName);
      readArtifacts(root, nested, readJson<Manifest>(path.join(nested, 'manifest.json'), 'stage manifest'), into);
    }
  }
}

function readStack(root: string, folder: string, id: string, artifact: ManifestArtifact): AssemblyStack[] {
  const templateFile = String(artifact.properties?.templateFile ?? '');
  const templatePath = path.join(folder, templateFile);
  const template = readJson<Template>(templatePath, 'stack template');
  const metadata = readMetadata(folder, artifact);
  const [account, region] = parseEnvironment(artifact.environment);
  const stack: AssemblyStack = {
    name: artifact.displayName ?? id,
    templateFile: path.relative(root, templatePath),
    templatePath,
    template,
    region,
    account,
    metadata,
  };
  return [stack, ...readNestedStacks(root, folder, stack)];
}

/** Reads the metadata written in the manifest and in the artifact's metadata file. */
function readMetadata(folder: string, artifact: ManifestArtifact): MetadataMap {
  const entries: Record<string, MetadataEntry[]> = { ...(artifact.metadata ?? {}) };
  if (artifact.additionalMetadataFile) {
    const extra = readJson<Record<string, MetadataEntry[]>>(path.join(folder, artifact.additionalMetadataFile), 'metadata file');
    for (const [constructPath, list] of Object.entries(extra)) {
      entries[constructPath] = [...(entries[constructPath] ?? []), ...list];
    }
  }
  return new Map(Object.entries(entries).map(([constructPath, list]) => [constructPath.replace(/^\//, ''), list]));
}

function parseEnvironment(environment: string | undefined): [string | undefined, string | undefined] {
  const match = /^aws:\/\/([^/]+)\/(.+)$/.exec(environment ?? '');
  if (!match) return [undefined, undefined];
  const account = match[1] === 'unknown-account' ? undefined : match[1];
  const region = match[2] === 'unknown-region' ? undefined : match[2];
  return [account, region];
}

/**
 * Reads the nested stacks of a stack: resources of type
 * `AWS::CloudFormation::Stack` whose `aws:asset:path` metadata names a
 * template file in the assembly folder.
 */
function readNestedStacks(root: string, folder: string, parent: AssemblyStack): AssemblyStack[] {
  const nested: AssemblyStack[] = [];
  const resources = Object.entries(parent.template.Resources ?? {}).sort(([a], [b]) => compareText(a, b));
  for (const [logicalId, resource] of resources) {
    if (resource.Type !== 'AWS::CloudFormation::Stack') continue;
    const assetPath = resource.Metadata?.['aws:asset:path'] ?? nestedTemplateFromUrl(folder, resource.Properties?.TemplateURL);
    if (typeof assetPath !== 'string') continue;
    const templatePath = path.join(folder, assetPath);
    if (!fs.existsSync(templatePath)) continue;
    const stack: AssemblyStack = {
      name: nestedStackName(parent.name, logicalId, resource.Metadata?.['aws:cdk:path'] ?? constructPathOf(parent.metadata, parent.name, logicalId)),
      templateFile: path.relative(root, templatePath),
      templatePath,
      template: readJson<Template>(templatePath, 'nested stack template'),
      region: parent.region,
      account: parent.account,
      metadata: parent.metadata,
      parent: parent.name,
      parentLogicalId: logicalId,
    };
    nested.push(stack, ...readNestedStacks(root, folder, stack));
  }
  return nested;
}

/**
 * Finds the template file of a nested stack from its `TemplateURL`, for
 * templates without asset metadata, which an app synthesized outside the
 * CDK CLI lacks. The URL names the file asset by its hash, and the asset
 * manifests in the folder map each hash to its file.
 */
function nestedTemplateFromUrl(folder: string, templateUrl: unknown): string | undefined {
  const url = JSON.stringify(templateUrl ?? '');
  for (const manifestFile of fs.readdirSync(folder).filter((f) => f.endsWith('.assets.json')).sort(compareText)) {
    const manifest = readJson<{ files?: Record<string, { source?: { path?: string } }> }>(path.join(folder, manifestFile), 'asset manifest');
    for (const [hash, asset] of Object.entries(manifest.files ?? {})) {
      const source = asset.source?.path;
      if (source?.endsWith('.template.json') && url.includes(hash)) return source;
    }
  }
  return undefined;
}

/** Names a nested stack by its construct path, such as `Parent/Storage` for `Parent/Storage.NestedStack/Storage.NestedStackResource`. */
function nestedStackName(parentName: string, logicalId: string, cdkPath: unknown): string {
  if (typeof cdkPath !== 'string') return `${parentName}/${logicalId}`;
  return cdkPath.replace(/\/[^/]*\.NestedStackResource$/, '').replace(/\.NestedStack$/, '');
}

/**
 * Returns the construct path of a resource from the `aws:cdk:logicalId`
 * metadata, for templates without path metadata, which an app synthesized
 * outside the CDK CLI lacks. When a stack and its nested stacks share a
 * logical id, the shortest path under `stackPath` is the stack's own.
 */
export function constructPathOf(metadata: MetadataMap, stackPath: string, logicalId: string): string | undefined {
  let best: string | undefined;
  for (const [constructPath, entries] of metadata) {
    if (!constructPath.startsWith(`${stackPath}/`)) continue;
    if (!entries.some((e) => e.type === 'aws:cdk:logicalId' && e.data === logicalId)) continue;
    if (best === undefined || constructPath.length < best.length) best = constructPath;
  }
  return best;
}

/** Compares two strings by UTF-16 code units, the same on every machine and locale. */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
