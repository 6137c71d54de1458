/**
 * Scripted ApplyGuardrail responses for the loopback Bedrock server. The
 * SDK sends ApplyGuardrail as `POST /guardrail/{guardrailIdentifier}/version/
 * {guardrailVersion}/apply` (the ApplyGuardrail$ schema of
 * @aws-sdk/client-bedrock-runtime 3.1178.0), and the response body follows
 * ApplyGuardrailResponse in the Bedrock Runtime API reference.
 */

/** Path of an ApplyGuardrail request, with the guardrail id and version as groups. */
export const APPLY_GUARDRAIL_PATH = /^\/guardrail\/([^/]+)\/version\/([^/]+)\/apply$/;

/** A scripted ApplyGuardrail result. */
export interface ApplyGuardrailResponse {
  readonly type: 'applyGuardrail';
  readonly action: 'NONE' | 'GUARDRAIL_INTERVENED';
  /** Texts the guardrail returns in `outputs`. @default - none */
  readonly outputs?: readonly string[];
  /** Assessments in the wire shape of GuardrailAssessment. @default - none */
  readonly assessments?: readonly Record<string, unknown>[];
  /** Milliseconds the server waits before it responds. @default 0 */
  readonly delayMs?: number;
}

/** Builds the result of a guardrail that let the content pass. */
export function guardrailPassed(): ApplyGuardrailResponse {
  return { type: 'applyGuardrail', action: 'NONE', assessments: [{}] };
}

/**
 * Builds the result of a guardrail that blocked the content with a content
 * filter of type `filterType`, and returns `message` as its only output.
 */
export function guardrailBlocked(
  filterType: string,
  message = 'Sorry, this request cannot be processed.',
): ApplyGuardrailResponse {
  const filter = { type: filterType, confidence: 'HIGH', action: 'BLOCKED', detected: true };
  return {
    type: 'applyGuardrail',
    action: 'GUARDRAIL_INTERVENED',
    outputs: [message],
    assessments: [{ contentPolicy: { filters: [filter] } }],
  };
}

/**
 * Builds the result of a guardrail that anonymized PII entities of type
 * `entityType`, returning `maskedTexts` as its outputs, one per content block.
 */
export function guardrailMasked(
  entityType: string,
  maskedTexts: readonly string[],
): ApplyGuardrailResponse {
  const entity = { type: entityType, match: '(matched text)', action: 'ANONYMIZED', detected: true };
  return {
    type: 'applyGuardrail',
    action: 'GUARDRAIL_INTERVENED',
    outputs: maskedTexts,
    assessments: [{ sensitiveInformationPolicy: { piiEntities: [entity] } }],
  };
}

/** Returns the JSON body of an ApplyGuardrail response. */
export function applyGuardrailBody(response: ApplyGuardrailResponse): Record<string, unknown> {
  return {
    usage: {
      topicPolicyUnits: 0,
      contentPolicyUnits: 1,
      wordPolicyUnits: 0,
      sensitiveInformationPolicyUnits: 0,
      sensitiveInformationPolicyFreeUnits: 0,
      contextualGroundingPolicyUnits: 0,
    },
    action: response.action,
    outputs: (response.outputs ?? []).map((text) => ({ text })),
    assessments: response.assessments ?? [],
  };
}
