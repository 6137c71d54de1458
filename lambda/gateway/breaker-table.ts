import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { BreakerRecord, BreakerStateName, BreakerStore } from './breaker-store';
import { freshRecord } from './breaker-store';

/**
 * Milliseconds to connect to DynamoDB. The table is in the function's own
 * region, so a slower connection means it is unreachable, and the breaker
 * falls back to in-memory state rather than delay the model call.
 */
export const STATE_TABLE_CONNECT_TIMEOUT_MS = 500;

/** Milliseconds one state-table request may take, where a single-item request takes a few. */
export const STATE_TABLE_REQUEST_TIMEOUT_MS = 1_000;

/** Attempts per state-table request; one retry covers a dropped connection. */
export const STATE_TABLE_MAX_ATTEMPTS = 2;

/** Creates the DynamoDB client for the state table, with timeouts sized for a hot path. */
export function createStateTableClient(): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    maxAttempts: STATE_TABLE_MAX_ATTEMPTS,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: STATE_TABLE_CONNECT_TIMEOUT_MS,
      requestTimeout: STATE_TABLE_REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    }),
  });
  return DynamoDBDocumentClient.from(client);
}

const STATES: readonly BreakerStateName[] = ['closed', 'open', 'half-open'];

// `state` is a DynamoDB reserved word, so every attribute goes through a name placeholder.
const NAMES = {
  '#state': 'state',
  '#failures': 'failures',
  '#openUntil': 'openUntil',
  '#probeUntil': 'probeUntil',
  '#expiresAt': 'expiresAt',
};

const FRESH = '#expiresAt > :nowSeconds';

const OPEN_UPDATE =
  'SET #state = :open, #openUntil = :openUntil, #expiresAt = :expiresAt REMOVE #probeUntil';

/** Attempts of addFailure's update-or-create loop before it settles for a read. */
const ADD_FAILURE_ROUNDS = 3;

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

/** Parses an item; an item with an unknown state counts as no item. */
function toRecord(item: Record<string, unknown> | undefined): BreakerRecord | undefined {
  const state = item?.state as BreakerStateName;
  if (item === undefined || !STATES.includes(state) || typeof item.expiresAt !== 'number') {
    return undefined;
  }
  return {
    state,
    failures: optionalNumber(item.failures) ?? 0,
    openUntil: optionalNumber(item.openUntil),
    probeUntil: optionalNumber(item.probeUntil),
    expiresAt: item.expiresAt,
  };
}

/**
 * Breaker state in a DynamoDB table with partition key `pk`, shared by every
 * gateway instance. Items carry `expiresAt` for the table's TTL, but DynamoDB
 * deletes expired items late, so every read and every condition compares
 * `expiresAt` with the current time itself.
 */
