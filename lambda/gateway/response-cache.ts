/**
 * Exact-match response cache: the key of a request, which requests and
 * responses may be cached, and the reads, writes and purges of the cache
 * table. The table's layout is RESPONSE_CACHE_TABLE_KEY: one partition per
 * agent, and a sort key that starts with the scope, so that purging an
 * agent or one of its users is a Query.
 */
import {
  BatchWriteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { canonicalSha256 } from '../shared/canonical';
import type {
  ConverseMessage,
  GatewayGuardrail,
  ModelTarget,
  ResponseCacheSettings,
  Usage,
} from '../shared/contracts';
import { ANONYMOUS_USER_ID } from './budget/ledger';
import { keyPart } from './budget/windows';
import type { ModelCallResult, ResolvedGatewayRequest } from './pipeline';

/** Version of the key format, part of every hash, so that a new format never matches an old item. */
export const RESPONSE_CACHE_KEY_VERSION = 1;

/**
 * Largest item DynamoDB stores: 400 KB, where DynamoDB counts 1 KB as 1024
 * bytes and an item's size as the UTF-8 bytes of its attribute names and
 * values, per https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html
 * and https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
 */
export const MAX_ITEM_BYTES = 400 * 1024;

/**
 * Bytes a number attribute's value takes at most: one byte per two of its
 * 38 significant digits, plus one (same sources as MAX_ITEM_BYTES).
 */
const MAX_NUMBER_BYTES = 21;

/**
 * Stop reasons of a complete response. Every other Converse stop reason marks
 * output that is truncated (`max_tokens`, `model_context_window_exceeded`),
 * requests a tool call (`tool_use`) or was changed by a guardrail
 * (`guardrail_intervened`, `content_filtered`), and is never cached.
 */
export const CACHEABLE_STOP_REASONS: readonly string[] = ['end_turn', 'stop_sequence'];

/** Key of one cached response. */
export interface ResponseCacheKey {
  /** Partition key: the agent. */
  readonly pk: string;
  /** Sort key: `user#<user>#<hash>` or `agent#<hash>`. */
  readonly sk: string;
  /** Hex SHA-256 of the canonical request. */
  readonly hash: string;
}

/** A response as the cache stores it: the model call result without the request's ids. */
export interface CachedResponse {
  readonly output: ConverseMessage;
  readonly stopReason: string;
  /** Tokens the model call that generated the response spent. */
  readonly usage: Usage;
  readonly target: ModelTarget;
  readonly latencyMs: number;
}

/** A cached response with the request that stored it. */
export interface CacheEntry {
  readonly response: CachedResponse;
  /** Id of the request whose model call generated the response. */
  readonly requestId: string;
  /** ISO 8601 time at which the response was stored. */
  readonly cachedAt: string;
}

/** Checks whether a conversation contains a tool call or a tool result. */
export function isToolTurn(request: Pick<ResolvedGatewayRequest, 'messages'>): boolean {
  return request.messages.some((message) =>
    message.content.some((block) => block.toolUse !== undefined || block.toolResult !== undefined),
  );
}

/**
 * Returns why a request may not use the cache, or undefined when it may. A
 * tool turn needs `cacheToolTurns`. With scope `user`, the anonymous user
 * id stands for every caller without an identity, so those callers would
 * share each other's responses.
 */
export function uncacheableRequestReason(
  request: ResolvedGatewayRequest,
  settings: ResponseCacheSettings,
): string | undefined {
  if (!settings.cacheToolTurns && isToolTurn(request)) {
    return 'tool turn';
  }
  if (settings.scope === 'user' && request.userId === ANONYMOUS_USER_ID) {
    return 'anonymous user';
  }
  return undefined;
}

/** Returns why a completed model call's result may not be stored, or undefined when it may. */
export function uncacheableResultReason(result: ModelCallResult): string | undefined {
  if (!CACHEABLE_STOP_REASONS.includes(result.stopReason)) {
    return `stop reason ${result.stopReason}`;
  }
  if (result.guardrailMasked === true) {
    return 'guardrail masked';
  }
  if (result.output.content.some((block) => block.toolUse !== undefined)) {
    return 'tool use';
  }
  return undefined;
}

/**
 * Builds the key of a request: the SHA-256 of its canonical JSON. The JSON
 * covers the agent, the scope and its owner (the user, or the agent for
 * scope `agent`), and the route. It also covers the system prompt, the
 * messages, the tool definitions, the inference settings and the
 * guardrail's id and version. The request and session ids are left out,
 * so that a repeated request matches.
 */
export function responseCacheKey(
  request: ResolvedGatewayRequest,
  route: readonly ModelTarget[],
  settings: ResponseCacheSettings,
  guardrail: GatewayGuardrail | undefined,
): ResponseCacheKey {
  const owner = settings.scope === 'user' ? request.userId : request.agent;
  const hash = canonicalSha256({
    version: RESPONSE_CACHE_KEY_VERSION,
    agent: request.agent,
    scope: settings.scope,
    owner,
    route: route.map(({ region, modelId }) => ({ region, modelId })),
    system: request.system,
    messages: request.messages,
    tools: request.tools,
    inference: { maxTokens: request.maxTokens, temperature: request.temperature },
    guardrail: guardrail === undefined ? null : { id: guardrail.id, version: guardrail.version },
  });
  return { pk: request.agent, sk: `${scopePrefix(settings.scope, request.userId)}${hash}`, hash };
}

/** Returns the sort key prefix of a scope: `user#<user>#` or `agent#`. */
function scopePrefix(scope: ResponseCacheSettings['scope'], userId: string): string {
  return scope === 'user' ? `user#${keyPart(userId)}#` : 'agent#';
}

/**
 * Returns the size DynamoDB counts for an item of string and number
 * attributes. Numbers are counted at their largest size, so the result is
 * never below DynamoDB's count.
 */
export function itemSizeBytes(item: Record<string, string | number>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(item)) {
    bytes += Buffer.byteLength(name, 'utf8');
    bytes += typeof value === 'number' ? MAX_NUMBER_BYTES : Buffer.byteLength(value, 'utf8');
  }
  return bytes;
}

