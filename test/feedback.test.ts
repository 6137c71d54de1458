/**
 * The feedback handler against DynamoDB Local and a loopback identity
 * server, fed load balancer events as the Lambda target receives them:
 * stored records and the Satisfaction metric, every kind of invalid
 * request, bad credentials, duplicates, and base64 and multi-value events.
 */
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import {
  MAX_BODY_BYTES,
  MAX_COMMENT_LENGTH,
  createFeedbackHandler,
  loadFeedbackConfigFromEnv,
  type AlbEvent,
  type AlbResult,
} from '../lambda/feedback';
import { createAuthenticator } from '../lambda/shared/auth-factory';
import { UNAUTHORIZED_MESSAGE } from '../lambda/shared/auth';
import type { FeedbackRuntimeConfig, WorkerAuthConfig } from '../lambda/shared/contracts';
import { Logger } from '../lambda/shared/logger';
import { METRIC_NAMESPACE, MetricsWriter } from '../lambda/shared/metrics';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';
import { TEST_AUDIENCE, TEST_ISSUER, startIdentityServer, type IdentityServer } from './support/jwks-server';

type Json = any;

const TABLE = 'agent-feedback';
const AGENTS = ['support', 'nightly-report'];
const LOAD_BALANCER_ARN = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/agents/50dc6c495c0c9188';
const OTHER_LOAD_BALANCER_ARN = 'arn:aws:elasticloadbalancing:us-east-1:210987654321:loadbalancer/app/evil/0123456789abcdef';
const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);

let dynamo: DynamoDbLocal;
let identity: IdentityServer;
let sequence = 0;

beforeAll(async () => {
  [dynamo, identity] = await Promise.all([startDynamoDbLocal('agent-memory'), startIdentityServer()]);
  await dynamo.client.send(
    new CreateTableCommand({
      TableName: TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'requestId', AttributeType: 'S' },
        { AttributeName: 'userId', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'requestId', KeyType: 'HASH' },
        { AttributeName: 'userId', KeyType: 'RANGE' },
      ],
    }),
  );
});

afterAll(async () => {
  await Promise.all([dynamo?.stop(), identity?.close()]);
});

const JWT_AUTH = (): WorkerAuthConfig => ({
  type: 'jwt',
  issuer: TEST_ISSUER,
  audience: [TEST_AUDIENCE],
  jwksUri: identity.jwksUri,
  userClaim: 'sub',
});

const ALB_AUTH: WorkerAuthConfig = {
  type: 'alb-oidc',
  region: 'us-east-1',
  loadBalancerArn: LOAD_BALANCER_ARN,
  userClaim: 'sub',
};

/** A handler with its log lines and EMF lines collected as parsed JSON. */
function feedbackEndpoint(auth: WorkerAuthConfig = JWT_AUTH(), table = TABLE) {
  const logs: Json[] = [];
  const emf: Json[] = [];
  const config: FeedbackRuntimeConfig = { table, agents: AGENTS, auth };
  const handle = createFeedbackHandler({
    config,
    client: dynamo.documentClient,
    authenticator: createAuthenticator(auth, { albPublicKeysUrl: identity.albKeysUrl }),
    now: () => NOW,
    logger: new Logger({}, { sink: (line) => logs.push(JSON.parse(line)) }),
    metrics: new MetricsWriter({ sink: (line) => emf.push(JSON.parse(line)), now: () => NOW }),
  });
  return { handle, logs, emf, decisions: () => logs.filter((line) => line.decision !== undefined) };
}

/** Returns a request id no other test uses, so that records do not collide. */
function uniqueRequestId(): string {
  sequence += 1;
  return `0b9e2f5c-7a41-4c1e-9d3a-${String(sequence).padStart(12, '0')}`;
}

function validBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { agent: 'support', sessionId: 'session-1', requestId: uniqueRequestId(), score: 4, ...overrides };
}

