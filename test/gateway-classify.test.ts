/**
 * Error classification for failover, on the SDK's own exception classes and
 * on errors shaped as NodeHttpHandler raises them.
 */
import {
  AccessDeniedException,
  InternalServerException,
  ModelErrorException,
  ModelNotReadyException,
  ModelStreamErrorException,
  ModelTimeoutException,
  ResourceNotFoundException,
  ServiceQuotaExceededException,
  ServiceUnavailableException,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-bedrock-runtime';
import {
  classifyModelError,
  inferenceProfileIdFor,
  type FailureKind,
} from '../lambda/gateway/classify';
import { toTargetError } from '../lambda/gateway/target-errors';
import { GuardrailBlockedError, ModelCallError } from '../lambda/shared/errors';

const metadata = { $metadata: {} };

function nodeError(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields);
}

function sdkError(name: string, status: number, fault: 'client' | 'server'): Error {
  return Object.assign(new Error(`Scripted ${name}.`), {
    name,
    $fault: fault,
    $metadata: { httpStatusCode: status },
  });
}

const ON_DEMAND_MESSAGE =
  'Invocation of model ID anthropic.claude-3-7-sonnet-20250219-v1:0 with on-demand throughput ' +
  'isn\u2019t supported. Retry your request with the ID or ARN of an inference profile that ' +
  'contains this model.';

const SCP_MESSAGE =
  'User: arn:aws:sts::123456789012:assumed-role/gateway/fn is not authorized to perform: ' +
  'bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/m with an ' +
  'explicit deny in a service control policy: arn:aws:organizations::1:policy/o-1/p-1';

describe('classifyModelError', () => {
  test.each<[string, unknown, FailureKind, boolean, string]>([
    [
      'throttling',
      new ThrottlingException({ message: 'Too many tokens.', ...metadata }),
      'throttled',
      true,
      'ThrottlingException',
    ],
    [
      'rate quota',
      new ServiceQuotaExceededException({ message: 'Too many tokens per minute.', ...metadata }),
      'throttled',
      true,
      'ServiceQuotaExceededException',
    ],
    [
      'fixed quota',
      new ServiceQuotaExceededException({
        message: 'The maximum number of profiles is reached.',
        ...metadata,
      }),
      'quota-exceeded',
      false,
      'ServiceQuotaExceededException',
    ],
    [
      'internal server',
      new InternalServerException({ message: 'x', ...metadata }),
      'server-error',
      true,
      'InternalServerException',
    ],
    [
      'unavailable',
      new ServiceUnavailableException({ message: 'x', ...metadata }),
      'server-error',
      true,
      'ServiceUnavailableException',
    ],
    [
      'stream error',
      new ModelStreamErrorException({ message: 'x', ...metadata }),
      'server-error',
      true,
      'ModelStreamErrorException',
    ],
    [
      'model error',
      new ModelErrorException({ message: 'x', ...metadata }),
      'server-error',
      true,
      'ModelErrorException',
    ],
    [
      'unknown 502',
      sdkError('BadGatewayException', 502, 'server'),
      'server-error',
      true,
      'BadGatewayException',
    ],
    [
      'unknown 429',
      sdkError('TooManyRequests', 429, 'client'),
      'throttled',
      true,
      'TooManyRequests',
    ],
    [
      'model not ready',
      new ModelNotReadyException({ message: 'x', ...metadata }),
      'model-not-ready',
      true,
      'ModelNotReadyException',
    ],
    [
      'model timeout',
      new ModelTimeoutException({ message: 'x', ...metadata }),
      'timeout',
      true,
      'ModelTimeoutException',
    ],
    [
      'first byte timeout',
      nodeError('a request has exceeded the configured 300 ms requestTimeout.', {
        name: 'TimeoutError',
        code: 'ETIMEDOUT',
      }),
      'timeout',
      true,
      'TimeoutError',
    ],
    [
      'socket idle timeout',
      nodeError('the request socket timed out after 300 ms of inactivity', {
        name: 'TimeoutError',
      }),
      'timeout',
      true,
      'TimeoutError',
    ],
    [
      'connect timeout',
      nodeError('the request socket did not establish a connection with the server.', {
        name: 'TimeoutError',
      }),
      'connection',
      true,
      'TimeoutError',
    ],
    [
      'connection refused',
      nodeError('connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' }),
      'connection',
      true,
      'ECONNREFUSED',
    ],
    [
      'connection reset',
      nodeError('socket hang up', { name: 'TimeoutError', code: 'ECONNRESET' }),
      'connection',
      true,
      'TimeoutError',
    ],
    ['broken pipe', nodeError('write EPIPE', { code: 'EPIPE' }), 'connection', true, 'EPIPE'],
    [
      'tcp timeout',
      nodeError('connect ETIMEDOUT 10.0.0.1:443', { code: 'ETIMEDOUT' }),
      'connection',
      true,
      'ETIMEDOUT',
    ],
    ['hang up without code', new Error('socket hang up'), 'connection', true, 'Error'],
    [
      'wrapped refusal',
      new Error('AWS SDK error wrapper for Error: connect ECONNREFUSED 127.0.0.1:9'),
      'connection',
      true,
      'ECONNREFUSED',
    ],
    [
      'validation',
      new ValidationException({ message: 'temperature: range: 0..1', ...metadata }),
      'invalid-request',
      false,
      'ValidationException',
    ],
    [
      'needs profile',
      new ValidationException({ message: ON_DEMAND_MESSAGE, ...metadata }),
      'inference-profile-required',
      false,
      'ValidationException',
    ],
    [
      'access denied',
      new AccessDeniedException({ message: 'x', ...metadata }),
      'access-denied',
      false,
      'AccessDeniedException',
    ],
    [
      'organization deny',
      new AccessDeniedException({ message: SCP_MESSAGE, ...metadata }),
      'access-denied',
      false,
      'AccessDeniedException',
    ],
    [
      'missing model',
      new ResourceNotFoundException({ message: 'x', ...metadata }),
      'not-found',
      false,
      'ResourceNotFoundException',
    ],
    [
      'guardrail block',
      new GuardrailBlockedError('Blocked.', 'r', 'guardrail input'),
      'guardrail-blocked',
      false,
      'GuardrailBlockedError',
    ],
    [
      'missing output',
      new ModelCallError('No output.', 'r', 'MissingOutputMessage'),
      'server-error',
      true,
      'MissingOutputMessage',
    ],
    [
      'caller abort',
      nodeError('The operation was aborted.', { name: 'AbortError' }),
      'aborted',
      false,
      'AbortError',
    ],
    ['program bug', new TypeError('x is not a function'), 'unknown', false, 'TypeError'],
    ['thrown string', 'boom', 'unknown', false, 'UnknownError'],
  ])('%s', (_case, error, kind, failover, code) => {
    const classification = classifyModelError(error);

    expect(classification.kind).toBe(kind);
    expect(classification.failover).toBe(failover);
    expect(classification.code).toBe(code);
  });
});

