import type {
  ConverseCommandOutput,
  GuardrailAssessment,
  GuardrailConfiguration,
} from '@aws-sdk/client-bedrock-runtime';
import type { GatewayGuardrail, ModelTarget } from '../shared/contracts';
import { GuardrailBlockedError, type GuardrailLayer } from '../shared/errors';

/** Stop reason of a Converse response in which the guardrail intervened. */
export const GUARDRAIL_INTERVENED = 'guardrail_intervened';

/**
 * Returns the Converse `guardrailConfig` for the gateway's guardrail. The
 * trace is enabled, because only the trace shows whether the input or the
 * output was blocked and by which policy.
 */
export function converseGuardrailConfig(
  guardrail: GatewayGuardrail | undefined,
): GuardrailConfiguration | undefined {
  if (guardrail === undefined) {
    return undefined;
  }
  return {
    guardrailIdentifier: guardrail.id,
    guardrailVersion: guardrail.version,
    trace: 'enabled',
  };
}

/** Has an action that is not NONE, which is how a policy that intervened shows in the trace. */
function acted(entry: { action?: string }): boolean {
  return entry.action !== undefined && entry.action !== 'NONE';
}

/**
 * Lists the policies that intervened in one assessment, such as
 * `contentPolicy PROMPT_ATTACK`. `matches` selects the entries by their
 * action, and by default every action other than NONE counts.
 */
export function interventions(
  assessment: GuardrailAssessment,
  matches: (entry: { action?: string }) => boolean = acted,
): string[] {
  const found: string[] = [];
  for (const topic of assessment.topicPolicy?.topics ?? []) {
    if (matches(topic)) found.push(`topicPolicy ${topic.name}`);
  }
  for (const filter of assessment.contentPolicy?.filters ?? []) {
    if (matches(filter)) found.push(`contentPolicy ${filter.type}`);
  }
  for (const word of assessment.wordPolicy?.customWords ?? []) {
    if (matches(word)) found.push('wordPolicy custom word');
  }
  for (const list of assessment.wordPolicy?.managedWordLists ?? []) {
    if (matches(list)) found.push(`wordPolicy ${list.type}`);
  }
  for (const entity of assessment.sensitiveInformationPolicy?.piiEntities ?? []) {
    if (matches(entity)) found.push(`sensitiveInformationPolicy ${entity.type}`);
  }
  for (const regex of assessment.sensitiveInformationPolicy?.regexes ?? []) {
    if (matches(regex)) found.push(`sensitiveInformationPolicy regex ${regex.name ?? ''}`.trim());
  }
  for (const filter of assessment.contextualGroundingPolicy?.filters ?? []) {
    if (matches(filter)) found.push(`contextualGroundingPolicy ${filter.type}`);
  }
  return found;
}

/**
 * Finds where the guardrail intervened from the Converse trace, whose
 * `inputAssessment` maps a guardrail id to one assessment and whose
 * `outputAssessments` maps it to a list, see
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_GuardrailTraceAssessment.html
 */
function locateIntervention(output: ConverseCommandOutput): {
  layer: GuardrailLayer;
  policies: string[];
} {
  const trace = output.trace?.guardrail;
  const inputPolicies = Object.values(trace?.inputAssessment ?? {}).flatMap((assessment) =>
    interventions(assessment),
  );
  if (inputPolicies.length > 0) {
    return { layer: 'guardrail input', policies: inputPolicies };
  }
  const outputPolicies = Object.values(trace?.outputAssessments ?? {})
    .flat()
    .flatMap((assessment) => interventions(assessment));
  if (outputPolicies.length > 0) {
    return { layer: 'guardrail output', policies: outputPolicies };
  }
  return { layer: 'guardrail', policies: [] };
}

/**
 * Returns the GuardrailBlockedError for a response whose stop reason is
 * `guardrail_intervened`, or undefined for any other response. The message
 * names the guardrail, the side and the policies, never the blocked text.
 */
export function findGuardrailBlock(
  output: ConverseCommandOutput,
  guardrail: GatewayGuardrail | undefined,
  target: ModelTarget,
  requestId: string,
): GuardrailBlockedError | undefined {
  if (output.stopReason !== GUARDRAIL_INTERVENED) {
    return undefined;
  }
  // NOTE: a guardrail that only masks sensitive information may also stop
  // with guardrail_intervened, and that response is reported as a block too.
  const { layer, policies } = locateIntervention(output);
  return guardrailBlockedError(guardrail, target, requestId, layer, policies);
}

/**
 * Builds the GuardrailBlockedError for a block at `layer` by `policies`. The
 * message names the guardrail, the side and the policies, never the blocked text.
 */
export function guardrailBlockedError(
  guardrail: GatewayGuardrail | undefined,
  target: ModelTarget,
  requestId: string,
  layer: GuardrailLayer,
  policies: readonly string[],
): GuardrailBlockedError {
  const policy = policies.length === 0 ? undefined : [...new Set(policies)].join(', ');
  const name =
    guardrail === undefined
      ? 'The guardrail'
      : `Guardrail ${guardrail.id} version ${guardrail.version}`;
  const call = `the call to model ${target.modelId} in ${target.region}`;
  const firedBy = policy === undefined ? '' : ` (${policy})`;
  let what: string;
  if (layer === 'guardrail input') {
    what = `blocked the request of ${call}${firedBy}. Change the messages or the system prompt`;
  } else if (layer === 'guardrail output') {
    what = `blocked the model's answer in ${call}${firedBy}. Rephrase the request`;
  } else {
    what = `intervened in ${call}, and its trace names no policy. Change the request`;
  }
  return new GuardrailBlockedError(
    `${name} ${what}, because sending it again unchanged is blocked again. If the block is ` +
      "wrong, adjust the guardrail's policy.",
    requestId,
    layer,
    policy,
  );
}
