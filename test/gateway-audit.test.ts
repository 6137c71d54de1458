/**
 * Audit records of the gateway: model calls and budget rejections, buffered
 * and streamed, delivered by the real Firehose sink and client to a
 * loopback PutRecordBatch server before the handler returns or the stream
 * ends. Bedrock is a loopback server and the budget ledger is DynamoDB Local.
 */
import { Writable } from 'node:stream';
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayStreamHandler,
  type GatewayHandlerOptions,
} from '../lambda/gateway';
import { budgetReason, failedCallOutcome } from '../lambda/gateway/audit';
import { SuspensionStore } from '../lambda/gateway/budget';
import type { AuditRecord } from '../lambda/shared/audit';
import { createFirehoseBatchSender, createFirehoseClient, FirehoseAuditSink } from '../lambda/shared/audit-firehose';
import { auditRecordProblems } from '../lambda/shared/audit-record';
import { canonicalJson, canonicalSha256, sha256Hex } from '../lambda/shared/canonical';
import type { GatewayRuntimeConfig, GatewayStreamEvent } from '../lambda/shared/contracts';
import { AgentSuspendedError, GuardrailBlockedError, ModelCallError, RateLimitedError } from '../lambda/shared/errors';
import { Logger } from '../lambda/shared/logger';
import { MetricsWriter } from '../lambda/shared/metrics';
import { errorResponse, guardrailResponse, startBedrockServer, textResponse, type BedrockServer } from './support/bedrock-server';
import { streamResponse, textStreamSteps } from './support/bedrock-stream';
import { startDynamoDbLocal, type DynamoDbLocal } from './support/dynamodb-local';
import { expectFailure, expectSuccess, gatewayRequest, TEST_CREDENTIALS } from './support/failover-harness';
import { startFirehoseServer, type FirehoseServer } from './support/firehose-server';
import { createEventSink } from './support/ndjson';

const TABLE = 'gateway-audit';
const PROFILE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const PRICE = { inputPerMillion: 3, outputPerMillion: 15, cacheReadPerMillion: 0.3, cacheWritePerMillion: 3.75 };
const NOW = Date.UTC(2026, 11, 4, 9, 30, 0);
const GUARDRAIL = { id: 'gr1234abcd', version: '3', region: 'us-east-1' };

let dynamo: DynamoDbLocal;
let bedrock: BedrockServer;
let firehose: FirehoseServer;
const clients: BedrockRuntimeClient[] = [];
let logLines: Array<Record<string, any>> = [];

beforeAll(async () => {
  dynamo = await startDynamoDbLocal(TABLE);
  bedrock = await startBedrockServer();
  firehose = await startFirehoseServer();
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  await firehose?.close();
  await bedrock?.close();
  await dynamo?.stop();
});

beforeEach(() => {
  bedrock.reset();
  firehose.reset();
  logLines = [];
});

function config(agent: string, dailyTokens = 10_000): GatewayRuntimeConfig {
  return {
    agents: { [agent]: { route: [{ region: 'us-east-1', modelId: PROFILE }], maxTokensPerCall: 100 } },
    client: { sdkMaxAttempts: 1 },
    guardrail: GUARDRAIL,
    budget: {
      table: TABLE,
      leaseSeconds: 120,
      failOpen: false,
      allowAnonymous: false,
      agents: { [agent]: { agent: { daily: { tokens: dailyTokens } } } },
      prices: { [PROFILE]: PRICE },
    },
  };
}

function options(gatewayConfig: GatewayRuntimeConfig, fullText = false): GatewayHandlerOptions {
  const logger = new Logger({}, { sink: (line) => logLines.push(JSON.parse(line)) });
  const firehoseClient = createFirehoseClient({ region: 'us-east-1', endpoint: firehose.endpoint, credentials: TEST_CREDENTIALS });
  return {
    config: gatewayConfig,
    now: () => NOW,
    logger,
    metrics: new MetricsWriter({ sink: () => undefined, now: () => NOW }),
    budgetTableClient: dynamo.documentClient,
    audit: new FirehoseAuditSink({
      send: createFirehoseBatchSender(firehoseClient, 'gateway-audit'),
      logger,
      retryBaseDelayMs: 1,
      deliveryDelayMs: 60_000,
    }),
    auditFullText: fullText,
    clientForRegion: (region, settings) => {
      const client = createBedrockClient(region, { settings, endpoint: bedrock.endpoint, credentials: TEST_CREDENTIALS });
      clients.push(client);
      return client;
    },
  };
}

/** Returns the records Firehose accepted, parsed. */
function delivered(): AuditRecord[] {
  return firehose.accepted.map((line) => JSON.parse(line) as AuditRecord);
}

/** Returns the one delivered record of `kind`, failing when there is none or more than one. */
function onlyRecord(kind: AuditRecord['kind']): AuditRecord {
  const records = delivered().filter((record) => record.kind === kind);
  expect(records).toHaveLength(1);
  return records[0];
}

