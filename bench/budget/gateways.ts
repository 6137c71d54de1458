/**
 * The two gateways the budget benchmark compares, with and without a
 * budget, both calling one loopback Bedrock server. Each has a buffered and
 * a streaming handler on one set of services, as the Lambda entry point
 * builds them. The budget gateway's ledger table is in DynamoDB Local,
 * reached through a client that records every round trip.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayServices,
  createGatewayStreamHandler,
  type GatewayHandler,
  type GatewayStreamHandler,
} from '../../lambda/gateway';
import { estimateInputTokens } from '../../lambda/gateway/budget/pricing';
import type {
  AgentBudgetConfig,
  GatewayErrorResponse,
  GatewayRequest,
  GatewayResponse,
  GatewayRuntimeConfig,
  GatewayStreamEvent,
} from '../../lambda/shared/contracts';
import { textResponse, type BedrockServer } from '../../test/support/bedrock-server';
import type { DynamoDbLocal } from '../../test/support/dynamodb-local';
import {
  BENCH_CREDENTIALS,
  BENCH_MODEL_ID,
  NullSink,
  createBenchLogger,
  createBenchMetrics,
  gatewayEvent,
  lambdaContext,
} from '../gateway/loopback';
import { RoundTripRecorder, createLedgerClient } from './round-trips';

const REGION = 'us-east-1';
export const MAX_TOKENS = 100;
const PROMPT = 'What is the capital of France?';
const REPLY = 'Paris.';
/** Agent of the latency measurement, with limits far above what the run spends. */
export const LATENCY_AGENT = 'bench-latency';

// Prices in US dollars per million tokens, as the gateway test uses them.
// Only their presence matters here, because every limit is in tokens.
const PRICE = {
  inputPerMillion: 3,
  outputPerMillion: 15,
  cacheReadPerMillion: 0.3,
  cacheWritePerMillion: 3.75,
};

const UNLIMITED_TOKENS = 1e12;

/**
 * Limits of the latency agent: a daily token limit per user and per agent
 * and a per-user request rate, so that each reserve and settle writes three
 * counters, the reservation record and the lease index item in one
 * transaction.
 */
const LATENCY_LIMITS: AgentBudgetConfig = {
  agent: { daily: { tokens: UNLIMITED_TOKENS } },
  perUser: { daily: { tokens: UNLIMITED_TOKENS } },
  perUserRate: { requestsPerMinute: 1e9 },
};

/** Input tokens the ledger estimates for the benchmark's prompt, as the budget step computes them. */
export const ESTIMATED_INPUT_TOKENS = estimateInputTokens({
  messages: gatewayEvent('estimate', LATENCY_AGENT, PROMPT).messages,
} as GatewayRequest);

/** Tokens one call reserves: the estimated input plus maxTokens. */
export const WORST_CASE_TOKENS = ESTIMATED_INPUT_TOKENS + MAX_TOKENS;

/** Result of one gateway call, with the time the handler's promise resolved. */
export interface TimedCall {
  readonly requestId: string;
  readonly result: GatewayResponse | GatewayErrorResponse;
  readonly elapsedMs: number;
  readonly returnedAt: number;
}

/** Result of one streamed gateway call, with the times the reader received `usage` and the handler returned. */
export interface TimedStreamCall {
  readonly requestId: string;
  readonly events: GatewayStreamEvent[];
  /** Milliseconds from the call to the `usage` event, or undefined when none arrived. */
  readonly usageMs?: number;
  /** `performance.now()` when the `usage` event reached the Writable. */
  readonly usageAt?: number;
  readonly elapsedMs: number;
  readonly returnedAt: number;
}

/** A streamed call that ended with its `usage` event, so both usage times are set. */
export type CompletedStreamCall = TimedStreamCall & {
  readonly usageMs: number;
  readonly usageAt: number;
};

// JSON.stringify writes keys in insertion order, and the gateway builds the usage event type first.
const USAGE_LINE_PREFIX = '{"type":"usage"';

