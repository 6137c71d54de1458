/**
 * The local stack of one benchmark run. The real gateway, with its budget
 * ledger, response cache and prompt cache points, runs behind a loopback
 * Lambda server with the support agent's tools. The real agent loop keeps
 * its memory in DynamoDB Local. A loopback Bedrock server counts tokens
 * and prompt cache reads and writes by its documented rules. Everything listens on
 * 127.0.0.1. The run's flags change only the agents' configuration.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { priceTarget, DEFAULT_REGIONAL_PREMIUM_PERCENT } from '../../constructs/model-prices';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayServices,
} from '../../lambda/gateway';
import {
  SUMMARY_MAX_TOKENS,
  summaryAgentName,
  type GatewayAgentConfig,
  type GatewayRuntimeConfig,
  type ModelPrice,
  type ResponseCacheSettings,
  type WorkerRuntimeConfig,
  type WorkerToolConfig,
} from '../../lambda/shared/contracts';
import { Logger } from '../../lambda/shared/logger';
import { MetricsWriter } from '../../lambda/shared/metrics';
import { runAgentTask, type AgentResult } from '../../lambda/worker/agent-loop';
import { DynamoSessionMemory } from '../../lambda/worker/memory';
import { GatewayModelClient } from '../../lambda/worker/model-client';
import { ToolRunner } from '../../lambda/worker/tools';
import { PromptCacheAccounting } from '../../test/support/bedrock-cache-accounting';
import { startBedrockServer, type BedrockServer } from '../../test/support/bedrock-server';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type DynamoDbLocal } from '../../test/support/dynamodb-local';
import { startLambdaServer, type LambdaServer } from '../../test/support/lambda-server';
import {
  FAQ_AGENT,
  FAQ_SYSTEM_PROMPT,
  MAIN_MODEL,
  SUMMARY_MODEL,
  SUPPORT_AGENT,
  SUPPORT_SYSTEM_PROMPT,
  SUPPORT_TOOLS,
  respond,
  toolHandlers,
} from './workload';

/** The mechanisms a run turns on. */
export interface EconomyFlags {
  readonly responseCache: boolean;
  readonly promptCache: boolean;
  readonly historyCompression: boolean;
}

/** Response cache of each agent when the response cache is on. */
export const RESPONSE_CACHE: Readonly<Record<string, ResponseCacheSettings>> = {
  // The conversation's prompts carry one user's orders, so its responses are the user's own.
  [SUPPORT_AGENT]: { ttlSeconds: 3_600, scope: 'user', cacheToolTurns: false },
  // The FAQ prompts carry no user's data, so every user shares the answers.
  [FAQ_AGENT]: { ttlSeconds: 3_600, scope: 'agent', cacheToolTurns: false },
};

/**
 * History compression of both agents when it is on: an input budget of
 * 8,000 tokens, summaries from Claude Haiku 4.5, tool results cut at
 * 3,000 characters.
 */
export const HISTORY = { maxInputTokens: 8_000, maxToolResultChars: 3_000 } as const;

/** Calls the agents are expected to make in 5 minutes, for the prompt cache's `auto` mode. */
export const EXPECTED_CALLS_PER_5_MINUTES = 30;

const BENCH_CREDENTIALS = { accessKeyId: 'AKIDLOOPBACKBENCH', secretAccessKey: 'loopback-secret' };
const GATEWAY_FUNCTION = 'bench-economy-gateway';
const MAX_TOKENS_PER_CALL = 1_024;

/** Returns the list price of a target, with the regional premium the TokenBudget construct adds by default. */
export function listPrice(modelId: string): ModelPrice {
  const found = priceTarget(modelId, { regionalPremiumPercent: DEFAULT_REGIONAL_PREMIUM_PERCENT });
  if (found === undefined) throw new Error(`The price table lists no price for ${modelId}.`);
  return found.price;
}

function agentEntry(flags: EconomyFlags, agent: string): GatewayAgentConfig {
  return {
    route: [{ region: LOCAL_REGION, modelId: MAIN_MODEL }],
    maxTokensPerCall: MAX_TOKENS_PER_CALL,
    promptCache: flags.promptCache ? 'auto' : 'off',
    expectedCallsPer5Minutes: EXPECTED_CALLS_PER_5_MINUTES,
    ...(flags.responseCache ? { responseCache: RESPONSE_CACHE[agent] } : {}),
  };
}

/** Returns the gateway configuration of a run, with tables named after `run`. */
function gatewayConfig(flags: EconomyFlags, tables: RunTables): GatewayRuntimeConfig {
  const summaryEntry: GatewayAgentConfig = {
    route: [{ region: LOCAL_REGION, modelId: SUMMARY_MODEL }],
    maxTokensPerCall: SUMMARY_MAX_TOKENS,
    promptCache: 'off',
  };
  return {
    agents: {
      [SUPPORT_AGENT]: agentEntry(flags, SUPPORT_AGENT),
      [FAQ_AGENT]: agentEntry(flags, FAQ_AGENT),
      [summaryAgentName(SUPPORT_AGENT)]: summaryEntry,
      [summaryAgentName(FAQ_AGENT)]: summaryEntry,
    },
    client: { connectTimeoutMs: 1_000, firstByteTimeoutMs: 10_000, attemptTimeoutMs: 10_000, sdkMaxAttempts: 1 },
    budget: {
      table: tables.ledger,
      leaseSeconds: 300,
      failOpen: false,
      allowAnonymous: false,
      stack: { daily: { tokens: 1_000_000_000 } },
      agents: {},
      prices: { [MAIN_MODEL]: listPrice(MAIN_MODEL), [SUMMARY_MODEL]: listPrice(SUMMARY_MODEL) },
    },
    ...(flags.responseCache ? { responseCacheTable: tables.responseCache } : {}),
  };
}

