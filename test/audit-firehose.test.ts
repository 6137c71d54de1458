import { AUDIT_FULL_TEXT_ENV, AUDIT_STREAM_ENV, NO_AUDIT, type AuditRecord } from '../lambda/shared/audit';
import {
  AuditDeliveryError,
  createAuditSinkFromEnv,
  createFirehoseBatchSender,
  createFirehoseClient,
  encodeAuditRecord,
  FIREHOSE_MAX_BATCH_BYTES,
  FIREHOSE_MAX_BATCH_RECORDS,
  FIREHOSE_MAX_RECORD_BYTES,
  FirehoseAuditSink,
  type AuditBatchEntryResult,
  type FirehoseAuditSinkOptions,
} from '../lambda/shared/audit-firehose';
import { auditRecordProblems, buildAuditRecord } from '../lambda/shared/audit-record';
import { Logger } from '../lambda/shared/logger';
import { startFirehoseServer, type FirehoseServer } from './support/firehose-server';

const CREDENTIALS = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };

function auditRecord(index: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: '2025-03-04T05:06:07.089Z',
    requestId: `req-${index}`,
    agent: 'billing',
    kind: 'model-call',
    decision: 'completed',
    ...extra,
  };
}

function decode(data: Uint8Array): AuditRecord {
  return JSON.parse(Buffer.from(data).toString('utf8')) as AuditRecord;
}

/**
 * A sender that records each call and answers from a script: `ok` accepts
 * every record, an array of indexes rejects those records, and an Error
 * fails the whole call. Calls past the script are accepted.
 */
class ScriptedSender {
  readonly calls: Uint8Array[][] = [];
  readonly accepted: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  onCall?: (records: readonly Uint8Array[]) => void;
  private readonly script: Array<'ok' | number[] | Error> = [];

  answer(...answers: Array<'ok' | number[] | Error>): void {
    this.script.push(...answers);
  }

  readonly send = async (records: readonly Uint8Array[]): Promise<readonly AuditBatchEntryResult[]> => {
    this.calls.push([...records]);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.onCall?.(records);
    await new Promise((resolve) => setImmediate(resolve));
    this.inFlight -= 1;
    const answer = this.script.shift() ?? 'ok';
    if (answer instanceof Error) throw answer;
    return records.map((data, index) => {
      if (answer !== 'ok' && answer.includes(index)) {
        return { errorCode: 'ServiceUnavailableException', errorMessage: 'Slow down.' };
      }
      this.accepted.push(Buffer.from(data).toString('utf8'));
      return {};
    });
  };
}

interface Harness {
  readonly sink: FirehoseAuditSink;
  readonly sender: ScriptedSender;
  readonly delays: number[];
  readonly logs: Array<Record<string, unknown>>;
  clock: number;
}

function createHarness(options: Partial<FirehoseAuditSinkOptions> = {}): Harness {
  const sender = new ScriptedSender();
  const logs: Array<Record<string, unknown>> = [];
  const harness: Harness = {
    sender,
    delays: [],
    logs,
    clock: 1_000_000,
    sink: undefined as unknown as FirehoseAuditSink,
  };
  (harness as { sink: FirehoseAuditSink }).sink = new FirehoseAuditSink({
    send: sender.send,
    logger: new Logger({}, { sink: (line) => logs.push(JSON.parse(line)) }),
    sleep: async (ms) => {
      harness.delays.push(ms);
    },
    random: () => 0.5,
    now: () => harness.clock,
    // Long enough that no test sees a background delivery it did not start.
    deliveryDelayMs: 60_000,
    ...options,
  });
  return harness;
}