/**
 * Writable in the place of a streamed response's reader. It keeps the
 * gateway's NDJSON output and stamps the moment the `usage` line arrives.
 * The gateway writes one event per write call, so a line starts each chunk.
 */
class StreamReader extends Writable {
  usageAt?: number;
  private readonly chunks: Buffer[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    if (
      this.usageAt === undefined &&
      chunk.toString('latin1', 0, USAGE_LINE_PREFIX.length) === USAGE_LINE_PREFIX
    ) {
      this.usageAt = performance.now();
    }
    this.chunks.push(chunk);
    callback();
  }

  events(): GatewayStreamEvent[] {
    return Buffer.concat(this.chunks)
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as GatewayStreamEvent);
  }
}

/** Buffered and streaming handler of one gateway. */
export interface BenchGateway {
  readonly buffered: GatewayHandler;
  readonly streamed: GatewayStreamHandler;
}

/** Settings of {@link BudgetBenchGateways}. */
export interface BudgetBenchOptions {
  readonly dynamo: DynamoDbLocal;
  readonly bedrock: BedrockServer;
  /** Agents of the admission bursts, each with a daily agent limit of `limitTokens`. */
  readonly burstAgents: readonly string[];
  readonly limitTokens: number;
}

/** The gateway with a budget, the same gateway without one, and the ledger's recorder. */
export class BudgetBenchGateways {
  readonly recorder = new RoundTripRecorder();
  readonly budgeted: BenchGateway;
  readonly plain: BenchGateway;
  private readonly sink = new NullSink();
  private readonly bedrockClients: BedrockRuntimeClient[] = [];
  private readonly ledgerClient: DynamoDBClient;
  private readonly dynamo: DynamoDbLocal;
  private readonly bedrock: BedrockServer;

  constructor(options: BudgetBenchOptions) {
    this.dynamo = options.dynamo;
    this.bedrock = options.bedrock;
    const ledger = createLedgerClient(options.dynamo.endpoint, this.recorder);
    this.ledgerClient = ledger.client;

    const agents: GatewayRuntimeConfig['agents'] = {};
    const budgetAgents: Record<string, AgentBudgetConfig> = { [LATENCY_AGENT]: LATENCY_LIMITS };
    for (const agent of [LATENCY_AGENT, ...options.burstAgents]) {
      agents[agent] = {
        route: [{ region: REGION, modelId: BENCH_MODEL_ID }],
        maxTokensPerCall: MAX_TOKENS,
      };
    }
    for (const agent of options.burstAgents) {
      budgetAgents[agent] = { agent: { daily: { tokens: options.limitTokens } } };
    }
    const budgeted: GatewayRuntimeConfig = {
      agents,
      budget: {
        table: options.dynamo.tableName,
        leaseSeconds: 120,
        failOpen: false,
        allowAnonymous: false,
        agents: budgetAgents,
        prices: { [BENCH_MODEL_ID]: PRICE },
      },
    };
    const plain: GatewayRuntimeConfig = { agents: { [LATENCY_AGENT]: agents[LATENCY_AGENT] } };

    this.budgeted = this.createGateway(budgeted, ledger.documentClient);
    this.plain = this.createGateway(plain);
  }

  private createGateway(
    config: GatewayRuntimeConfig,
    budgetTableClient?: DynamoDBDocumentClient,
  ): BenchGateway {
    const services = createGatewayServices(
      {
        config,
        metrics: createBenchMetrics(this.sink),
        budgetTableClient,
        clientForRegion: (region, settings) => {
          const client = createBedrockClient(region, {
            settings,
            endpoint: this.bedrock.endpoint,
            credentials: BENCH_CREDENTIALS,
          });
          this.bedrockClients.push(client);
          return client;
        },
      },
      'the budget benchmark',
    );
    const logger = createBenchLogger(this.sink);
    return {
      buffered: createGatewayHandler({ config, services, logger }),
      streamed: createGatewayStreamHandler({ config, services, logger }),
    };
  }

