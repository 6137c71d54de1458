/**
 * Sorts the errors of one Bedrock call into those that move the request to
 * the next target of its route and those that end it at once.
 *
 * Sources for the names and messages matched here:
 * - Exceptions of Converse: the `@throws` list of ConverseCommand in
 *   @aws-sdk/client-bedrock-runtime 3.1178.0, and the stream exceptions of
 *   https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html
 *   (internalServerException 500, modelStreamErrorException 424,
 *   serviceUnavailableException 503, throttlingException 429, validationException 400).
 * - InternalFailure and ServiceUnavailable:
 *   https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html
 * - ServiceQuotaExceededException ("Your request exceeds the service quota for
 *   your account ... You can resubmit your request later"), which the SDK
 *   lists for InvokeModel but not for Converse:
 *   https://docs.aws.amazon.com/botocore/latest/reference/services/bedrock-runtime/client/exceptions/ServiceQuotaExceededException.html
 * - Network errors: @smithy/node-http-handler 4.14.2 renames ECONNRESET,
 *   EPIPE and ETIMEDOUT errors to TimeoutError and keeps their `code`.
 */

/** Cause of a failed call to one target. */
export type FailureKind =
  | 'throttled'
  | 'server-error'
  | 'model-not-ready'
  | 'timeout'
  | 'connection'
  | 'invalid-request'
  | 'inference-profile-required'
  | 'access-denied'
  | 'not-found'
  | 'quota-exceeded'
  | 'guardrail-blocked'
  | 'aborted'
  | 'unknown';

/** The verdict on one failed call. */
export interface FailureClassification {
  readonly kind: FailureKind;
  /** True when the next target may serve the request. */
  readonly failover: boolean;
  /** Exception name or Node.js error code, such as `ThrottlingException` or `ECONNRESET`. */
  readonly code: string;
  readonly message: string;
}

/** Kinds that another target or region may not share. */
const FAILOVER_KINDS: ReadonlySet<FailureKind> = new Set<FailureKind>([
  'throttled',
  'server-error',
  'model-not-ready',
  'timeout',
  'connection',
]);

const KIND_BY_CODE: Readonly<Record<string, FailureKind>> = {
  ThrottlingException: 'throttled',
  TooManyRequestsException: 'throttled',
  InternalServerException: 'server-error',
  InternalFailure: 'server-error',
  ServiceUnavailableException: 'server-error',
  ServiceUnavailable: 'server-error',
  ModelStreamErrorException: 'server-error',
  // The model failed while processing; another model or region may not.
  ModelErrorException: 'server-error',
  // The gateway's own error for a response without an output message.
  MissingOutputMessage: 'server-error',
  ModelNotReadyException: 'model-not-ready',
  ModelTimeoutException: 'timeout',
  ValidationException: 'invalid-request',
  InvalidRequestError: 'invalid-request',
  AccessDeniedException: 'access-denied',
  ResourceNotFoundException: 'not-found',
  GuardrailBlockedError: 'guardrail-blocked',
  AbortError: 'aborted',
};

/** Node.js error codes of a connection that failed or broke. */
const CONNECTION_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Bedrock's ValidationException for a model that has no on-demand
 * throughput, whose message reads "Invocation of model ID ... with on-demand
 * throughput isn't supported. Retry your request with the ID or ARN of an
 * inference profile that contains this model." The apostrophe is U+2019.
 */
const INFERENCE_PROFILE_REQUIRED =
  /on-demand throughput isn.t supported|ARN of an inference profile/i;

/**
 * Words of a rate quota in a ServiceQuotaExceededException message, such as
 * "tokens per minute". Such a quota refills, and another region has its own.
 */
const RATE_QUOTA = /\bper (second|minute|hour|day)\b|\brate\b|\btoo many (requests|tokens)\b/i;

const SOCKET_HANG_UP = /socket hang up/i;

const CODE_IN_MESSAGE = new RegExp(`\\b(${[...CONNECTION_CODES].join('|')})\\b`);