describe('FirehoseAuditSink batching', () => {
  test('record does not send', () => {
    const { sink, sender } = createHarness();

    sink.record(auditRecord(1));

    expect(sender.calls).toHaveLength(0);
    expect(sink.stats().queued).toBe(1);
  });

  test('flush sends newline-delimited JSON', async () => {
    const { sink, sender } = createHarness();
    sink.record(auditRecord(1));
    sink.record(auditRecord(2));

    await sink.flush();

    expect(sender.calls).toHaveLength(1);
    const lines = sender.calls[0].map((data) => Buffer.from(data).toString('utf8'));
    expect(lines).toEqual([`${JSON.stringify(auditRecord(1))}\n`, `${JSON.stringify(auditRecord(2))}\n`]);
    expect(sink.stats()).toEqual({ queued: 0, delivered: 2, dropped: 0, oversized: 0, lost: 0 });
  });

  test('flush of an empty queue sends nothing', async () => {
    const { sink, sender } = createHarness();

    await sink.flush();

    expect(sender.calls).toHaveLength(0);
  });

  test('splits at the record limit', async () => {
    const { sink, sender } = createHarness({ maxQueuedRecords: 2_000 });
    // The full batches start in the background while the records are queued.
    for (let i = 0; i < 1_201; i++) sink.record(auditRecord(i));

    await sink.flush();

    expect(sender.calls.map((call) => call.length)).toEqual([FIREHOSE_MAX_BATCH_RECORDS, FIREHOSE_MAX_BATCH_RECORDS, 201]);
    expect(sender.accepted.map((line) => JSON.parse(line).requestId)).toEqual(Array.from({ length: 1_201 }, (_, i) => `req-${i}`));
  });

  test('splits at the byte limit', async () => {
    const { sink, sender } = createHarness();
    // Each record is just under the record limit, so four fit under the batch limit and a fifth does not.
    const reason = 'x'.repeat(FIREHOSE_MAX_RECORD_BYTES - 200);
    for (let i = 0; i < 5; i++) sink.record(auditRecord(i, { reason }));

    await sink.flush();

    const callBytes = sender.calls.map((call) => call.reduce((sum, data) => sum + data.byteLength, 0));
    expect(sender.calls.map((call) => call.length)).toEqual([4, 1]);
    expect(Math.max(...callBytes)).toBeLessThanOrEqual(FIREHOSE_MAX_BATCH_BYTES);
  });

  test('full batch starts without flush', async () => {
    const { sink, sender } = createHarness({ maxQueuedRecords: 2_000 });

    for (let i = 0; i < FIREHOSE_MAX_BATCH_RECORDS; i++) sink.record(auditRecord(i));
    await new Promise((resolve) => setImmediate(resolve));

    expect(sender.calls).toHaveLength(1);
    expect(sender.calls[0]).toHaveLength(FIREHOSE_MAX_BATCH_RECORDS);
  });

  test('queue is delivered after the delay', async () => {
    const { sink, sender } = createHarness({ deliveryDelayMs: 20 });
    sink.record(auditRecord(1));

    await new Promise((resolve) => setTimeout(resolve, 100));

    expect(sender.calls).toHaveLength(1);
    expect(sink.stats().delivered).toBe(1);
  });

  test('flush delivers records queued meanwhile', async () => {
    const { sink, sender } = createHarness();
    sink.record(auditRecord(1));
    sender.onCall = () => {
      sender.onCall = undefined;
      sink.record(auditRecord(2));
    };

    await sink.flush();

    expect(sender.calls.map((call) => call.map((data) => decode(data).requestId))).toEqual([['req-1'], ['req-2']]);
    expect(sink.stats().queued).toBe(0);
  });

  test('sends one call at a time', async () => {
    const { sink, sender } = createHarness({ maxQueuedRecords: 5_000 });

    for (let i = 0; i < 3 * FIREHOSE_MAX_BATCH_RECORDS; i++) sink.record(auditRecord(i));
    await Promise.all([sink.flush(), sink.flush()]);

    expect(sender.calls).toHaveLength(3);
    expect(sender.maxInFlight).toBe(1);
  });
});

describe('FirehoseAuditSink retries', () => {
  test('retries only the rejected records', async () => {
    const { sink, sender } = createHarness();
    sender.answer([1, 3]);
    for (let i = 0; i < 5; i++) sink.record(auditRecord(i));

    await sink.flush();

    expect(sender.calls.map((call) => call.map((data) => decode(data).requestId))).toEqual([
      ['req-0', 'req-1', 'req-2', 'req-3', 'req-4'],
      ['req-1', 'req-3'],
    ]);
    expect(sender.accepted).toHaveLength(5);
    expect(sink.stats()).toMatchObject({ delivered: 5, lost: 0 });
  });

  test('retries a failed call', async () => {
    const { sink, sender } = createHarness();
    sender.answer(new Error('socket hang up'));
    sink.record(auditRecord(1));

    await sink.flush();

    expect(sender.calls).toHaveLength(2);
    expect(sink.stats().delivered).toBe(1);
  });

  test('backs off with jitter', async () => {
    const { sink, sender, delays } = createHarness({ maxAttempts: 4, retryBaseDelayMs: 100 });
    sender.answer(new Error('one'), new Error('two'), new Error('three'));
    sink.record(auditRecord(1));

    await sink.flush();

    // random() is 0.5, so each delay is half its bound of 100, 200 and 400 ms.
    expect(delays).toEqual([50, 100, 200]);
    expect(sender.calls).toHaveLength(4);
  });

  test('flush rejects after the last attempt', async () => {
    const { sink, sender, logs } = createHarness({ maxAttempts: 3 });
    sender.answer([0], [0], [0]);
    sink.record(auditRecord(1));
    sink.record(auditRecord(2));

    const flushed = sink.flush();

    await expect(flushed).rejects.toThrow(AuditDeliveryError);
    await expect(flushed).rejects.toMatchObject({ lostRecords: 1 });
    expect(sender.calls).toHaveLength(3);
    expect(sink.stats()).toMatchObject({ delivered: 1, lost: 1, queued: 0 });
    const line = logs.find((entry) => entry.message === 'Audit records not delivered to Firehose');
    expect(line).toMatchObject({ level: 'error', lostRecords: 1, requestIds: ['req-1'], errorCodes: ['ServiceUnavailableException'] });
  });

  test('lost records do not block later flushes', async () => {
    const { sink, sender } = createHarness({ maxAttempts: 1 });
    sender.answer(new Error('down'));
    sink.record(auditRecord(1));
    await expect(sink.flush()).rejects.toThrow(AuditDeliveryError);

    sink.record(auditRecord(2));
    await sink.flush();

    expect(sender.accepted.map((line) => JSON.parse(line).requestId)).toEqual(['req-2']);
  });
});