/** A response to store, with the request that generated it. */
export interface CachePutRequest {
  readonly response: CachedResponse;
  readonly requestId: string;
  /** User whose request generated the response; kept so that purging the user also removes shared responses. */
  readonly userId: string;
  readonly ttlSeconds: number;
}

/** Result of {@link ResponseCacheStore.put}. */
export type CachePutOutcome =
  | { readonly stored: true; readonly bytes: number }
  | { readonly stored: false; readonly reason: 'too-large'; readonly bytes: number };

/** Settings of {@link ResponseCacheStore}. */
export interface ResponseCacheStoreOptions {
  readonly client: DynamoDBDocumentClient;
  /** Name of the response cache table. */
  readonly table: string;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Returns the stored response when it has the shape the gateway wrote, else undefined. */
function parseCachedResponse(json: unknown): CachedResponse | undefined {
  if (typeof json !== 'string') {
    return undefined;
  }
  const value: unknown = JSON.parse(json);
  if (!isRecord(value) || !isRecord(value.output) || !isRecord(value.usage) || !isRecord(value.target)) {
    return undefined;
  }
  const { output, usage, target } = value;
  const valid =
    (output.role === 'assistant' || output.role === 'user') &&
    Array.isArray(output.content) &&
    typeof value.stopReason === 'string' &&
    typeof usage.totalTokens === 'number' &&
    typeof target.region === 'string' &&
    typeof target.modelId === 'string' &&
    typeof value.latencyMs === 'number';
  return valid ? (value as unknown as CachedResponse) : undefined;
}

/**
 * Reads and writes the response cache table. An item is served only until
 * its `expiresAt`, which every read compares, because DynamoDB deletes
 * expired items lazily.
 */
export class ResponseCacheStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly now: () => number;

  constructor(options: ResponseCacheStoreOptions) {
    this.client = options.client;
    this.table = options.table;
    this.now = options.now ?? Date.now;
  }

  /**
   * Returns the unexpired entry of `key`, or undefined. An eventually
   * consistent read is enough, because a response stored a moment ago and
   * not seen yet only costs one more model call. Raises when the item
   * exists but its response is not in the shape the gateway writes.
   */
  async get(key: ResponseCacheKey): Promise<CacheEntry | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.table, Key: { pk: key.pk, sk: key.sk } }),
    );
    if (Item === undefined || typeof Item.expiresAt !== 'number' || Item.expiresAt * 1000 <= this.now()) {
      return undefined;
    }
    const response = parseCachedResponse(Item.response);
    if (response === undefined) {
      throw new Error(
        `The response cache item ${key.pk} ${key.sk} in table ${this.table} has no valid response ` +
          'attribute. Delete the item, or purge the agent with the operator command.',
      );
    }
    return { response, requestId: String(Item.requestId), cachedAt: String(Item.cachedAt) };
  }

  /**
   * Stores a response under `key` until `ttlSeconds` from now, replacing
   * any earlier item, or returns `too-large` without a write when the item
   * would pass DynamoDB's item size limit.
   */
  async put(key: ResponseCacheKey, request: CachePutRequest): Promise<CachePutOutcome> {
    const nowMs = this.now();
    const item = {
      pk: key.pk,
      sk: key.sk,
      // Rounded down, so that an item never outlives its TTL.
      expiresAt: Math.floor(nowMs / 1000) + request.ttlSeconds,
      cachedAt: new Date(nowMs).toISOString(),
      requestId: request.requestId,
      userId: request.userId,
      response: JSON.stringify(request.response),
    };
    const bytes = itemSizeBytes(item);
    if (bytes > MAX_ITEM_BYTES) {
      return { stored: false, reason: 'too-large', bytes };
    }
    await this.client.send(new PutCommand({ TableName: this.table, Item: item }));
    return { stored: true, bytes };
  }
}

