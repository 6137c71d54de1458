/**
 * Loopback server that speaks the Firehose PutRecordBatch operation of the
 * awsJson1_1 protocol (POST / with `X-Amz-Target:
 * Firehose_20150804.PutRecordBatch`), so that tests drive the real
 * `@aws-sdk/client-firehose` against scripted responses: every record
 * accepted, some records rejected with an ErrorCode, or an error status.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

const PUT_RECORD_BATCH_TARGET = 'Firehose_20150804.PutRecordBatch';

/** Accepts every record. */
export interface AcceptAnswer {
  readonly type: 'accept';
}

/** Returns 200 with a FailedPutCount: the records at `failIndexes` get `errorCode`. */
export interface PartialAnswer {
  readonly type: 'partial';
  readonly failIndexes: readonly number[];
  /** @default 'ServiceUnavailableException' */
  readonly errorCode?: string;
}

/** Returns an error status, which fails every record of the call. */
export interface ErrorAnswer {
  readonly type: 'error';
  readonly status: number;
  /** AWS error type, which the SDK turns into the exception name. */
  readonly errorType: string;
}

/** One scripted answer; each call consumes the next, and calls past the script are accepted. */
export type FirehoseAnswer = AcceptAnswer | PartialAnswer | ErrorAnswer;

/** A PutRecordBatch call the server received. */
export interface FirehoseCall {
  readonly streamName: string;
  /** Decoded data of every record sent, in order. */
  readonly records: readonly string[];
  /** Bytes of record data, before base64 encoding. */
  readonly dataBytes: number;
  readonly headers: IncomingHttpHeaders;
  /** Answer given to the call. */
  readonly answer: FirehoseAnswer;
}

/** A running loopback Firehose server. */
export interface FirehoseServer {
  /** Base URL, such as `http://127.0.0.1:40123`. */
  readonly endpoint: string;
  /** Calls received so far, oldest first. */
  readonly calls: readonly FirehoseCall[];
  /** Data of every record the server accepted, in the order accepted. */
  readonly accepted: readonly string[];
  /** Appends answers to the script. */
  script(...answers: FirehoseAnswer[]): void;
  /** Clears the script, the calls and the accepted records. */
  reset(): void;
  close(): Promise<void>;
}

interface PutRecordBatchBody {
  readonly DeliveryStreamName?: string;
  readonly Records?: ReadonlyArray<{ readonly Data?: string }>;
}

function writeJson(response: http.ServerResponse, status: number, body: unknown, errorType?: string): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    ...(errorType === undefined ? {} : { 'x-amzn-errortype': errorType }),
  });
  response.end(text);
}

/** Starts the server on 127.0.0.1 and a free port. */
export async function startFirehoseServer(): Promise<FirehoseServer> {
  const script: FirehoseAnswer[] = [];
  const calls: FirehoseCall[] = [];
  const accepted: string[] = [];

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method !== 'POST' || request.headers['x-amz-target'] !== PUT_RECORD_BATCH_TARGET) {
        writeJson(response, 400, { __type: 'UnknownOperationException', message: 'Only PutRecordBatch is served.' }, 'UnknownOperationException');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as PutRecordBatchBody;
      const data = (body.Records ?? []).map((record) => Buffer.from(record.Data ?? '', 'base64'));
      const answer = script.shift() ?? { type: 'accept' };
      calls.push({
        streamName: body.DeliveryStreamName ?? '',
        records: data.map((item) => item.toString('utf8')),
        dataBytes: data.reduce((sum, item) => sum + item.byteLength, 0),
        headers: request.headers,
        answer,
      });
      if (answer.type === 'error') {
        writeJson(response, answer.status, { __type: answer.errorType, message: `Scripted ${answer.errorType}` }, answer.errorType);
        return;
      }
      const failed = new Set(answer.type === 'partial' ? answer.failIndexes : []);
      const errorCode = answer.type === 'partial' ? (answer.errorCode ?? 'ServiceUnavailableException') : '';
      const responses = data.map((item, index) => {
        if (failed.has(index)) {
          return { ErrorCode: errorCode, ErrorMessage: `Scripted failure of record ${index}` };
        }
        accepted.push(item.toString('utf8'));
        return { RecordId: randomUUID() };
      });
      const failedPutCount = responses.filter((entry) => 'ErrorCode' in entry).length;
      writeJson(response, 200, { Encrypted: false, FailedPutCount: failedPutCount, RequestResponses: responses });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    accepted,
    script: (...answers) => {
      script.push(...answers);
    },
    reset: () => {
      script.length = 0;
      calls.length = 0;
      accepted.length = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