describe('FirehoseAuditSink queue limits', () => {
  test('full queue drops new records', async () => {
    const { sink, sender } = createHarness({ maxQueuedRecords: 3 });

    for (let i = 0; i < 5; i++) sink.record(auditRecord(i));
    await sink.flush();

    expect(sender.accepted.map((line) => JSON.parse(line).requestId)).toEqual(['req-0', 'req-1', 'req-2']);
    expect(sink.stats()).toMatchObject({ dropped: 2, delivered: 3 });
  });

  test('byte limit drops new records', () => {
    const size = encodeAuditRecord(auditRecord(1))!.byteLength;
    const { sink } = createHarness({ maxQueuedBytes: size * 2 });

    for (let i = 1; i <= 3; i++) sink.record(auditRecord(i));

    expect(sink.stats()).toMatchObject({ queued: 2, dropped: 1 });
  });

  test('drop log is rate limited', () => {
    const harness = createHarness({ maxQueuedRecords: 1 });
    const { sink, logs } = harness;
    const dropLines = () => logs.filter((entry) => entry.message === 'Audit records dropped: the audit queue is full');

    sink.record(auditRecord(0));
    sink.record(auditRecord(1));
    sink.record(auditRecord(2));
    harness.clock += 10_000;
    sink.record(auditRecord(3));

    expect(dropLines()).toHaveLength(2);
    expect(dropLines()[0]).toMatchObject({ droppedSinceLastLine: 1, droppedTotal: 1, lastRequestId: 'req-1' });
    expect(dropLines()[1]).toMatchObject({ droppedSinceLastLine: 2, droppedTotal: 3, lastRequestId: 'req-3' });
  });

  test('oversized text is left out', async () => {
    const { sink, sender } = createHarness();
    const record = buildAuditRecord(
      { requestId: 'req-big', agent: 'billing', kind: 'model-call', decision: 'completed', prompt: 'p'.repeat(FIREHOSE_MAX_RECORD_BYTES), output: 'short' },
      { fullText: true },
    );

    sink.record(record);
    await sink.flush();

    const sent = decode(sender.calls[0][0]);
    expect(sent.textOmitted).toBe(true);
    expect(sent.promptText).toBeUndefined();
    expect(sent.outputText).toBeUndefined();
    expect(sent.promptSha256).toBe(record.promptSha256);
    expect(auditRecordProblems(sent)).toEqual([]);
  });

  test('oversized record is dropped', async () => {
    const { sink, sender, logs } = createHarness();

    sink.record(auditRecord(1, { reason: 'r'.repeat(FIREHOSE_MAX_RECORD_BYTES) }));
    await sink.flush();

    expect(sender.calls).toHaveLength(0);
    expect(sink.stats().oversized).toBe(1);
    expect(logs[0]).toMatchObject({ level: 'error', requestId: 'req-1', kind: 'model-call' });
  });
});