/** The fields of a thrown value that classification reads. */
interface ErrorFields {
  readonly name: string;
  readonly message: string;
  /** Node.js error code, such as ECONNRESET. */
  readonly code?: string;
  /** Bedrock exception name carried by the gateway's own ModelCallError. */
  readonly errorCode?: string;
  readonly $fault?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

/**
 * Reads an error's fields without `instanceof Error`, which is false for an
 * error made in another realm, such as a Node.js network error under Jest.
 */
function fieldsOf(error: unknown): ErrorFields | undefined {
  if (typeof error !== 'object' || error === null) {
    return undefined;
  }
  const fields = error as Partial<Record<keyof ErrorFields, unknown>>;
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const metadata = fields.$metadata as ErrorFields['$metadata'] | undefined;
  return {
    name: text(fields.name) ?? 'Error',
    message: text(fields.message) ?? '',
    code: text(fields.code),
    errorCode: text(fields.errorCode),
    $fault: text(fields.$fault),
    $metadata: typeof metadata === 'object' ? metadata : undefined,
  };
}

/** Returns the exception name, or for a plain Node.js error its code. */
export function errorCodeOf(error: unknown): string {
  const fields = fieldsOf(error);
  if (fields === undefined) {
    return 'UnknownError';
  }
  if (fields.name === 'ModelCallError' && fields.errorCode !== undefined) {
    return fields.errorCode;
  }
  return fields.name === 'Error' && fields.code !== undefined ? fields.code : fields.name;
}

/**
 * Returns the Node.js connection error code of an error. The SDK's retry
 * middleware replaces a thrown value that is not an Error of its own realm
 * with "AWS SDK error wrapper for <value>", which drops the code, so the code
 * is also looked for in the message.
 */
function connectionCodeOf(fields: ErrorFields): string | undefined {
  if (fields.code !== undefined && CONNECTION_CODES.has(fields.code)) {
    return fields.code;
  }
  return CODE_IN_MESSAGE.exec(fields.message)?.[1];
}

function kindOf(fields: ErrorFields, code: string): FailureKind {
  const status = fields.$metadata?.httpStatusCode;
  const connectionCode = connectionCodeOf(fields);

  if (code === 'ServiceQuotaExceededException') {
    return RATE_QUOTA.test(fields.message) ? 'throttled' : 'quota-exceeded';
  }
  if (code === 'ValidationException' && INFERENCE_PROFILE_REQUIRED.test(fields.message)) {
    return 'inference-profile-required';
  }
  const known = KIND_BY_CODE[code];
  if (known !== undefined) {
    return known;
  }
  if (code === 'TimeoutError') {
    // The handler's requestTimeout also carries code ETIMEDOUT, so its message decides.
    if (/requestTimeout|inactivity/.test(fields.message)) {
      return 'timeout';
    }
    const connectFailed = /establish a connection/.test(fields.message);
    return connectFailed || connectionCode !== undefined ? 'connection' : 'timeout';
  }
  if (connectionCode !== undefined || SOCKET_HANG_UP.test(fields.message)) {
    return 'connection';
  }
  if (status === 429) {
    return 'throttled';
  }
  if ((status !== undefined && status >= 500) || fields.$fault === 'server') {
    return 'server-error';
  }
  return 'unknown';
}

/**
 * Classifies an error from one call to one target. Throttling, server
 * errors, a model that is not ready, timeouts and connection errors fail
 * over. Validation errors, access denied, a missing model, a fixed quota, a
 * guardrail block and anything unrecognised end the request, because the
 * next target would most likely fail the same way or hide a bug.
 */
export function classifyModelError(error: unknown): FailureClassification {
  const fields = fieldsOf(error);
  if (fields === undefined) {
    return { kind: 'unknown', failover: false, code: 'UnknownError', message: String(error) };
  }
  const code = errorCodeOf(error);
  const kind = kindOf(fields, code);
  const connectionCode = kind === 'connection' ? connectionCodeOf(fields) : undefined;
  return {
    kind,
    failover: FAILOVER_KINDS.has(kind),
    // A wrapped network error has the name Error, so its code names it better.
    code: code === 'Error' && connectionCode !== undefined ? connectionCode : code,
    message: fields.message,
  };
}

/** Matches IAM's message for a deny in an organization's service control policy. */
export function isServiceControlPolicyDeny(message: string): boolean {
  return /explicit deny in a service control policy/i.test(message);
}

/**
 * Returns the cross-region inference profile id for `modelId` called from
 * `region`: the geography prefix `us.`, `us-gov.`, `eu.` or `apac.` before
 * the model id, see
 * https://docs.aws.amazon.com/bedrock/latest/userguide/geographic-cross-region-inference.html
 * Other regions get the `global.` profile.
 */
export function inferenceProfileIdFor(modelId: string, region: string): string {
  // NOTE: not every model has a profile in every geography, and some
  // geographies have their own prefixes, so the model's page in the Bedrock
  // console is the final word on the id.
  const foundationModel = modelId.replace(/^arn:[^:]+:bedrock:[^:]*:[^:]*:foundation-model\//, '');
  let prefix = 'global';
  if (region.startsWith('us-gov-')) {
    prefix = 'us-gov';
  } else if (region.startsWith('us-')) {
    prefix = 'us';
  } else if (region.startsWith('eu-')) {
    prefix = 'eu';
  } else if (region.startsWith('ap-')) {
    prefix = 'apac';
  }
  return `${prefix}.${foundationModel}`;
}