describe('buffered model calls', () => {
  test('completed call is recorded', async () => {
    const handle = createGatewayHandler(options(config('billing')));
    bedrock.script(textResponse('Paris.', { usage: { inputTokens: 12, outputTokens: 3 } }));
    const request = gatewayRequest('billing', { requestId: 'audit-1', system: 'Answer briefly.' });

    const response = expectSuccess(await handle(request));

    const record = onlyRecord('model-call');
    expect(record).toMatchObject({
      requestId: 'audit-1',
      agent: 'billing',
      userId: 'user-7',
      sessionId: 'session-3',
      decision: 'completed',
      reason: 'stop reason end_turn',
      model: PROFILE,
      region: 'us-east-1',
      tokens: { input: 12, output: 3, total: 15 },
    });
    expect(record.costUsd).toBeCloseTo((12 * 3 + 3 * 15) / 1_000_000, 12);
    expect(record.promptSha256).toBe(canonicalSha256({ system: 'Answer briefly.', messages: request.messages }));
    expect(record.outputSha256).toBe(canonicalSha256(response.output));
    expect(record.time).toBe(new Date(record.time).toISOString());
    expect(auditRecordProblems(record)).toEqual([]);
  });

  test('records are delivered before return', async () => {
    const handle = createGatewayHandler(options(config('billing')));
    bedrock.script(textResponse('Paris.'));

    expectSuccess(await handle(gatewayRequest('billing', { requestId: 'audit-2' })));

    expect(firehose.calls).toHaveLength(1);
    expect(firehose.calls[0].streamName).toBe('gateway-audit');
    expect(delivered().map((record) => record.requestId)).toEqual(['audit-2']);
  });

  test('text is left out by default', async () => {
    const handle = createGatewayHandler(options(config('billing')));
    bedrock.script(textResponse('Paris.'));

    expectSuccess(await handle(gatewayRequest('billing', { requestId: 'audit-3' })));

    const record = onlyRecord('model-call');
    expect(record.promptText).toBeUndefined();
    expect(record.outputText).toBeUndefined();
    expect(firehose.accepted[0]).not.toContain('capital of France');
  });

  test('full text is kept when enabled', async () => {
    const handle = createGatewayHandler(options(config('billing'), true));
    bedrock.script(textResponse('Paris.'));

    expectSuccess(await handle(gatewayRequest('billing', { requestId: 'audit-4' })));

    const record = onlyRecord('model-call');
    expect(record.promptText).toContain('What is the capital of France?');
    expect(record.outputText).toContain('Paris.');
    expect(sha256Hex(record.promptText!)).toBe(record.promptSha256);
    expect(sha256Hex(record.outputText!)).toBe(record.outputSha256);
  });

  test('failed call is recorded', async () => {
    const handle = createGatewayHandler(options(config('refunds')));
    bedrock.script(errorResponse(400, 'ValidationException'));

    expectFailure(await handle(gatewayRequest('refunds', { requestId: 'audit-5' })));

    const record = onlyRecord('model-call');
    // Bedrock's ValidationException reaches the caller as InvalidRequestError.
    expect(record.decision).toBe('failed');
    expect(record.reason).toBe('InvalidRequestError');
    expect(record.model).toBe(PROFILE);
    expect(record.outputSha256).toBeUndefined();
  });

  test('guardrail block is recorded', async () => {
    const handle = createGatewayHandler(options(config('support')));
    bedrock.script(guardrailResponse({ side: 'input', guardrailId: GUARDRAIL.id }));

    expectFailure(await handle(gatewayRequest('support', { requestId: 'audit-6' })));

    const record = onlyRecord('model-call');
    expect(record.decision).toBe('blocked');
    expect(record.layer).toBe('guardrail input');
    expect(record.reason).toMatch(/^GuardrailBlockedError: guardrail input/);
    expect(record.tokens).toBeDefined();
  });

  test('invalid request writes no record', async () => {
    const handle = createGatewayHandler(options(config('billing')));

    expectFailure(await handle({ requestId: 'audit-7', agent: 'billing' }));

    expect(delivered()).toEqual([]);
  });

  test('unreachable audit stream keeps the response', async () => {
    const handle = createGatewayHandler(options(config('billing')));
    bedrock.script(textResponse('Paris.'));
    firehose.script(...Array.from({ length: 3 }, () => ({ type: 'error' as const, status: 500, errorType: 'InternalFailure' })));

    expectSuccess(await handle(gatewayRequest('billing', { requestId: 'audit-8' })));

    expect(firehose.calls).toHaveLength(3);
    const line = logLines.find((entry) => entry.message === 'Delivering the audit records of the request failed');
    expect(line).toMatchObject({ level: 'error', requestId: 'audit-8', errorName: 'AuditDeliveryError' });
  });
});

