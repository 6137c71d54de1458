import type { ModelTarget } from '../shared/contracts';
import {
  AgentStackError,
  InvalidRequestError,
  ModelCallError,
} from '../shared/errors';
import {
  inferenceProfileIdFor,
  isServiceControlPolicyDeny,
  type FailureClassification,
} from './classify';

/** Next step for the caller, keyed by exception name. */
const NEXT_STEP_BY_CODE: Readonly<Record<string, string>> = {
  ThrottlingException: 'Retry later, or raise the Bedrock quota for this model and region.',
  ServiceQuotaExceededException:
    'Raise the Bedrock quota for this model and region in Service Quotas.',
  AccessDeniedException:
    'Grant bedrock:InvokeModel on this model to the gateway role and enable access to ' +
    'the model in the Bedrock console of this region.',
  ResourceNotFoundException:
    'Check the model id in the route, because it must exist in this region.',
  ServiceUnavailableException: 'Retry later, or add a target in another region to the route.',
  InternalServerException: 'Retry later, or add a target in another region to the route.',
  ModelNotReadyException: 'Retry in a few seconds, once the model is ready.',
};

const DEFAULT_NEXT_STEP = 'Retry later, and check the target if it persists.';

/** Ends a message from another system with a full stop, so that the next sentence reads on. */
export function asSentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** Names the call in messages, such as `Bedrock Converse on model m in us-east-1`. */
export function describeCall(target: ModelTarget): string {
  return `Bedrock Converse on model ${target.modelId} in ${target.region}`;
}

/**
 * Builds the typed error that ends the request for a failure that does not
 * fail over. An error the gateway raised itself, such as a guardrail block,
 * is returned unchanged.
 */
export function toTargetError(
  error: unknown,
  classification: FailureClassification,
  target: ModelTarget,
  requestId: string,
): AgentStackError {
  if (error instanceof AgentStackError) {
    return error;
  }
  const call = describeCall(target);
  const { code } = classification;
  const detail = asSentence(classification.message);

  switch (classification.kind) {
    case 'invalid-request':
      return new InvalidRequestError(
        `${call} rejected the request: ${detail} Fix the request, because sending it again ` +
          'unchanged fails the same way.',
        requestId,
        { cause: error },
      );
    case 'inference-profile-required': {
      const profileId = inferenceProfileIdFor(target.modelId, target.region);
      return new ModelCallError(
        `${call} failed, because model ${target.modelId} has no on-demand throughput there ` +
          `and must be called through an inference profile. Set this target's modelId to ` +
          `the inference profile id ${profileId} (or its ARN) in the agent's route.`,
        requestId,
        code,
        { cause: error },
      );
    }
    case 'access-denied':
      if (isServiceControlPolicyDeny(classification.message)) {
        return new ModelCallError(
          `${call} was denied by a service control policy of the AWS organization: ${detail} ` +
            `Ask the organization's administrator to allow bedrock:InvokeModel on this model ` +
            `in ${target.region}, or remove this target from the route.`,
          requestId,
          code,
          { cause: error },
        );
      }
      break;
    default:
      break;
  }
  const nextStep = NEXT_STEP_BY_CODE[code] ?? DEFAULT_NEXT_STEP;
  return new ModelCallError(`${call} failed with ${code}: ${detail} ${nextStep}`, requestId, code, {
    cause: error,
  });
}

/** Describes a failed call in a list of targets, such as `ThrottlingException: Slow down.` */
export function describeFailure(classification: FailureClassification): string {
  return `${classification.code}: ${asSentence(classification.message)}`;
}