  /**
   * Scripts `count` Bedrock responses whose usage equals the worst case the
   * ledger reserves, so that settling spends exactly what was reserved.
   * The loopback server sends a text response to ConverseStream as
   * event-stream frames, one delta per word, so one script serves buffered
   * and streamed calls.
   */
  scriptResponses(count: number): void {
    const response = textResponse(REPLY, {
      usage: { inputTokens: ESTIMATED_INPUT_TOKENS, outputTokens: MAX_TOKENS },
    });
    this.bedrock.script(...Array.from({ length: count }, () => response));
  }

  /** Returns the number of requests the loopback Bedrock server recorded since its last reset. */
  bedrockRequestCount(): number {
    return this.bedrock.requests.length;
  }

  /** Drops unconsumed responses and recorded requests, which would otherwise grow for the whole run. */
  resetBedrock(): void {
    this.bedrock.reset();
  }

  /** Sends one buffered call through `gateway` and times it. */
  async call(gateway: BenchGateway, requestId: string, agent: string): Promise<TimedCall> {
    const event = gatewayEvent(requestId, agent, PROMPT);
    const startedAt = performance.now();
    const result = await gateway.buffered(event, lambdaContext(requestId));
    const returnedAt = performance.now();
    return { requestId, result, elapsedMs: returnedAt - startedAt, returnedAt };
  }

  /** Sends one streamed call through `gateway` and times it to the `usage` event and to its return. */
  async callStream(gateway: BenchGateway, requestId: string, agent: string): Promise<TimedStreamCall> {
    const event = gatewayEvent(requestId, agent, PROMPT, { stream: true });
    const reader = new StreamReader();
    const startedAt = performance.now();
    await gateway.streamed(event, reader, lambdaContext(requestId));
    const returnedAt = performance.now();
    const { usageAt } = reader;
    return {
      requestId,
      events: reader.events(),
      usageMs: usageAt === undefined ? undefined : usageAt - startedAt,
      usageAt,
      elapsedMs: returnedAt - startedAt,
      returnedAt,
    };
  }

  /** Reads an item of the ledger table through a client that the recorder does not count. */
  async readItem(pk: string, sk: string): Promise<Record<string, unknown> | undefined> {
    const { Item } = await this.dynamo.documentClient.send(
      new GetCommand({ TableName: this.dynamo.tableName, Key: { pk, sk }, ConsistentRead: true }),
    );
    return Item;
  }

  close(): void {
    this.bedrockClients.forEach((client) => client.destroy());
    this.ledgerClient.destroy();
    this.sink.close();
  }
}

/** Throws unless the streamed `call` ended with a `usage` event after the scripted reply. */
export function checkStreamSuccess(
  side: string,
  call: TimedStreamCall,
): asserts call is CompletedStreamCall {
  const failure = call.events.find((event) => event.type === 'error');
  if (failure !== undefined) {
    throw new Error(`The ${side} gateway stream ${call.requestId} failed: ${JSON.stringify(failure)}`);
  }
  if (
    call.usageAt === undefined ||
    call.usageMs === undefined ||
    call.events.at(-1)?.type !== 'usage'
  ) {
    throw new Error(
      `The ${side} gateway stream ${call.requestId} did not end with a usage event: ` +
        JSON.stringify(call.events),
    );
  }
  const text = call.events.map((event) => (event.type === 'delta' ? event.text : '')).join('');
  if (text !== REPLY) {
    throw new Error(`The ${side} gateway stream returned unexpected text: ${JSON.stringify(text)}.`);
  }
}

/** Throws unless `call` succeeded with the scripted reply. */
export function checkSuccess(side: string, call: TimedCall): void {
  if (!call.result.ok) {
    const { name, message } = call.result.error;
    throw new Error(`The ${side} gateway call ${call.requestId} failed: ${name}: ${message}`);
  }
  const text = call.result.output.content[0]?.text;
  if (text !== REPLY) {
    throw new Error(`The ${side} gateway call returned unexpected text: ${JSON.stringify(text)}.`);
  }
}