describe('inferenceProfileIdFor', () => {
  const model = 'anthropic.claude-3-7-sonnet-20250219-v1:0';

  test.each([
    ['us-east-1', `us.${model}`],
    ['us-west-2', `us.${model}`],
    ['us-gov-west-1', `us-gov.${model}`],
    ['eu-central-1', `eu.${model}`],
    ['ap-northeast-1', `apac.${model}`],
    ['ca-central-1', `global.${model}`],
  ])('%s gives %s', (region, expected) => {
    expect(inferenceProfileIdFor(model, region)).toBe(expected);
  });

  test('strips foundation model ARN', () => {
    const arn = `arn:aws:bedrock:eu-west-1::foundation-model/${model}`;
    expect(inferenceProfileIdFor(arn, 'eu-west-1')).toBe(`eu.${model}`);
  });
});

describe('toTargetError', () => {
  const target = { region: 'eu-west-1', modelId: 'anthropic.claude-3-7-sonnet-20250219-v1:0' };

  test('names profile for plain model id', () => {
    const error = new ValidationException({ message: ON_DEMAND_MESSAGE, ...metadata });

    const typed = toTargetError(error, classifyModelError(error), target, 'req-9');

    expect(typed).toBeInstanceOf(ModelCallError);
    expect(typed.requestId).toBe('req-9');
    expect(typed.message).toContain(`inference profile id eu.${target.modelId}`);
    expect(typed.message).toContain("this target's modelId");
  });

  test('names organization for policy deny', () => {
    const error = new AccessDeniedException({ message: SCP_MESSAGE, ...metadata });

    const typed = toTargetError(error, classifyModelError(error), target, 'req-9');

    expect(typed.message).toContain('service control policy of the AWS organization');
    expect(typed.message).toContain('in eu-west-1');
    expect((typed as ModelCallError).errorCode).toBe('AccessDeniedException');
  });

  test('returns gateway errors unchanged', () => {
    const error = new GuardrailBlockedError('Blocked.', 'req-9', 'guardrail output');

    expect(toTargetError(error, classifyModelError(error), target, 'req-9')).toBe(error);
  });
});