export class DynamoBreakerStore implements BreakerStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async read(key: string, now: number): Promise<BreakerRecord | undefined> {
    const result = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: key }, ConsistentRead: true }),
    );
    return freshRecord(toRecord(result.Item), now);
  }

  async addFailure(key: string, now: number, expiresAt: number): Promise<BreakerRecord> {
    const nowSeconds = now / 1000;
    for (let round = 0; round < ADD_FAILURE_ROUNDS; round++) {
      const counted = await this.update({
        Key: { pk: key },
        UpdateExpression: 'SET #expiresAt = :expiresAt ADD #failures :one',
        ConditionExpression: `#state = :closed AND ${FRESH}`,
        ExpressionAttributeValues: {
          ':expiresAt': expiresAt,
          ':one': 1,
          ':closed': 'closed',
          ':nowSeconds': nowSeconds,
        },
      });
      if (counted !== undefined) {
        return counted;
      }
      // No fresh closed record: start one, unless a fresh open or half-open one exists.
      const record: BreakerRecord = { state: 'closed', failures: 1, expiresAt };
      try {
        await this.client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { pk: key, ...record },
            ConditionExpression: 'attribute_not_exists(pk) OR #expiresAt <= :nowSeconds',
            ExpressionAttributeNames: { '#expiresAt': 'expiresAt' },
            ExpressionAttributeValues: { ':nowSeconds': nowSeconds },
          }),
        );
        return record;
      } catch (error) {
        if (!isConditionFailure(error)) {
          throw error;
        }
      }
      const current = await this.read(key, now);
      if (current !== undefined && current.state !== 'closed') {
        return current;
      }
      // Another instance created a closed record between the two writes; count on it.
    }
    return (await this.read(key, now)) ?? { state: 'closed', failures: 1, expiresAt };
  }

  open(key: string, now: number, threshold: number, openUntil: number, expiresAt: number) {
    return this.update({
      Key: { pk: key },
      UpdateExpression: OPEN_UPDATE,
      ConditionExpression: `#state = :closed AND #failures >= :threshold AND ${FRESH}`,
      ExpressionAttributeValues: {
        ':open': 'open',
        ':closed': 'closed',
        ':openUntil': openUntil,
        ':expiresAt': expiresAt,
        ':threshold': threshold,
        ':nowSeconds': now / 1000,
      },
    });
  }

  claimProbe(key: string, now: number, probeUntil: number, expiresAt: number) {
    return this.update({
      Key: { pk: key },
      UpdateExpression:
        'SET #state = :halfOpen, #probeUntil = :probeUntil, #expiresAt = :expiresAt',
      ConditionExpression:
        `${FRESH} AND ((#state = :open AND #openUntil <= :now) OR ` +
        '(#state = :halfOpen AND #probeUntil <= :now))',
      ExpressionAttributeValues: {
        ':open': 'open',
        ':halfOpen': 'half-open',
        ':probeUntil': probeUntil,
        ':expiresAt': expiresAt,
        ':now': now,
        ':nowSeconds': now / 1000,
      },
    });
  }

  closeProbe(key: string, probeUntil: number, expiresAt: number) {
    return this.update({
      Key: { pk: key },
      UpdateExpression:
        'SET #state = :closed, #failures = :zero, #expiresAt = :expiresAt ' +
        'REMOVE #openUntil, #probeUntil',
      ConditionExpression: '#state = :halfOpen AND #probeUntil = :probeUntil',
      ExpressionAttributeValues: {
        ':closed': 'closed',
        ':halfOpen': 'half-open',
        ':zero': 0,
        ':probeUntil': probeUntil,
        ':expiresAt': expiresAt,
      },
    });
  }

  reopenProbe(key: string, probeUntil: number, openUntil: number, expiresAt: number) {
    return this.update({
      Key: { pk: key },
      UpdateExpression: OPEN_UPDATE,
      ConditionExpression: '#state = :halfOpen AND #probeUntil = :probeUntil',
      ExpressionAttributeValues: {
        ':open': 'open',
        ':halfOpen': 'half-open',
        ':openUntil': openUntil,
        ':probeUntil': probeUntil,
        ':expiresAt': expiresAt,
      },
    });
  }

  async resetFailures(key: string, expiresAt: number): Promise<void> {
    await this.update({
      Key: { pk: key },
      UpdateExpression: 'SET #failures = :zero, #expiresAt = :expiresAt',
      ConditionExpression: '#state = :closed AND #failures > :zero',
      ExpressionAttributeValues: { ':closed': 'closed', ':zero': 0, ':expiresAt': expiresAt },
    });
  }

  /** Runs a conditional update and returns the new record, or undefined if its condition failed. */
  private async update(
    input: Omit<UpdateCommandInput, 'TableName' | 'ExpressionAttributeNames' | 'ReturnValues'>,
  ): Promise<BreakerRecord | undefined> {
    const expression = `${input.UpdateExpression} ${input.ConditionExpression ?? ''}`;
    // DynamoDB rejects a placeholder that the expressions do not use.
    const names = Object.fromEntries(
      Object.entries(NAMES).filter(([placeholder]) => expression.includes(placeholder)),
    );
    try {
      const result = await this.client.send(
        new UpdateCommand({
          ...input,
          TableName: this.tableName,
          ExpressionAttributeNames: names,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toRecord(result.Attributes);
    } catch (error) {
      if (isConditionFailure(error)) {
        return undefined;
      }
      throw error;
    }
  }
}