/** Builds an event as the load balancer sends it with multi-value headers off. */
function albEvent(body: string, headers: Record<string, string>, overrides: Partial<AlbEvent> = {}): AlbEvent {
  return {
    requestContext: { elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/feedback/6d0ecf831eec9f09' } },
    httpMethod: 'POST',
    path: '/feedback',
    headers: { 'content-type': 'application/json', host: 'agents.example.com', ...headers },
    body,
    isBase64Encoded: false,
    ...overrides,
  };
}

async function bearer(subject = 'user-1'): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await identity.signJwt({ subject })}` };
}

function parse(result: AlbResult): Json {
  return JSON.parse(result.body);
}

async function stored(requestId: string, userId: string): Promise<Json> {
  const { Item } = await dynamo.documentClient.send(
    new GetCommand({ TableName: TABLE, Key: { requestId, userId }, ConsistentRead: true }),
  );
  return Item;
}

async function storedForRequest(requestId: string): Promise<Json[]> {
  const { Items } = await dynamo.documentClient.send(
    new ScanCommand({
      TableName: TABLE,
      FilterExpression: 'requestId = :requestId',
      ExpressionAttributeValues: { ':requestId': requestId },
      ConsistentRead: true,
    }),
  );
  return Items ?? [];
}

describe('valid feedback', () => {
  test('stores the record', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody({ comment: 'Solved it in one go.' });

    const result = await handle(albEvent(JSON.stringify(body), await bearer('user-1')), { awsRequestId: 'lambda-request-1' });

    expect(result.statusCode).toBe(201);
    expect(result.statusDescription).toBe('201 Created');
    expect(result.headers?.['content-type']).toBe('application/json');
    expect(result.headers?.['x-request-id']).toBe('lambda-request-1');
    expect(await stored(body.requestId as string, 'user-1')).toEqual({
      requestId: body.requestId,
      userId: 'user-1',
      agent: 'support',
      sessionId: 'session-1',
      score: 4,
      comment: 'Solved it in one go.',
      createdAt: '2026-12-04T12:00:00.000Z',
    });
  });

  test('responds with the record', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody({ score: 5 });

    const result = await handle(albEvent(JSON.stringify(body), await bearer('user-1')), { awsRequestId: 'lambda-request-2' });

    expect(parse(result)).toEqual({
      requestId: 'lambda-request-2',
      feedback: {
        requestId: body.requestId,
        userId: 'user-1',
        agent: 'support',
        sessionId: 'session-1',
        score: 5,
        createdAt: '2026-12-04T12:00:00.000Z',
      },
    });
  });

  test('writes the satisfaction metric', async () => {
    const { handle, emf } = feedbackEndpoint();
    const body = validBody({ agent: 'nightly-report', score: 2 });

    await handle(albEvent(JSON.stringify(body), await bearer()), { awsRequestId: 'lambda-request-3' });

    expect(emf).toHaveLength(1);
    const [line] = emf;
    expect(line._aws.Timestamp).toBe(NOW);
    expect(line._aws.CloudWatchMetrics).toEqual([
      { Namespace: METRIC_NAMESPACE, Dimensions: [['Agent']], Metrics: [{ Name: 'Satisfaction', Unit: 'None' }] },
    ]);
    expect(line.Agent).toBe('nightly-report');
    expect(line.Satisfaction).toBe(2);
    expect(line.requestId).toBe('lambda-request-3');
    expect(line.ratedRequestId).toBe(body.requestId);
  });

  test('logs one decision line', async () => {
    const { handle, decisions } = feedbackEndpoint();
    const body = validBody({ comment: 'private words' });

    await handle(albEvent(JSON.stringify(body), await bearer('user-7')), { awsRequestId: 'lambda-request-4' });

    expect(decisions()).toHaveLength(1);
    const [line] = decisions();
    expect(line).toMatchObject({
      level: 'info',
      message: 'Feedback recorded',
      decision: 'recorded',
      status: 201,
      requestId: 'lambda-request-4',
      agent: 'support',
      user: 'user-7',
      session: 'session-1',
      ratedRequestId: body.requestId,
      score: 4,
    });
    // The comment is the user's text, so it stays in the table and out of the logs.
    expect(JSON.stringify(line)).not.toContain('private words');
  });

  test('accepts every score from 1 to 5', async () => {
    const { handle } = feedbackEndpoint();
    for (const score of [1, 2, 3, 4, 5]) {
      const body = validBody({ score });
      const result = await handle(albEvent(JSON.stringify(body), await bearer()));
      expect(result.statusCode).toBe(201);
      expect((await stored(body.requestId as string, 'user-1')).score).toBe(score);
    }
  });

  test('accepts a comment at the limit', async () => {
    const { handle } = feedbackEndpoint();
    // Astral characters count as one each, although they take two UTF-16 units.
    const comment = '😀'.repeat(MAX_COMMENT_LENGTH);
    const body = validBody({ comment });

    const result = await handle(albEvent(JSON.stringify(body), await bearer()));

    expect(result.statusCode).toBe(201);
    expect((await stored(body.requestId as string, 'user-1')).comment).toBe(comment);
  });

  test('accepts a fully escaped comment at the limit', async () => {
    const { handle } = feedbackEndpoint();
    const comment = '😀'.repeat(MAX_COMMENT_LENGTH);
    const text = JSON.stringify(validBody({ comment: 'placeholder' })).replace(
      '"placeholder"',
      `"${'\\ud83d\\ude00'.repeat(MAX_COMMENT_LENGTH)}"`,
    );

    const result = await handle(albEvent(text, await bearer()));

    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_BODY_BYTES);
    expect(result.statusCode).toBe(201);
    expect(parse(result).feedback.comment).toBe(comment);
  });

  test('accepts a charset parameter', async () => {
    const { handle } = feedbackEndpoint();
    const result = await handle(
      albEvent(JSON.stringify(validBody()), { ...(await bearer()), 'content-type': 'Application/JSON; charset=UTF-8' }),
    );
    expect(result.statusCode).toBe(201);
  });

  test('decodes a base64 body', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody({ comment: 'Grüße, ça marche' });
    // The load balancer sets isBase64Encoded when it passes the body as base64.
    const event = albEvent(Buffer.from(JSON.stringify(body), 'utf8').toString('base64'), {
      ...(await bearer()),
      'content-encoding': 'identity',
    }, { isBase64Encoded: true });

    const result = await handle(event);

    expect(result.statusCode).toBe(201);
    expect((await stored(body.requestId as string, 'user-1')).comment).toBe('Grüße, ça marche');
  });

  test('reads multi-value headers', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody();
    const { authorization } = await bearer('user-mv');
    const event: AlbEvent = {
      httpMethod: 'POST',
      path: '/feedback',
      multiValueHeaders: { 'content-type': ['application/json'], authorization: [authorization], accept: ['*/*', 'text/plain'] },
      body: JSON.stringify(body),
      isBase64Encoded: false,
    };

    const result = await handle(event, { awsRequestId: 'lambda-request-mv' });

    expect(result.statusCode).toBe(201);
    expect(result.headers).toBeUndefined();
    expect(result.multiValueHeaders?.['content-type']).toEqual(['application/json']);
    expect(result.multiValueHeaders?.['x-request-id']).toEqual(['lambda-request-mv']);
    expect(await stored(body.requestId as string, 'user-mv')).toBeDefined();
  });

  test('falls back to a generated request id', async () => {
    const { handle } = feedbackEndpoint();
    const result = await handle(albEvent(JSON.stringify(validBody()), await bearer()));
    expect(parse(result).requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.headers?.['x-request-id']).toBe(parse(result).requestId);
  });
});

describe('invalid requests', () => {
  interface Case {
    readonly name: string;
    readonly status: number;
    readonly errorName: string;
    /** Part of the error message that names the problem. */
    readonly message: RegExp;
    readonly event: (headers: Record<string, string>) => AlbEvent;
  }

  const json = (body: unknown) => JSON.stringify(body);
  const withBody = (body: unknown) => (headers: Record<string, string>) => albEvent(json(body), headers);
  const text = (body: string) => (headers: Record<string, string>) => albEvent(body, headers);

  const cases: Case[] = [
    { name: 'wrong path', status: 404, errorName: 'NotFoundError', message: /No route for \/feedback\/extra/, event: (h) => albEvent(json(validBody()), h, { path: '/feedback/extra' }) },
    { name: 'GET method', status: 405, errorName: 'MethodNotAllowedError', message: /Use POST on \/feedback, not GET/, event: (h) => albEvent('', h, { httpMethod: 'GET' }) },
    { name: 'PUT method', status: 405, errorName: 'MethodNotAllowedError', message: /not PUT/, event: (h) => albEvent(json(validBody()), h, { httpMethod: 'PUT' }) },
    { name: 'missing content type', status: 415, errorName: 'UnsupportedMediaTypeError', message: /Content-Type is missing/, event: (h) => ({ ...albEvent(json(validBody()), h), headers: { authorization: h.authorization } }) },
    { name: 'text content type', status: 415, errorName: 'UnsupportedMediaTypeError', message: /"text\/plain" is not accepted/, event: (h) => albEvent(json(validBody()), { ...h, 'content-type': 'text/plain' }) },
    { name: 'form content type', status: 415, errorName: 'UnsupportedMediaTypeError', message: /not accepted/, event: (h) => albEvent('score=5', { ...h, 'content-type': 'application/x-www-form-urlencoded' }) },
    { name: 'latin-1 charset', status: 415, errorName: 'UnsupportedMediaTypeError', message: /charset=iso-8859-1/, event: (h) => albEvent(json(validBody()), { ...h, 'content-type': 'application/json; charset=iso-8859-1' }) },
    { name: 'gzip content encoding', status: 415, errorName: 'UnsupportedMediaTypeError', message: /Content-Encoding "gzip"/, event: (h) => albEvent('H4sIAAAAAAAAA6uuBQBDv6ajAgAAAA==', { ...h, 'content-encoding': 'gzip' }, { isBase64Encoded: true }) },
    { name: 'oversized body', status: 413, errorName: 'PayloadTooLargeError', message: new RegExp(`limit of ${MAX_BODY_BYTES} bytes`), event: text(json(validBody({ comment: 'x'.repeat(MAX_BODY_BYTES) }))) },
    { name: 'oversized base64 body', status: 413, errorName: 'PayloadTooLargeError', message: /limit of/, event: (h) => albEvent(Buffer.alloc(MAX_BODY_BYTES + 1, 0x20).toString('base64'), h, { isBase64Encoded: true }) },
    { name: 'body just over limit', status: 413, errorName: 'PayloadTooLargeError', message: /limit of/, event: text(' '.repeat(MAX_BODY_BYTES + 1)) },
    { name: 'malformed base64', status: 400, errorName: 'InvalidRequestError', message: /not valid base64/, event: (h) => albEvent('not base64!', h, { isBase64Encoded: true }) },
    { name: 'invalid utf-8', status: 400, errorName: 'InvalidRequestError', message: /not valid UTF-8/, event: (h) => albEvent(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('base64'), h, { isBase64Encoded: true }) },
    { name: 'empty body', status: 400, errorName: 'InvalidRequestError', message: /not valid JSON/, event: text('') },
    { name: 'invalid json', status: 400, errorName: 'InvalidRequestError', message: /not valid JSON/, event: text('{"agent": "support",') },
    { name: 'json array', status: 400, errorName: 'InvalidRequestError', message: /must be a JSON object/, event: withBody([validBody()]) },
    { name: 'json null', status: 400, errorName: 'InvalidRequestError', message: /must be a JSON object/, event: text('null') },
    { name: 'unknown field', status: 400, errorName: 'InvalidRequestError', message: /Unknown field\(s\) "rating"/, event: withBody(validBody({ rating: 5 })) },
    { name: 'user id in body', status: 400, errorName: 'InvalidRequestError', message: /Unknown field\(s\) "userId"/, event: withBody(validBody({ userId: 'someone-else' })) },
    { name: 'prototype field', status: 400, errorName: 'InvalidRequestError', message: /Unknown field\(s\) "__proto__"/, event: text(json(validBody()).replace('{', '{"__proto__": {"score": 5},')) },
    { name: 'missing agent', status: 400, errorName: 'InvalidRequestError', message: /Field agent is missing/, event: withBody(validBody({ agent: undefined })) },
    { name: 'numeric agent', status: 400, errorName: 'InvalidRequestError', message: /Field agent must be an agent name \(got 7\)/, event: withBody(validBody({ agent: 7 })) },
    { name: 'empty agent', status: 400, errorName: 'InvalidRequestError', message: /Field agent must be an agent name/, event: withBody(validBody({ agent: '' })) },
    { name: 'unknown agent', status: 404, errorName: 'NotFoundError', message: /Agent "billing" is not configured; send one of: support, nightly-report/, event: withBody(validBody({ agent: 'billing' })) },
    { name: 'missing session id', status: 400, errorName: 'InvalidRequestError', message: /Field sessionId is missing/, event: withBody(validBody({ sessionId: undefined })) },
    { name: 'session id with hash', status: 400, errorName: 'InvalidRequestError', message: /Field sessionId must be 1 to 128/, event: withBody(validBody({ sessionId: 'a#b' })) },
    { name: 'long session id', status: 400, errorName: 'InvalidRequestError', message: /Field sessionId must be 1 to 128/, event: withBody(validBody({ sessionId: 's'.repeat(129) })) },
    { name: 'missing request id', status: 400, errorName: 'InvalidRequestError', message: /Field requestId is missing/, event: withBody(validBody({ requestId: undefined })) },
    { name: 'numeric request id', status: 400, errorName: 'InvalidRequestError', message: /Field requestId must be 1 to 128.*got 12/, event: withBody(validBody({ requestId: 12 })) },
    { name: 'empty request id', status: 400, errorName: 'InvalidRequestError', message: /Field requestId must be 1 to 128/, event: withBody(validBody({ requestId: '' })) },
    { name: 'missing score', status: 400, errorName: 'InvalidRequestError', message: /Field score is missing/, event: withBody(validBody({ score: undefined })) },
    { name: 'score 0', status: 400, errorName: 'InvalidRequestError', message: /integer from 1 to 5 \(got 0\)/, event: withBody(validBody({ score: 0 })) },
    { name: 'score 6', status: 400, errorName: 'InvalidRequestError', message: /integer from 1 to 5 \(got 6\)/, event: withBody(validBody({ score: 6 })) },
    { name: 'fractional score', status: 400, errorName: 'InvalidRequestError', message: /\(got 4.5\)/, event: withBody(validBody({ score: 4.5 })) },
    { name: 'string score', status: 400, errorName: 'InvalidRequestError', message: /\(got "5"\)/, event: withBody(validBody({ score: '5' })) },
    { name: 'null score', status: 400, errorName: 'InvalidRequestError', message: /\(got null\)/, event: withBody(validBody({ score: null })) },
    { name: 'huge score', status: 400, errorName: 'InvalidRequestError', message: /integer from 1 to 5/, event: text(json(validBody()).replace('"score":4', '"score":1e400')) },
    { name: 'numeric comment', status: 400, errorName: 'InvalidRequestError', message: /Field comment must be a non-empty string \(got 3\)/, event: withBody(validBody({ comment: 3 })) },
    { name: 'null comment', status: 400, errorName: 'InvalidRequestError', message: /Field comment must be a non-empty string/, event: withBody(validBody({ comment: null })) },
    { name: 'blank comment', status: 400, errorName: 'InvalidRequestError', message: /omit it to send only a score/, event: withBody(validBody({ comment: '   ' })) },
    { name: 'long comment', status: 400, errorName: 'InvalidRequestError', message: new RegExp(`${MAX_COMMENT_LENGTH + 1} characters, more than the limit of ${MAX_COMMENT_LENGTH}`), event: withBody(validBody({ comment: 'x'.repeat(MAX_COMMENT_LENGTH + 1) })) },
    { name: 'control character comment', status: 400, errorName: 'InvalidRequestError', message: /control characters/, event: withBody(validBody({ comment: 'bell\u0007' })) },
    { name: 'lone surrogate comment', status: 400, errorName: 'InvalidRequestError', message: /unpaired surrogates/, event: text(json(validBody({ comment: 'placeholder' })).replace('placeholder', 'half \\ud83d')) },
  ];

  test.each(cases)('$name', async ({ status, errorName, message, event }) => {
    const { handle, emf, decisions } = feedbackEndpoint();
    const built = event(await bearer());

    const result = await handle(built, { awsRequestId: 'lambda-request-invalid' });

    expect(result.statusCode).toBe(status);
    expect(result.headers?.['content-type']).toBe('application/json');
    const error = parse(result).error;
    expect(error.name).toBe(errorName);
    expect(error.message).toMatch(message);
    expect(error.requestId).toBe('lambda-request-invalid');
    expect(emf).toEqual([]);
    expect(decisions()).toHaveLength(1);
    expect(decisions()[0]).toMatchObject({ decision: 'rejected', status, errorName, requestId: 'lambda-request-invalid' });
  });

  test('rejected request stores nothing', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody({ score: 9 });

    await handle(albEvent(JSON.stringify(body), await bearer()));

    expect(await storedForRequest(body.requestId as string)).toEqual([]);
  });

  test('405 names the allowed method', async () => {
    const { handle } = feedbackEndpoint();
    const result = await handle(albEvent('', await bearer(), { httpMethod: 'DELETE' }));
    expect(result.headers?.allow).toBe('POST');
  });

  test('unknown agent logged as requested', async () => {
    const { handle, decisions } = feedbackEndpoint();
    await handle(albEvent(JSON.stringify(validBody({ agent: 'billing' })), await bearer('user-3')));
    const [line] = decisions();
    expect(line.agent).toBeUndefined();
    expect(line.requestedAgent).toBe('billing');
    expect(line.user).toBe('user-3');
  });

  test('repeated authorization header', async () => {
    const { handle } = feedbackEndpoint();
    const { authorization } = await bearer();
    const result = await handle({
      httpMethod: 'POST',
      path: '/feedback',
      multiValueHeaders: { 'content-type': ['application/json'], authorization: [authorization, 'Bearer other'] },
      body: JSON.stringify(validBody()),
      isBase64Encoded: false,
    });
    expect(result.statusCode).toBe(400);
    expect(parse(result).error.message).toMatch(/Header authorization appears 2 times/);
    expect(result.multiValueHeaders?.['content-type']).toEqual(['application/json']);
  });

  test('size checked before authentication', async () => {
    const { handle } = feedbackEndpoint();
    const result = await handle(albEvent(' '.repeat(MAX_BODY_BYTES + 1), {}));
    expect(result.statusCode).toBe(413);
  });

  test('non-ALB event raises', async () => {
    const { handle, logs } = feedbackEndpoint();
    await expect(handle({ Records: [] }, { awsRequestId: 'lambda-request-sqs' })).rejects.toThrow(
      /accepts only Application Load Balancer events/,
    );
    expect(logs.some((line) => line.level === 'error' && line.requestId === 'lambda-request-sqs')).toBe(true);
  });
});

describe('authentication', () => {
  interface TokenCase {
    readonly name: string;
    readonly headers: () => Promise<Record<string, string>>;
  }

  const jwtCases: TokenCase[] = [
    { name: 'no authorization header', headers: async () => ({}) },
    { name: 'basic scheme', headers: async () => ({ authorization: 'Basic dXNlcjpwYXNz' }) },
    { name: 'garbage token', headers: async () => ({ authorization: 'Bearer not-a-jwt' }) },
    { name: 'expired token', headers: async () => ({ authorization: `Bearer ${await identity.signJwt({ expiresInSeconds: -60 })}` }) },
    { name: 'forged signature', headers: async () => ({ authorization: `Bearer ${await identity.signJwt({ forged: true })}` }) },
    { name: 'wrong audience', headers: async () => ({ authorization: `Bearer ${await identity.signJwt({ audience: 'another-client' })}` }) },
    { name: 'wrong issuer', headers: async () => ({ authorization: `Bearer ${await identity.signJwt({ issuer: 'https://evil.test.invalid/' })}` }) },
    { name: 'load balancer header under jwt', headers: async () => ({ 'x-amzn-oidc-data': identity.signAlbToken({ signer: LOAD_BALANCER_ARN }) }) },
  ];

  test.each(jwtCases)('jwt rejects $name', async ({ headers }) => {
    const { handle, emf, decisions } = feedbackEndpoint();
    const body = validBody();

    const result = await handle(albEvent(JSON.stringify(body), await headers()), { awsRequestId: 'lambda-request-401' });

    expect(result.statusCode).toBe(401);
    expect(parse(result).error).toEqual({ name: 'UnauthorizedError', message: UNAUTHORIZED_MESSAGE, requestId: 'lambda-request-401' });
    expect(await storedForRequest(body.requestId as string)).toEqual([]);
    expect(emf).toEqual([]);
    expect(decisions()).toHaveLength(1);
    expect(decisions()[0]).toMatchObject({ decision: 'rejected', status: 401, errorName: 'UnauthorizedError' });
    expect(decisions()[0].user).toBeUndefined();
  });

  const albCases: TokenCase[] = [
    { name: 'missing header', headers: async () => ({}) },
    { name: 'bearer token instead', headers: async () => ({ authorization: `Bearer ${await identity.signJwt()}` }) },
    { name: 'another load balancer', headers: async () => ({ 'x-amzn-oidc-data': identity.signAlbToken({ signer: OTHER_LOAD_BALANCER_ARN }) }) },
    { name: 'forged signature', headers: async () => ({ 'x-amzn-oidc-data': identity.signAlbToken({ signer: LOAD_BALANCER_ARN, forged: true }) }) },
    { name: 'expired token', headers: async () => ({ 'x-amzn-oidc-data': identity.signAlbToken({ signer: LOAD_BALANCER_ARN, expiresInSeconds: -5 }) }) },
  ];

  test.each(albCases)('alb-oidc rejects $name', async ({ headers }) => {
    const { handle, emf } = feedbackEndpoint(ALB_AUTH);
    const body = validBody();

    const result = await handle(albEvent(JSON.stringify(body), await headers()), { awsRequestId: 'lambda-request-401' });

    expect(result.statusCode).toBe(401);
    expect(parse(result).error.message).toBe(UNAUTHORIZED_MESSAGE);
    expect(await storedForRequest(body.requestId as string)).toEqual([]);
    expect(emf).toEqual([]);
  });

  test('alb-oidc user from signed claims', async () => {
    const { handle } = feedbackEndpoint(ALB_AUTH);
    const body = validBody();
    const headers = { 'x-amzn-oidc-data': identity.signAlbToken({ signer: LOAD_BALANCER_ARN, subject: 'alb-user-9' }) };

    const result = await handle(albEvent(JSON.stringify(body), headers));

    expect(result.statusCode).toBe(201);
    expect(await stored(body.requestId as string, 'alb-user-9')).toMatchObject({ score: 4, agent: 'support' });
  });

  test('user id only from the token', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody();
    // A user id claimed in a header the load balancer does not sign is ignored.
    const headers = { ...(await bearer('real-user')), 'x-user-id': 'someone-else', 'x-amzn-oidc-identity': 'someone-else' };

    await handle(albEvent(JSON.stringify(body), headers));

    const records = await storedForRequest(body.requestId as string);
    expect(records.map((record) => record.userId)).toEqual(['real-user']);
  });

  test('auth none stores anonymous', async () => {
    const { handle } = feedbackEndpoint({ type: 'none' });
    const body = validBody();

    const result = await handle(albEvent(JSON.stringify(body), {}));

    expect(result.statusCode).toBe(201);
    expect(await stored(body.requestId as string, 'anonymous')).toMatchObject({ score: 4 });
  });
});

describe('duplicate submissions', () => {
  test('second score is 409', async () => {
    const { handle, emf } = feedbackEndpoint();
    const body = validBody({ score: 5, comment: 'first' });
    await handle(albEvent(JSON.stringify(body), await bearer('user-dup')));

    const second = await handle(
      albEvent(JSON.stringify({ ...body, score: 1, comment: 'second' }), await bearer('user-dup')),
      { awsRequestId: 'lambda-request-dup' },
    );

    expect(second.statusCode).toBe(409);
    expect(parse(second).error).toEqual({
      name: 'DuplicateFeedbackError',
      message: `User user-dup already rated request ${body.requestId}; a score cannot be changed once sent.`,
      requestId: 'lambda-request-dup',
    });
    expect(emf).toHaveLength(1);
    expect(emf[0].Satisfaction).toBe(5);
  });

  test('first record unchanged', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody({ score: 5, comment: 'first' });
    await handle(albEvent(JSON.stringify(body), await bearer('user-dup')));

    await handle(albEvent(JSON.stringify({ ...body, agent: 'nightly-report', score: 1, comment: 'second' }), await bearer('user-dup')));

    expect(await storedForRequest(body.requestId as string)).toEqual([
      expect.objectContaining({ userId: 'user-dup', agent: 'support', score: 5, comment: 'first' }),
    ]);
  });

  test('duplicate logged as rejected', async () => {
    const { handle, decisions } = feedbackEndpoint();
    const body = validBody();
    await handle(albEvent(JSON.stringify(body), await bearer('user-dup')));

    await handle(albEvent(JSON.stringify(body), await bearer('user-dup')));

    expect(decisions().map((line) => line.decision)).toEqual(['recorded', 'rejected']);
    expect(decisions()[1]).toMatchObject({ status: 409, errorName: 'DuplicateFeedbackError', agent: 'support', user: 'user-dup' });
  });

  test('other users may rate', async () => {
    const { handle } = feedbackEndpoint();
    const body = validBody();

    const first = await handle(albEvent(JSON.stringify(body), await bearer('user-a')));
    const second = await handle(albEvent(JSON.stringify({ ...body, score: 2 }), await bearer('user-b')));

    expect(first.statusCode).toBe(201);
    expect(second.statusCode).toBe(201);
    expect(await storedForRequest(body.requestId as string)).toHaveLength(2);
  });

  test('concurrent submissions store one', async () => {
    const { handle, emf } = feedbackEndpoint();
    const body = validBody();
    const headers = await bearer('user-race');

    const results = await Promise.all(
      Array.from({ length: 8 }, (_, index) => handle(albEvent(JSON.stringify({ ...body, score: (index % 5) + 1 }), headers))),
    );

    const statuses = results.map((result) => result.statusCode).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect(await storedForRequest(body.requestId as string)).toHaveLength(1);
    expect(emf).toHaveLength(1);
  });
});

describe('failures', () => {
  test('store failure is 500', async () => {
    const { handle, emf, decisions } = feedbackEndpoint(JWT_AUTH(), 'no-such-table');

    const result = await handle(albEvent(JSON.stringify(validBody()), await bearer()), { awsRequestId: 'lambda-request-500' });

    expect(result.statusCode).toBe(500);
    expect(parse(result).error).toEqual({
      name: 'InternalError',
      message: 'Internal error; quote request id lambda-request-500 when you report it.',
      requestId: 'lambda-request-500',
    });
    expect(emf).toEqual([]);
    // The log line names the underlying error, which the response leaves out.
    expect(decisions()[0]).toMatchObject({ level: 'error', decision: 'rejected', status: 500, errorName: 'ResourceNotFoundException' });
    expect(decisions()[0].errorMessage).toMatch(/non-existent table/i);
  });

  test('unreachable key set is 503', async () => {
    const auth: WorkerAuthConfig = { ...JWT_AUTH(), jwksUri: 'http://127.0.0.1:9/jwks.json' } as WorkerAuthConfig;
    const { handle } = feedbackEndpoint(auth);

    const result = await handle(albEvent(JSON.stringify(validBody()), await bearer()));

    expect(result.statusCode).toBe(503);
    expect(parse(result).error.name).toBe('ServiceUnavailableError');
  });
});

describe('configuration', () => {
  const config = { table: TABLE, agents: AGENTS, auth: { type: 'none' } };

  test('reads the environment', () => {
    expect(loadFeedbackConfigFromEnv({ AGENT_FEEDBACK_CONFIG: JSON.stringify(config) })).toEqual(config);
  });

  test('missing variable', () => {
    expect(() => loadFeedbackConfigFromEnv({})).toThrow(/AGENT_FEEDBACK_CONFIG is not set/);
  });

  test.each([
    ['no table', { ...config, table: undefined }],
    ['agents not a list', { ...config, agents: 'support' }],
    ['agent not a string', { ...config, agents: ['support', 3] }],
    ['unknown auth type', { ...config, auth: { type: 'basic' } }],
    ['no auth', { ...config, auth: undefined }],
  ])('rejects %s', (_name, value) => {
    expect(() => loadFeedbackConfigFromEnv({ AGENT_FEEDBACK_CONFIG: JSON.stringify(value) })).toThrow(
      /must contain table, agents and auth/,
    );
  });
});
