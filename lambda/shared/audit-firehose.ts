import { FirehoseClient, PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AwsCredentialIdentity } from '@smithy/types';
import { NO_AUDIT, type AuditRecord, type AuditSink } from './audit';
import { readAuditSettings } from './audit-record';
import { Logger } from './logger';

// PutRecordBatch takes "up to 500 records", each "as large as 1,000 KB (before
// base64 encoding), up to a limit of 4 MB for the entire request", per
// https://docs.aws.amazon.com/goto/WebAPI/firehose-2015-08-04/PutRecordBatch
// The sink reads KB and MB as decimal units, the smaller of the two readings.

/** Maximum records in one PutRecordBatch call. */
export const FIREHOSE_MAX_BATCH_RECORDS = 500;
/** Maximum bytes of record data in one PutRecordBatch call, before base64 encoding. */
export const FIREHOSE_MAX_BATCH_BYTES = 4_000_000;
/** Largest record Firehose accepts, before base64 encoding. */
export const FIREHOSE_MAX_RECORD_BYTES = 1_000_000;

/** Default of {@link FirehoseAuditSinkOptions.maxAttempts}. */
export const DEFAULT_AUDIT_MAX_ATTEMPTS = 3;
/** Default of {@link FirehoseAuditSinkOptions.retryBaseDelayMs}. */
export const DEFAULT_AUDIT_RETRY_BASE_DELAY_MS = 100;
/** Default of {@link FirehoseAuditSinkOptions.maxQueuedRecords}. */
export const DEFAULT_AUDIT_MAX_QUEUED_RECORDS = 10_000;
/** Default of {@link FirehoseAuditSinkOptions.maxQueuedBytes}. */
export const DEFAULT_AUDIT_MAX_QUEUED_BYTES = 16_000_000;
/** Default of {@link FirehoseAuditSinkOptions.deliveryDelayMs}. */
export const DEFAULT_AUDIT_DELIVERY_DELAY_MS = 1_000;

/** Milliseconds between two log lines about records dropped from a full queue. */
const DROP_LOG_INTERVAL_MS = 10_000;
/** Request ids named in the log line of a failed delivery. */
const MAX_LOGGED_REQUEST_IDS = 20;

/** Outcome of one record of a PutRecordBatch call: an error code when Firehose rejected it. */
export interface AuditBatchEntryResult {
  readonly errorCode?: string;
  readonly errorMessage?: string;
}

/**
 * Sends one PutRecordBatch call and returns one result per record, in the
 * order sent. A rejected promise fails every record of the call.
 */
export type AuditBatchSender = (records: readonly Uint8Array[]) => Promise<readonly AuditBatchEntryResult[]>;

/** Settings of {@link createFirehoseClient}. */
export interface FirehoseClientOptions {
  /** @default - the SDK's region chain, AWS_REGION in Lambda and ECS */
  readonly region?: string;
  /** Endpoint URL, for a loopback server in tests. @default - the regional endpoint */
  readonly endpoint?: string;
  /** @default - the SDK's default provider chain */
  readonly credentials?: AwsCredentialIdentity;
  /** Time to open a connection. @default 1000 */
  readonly connectTimeoutMs?: number;
  /** Time from sending a request to its response headers. @default 2000 */
  readonly requestTimeoutMs?: number;
}

/**
 * Creates the Firehose client of the audit sink. The SDK makes one attempt
 * per call, because the sink retries the whole call and the records that
 * Firehose rejected, and short timeouts keep a flush from holding a
 * response for long when Firehose is unreachable.
 */
export function createFirehoseClient(options: FirehoseClientOptions = {}): FirehoseClient {
  return new FirehoseClient({
    region: options.region,
    endpoint: options.endpoint,
    credentials: options.credentials,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: options.connectTimeoutMs ?? 1_000,
      requestTimeout: options.requestTimeoutMs ?? 2_000,
      // Without this flag the SDK only logs a warning when requestTimeout passes.
      throwOnRequestTimeout: true,
    }),
  });
}

/**
 * Returns a sender that calls PutRecordBatch on `streamName`. Firehose
 * returns HTTP 200 when only some records failed, and marks each of those
 * with an ErrorCode in RequestResponses, so the sender returns those codes
 * per record. A response whose RequestResponses does not list every record
 * marks the unlisted ones as failed, so that they are retried.
 */
export function createFirehoseBatchSender(client: FirehoseClient, streamName: string): AuditBatchSender {
  return async (records) => {
    const output = await client.send(
      new PutRecordBatchCommand({
        DeliveryStreamName: streamName,
        Records: records.map((data) => ({ Data: data })),
      }),
    );
    const responses = output.RequestResponses ?? [];
    return records.map((_, index) => {
      const entry = responses[index];
      if (entry === undefined) {
        return { errorCode: 'MissingResponseEntry', errorMessage: 'PutRecordBatch returned no entry for this record' };
      }
      return entry.ErrorCode === undefined ? {} : { errorCode: entry.ErrorCode, errorMessage: entry.ErrorMessage };
    });
  };
}

