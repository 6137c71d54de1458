import * as iam from 'aws-cdk-lib/aws-iam';
import type { ModelTarget } from '../lambda/shared/contracts';
import { parseModelId } from '../lambda/shared/model-id';
import type { GrantReason } from './grant-reasons';

export { parseModelId };

/**
 * The gateway's Bedrock permissions, derived from its model targets.
 *
 * The facts behind the statements:
 * - A cross-region inference profile is invoked by its ARN in the source
 *   region, and Bedrock then runs the model in a destination region of its
 *   choice. The caller needs the action on the profile and on the
 *   foundation model in every destination region, and the
 *   `bedrock:InferenceProfileArn` condition key limits the model grant to
 *   calls made through that profile.
 *   Source: https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html
 *   Source: https://docs.aws.amazon.com/bedrock/latest/userguide/geographic-cross-region-inference.html
 * - A `global.` profile can route to any commercial region, and Bedrock also
 *   authorizes its calls against the region-less foundation-model ARN
 *   `arn:aws:bedrock:::foundation-model/<model>`.
 *   Source: https://docs.aws.amazon.com/bedrock/latest/userguide/global-cross-region-inference.html
 * - A plain model id runs only in the region it is sent to.
 * - Converse is authorized as `bedrock:InvokeModel`, and ConverseStream as
 *   `bedrock:InvokeModelWithResponseStream`.
 *   Source: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
 * - Inference with a guardrail needs the model action and
 *   `bedrock:ApplyGuardrail` on the guardrail ARN, which also authorizes
 *   the ApplyGuardrail call itself.
 *   Source: https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-permissions.html
 */

/** The two actions the gateway calls on models and inference profiles. */
export const BEDROCK_INVOKE_ACTIONS = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];

/** Bedrock statements for a set of targets, and the models granted in every region. */
export interface BedrockTargetPolicy {
  readonly statements: iam.PolicyStatement[];
  /** Foundation model ids granted with a region wildcard, sorted. */
  readonly modelsInEveryRegion: string[];
}

/**
 * Builds the statements that let the gateway invoke exactly the given
 * targets:
 * - one statement without condition on each inference profile in its
 *   source region and each plain model in its own region;
 * - per foundation model served by a profile, one statement on the model in
 *   every region (`bedrock:*::`), limited by `bedrock:InferenceProfileArn`
 *   to the profiles that serve it;
 * - for `global.` profiles, the region-less model ARN (`bedrock:::`),
 *   limited to the global profiles that serve it.
 * Statements whose conditions name the same profiles are merged.
 */
export function bedrockTargetPolicy(targets: ModelTarget[], partition: string, account: string): BedrockTargetPolicy {
  const direct = new Set<string>();
  // Per conditional resource ARN, the profile ARNs that may reach it.
  const profilesByResource = new Map<string, Set<string>>();
  const modelsInEveryRegion = new Set<string>();
  const addProfile = (resource: string, profileArn: string) => {
    const profiles = profilesByResource.get(resource) ?? new Set<string>();
    profiles.add(profileArn);
    profilesByResource.set(resource, profiles);
  };

  for (const target of targets) {
    const { profilePrefix, foundationModelId } = parseModelId(target.modelId);
    if (!profilePrefix) {
      direct.add(`arn:${partition}:bedrock:${target.region}::foundation-model/${foundationModelId}`);
      continue;
    }
    const profileArn = `arn:${partition}:bedrock:${target.region}:${account}:inference-profile/${target.modelId}`;
    direct.add(profileArn);
    addProfile(`arn:${partition}:bedrock:*::foundation-model/${foundationModelId}`, profileArn);
    modelsInEveryRegion.add(foundationModelId);
    if (profilePrefix === 'global') {
      addProfile(`arn:${partition}:bedrock:::foundation-model/${foundationModelId}`, profileArn);
    }
  }

  // Merge the resources whose conditions name the same profiles.
  const resourcesByCondition = new Map<string, { profiles: string[]; resources: string[] }>();
  for (const [resource, profileSet] of profilesByResource) {
    const profiles = [...profileSet].sort();
    const key = JSON.stringify(profiles);
    const entry = resourcesByCondition.get(key) ?? { profiles, resources: [] };
    entry.resources.push(resource);
    resourcesByCondition.set(key, entry);
  }

  const statements = [
    new iam.PolicyStatement({ sid: 'InvokeConfiguredTargets', actions: BEDROCK_INVOKE_ACTIONS, resources: [...direct].sort() }),
    ...[...resourcesByCondition.values()].map(
      ({ profiles, resources }) =>
        new iam.PolicyStatement({
          actions: BEDROCK_INVOKE_ACTIONS,
          resources: resources.sort(),
          conditions: { StringEquals: { 'bedrock:InferenceProfileArn': profiles.length === 1 ? profiles[0] : profiles } },
        }),
    ),
  ];
  return { statements, modelsInEveryRegion: [...modelsInEveryRegion].sort() };
}

/** Builds the statement that lets the gateway apply its guardrail. */
export function applyGuardrailStatement(guardrailArn: string): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid: 'ApplyGuardrail', actions: ['bedrock:ApplyGuardrail'], resources: [guardrailArn] });
}

/**
 * Returns why the gateway's Bedrock grants reach other regions than the
 * stack's, for the review report (see `recordGrantReason`), or undefined
 * when every target is a plain model in `stackRegion`.
 */
export function crossRegionGrantReason(targets: ModelTarget[], stackRegion: string): GrantReason | undefined {
  const regions = [...new Set(targets.map((t) => t.region))].sort();
  const profiles = targets.some((t) => parseModelId(t.modelId).profilePrefix !== undefined);
  if (!profiles && regions.every((region) => region === stackRegion)) return undefined;
  return {
    kind: 'cross-region',
    actions: BEDROCK_INVOKE_ACTIONS,
    resources: ['arn:*:bedrock:*'],
    reason:
      `The model routes fail over across the configured targets in ${regions.join(', ')}, and a cross-region inference profile runs its model ` +
      'in destination regions Bedrock chooses; each grant names one configured profile or model.',
  };
}