describe('FirehoseAuditSink.recordNow', () => {
  test('resolves once accepted', async () => {
    const { sink, sender } = createHarness();
    sink.record(auditRecord(1));

    await sink.recordNow(auditRecord(2, { kind: 'tool-call', tool: 'refund' }));

    expect(sender.calls.map((call) => call.map((data) => decode(data).requestId))).toEqual([['req-2']]);
    expect(sink.stats().queued).toBe(1);
  });

  test('retries a rejected record', async () => {
    const { sink, sender } = createHarness();
    sender.answer([0]);

    await sink.recordNow(auditRecord(1));

    expect(sender.calls).toHaveLength(2);
  });

  test('rejects when never accepted', async () => {
    const { sink, sender } = createHarness({ maxAttempts: 2 });
    sender.answer(new Error('down'), new Error('still down'));

    await expect(sink.recordNow(auditRecord(1))).rejects.toThrow(
      /^Firehose did not accept the audit record after 2 attempts \(last error: Error\), so the action it records must not run\./,
    );
    expect(sink.stats().lost).toBe(1);
  });

  test('rejects an oversized record', async () => {
    const { sink, sender } = createHarness();

    await expect(sink.recordNow(auditRecord(1, { reason: 'r'.repeat(FIREHOSE_MAX_RECORD_BYTES) }))).rejects.toThrow(/exceeds the largest record/);
    expect(sender.calls).toHaveLength(0);
  });
});

describe('FirehoseAuditSink over HTTP', () => {
  let server: FirehoseServer;

  beforeAll(async () => {
    server = await startFirehoseServer();
  });

  afterAll(async () => {
    await server.close();
  });

  beforeEach(() => {
    server.reset();
  });

  function httpSink(maxAttempts = 3): FirehoseAuditSink {
    const client = createFirehoseClient({ region: 'us-east-1', endpoint: server.endpoint, credentials: CREDENTIALS });
    return new FirehoseAuditSink({
      send: createFirehoseBatchSender(client, 'agent-audit'),
      logger: new Logger({}, { sink: () => undefined }),
      maxAttempts,
      retryBaseDelayMs: 1,
      deliveryDelayMs: 60_000,
    });
  }

  test('delivers records to the stream', async () => {
    const sink = httpSink();
    sink.record(auditRecord(1));
    sink.record(auditRecord(2));

    await sink.flush();

    expect(server.calls).toHaveLength(1);
    expect(server.calls[0].streamName).toBe('agent-audit');
    expect(server.calls[0].headers['x-amz-target']).toBe('Firehose_20150804.PutRecordBatch');
    expect(server.accepted).toEqual([`${JSON.stringify(auditRecord(1))}\n`, `${JSON.stringify(auditRecord(2))}\n`]);
  });

  test('retries partial failures', async () => {
    const sink = httpSink();
    server.script({ type: 'partial', failIndexes: [0, 2], errorCode: 'InternalFailure' });
    for (let i = 0; i < 4; i++) sink.record(auditRecord(i));

    await sink.flush();

    expect(server.calls.map((call) => call.records.length)).toEqual([4, 2]);
    expect(server.calls[1].records.map((line) => JSON.parse(line).requestId)).toEqual(['req-0', 'req-2']);
    expect(server.accepted.map((line) => JSON.parse(line).requestId).sort()).toEqual(['req-0', 'req-1', 'req-2', 'req-3']);
    expect(sink.stats()).toMatchObject({ delivered: 4, lost: 0 });
  });

  test('retries a service error', async () => {
    const sink = httpSink();
    server.script({ type: 'error', status: 503, errorType: 'ServiceUnavailableException' });

    await sink.recordNow(auditRecord(1));

    expect(server.calls.map((call) => call.answer.type)).toEqual(['error', 'accept']);
    expect(server.accepted).toHaveLength(1);
  });

  test('rejects after persistent errors', async () => {
    const sink = httpSink(2);
    server.script(
      { type: 'error', status: 500, errorType: 'InternalFailure' },
      { type: 'partial', failIndexes: [0] },
    );
    sink.record(auditRecord(1));

    await expect(sink.flush()).rejects.toMatchObject({ name: 'AuditDeliveryError', lostRecords: 1 });
    expect(server.calls).toHaveLength(2);
    expect(server.accepted).toEqual([]);
  });

  test('sink from the environment delivers', async () => {
    const client = createFirehoseClient({ region: 'us-east-1', endpoint: server.endpoint, credentials: CREDENTIALS });
    const { sink, fullText } = createAuditSinkFromEnv({
      env: { [AUDIT_STREAM_ENV]: 'from-env', [AUDIT_FULL_TEXT_ENV]: 'true' },
      client,
      logger: new Logger({}, { sink: () => undefined }),
    });

    await sink.recordNow(auditRecord(1));

    expect(fullText).toBe(true);
    expect(server.calls[0].streamName).toBe('from-env');
  });
});

describe('createAuditSinkFromEnv', () => {
  test('no stream means no audit', () => {
    expect(createAuditSinkFromEnv({ env: {} })).toEqual({ sink: NO_AUDIT, fullText: false });
  });
});