/** Settings of {@link purgeResponseCache}. */
export interface PurgeRequest {
  readonly client: DynamoDBDocumentClient;
  /** Name of the response cache table. */
  readonly table: string;
  readonly agent: string;
  /**
   * Purge only this user's responses: those in the user's scope, and the
   * responses in the agent's shared scope that this user's requests stored.
   * @default - every response of the agent
   */
  readonly userId?: string;
  /** Waits between retries of unprocessed deletes. @default - a timer */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Attempts of one BatchWriteItem call whose deletes DynamoDB left unprocessed. */
export const PURGE_BATCH_ATTEMPTS = 8;

/** Largest number of requests in one BatchWriteItem call, per the DynamoDB API reference. */
const BATCH_WRITE_MAX_ITEMS = 25;

type ItemKey = { pk: string; sk: string };

/**
 * Deletes the keys with BatchWriteItem, 25 at a time, and retries the
 * deletes DynamoDB leaves unprocessed with exponential backoff. Raises
 * when some remain unprocessed after PURGE_BATCH_ATTEMPTS.
 */
async function deleteKeys(request: PurgeRequest, keys: readonly ItemKey[]): Promise<void> {
  const sleep = request.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let start = 0; start < keys.length; start += BATCH_WRITE_MAX_ITEMS) {
    let pending = keys.slice(start, start + BATCH_WRITE_MAX_ITEMS).map((key) => ({ DeleteRequest: { Key: key } }));
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > PURGE_BATCH_ATTEMPTS) {
        throw new Error(
          `Deleting ${pending.length} response cache items of agent ${request.agent} from table ` +
            `${request.table} was still unprocessed after ${PURGE_BATCH_ATTEMPTS} attempts. Run the purge again.`,
        );
      }
      if (attempt > 1) {
        await sleep(Math.min(1_000, 25 * 2 ** attempt));
      }
      const output = await request.client.send(
        new BatchWriteCommand({ RequestItems: { [request.table]: pending } }),
      );
      pending = (output.UnprocessedItems?.[request.table] ?? []) as typeof pending;
    }
  }
}

/**
 * Queries the agent's partition, or the part of it whose sort keys start
 * with `prefix`, page by page, deletes each page's items, and returns how
 * many it deleted. With `storedBy` only the items that user's requests stored.
 */
async function purgeQuery(
  request: PurgeRequest,
  prefix: string | undefined,
  storedBy?: string,
): Promise<number> {
  let deleted = 0;
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await request.client.send(
      new QueryCommand({
        TableName: request.table,
        // DynamoDB rejects an empty string as a key condition value, so the whole partition has no prefix condition.
        KeyConditionExpression: prefix === undefined ? 'pk = :pk' : 'pk = :pk AND begins_with(sk, :prefix)',
        ...(storedBy === undefined ? {} : { FilterExpression: 'userId = :userId' }),
        ExpressionAttributeValues: {
          ':pk': request.agent,
          ...(prefix === undefined ? {} : { ':prefix': prefix }),
          ...(storedBy === undefined ? {} : { ':userId': storedBy }),
        },
        ProjectionExpression: 'pk, sk',
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
      }),
    );
    const keys = (page.Items ?? []).map((item) => ({ pk: String(item.pk), sk: String(item.sk) }));
    await deleteKeys(request, keys);
    deleted += keys.length;
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
  return deleted;
}

/**
 * Deletes the cached responses of an agent, or of one of its users, and
 * returns how many it deleted. Both are Queries on the agent's partition.
 * A gateway instance may still serve a deleted response from an
 * eventually consistent read that started before the delete.
 */
export async function purgeResponseCache(request: PurgeRequest): Promise<number> {
  if (request.userId === undefined) {
    return purgeQuery(request, undefined);
  }
  const ownScope = await purgeQuery(request, scopePrefix('user', request.userId));
  const shared = await purgeQuery(request, scopePrefix('agent', request.userId), request.userId);
  return ownScope + shared;
}
