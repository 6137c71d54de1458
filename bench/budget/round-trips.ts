/**
 * Counts the DynamoDB round trips of the budget ledger with a middleware on
 * the ledger's client, and attributes each one to reserve or settle from
 * the request body it sends.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { FinalizeHandler, FinalizeHandlerArguments, MetadataBearer } from '@smithy/types';
import { performance } from 'node:perf_hooks';
import {
  STATE_TABLE_CONNECT_TIMEOUT_MS,
  STATE_TABLE_MAX_ATTEMPTS,
  STATE_TABLE_REQUEST_TIMEOUT_MS,
} from '../../lambda/gateway';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../test/support/dynamodb-local';

/** Ledger operation a round trip belongs to. */
export type LedgerPhase = 'reserve' | 'settle' | 'other';

/** One HTTP request to DynamoDB and its response, retries counted separately. */
export interface RoundTrip {
  /** DynamoDB operation from the `X-Amz-Target` header, such as `TransactWriteItems`. */
  readonly operation: string;
  readonly phase: LedgerPhase;
  /** Gateway request id the round trip was for, when the request body names it. */
  readonly requestId?: string;
  /** `performance.now()` when the request was sent and when its response was parsed. */
  readonly startedAt: number;
  readonly endedAt: number;
  /** Error name, such as `TransactionCanceledException`, or undefined on success. */
  readonly error?: string;
}

const RESERVATION_PREFIX = 'reservation#';

type AttributeMap = Record<string, { S?: string } | undefined>;

interface TransactBody {
  readonly TransactItems?: Array<{
    readonly Put?: { readonly Item?: AttributeMap };
    readonly Update?: {
      readonly Key?: AttributeMap;
      readonly ExpressionAttributeValues?: AttributeMap;
    };
  }>;
}

function requestIdOfKey(key: AttributeMap | undefined): string | undefined {
  const pk = key?.pk?.S;
  return pk?.startsWith(RESERVATION_PREFIX) ? pk.slice(RESERVATION_PREFIX.length) : undefined;
}

/**
 * Classifies one request from its DynamoDB JSON body. A reserve is the
 * transaction that puts a record in state `reserved`, and a settle is the
 * transaction that moves one to `settled`. A GetItem of a reservation record
 * is counted as settle, because a settle without the reservation's handle,
 * or one whose transaction found the state already moved, reads the record
 * first. A release after a reserve call that failed without a response reads
 * it too, which happens only in the admission rounds, and those count round
 * trips by operation, not by phase. Any other GetItem, such as the
 * suspension read or the counter read that explains a rejected reserve, is
 * counted as reserve.
 */
export function classifyRequest(
  operation: string,
  body: string,
): { phase: LedgerPhase; requestId?: string } {
  if (body === '') {
    return { phase: 'other' };
  }
  if (operation === 'TransactWriteItems') {
    for (const item of (JSON.parse(body) as TransactBody).TransactItems ?? []) {
      if (item.Put?.Item?.state?.S === 'reserved') {
        return { phase: 'reserve', requestId: item.Put.Item.requestId?.S };
      }
      if (item.Update?.ExpressionAttributeValues?.[':to']?.S === 'settled') {
        return { phase: 'settle', requestId: requestIdOfKey(item.Update.Key) };
      }
    }
    return { phase: 'other' };
  }
  if (operation === 'GetItem') {
    const requestId = requestIdOfKey((JSON.parse(body) as { Key?: AttributeMap }).Key);
    return requestId === undefined ? { phase: 'reserve' } : { phase: 'settle', requestId };
  }
  return { phase: 'other' };
}

/**
 * Returns a request body as text. @smithy/core 3.41.1 serializes DynamoDB JSON
 * into a Uint8Array subclass that logs a warning when a string method or
 * valueOf is called on it, so the bytes are decoded through a Buffer view.
 */
function bodyText(body: unknown): string {
  if (typeof body === 'string') {
    return body;
  }
  if (!(body instanceof Uint8Array)) {
    return '';
  }
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
}

/** Records every round trip the ledger's client makes. */
export class RoundTripRecorder {
  private trips: RoundTrip[] = [];

  /** Returns the round trips recorded since the last `clear()` and keeps them. */
  get recorded(): readonly RoundTrip[] {
    return this.trips;
  }

  clear(): void {
    this.trips = [];
  }

  /**
   * Adds the counting middleware to `client`. At step finalizeRequest with
   * priority low it runs inside the SDK's retry middleware, which has
   * priority high, so that each attempt counts as its own round trip.
   */
  attach(client: DynamoDBClient): void {
    const middleware =
      (next: FinalizeHandler<object, MetadataBearer>): FinalizeHandler<object, MetadataBearer> =>
      async (args: FinalizeHandlerArguments<object>) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        const target = request.headers?.['x-amz-target'] ?? '';
        const operation = target.slice(target.lastIndexOf('.') + 1) || 'unknown';
        const body = bodyText(request.body);
        const classified = classifyRequest(operation, body);
        const startedAt = performance.now();
        try {
          const output = await next(args);
          this.trips.push({ operation, ...classified, startedAt, endedAt: performance.now() });
          return output;
        } catch (error) {
          const name = error instanceof Error ? error.name : String(error);
          this.trips.push({
            operation,
            ...classified,
            startedAt,
            endedAt: performance.now(),
            error: name,
          });
          throw error;
        }
      };
    client.middlewareStack.add(middleware, {
      step: 'finalizeRequest',
      priority: 'low',
      name: 'benchLedgerRoundTrips',
    });
  }
}

/**
 * Creates the ledger's client for DynamoDB Local with the attempts and
 * timeouts that createStateTableClient gives the gateway's own ledger client,
 * and attaches `recorder` to it.
 */
export function createLedgerClient(
  endpoint: string,
  recorder: RoundTripRecorder,
): { client: DynamoDBClient; documentClient: DynamoDBDocumentClient } {
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: STATE_TABLE_MAX_ATTEMPTS,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: STATE_TABLE_CONNECT_TIMEOUT_MS,
      requestTimeout: STATE_TABLE_REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    }),
  });
  recorder.attach(client);
  return { client, documentClient: DynamoDBDocumentClient.from(client) };
}