describe('budget decisions', () => {
  test('spent budget is recorded', async () => {
    const handle = createGatewayHandler(options(config('orders', 50)));

    expectFailure(await handle(gatewayRequest('orders', { requestId: 'audit-9' })));

    const record = onlyRecord('budget');
    expect(record).toMatchObject({ requestId: 'audit-9', agent: 'orders', userId: 'user-7', decision: 'rejected' });
    expect(record.reason).toBe('BudgetExceededError: agent orders day limit of 50 tokens, 0 spent');
    expect(delivered().filter((entry) => entry.kind === 'model-call')).toEqual([]);
  });

  test('suspension is recorded', async () => {
    const handle = createGatewayHandler(options(config('paused')));
    await new SuspensionStore({ client: dynamo.documentClient, table: TABLE }).suspend({
      agent: 'paused',
      reason: 'anomaly',
      suspendedBy: 'alarm:TokenAnomaly',
    });

    expectFailure(await handle(gatewayRequest('paused', { requestId: 'audit-10' })));

    expect(onlyRecord('budget')).toMatchObject({ decision: 'rejected', reason: 'AgentSuspendedError: anomaly' });
  });
});

describe('streamed model calls', () => {
  test('completed stream is recorded', async () => {
    const stream = createGatewayStreamHandler(options(config('chat')));
    bedrock.script(streamResponse(textStreamSteps(['Par', 'is.'], { usage: { inputTokens: 8, outputTokens: 2 } })));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(gatewayRequest('chat', { requestId: 'audit-11', stream: true }), writable);

    expect(collector.events.at(-1)?.type).toBe('usage');
    const record = onlyRecord('model-call');
    expect(record).toMatchObject({ decision: 'completed', tokens: { input: 8, output: 2, total: 10 }, model: PROFILE });
    expect(record.outputSha256).toBe(canonicalSha256({ role: 'assistant', content: [{ text: 'Paris.' }] }));
  });

  test('stream flushes before it ends', async () => {
    const stream = createGatewayStreamHandler(options(config('chat')));
    bedrock.script(streamResponse(textStreamSteps(['Par', 'is.'])));
    const sequence: string[] = [];
    const writable = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          sequence.push(`event:${JSON.parse(line).type}`);
        }
        done();
      },
      final(done) {
        sequence.push(`end with ${firehose.accepted.length} audit record`);
        done();
      },
    });

    await stream(gatewayRequest('chat', { requestId: 'audit-12', stream: true }), writable);

    expect(sequence.slice(-2)).toEqual(['event:usage', 'end with 1 audit record']);
  });

  test('failed stream is recorded', async () => {
    const stream = createGatewayStreamHandler(options(config('chat')));
    bedrock.script(errorResponse(400, 'ValidationException'));
    const { writable, collector } = createEventSink<GatewayStreamEvent>();

    await stream(gatewayRequest('chat', { requestId: 'audit-13', stream: true }), writable);

    expect(collector.events.at(-1)?.type).toBe('error');
    expect(onlyRecord('model-call')).toMatchObject({ decision: 'failed', model: PROFILE, requestId: 'audit-13' });
  });

  test('stream budget rejection is recorded', async () => {
    const stream = createGatewayStreamHandler(options(config('stream-orders', 50)));
    const { writable } = createEventSink<GatewayStreamEvent>();

    await stream(gatewayRequest('stream-orders', { requestId: 'audit-14', stream: true }), writable);

    expect(onlyRecord('budget')).toMatchObject({ decision: 'rejected', requestId: 'audit-14' });
  });
});

describe('audit reasons', () => {
  test('guardrail block names layer and policy', () => {
    const error = new GuardrailBlockedError('blocked', 'r', 'tool result', 'contentPolicy PROMPT_ATTACK');

    expect(failedCallOutcome(error)).toEqual({
      decision: 'blocked',
      reason: 'GuardrailBlockedError: tool result (contentPolicy PROMPT_ATTACK)',
      layer: 'tool result',
    });
  });

  test('model error names its code', () => {
    expect(failedCallOutcome(new ModelCallError('failed', 'r', 'ThrottlingException'))).toEqual({
      decision: 'failed',
      reason: 'ModelCallError: ThrottlingException',
    });
  });

  test('rate limit names the limit', () => {
    const details = { scope: 'user' as const, subject: 'chat/user-7', window: 'minute' as const, unit: 'requests', limit: 5, spent: 5, resetsAt: '2026-12-04T09:31:00.000Z' };

    expect(budgetReason(new RateLimitedError('limited', 'r', details))).toBe('RateLimitedError: user chat/user-7 minute limit of 5 requests, 5 spent');
  });

  test('timed suspension names its end', () => {
    const error = new AgentSuspendedError('suspended', 'r', { agent: 'chat', reason: 'budget-exhausted', until: '2026-12-05T00:00:00.000Z' });

    expect(budgetReason(error)).toBe('AgentSuspendedError: budget-exhausted until 2026-12-05T00:00:00.000Z');
  });

  test('canonical prompt text hashes', () => {
    // The record's promptText is canonical JSON, so a reviewer recomputes the hash from it.
    expect(sha256Hex(canonicalJson({ b: 1, a: 2 }))).toBe(canonicalSha256({ a: 2, b: 1 }));
  });
});