function workerConfig(flags: EconomyFlags, agent: string, systemPrompt: string, tools: WorkerToolConfig[]): WorkerRuntimeConfig {
  return {
    agent,
    mode: 'realtime',
    systemPrompt,
    tools,
    limits: {
      maxIterations: 6,
      maxTokensPerTask: 1_000_000,
      maxTokensPerCall: MAX_TOKENS_PER_CALL,
      taskTimeoutSeconds: 60,
      maxBodyBytes: 16_384,
    },
    memoryTtlDays: 1,
    auth: { type: 'none' },
    concurrency: 1,
    ...(flags.historyCompression ? { history: { ...HISTORY, summaryAgent: summaryAgentName(agent) } } : {}),
  };
}

interface RunTables {
  readonly memory: string;
  readonly ledger: string;
  readonly responseCache: string;
}

async function createTable(dynamo: DynamoDbLocal, name: string): Promise<void> {
  await dynamo.client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
}

/** The running stack of one run, and the lines it wrote. */
export class EconomyStack {
  /** EMF lines of the gateway, parsed: one per model call, cache hit and rejection. */
  readonly gatewayMetrics: Array<Record<string, any>> = [];
  /** EMF lines of the workers, parsed: one per task and one per tool call. */
  readonly workerMetrics: Array<Record<string, any>> = [];
  private readonly bedrockClients: BedrockRuntimeClient[] = [];
  private lambdaClient?: LambdaClient;
  private deps?: (agent: string) => Parameters<typeof runAgentTask>[1];

  private constructor(
    readonly flags: EconomyFlags,
    readonly bedrock: BedrockServer,
    private readonly lambda: LambdaServer,
  ) {}

  /** Starts the servers of a run whose tables are named after `run`. */
  static async start(dynamo: DynamoDbLocal, run: string, flags: EconomyFlags): Promise<EconomyStack> {
    const tables: RunTables = {
      memory: `economy-memory-${run}`,
      ledger: `economy-ledger-${run}`,
      responseCache: `economy-cache-${run}`,
    };
    await Promise.all(Object.values(tables).map((name) => createTable(dynamo, name)));
    const [bedrock, lambda] = await Promise.all([
      startBedrockServer({ promptCache: new PromptCacheAccounting(), respond }),
      startLambdaServer(),
    ]);
    const stack = new EconomyStack(flags, bedrock, lambda);
    stack.wire(dynamo, tables);
    return stack;
  }

  private wire(dynamo: DynamoDbLocal, tables: RunTables): void {
    const config = gatewayConfig(this.flags, tables);
    const quiet = new Logger({}, { level: 'error', sink: () => undefined });
    const services = createGatewayServices(
      {
        config,
        metrics: new MetricsWriter({ sink: (line) => this.gatewayMetrics.push(JSON.parse(line)) }),
        budgetTableClient: dynamo.documentClient,
        responseCacheTableClient: dynamo.documentClient,
        clientForRegion: (region, settings) => {
          const client = createBedrockClient(region, { settings, endpoint: this.bedrock.endpoint, credentials: BENCH_CREDENTIALS });
          this.bedrockClients.push(client);
          return client;
        },
      },
      'the token economy benchmark',
    );
    this.lambda.register(GATEWAY_FUNCTION, createGatewayHandler({ config, services, logger: quiet }));
    for (const [name, handler] of Object.entries(toolHandlers())) this.lambda.register(name, handler);
    const lambdaClient = new LambdaClient({
      endpoint: this.lambda.endpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      maxAttempts: 1,
    });
    this.lambdaClient = lambdaClient;
    const workerMetrics = new MetricsWriter({ sink: (line) => this.workerMetrics.push(JSON.parse(line)) });
    const configs: Record<string, WorkerRuntimeConfig> = {
      [SUPPORT_AGENT]: workerConfig(this.flags, SUPPORT_AGENT, SUPPORT_SYSTEM_PROMPT, SUPPORT_TOOLS),
      [FAQ_AGENT]: workerConfig(this.flags, FAQ_AGENT, FAQ_SYSTEM_PROMPT, []),
    };
    this.deps = (agent) => ({
      config: configs[agent],
      model: new GatewayModelClient(lambdaClient, GATEWAY_FUNCTION),
      tools: new ToolRunner(agent, configs[agent].tools, lambdaClient, workerMetrics),
      memory: new DynamoSessionMemory(dynamo.documentClient, tables.memory, 1),
      logger: quiet,
      metrics: workerMetrics,
    });
  }

  /** Runs one task of `agent` and returns its result. */
  run(agent: string, task: { requestId: string; userId: string; sessionId: string; message: string }): Promise<AgentResult> {
    return runAgentTask(task, this.deps!(agent));
  }

  async close(): Promise<void> {
    this.lambdaClient?.destroy();
    this.bedrockClients.forEach((client) => client.destroy());
    await Promise.all([this.bedrock.close(), this.lambda.close()]);
  }
}