/**
 * Delivery of some audit records failed after every attempt. The records
 * are dropped, counted in the sink's stats and named by request id in its log.
 */
export class AuditDeliveryError extends Error {
  public override readonly name = 'AuditDeliveryError';

  constructor(
    message: string,
    /** Records that were not delivered. */
    public readonly lostRecords: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Counters of a {@link FirehoseAuditSink} since it was created. */
export interface AuditSinkStats {
  /** Records waiting for delivery. */
  readonly queued: number;
  /** Records Firehose accepted. */
  readonly delivered: number;
  /** Records dropped because the queue was full. */
  readonly dropped: number;
  /** Records dropped because they exceed the largest record Firehose accepts, even without text. */
  readonly oversized: number;
  /** Records Firehose did not accept after every attempt. */
  readonly lost: number;
}

/** Settings of {@link FirehoseAuditSink}. */
export interface FirehoseAuditSinkOptions {
  /** Sends one PutRecordBatch call, such as createFirehoseBatchSender. */
  readonly send: AuditBatchSender;
  /**
   * Logger for dropped and lost records.
   * @default - a Logger writing to stdout
   */
  readonly logger?: Logger;
  /**
   * Calls of `send` for one record before it counts as lost, the first one included.
   * @default DEFAULT_AUDIT_MAX_ATTEMPTS
   */
  readonly maxAttempts?: number;
  /**
   * Upper bound of the first retry's delay. Each later retry doubles it, and
   * the delay is drawn at random below the bound (full jitter), so that
   * instances retrying together spread out.
   * @default DEFAULT_AUDIT_RETRY_BASE_DELAY_MS
   */
  readonly retryBaseDelayMs?: number;
  /**
   * Maximum records in the queue, beyond which `record` drops new ones.
   * @default DEFAULT_AUDIT_MAX_QUEUED_RECORDS
   */
  readonly maxQueuedRecords?: number;
  /**
   * Maximum bytes of encoded records in the queue, beyond which `record` drops new ones.
   * @default DEFAULT_AUDIT_MAX_QUEUED_BYTES
   */
  readonly maxQueuedBytes?: number;
  /**
   * Milliseconds after the first queued record at which the sink delivers
   * the queue in the background, when no flush or full batch came first.
   * @default DEFAULT_AUDIT_DELIVERY_DELAY_MS
   */
  readonly deliveryDelayMs?: number;
  /** Waits between attempts. @default - setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Random number in [0, 1) for the retry jitter. @default Math.random */
  readonly random?: () => number;
  /** Clock in epoch milliseconds, for rate-limiting log lines. @default Date.now */
  readonly now?: () => number;
}

interface QueuedRecord {
  readonly data: Uint8Array;
  readonly requestId: string;
}

interface DeliveryResult {
  readonly lost: readonly QueuedRecord[];
  /** Error codes of the last attempt, or the error that failed it. */
  readonly lastErrors: readonly string[];
  readonly cause?: unknown;
}

/**
 * Encodes a record as one line of JSON with a newline, so that the objects
 * Firehose writes to S3 are newline-delimited JSON, which Athena's JSON
 * SerDe reads one record per line. A record over the largest record
 * Firehose accepts is written again without its prompt and output text and
 * marked `textOmitted`. Returns undefined when even that is too large.
 */
export function encodeAuditRecord(record: AuditRecord): Uint8Array | undefined {
  const data = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
  if (data.byteLength <= FIREHOSE_MAX_RECORD_BYTES) {
    return data;
  }
  if (record.promptText === undefined && record.outputText === undefined) {
    return undefined;
  }
  const { promptText: _prompt, outputText: _output, ...rest } = record;
  return encodeAuditRecord({ ...rest, textOmitted: true });
}

/**
 * Audit sink that delivers records to a Firehose stream with PutRecordBatch.
 *
 * `record` encodes the record and queues it without waiting. The queue is
 * delivered in batches of at most FIREHOSE_MAX_BATCH_RECORDS records and
 * FIREHOSE_MAX_BATCH_BYTES bytes: at once in the background when a full
 * batch is queued, after `deliveryDelayMs` otherwise, and whenever `flush`
 * is called. A full queue drops the new record, counts it and logs the count
 * at most once per 10 seconds, so a request never waits for room.
 *
 * Each call is retried with exponential backoff and full jitter, and a call
 * that succeeded with a FailedPutCount retries only the records Firehose
 * rejected. After `maxAttempts` calls a record counts as lost. With the
 * defaults of createFirehoseClient a flush of one batch therefore ends
 * within about 3 × 2 s plus 0.3 s of backoff.
 */
export class FirehoseAuditSink implements AuditSink {
  private readonly send: AuditBatchSender;
  private readonly logger: Logger;
  private readonly maxAttempts: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxQueuedRecords: number;
  private readonly maxQueuedBytes: number;
  private readonly deliveryDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => number;

  private queue: QueuedRecord[] = [];
  private queuedBytes = 0;
  private draining?: Promise<number>;
  private timer?: NodeJS.Timeout;
  private delivered = 0;
  private dropped = 0;
  private oversized = 0;
  private lost = 0;
  private droppedSinceLog = 0;
  private lastDropLogAt = Number.NEGATIVE_INFINITY;

  constructor(options: FirehoseAuditSinkOptions) {
    this.send = options.send;
    this.logger = options.logger ?? new Logger();
    this.maxAttempts = options.maxAttempts ?? DEFAULT_AUDIT_MAX_ATTEMPTS;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? DEFAULT_AUDIT_RETRY_BASE_DELAY_MS;
    this.maxQueuedRecords = options.maxQueuedRecords ?? DEFAULT_AUDIT_MAX_QUEUED_RECORDS;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_AUDIT_MAX_QUEUED_BYTES;
    this.deliveryDelayMs = options.deliveryDelayMs ?? DEFAULT_AUDIT_DELIVERY_DELAY_MS;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) {
      throw new Error(`FirehoseAuditSink: maxAttempts must be a whole number of 1 or more (got ${this.maxAttempts}).`);
    }
  }

  record(record: AuditRecord): void {
    const data = this.encode(record);
    if (data === undefined) {
      return;
    }
    const full =
      this.queue.length >= this.maxQueuedRecords || this.queuedBytes + data.byteLength > this.maxQueuedBytes;
    if (full) {
      this.dropFromFullQueue(record);
      return;
    }
    this.queue.push({ data, requestId: record.requestId });
    this.queuedBytes += data.byteLength;
    if (this.queue.length >= FIREHOSE_MAX_BATCH_RECORDS || this.queuedBytes >= FIREHOSE_MAX_BATCH_BYTES) {
      this.deliverInBackground();
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.deliverInBackground();
      }, this.deliveryDelayMs).unref();
    }
  }

  /**
   * Delivers `record` in a call of its own, ahead of the queue, and resolves
   * once Firehose accepted it. Rejects with AuditDeliveryError when it was
   * not accepted after every attempt, and with an Error when the record is
   * too large to deliver.
   */
  async recordNow(record: AuditRecord): Promise<void> {
    const data = this.encode(record);
    if (data === undefined) {
      throw new Error(
        `Audit record of request ${record.requestId} exceeds the largest record Firehose accepts ` +
          `(${FIREHOSE_MAX_RECORD_BYTES} bytes), so it was not delivered; shorten its reason.`,
      );
    }
    const result = await this.deliver([{ data, requestId: record.requestId }]);
    if (result.lost.length > 0) {
      throw this.deliveryError(result);
    }
  }

  /**
   * Delivers every queued record, also those queued while it runs, and
   * rejects with AuditDeliveryError when some could not be delivered.
   */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const lost = await this.drain();
    if (lost > 0) {
      throw new AuditDeliveryError(
        `${lost} audit records were not delivered to Firehose after ${this.maxAttempts} attempts; ` +
          'their request ids are in the error log lines of the audit sink.',
        lost,
      );
    }
  }

  stats(): AuditSinkStats {
    return {
      queued: this.queue.length,
      delivered: this.delivered,
      dropped: this.dropped,
      oversized: this.oversized,
      lost: this.lost,
    };
  }

  private encode(record: AuditRecord): Uint8Array | undefined {
    const data = encodeAuditRecord(record);
    if (data === undefined) {
      this.oversized += 1;
      this.logger.error('Audit record dropped: it exceeds the largest record Firehose accepts', {
        requestId: record.requestId,
        agent: record.agent,
        kind: record.kind,
        maxRecordBytes: FIREHOSE_MAX_RECORD_BYTES,
      });
    }
    return data;
  }

  private dropFromFullQueue(record: AuditRecord): void {
    this.dropped += 1;
    this.droppedSinceLog += 1;
    if (this.now() - this.lastDropLogAt < DROP_LOG_INTERVAL_MS) {
      return;
    }
    this.logger.error('Audit records dropped: the audit queue is full', {
      droppedSinceLastLine: this.droppedSinceLog,
      droppedTotal: this.dropped,
      lastRequestId: record.requestId,
      maxQueuedRecords: this.maxQueuedRecords,
      maxQueuedBytes: this.maxQueuedBytes,
    });
    this.droppedSinceLog = 0;
    this.lastDropLogAt = this.now();
  }

  private deliverInBackground(): void {
    this.drain().catch((error) => this.logger.error('Delivering audit records failed unexpectedly', {}, error));
  }

  /**
   * Delivers the queue after any delivery already running, and returns how
   * many records were lost by both. Deliveries run one at a time, so that a
   * record is never in two calls at once.
   */
  private drain(): Promise<number> {
    const previous = this.draining ?? Promise.resolve(0);
    const run = previous.then(async (lostBefore) => lostBefore + (await this.deliverQueue()));
    this.draining = run;
    const clear = () => {
      if (this.draining === run) this.draining = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /** Delivers the queue batch by batch until it is empty, and returns how many records were lost. */
  private async deliverQueue(): Promise<number> {
    let lost = 0;
    while (this.queue.length > 0) {
      const result = await this.deliver(this.takeBatch());
      lost += result.lost.length;
    }
    return lost;
  }

  private takeBatch(): QueuedRecord[] {
    let count = 0;
    let bytes = 0;
    while (count < this.queue.length && count < FIREHOSE_MAX_BATCH_RECORDS) {
      const size = this.queue[count].data.byteLength;
      if (count > 0 && bytes + size > FIREHOSE_MAX_BATCH_BYTES) break;
      bytes += size;
      count += 1;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, count);
  }

  /** Sends `records`, retrying the failed ones, and logs those still failed after the last attempt. */
  private async deliver(records: readonly QueuedRecord[]): Promise<DeliveryResult> {
    let pending = records;
    let lastErrors: string[] = [];
    let cause: unknown;
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await this.send(pending.map((record) => record.data));
        const failed = pending.filter((_, index) => {
          const result = results[index];
          return result === undefined || result.errorCode !== undefined;
        });
        lastErrors = [...new Set(results.map((result) => result?.errorCode).filter((code) => code !== undefined))];
        cause = undefined;
        this.delivered += pending.length - failed.length;
        pending = failed;
      } catch (error) {
        lastErrors = [error instanceof Error ? error.name : String(error)];
        cause = error;
      }
      if (pending.length === 0 || attempt >= this.maxAttempts) {
        break;
      }
      const boundMs = this.retryBaseDelayMs * 2 ** (attempt - 1);
      await this.sleep(Math.floor(this.random() * boundMs));
    }
    const result = { lost: pending, lastErrors, cause };
    if (pending.length > 0) {
      this.lost += pending.length;
      const requestIds = [...new Set(pending.map((record) => record.requestId))];
      this.logger.error(
        'Audit records not delivered to Firehose',
        {
          lostRecords: pending.length,
          attempts: this.maxAttempts,
          errorCodes: lastErrors,
          requestIds: requestIds.slice(0, MAX_LOGGED_REQUEST_IDS),
          moreRequestIds: Math.max(0, requestIds.length - MAX_LOGGED_REQUEST_IDS),
        },
        cause,
      );
    }
    return result;
  }

  private deliveryError(result: DeliveryResult): AuditDeliveryError {
    return new AuditDeliveryError(
      `Firehose did not accept the audit record after ${this.maxAttempts} attempts ` +
        `(last error: ${result.lastErrors.join(', ') || 'unknown'}), so the action it records must not run. ` +
        "Retry later; if it persists, check the stream and the caller's firehose:PutRecordBatch permission.",
      result.lost.length,
      { cause: result.cause },
    );
  }
}

/** Settings of {@link createAuditSinkFromEnv}. */
export interface AuditSinkFromEnvOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly logger?: Logger;
  /** Client for the stream. @default - createFirehoseClient() */
  readonly client?: FirehoseClient;
}

/**
 * Returns the process's audit sink and whether records keep full text: a
 * FirehoseAuditSink on the stream named by AUDIT_STREAM_ENV, or NO_AUDIT
 * when the variable is unset. Raises an error when AUDIT_FULL_TEXT_ENV is invalid.
 */
export function createAuditSinkFromEnv(options: AuditSinkFromEnvOptions = {}): {
  readonly sink: AuditSink;
  readonly fullText: boolean;
} {
  const settings = readAuditSettings(options.env);
  if (settings.streamName === undefined) {
    return { sink: NO_AUDIT, fullText: settings.fullText };
  }
  const client = options.client ?? createFirehoseClient();
  return {
    sink: new FirehoseAuditSink({
      send: createFirehoseBatchSender(client, settings.streamName),
      logger: options.logger,
    }),
    fullText: settings.fullText,
  };
}
