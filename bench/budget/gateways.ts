/**
 * The two gateways the budget benchmark compares, with and without a
 * budget, both calling one loopback Bedrock server. The budget gateway's
 * ledger table is in DynamoDB Local, reached through a client that records
 * every round trip.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { performance } from 'node:perf_hooks';
import {
  createBedrockClient,
  createGatewayHandler,
  type GatewayHandler,
} from '../../lambda/gateway';
import { estimateInputTokens } from '../../lambda/gateway/budget/pricing';
import type {
  AgentBudgetConfig,
  GatewayErrorResponse,
  GatewayRequest,
  GatewayResponse,
  GatewayRuntimeConfig,
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
  readonly budgeted: GatewayHandler;
  readonly plain: GatewayHandler;
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

    this.budgeted = this.createHandler(budgeted, ledger.documentClient);
    this.plain = this.createHandler(plain);
  }

  private createHandler(
    config: GatewayRuntimeConfig,
    budgetTableClient?: DynamoDBDocumentClient,
  ): GatewayHandler {
    return createGatewayHandler({
      config,
      logger: createBenchLogger(this.sink),
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
    });
  }

  /**
   * Scripts `count` Bedrock responses whose usage equals the worst case the
   * ledger reserves, so that settling spends exactly what was reserved.
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

  /** Sends one call through `handler` and times it. */
  async call(handler: GatewayHandler, requestId: string, agent: string): Promise<TimedCall> {
    const event = gatewayEvent(requestId, agent, PROMPT);
    const startedAt = performance.now();
    const result = await handler(event, lambdaContext(requestId));
    const returnedAt = performance.now();
    return { requestId, result, elapsedMs: returnedAt - startedAt, returnedAt };
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
