/**
 * Checks the metric catalog against what the runtime writes. The real
 * gateway runs in-process behind a loopback Lambda server, with one
 * loopback Bedrock server per region and its budget ledger in DynamoDB
 * Local. The real agent loop calls it through the Lambda SDK and runs
 * tools on the same Lambda server. Scenarios drive every kind of event,
 * and every EMF line written to a metrics writer or a log line is parsed
 * and matched against AGENT_METRICS.
 */
import { randomUUID } from 'crypto';
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import {
  createBedrockClient,
  createGatewayHandler,
  createGatewayServices,
  createGatewayStreamHandler,
  createResponseStreamHandler,
} from '../lambda/gateway';
import {
  SUMMARY_MAX_TOKENS,
  summaryAgentName,
  type GatewayRuntimeConfig,
  type WorkerRuntimeConfig,
  type WorkerToolConfig,
} from '../lambda/shared/contracts';
import { Logger } from '../lambda/shared/logger';
import {
  AGENT_METRICS,
  type AgentMetricKey,
  type MetricDefinition,
} from '../lambda/shared/metric-catalog';
import { METRIC_NAMESPACE, MetricsWriter } from '../lambda/shared/metrics';
import { AgentLoopDeps, AgentResult, runAgentTask } from '../lambda/worker/agent-loop';
import { DynamoSessionMemory } from '../lambda/worker/memory';
import { GatewayModelClient } from '../lambda/worker/model-client';
import { StreamingGatewayModelClient } from '../lambda/worker/stream-client';
import { ToolRunner } from '../lambda/worker/tools';
import { guardrailPassed } from './support/bedrock-guardrail';
import {
  errorResponse,
  guardrailResponse,
  textResponse,
  toolUseResponse,
} from './support/bedrock-server';
import { streamResponse, textStreamSteps } from './support/bedrock-stream';
import {
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  startDynamoDbLocal,
  type DynamoDbLocal,
} from './support/dynamodb-local';
import { TEST_CREDENTIALS, startRegionServers, type RegionServers } from './support/failover-harness';
import { startLambdaServer, type LambdaServer } from './support/lambda-server';

/**
 * Catalog entries that this test does not drive, each with the reason and
 * the test that checks it. Every other entry must be published by a line
 * that the scenarios below produce, so a new entry fails this test until a
 * scenario covers it or it is listed here.
 */
const LEFT_TO_OTHER_TESTS: Partial<Record<AgentMetricKey, string>> = {
  // The kill switch computes budget use on its schedule, outside any request.
  budgetUsePercent: 'test/budget-kill-switch.test.ts',
  // The feedback Lambda writes user scores, outside the agent loop.
  satisfaction: 'test/feedback.test.ts',
  // The ledger writes it when DynamoDB is unreachable and the budget fails open.
  unguardedCall: 'test/budget-ledger.test.ts',
  // The budget step writes these for a suspended agent and for a settle
  // that failed after its retries, which need the kill switch or a broken ledger.
  suspendedRejected: 'test/gateway-budget.test.ts',
  settleFailed: 'test/gateway-budget.test.ts',
  // Only an agent with a response cache writes these, and the response cache test drives each.
  responseCacheHit: 'test/gateway-response-cache.test.ts',
  responseCacheMiss: 'test/gateway-response-cache.test.ts',
  responseCacheTokensSaved: 'test/gateway-response-cache.test.ts',
  responseCacheUsdSaved: 'test/gateway-response-cache.test.ts',
  responseCacheSkippedTooLarge: 'test/gateway-response-cache.test.ts',
};

const EAST = LOCAL_REGION;
const WEST = 'us-west-2';
const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
// The failover agent's primary target has a model of its own, so that its
// circuit breaker, which one failure opens here, affects no other scenario.
const FAILOVER_MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const WEST_MODEL = 'us.amazon.nova-pro-v1:0';
const PRICE = { inputPerMillion: 3, outputPerMillion: 15, cacheReadPerMillion: 0.3, cacheWritePerMillion: 3.75 };
const GUARDRAIL = { id: 'gr1234abcd', version: '3', region: EAST };
const GATEWAY_FUNCTION = 'agent-gateway';
const MEMORY_TABLE = 'agent-memory';
const LEDGER_TABLE = 'budget-ledger';
const MAX_TOKENS_PER_CALL = 256;
const COOLDOWN_SECONDS = 1;

const GATEWAY_CONFIG: GatewayRuntimeConfig = {
  agents: {
    support: { route: [{ region: EAST, modelId: MODEL }], maxTokensPerCall: MAX_TOKENS_PER_CALL },
    rated: { route: [{ region: EAST, modelId: MODEL }], maxTokensPerCall: MAX_TOKENS_PER_CALL },
    failover: {
      route: [
        { region: EAST, modelId: FAILOVER_MODEL },
        { region: WEST, modelId: WEST_MODEL },
      ],
      maxTokensPerCall: MAX_TOKENS_PER_CALL,
    },
    metered: { route: [{ region: EAST, modelId: MODEL }], maxTokensPerCall: MAX_TOKENS_PER_CALL },
    tiny: { route: [{ region: EAST, modelId: MODEL }], maxTokensPerCall: MAX_TOKENS_PER_CALL },
    limited: { route: [{ region: EAST, modelId: MODEL }], maxTokensPerCall: MAX_TOKENS_PER_CALL },
    compact: { route: [{ region: EAST, modelId: MODEL }], maxTokensPerCall: MAX_TOKENS_PER_CALL },
    [summaryAgentName('compact')]: { route: [{ region: EAST, modelId: MODEL }], maxTokensPerCall: SUMMARY_MAX_TOKENS },
  },
  client: { connectTimeoutMs: 1_000, firstByteTimeoutMs: 5_000, attemptTimeoutMs: 5_000, sdkMaxAttempts: 1 },
  breaker: { failureThreshold: 1, cooldownSeconds: COOLDOWN_SECONDS },
  guardrail: GUARDRAIL,
  budget: {
    table: LEDGER_TABLE,
    leaseSeconds: 120,
    failOpen: false,
    allowAnonymous: false,
    agents: {
      // Room for one call's worst case but not for two calls' usage.
      metered: { agent: { daily: { tokens: 1_000 } } },
      // Less than the maxTokens of one call alone.
      tiny: { agent: { daily: { tokens: 100 } } },
      limited: { agentRate: { requestsPerMinute: 1 } },
    },
    prices: { [MODEL]: PRICE, [FAILOVER_MODEL]: PRICE, [WEST_MODEL]: PRICE },
  },
};

const LOOKUP_ORDER: WorkerToolConfig = {
  name: 'lookup_order',
  description: 'Look up an order by id.',
  impact: 'low',
  inputSchema: { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'] },
  functionName: 'lookup-order',
};

const CHECK_INVENTORY: WorkerToolConfig = {
  name: 'check_inventory',
  description: 'Check stock for a SKU.',
  impact: 'low',
  inputSchema: { type: 'object', properties: { sku: { type: 'string' } }, required: ['sku'] },
  functionName: 'check-inventory',
};

function workerConfig(agent: string, overrides: Partial<WorkerRuntimeConfig> = {}): WorkerRuntimeConfig {
  return {
    agent,
    mode: 'realtime',
    systemPrompt: 'You help the customers of an online shop.',
    tools: [LOOKUP_ORDER, CHECK_INVENTORY],
    limits: {
      maxIterations: 6,
      maxTokensPerTask: 50_000,
      maxTokensPerCall: MAX_TOKENS_PER_CALL,
      taskTimeoutSeconds: 30,
      maxBodyBytes: 4_096,
    },
    memoryTtlDays: 1,
    auth: { type: 'none' },
    concurrency: 1,
    ...overrides,
  };
}

/** One metric as an EMF directive publishes it. */
interface PublishedMetric {
  readonly namespace: string;
  readonly name: string;
  readonly unit: string;
  readonly dimensions: readonly string[];
  readonly value: unknown;
  /** The line's dimension values, such as `{ Agent: 'support', Tool: 'lookup_order' }`. */
  readonly dimensionValues: Record<string, unknown>;
}

function isNumericValue(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0 && value.every((v) => typeof v === 'number');
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * Returns the metrics one EMF line publishes, one per metric and dimension
 * set. Throws when the line breaks a rule of the EMF specification that
 * makes CloudWatch drop its metrics, such as a missing timestamp, a
 * dimension without a string value or a metric without a numeric value, see
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
function publishedMetrics(line: Record<string, any>): PublishedMetric[] {
  const text = JSON.stringify(line);
  const metadata = line._aws;
  if (typeof metadata?.Timestamp !== 'number' || !Array.isArray(metadata.CloudWatchMetrics)) {
    throw new Error(`EMF line has no numeric _aws.Timestamp or no CloudWatchMetrics: ${text}`);
  }
  const published: PublishedMetric[] = [];
  for (const directive of metadata.CloudWatchMetrics) {
    for (const dimensions of directive.Dimensions as string[][]) {
      const dimensionValues: Record<string, unknown> = {};
      for (const dimension of dimensions) {
        if (typeof line[dimension] !== 'string') {
          throw new Error(`EMF line has no string value for dimension ${dimension}: ${text}`);
        }
        dimensionValues[dimension] = line[dimension];
      }
      for (const metric of directive.Metrics as Array<{ Name: string; Unit: string }>) {
        if (!isNumericValue(line[metric.Name])) {
          throw new Error(`EMF line has no numeric value for metric ${metric.Name}: ${text}`);
        }
        published.push({
          namespace: directive.Namespace,
          name: metric.Name,
          unit: metric.Unit,
          dimensions,
          value: line[metric.Name],
          dimensionValues,
        });
      }
    }
  }
  return published;
}

function sameDimensionSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
}

function matches(metric: PublishedMetric, entry: MetricDefinition): boolean {
  return (
    metric.namespace === METRIC_NAMESPACE &&
    metric.name === entry.name &&
    metric.unit === entry.unit &&
    sameDimensionSet(metric.dimensions, entry.dimensions)
  );
}

let servers: RegionServers;
let lambda: LambdaServer;
let dynamo: DynamoDbLocal;
let lambdaClient: LambdaClient;
const bedrockClients: BedrockRuntimeClient[] = [];
/** Every line the gateway and the worker wrote, metric lines and log lines alike. */
const written: string[] = [];
const metrics = new MetricsWriter({ sink: (line) => written.push(line) });
const logger = new Logger({}, { level: 'debug', sink: (line) => written.push(line) });
// The gateway's clock. It is fixed, so that every call of the rate limit
// scenario falls in one minute, and moves only past the breaker's cooldown.
let clock = Date.UTC(2026, 11, 4, 9, 30, 0);

/** Outcome of each scenario: the task's result or the error it raised. */
const outcomes: Record<string, AgentResult | Error> = {};

function deps(config: WorkerRuntimeConfig, streaming: boolean): AgentLoopDeps {
  return {
    config,
    model: streaming
      ? new StreamingGatewayModelClient(lambdaClient, GATEWAY_FUNCTION)
      : new GatewayModelClient(lambdaClient, GATEWAY_FUNCTION),
    tools: new ToolRunner(config.agent, config.tools, lambdaClient, metrics),
    memory: new DynamoSessionMemory(dynamo.documentClient, MEMORY_TABLE, config.memoryTtlDays),
    logger,
    metrics,
  };
}

/** Runs one task and records its outcome under `scenario`; a streamed task passes a listener. */
async function runScenario(
  scenario: string,
  config: WorkerRuntimeConfig,
  options: { streaming?: boolean; sessionId?: string } = {},
): Promise<void> {
  const streaming = options.streaming ?? false;
  const task = {
    requestId: `${scenario}-${randomUUID()}`,
    userId: 'user-1',
    sessionId: options.sessionId ?? randomUUID(),
    message: 'Where is my order ORD-10002, and is the keyboard KB-204 in stock?',
  };
  try {
    const listener = streaming ? () => undefined : undefined;
    outcomes[scenario] = await runAgentTask(task, deps(config, streaming), undefined, listener);
  } catch (error) {
    outcomes[scenario] = error as Error;
  }
}

function resultOf(scenario: string): AgentResult {
  const outcome = outcomes[scenario];
  if (outcome instanceof Error) {
    throw new Error(`Scenario ${scenario} failed with ${outcome.name}: ${outcome.message}`);
  }
  return outcome;
}

function errorOf(scenario: string): Error & { layer?: string } {
  const outcome = outcomes[scenario];
  if (!(outcome instanceof Error)) {
    throw new Error(`Scenario ${scenario} succeeded with stop reason ${outcome?.stopReason}`);
  }
  return outcome;
}

/** Returns every metric of every EMF line written so far. */
function allPublished(): PublishedMetric[] {
  return written
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((line) => line._aws !== undefined)
    .flatMap(publishedMetrics);
}

function publishedNamed(name: string): PublishedMetric[] {
  return allPublished().filter((metric) => metric.name === name);
}

async function createLedgerTable(): Promise<void> {
  await dynamo.client.send(
    new CreateTableCommand({
      TableName: LEDGER_TABLE,
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

/** Throws when a server still has scripted responses, which means a scenario took another path. */
function expectScriptsConsumed(scenario: string): void {
  for (const [region, server] of Object.entries(servers)) {
    if (server.pending() > 0) {
      throw new Error(`Scenario ${scenario} left ${server.pending()} responses on ${region}.`);
    }
  }
}

beforeAll(async () => {
  [servers, lambda, dynamo] = await Promise.all([
    startRegionServers([EAST, WEST]),
    startLambdaServer(),
    startDynamoDbLocal(MEMORY_TABLE),
  ]);
  await createLedgerTable();
  lambdaClient = new LambdaClient({
    endpoint: lambda.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });

  // Both handlers share one set of services, as in the Lambda entry point.
  const services = createGatewayServices(
    {
      config: GATEWAY_CONFIG,
      metrics,
      now: () => clock,
      budgetTableClient: dynamo.documentClient,
      clientForRegion: (region, settings) => {
        const client = createBedrockClient(region, {
          settings,
          endpoint: servers[region].endpoint,
          credentials: TEST_CREDENTIALS,
        });
        bedrockClients.push(client);
        return client;
      },
    },
    'the metric emission test',
  );
  const gatewayLogger = logger.child({ component: 'gateway' });
  lambda.registerStreaming(
    GATEWAY_FUNCTION,
    createResponseStreamHandler(
      createGatewayHandler({ config: GATEWAY_CONFIG, services, logger: gatewayLogger }),
      createGatewayStreamHandler({ config: GATEWAY_CONFIG, services, logger: gatewayLogger }),
    ),
  );
  lambda.register(LOOKUP_ORDER.functionName, (input: { orderId: string }) => ({
    orderId: input.orderId,
    status: 'shipped',
  }));
  lambda.register(CHECK_INVENTORY.functionName, () => {
    throw new Error('inventory service is unavailable');
  });

  // A task with a tool that succeeds and one that fails.
  servers[EAST].script(
    toolUseResponse({ toolUseId: 'call-1', name: 'lookup_order', input: { orderId: 'ORD-10002' } }),
    toolUseResponse({ toolUseId: 'call-2', name: 'check_inventory', input: { sku: 'KB-204' } }),
    textResponse('Your order has shipped; stock could not be checked.', {
      usage: { inputTokens: 300, outputTokens: 20, cacheReadInputTokens: 100 },
    }),
  );
  await runScenario('tools', workerConfig('support'));
  expectScriptsConsumed('tools');

  // A throttled primary target: the call moves to the west, whose input and
  // output the guardrail checks in its own region, and the breaker opens.
  servers[EAST].script(
    errorResponse(429, 'ThrottlingException', { message: 'Too many tokens.' }),
    guardrailPassed(),
    guardrailPassed(),
  );
  servers[WEST].script(textResponse('Your order has shipped.'));
  await runScenario('failover', workerConfig('failover'));
  expectScriptsConsumed('failover');

  // After the cooldown one probe call reaches the primary and closes its breaker.
  clock += COOLDOWN_SECONDS * 1_000 + 1;
  servers[EAST].script(textResponse('Your order has shipped.'));
  await runScenario('probe', workerConfig('failover'));
  expectScriptsConsumed('probe');

  // The guardrail blocks the input of a buffered call and the output of a streamed one.
  servers[EAST].script(guardrailResponse({ side: 'input' }));
  await runScenario('guardrail', workerConfig('support'));
  expectScriptsConsumed('guardrail');
  const stopReason = 'guardrail_intervened';
  servers[EAST].script(streamResponse(textStreamSteps(['Sorry, I cannot help.'], { stopReason })));
  await runScenario('streamed guardrail', workerConfig('support'), { streaming: true });
  expectScriptsConsumed('streamed guardrail');

  // A streamed call that succeeds.
  servers[EAST].script(streamResponse(textStreamSteps(['Your order ', 'has shipped.'])));
  await runScenario('streamed', workerConfig('support'), { streaming: true });
  expectScriptsConsumed('streamed');

  // A structured final answer with a confidence.
  servers[EAST].script(
    toolUseResponse({
      toolUseId: 'final-1',
      name: 'final_answer',
      input: { answer: 'Your order has shipped.', confidence: 0.75 },
    }),
  );
  await runScenario('confidence', workerConfig('rated', { confidence: true }));
  expectScriptsConsumed('confidence');

  // A daily cap that one call's usage exhausts, a daily cap below one
  // call's worst case, and a limit of one request per minute.
  servers[EAST].script(
    textResponse('Your order has shipped.', { usage: { inputTokens: 600, outputTokens: 100 } }),
  );
  await runScenario('budget allowed', workerConfig('metered'));
  await runScenario('budget exhausted', workerConfig('metered'));
  await runScenario('budget too small', workerConfig('tiny'));
  servers[EAST].script(textResponse('Your order has shipped.'));
  await runScenario('rate allowed', workerConfig('limited'));
  await runScenario('rate limited', workerConfig('limited'));
  expectScriptsConsumed('rate limit');

  // A session whose stored history is over the agent's input budget: a
  // summary call replaces its oldest turns before the task's call.
  const compactConfig = workerConfig('compact', {
    history: { maxInputTokens: 400, summaryAgent: summaryAgentName('compact'), maxToolResultChars: 2_000 },
  });
  const compactSession = randomUUID();
  const earlier = [0, 1, 2].flatMap((i) => [
    { role: 'user' as const, content: [{ text: `Question ${i} about order ORD-1000${i}. `.repeat(10) }] },
    { role: 'assistant' as const, content: [{ text: `Order ORD-1000${i} has shipped. `.repeat(10) }] },
  ]);
  await deps(compactConfig, false).memory.append(
    { agent: 'compact', userId: 'user-1', sessionId: compactSession },
    0,
    earlier,
    'history-seed',
  );
  servers[EAST].script(
    textResponse('The user asked about three orders, which have all shipped.'),
    textResponse('Your order has shipped.'),
  );
  await runScenario('compressed history', compactConfig, { sessionId: compactSession });
  expectScriptsConsumed('compressed history');
}, 120_000);

afterAll(async () => {
  lambdaClient?.destroy();
  bedrockClients.forEach((client) => client.destroy());
  await Promise.all([
    ...Object.values(servers ?? {}).map((server) => server.close()),
    lambda?.close(),
    dynamo?.stop(),
  ]);
});

describe('scenarios', () => {
  test('tool task runs both tools', () => {
    const result = resultOf('tools');

    expect(result.stopReason).toBe('end_turn');
    expect(result.toolCalls).toBe(2);
    expect(result.iterations).toBe(3);
  });

  test('failover answers from the west', () => {
    expect(resultOf('failover').stopReason).toBe('end_turn');
    expect(servers[WEST].requests.map((request) => request.operation)).toEqual(['converse']);
  });

  test('probe answers from the primary', () => {
    expect(resultOf('probe').stopReason).toBe('end_turn');
  });

  test('guardrail blocks buffered input', () => {
    const error = errorOf('guardrail');

    expect(error.name).toBe('GuardrailBlockedError');
    expect(error.layer).toBe('guardrail input');
  });

  test('guardrail blocks streamed output', () => {
    const error = errorOf('streamed guardrail');

    expect(error.name).toBe('GuardrailBlockedError');
    expect(error.layer).toBe('guardrail');
  });

  test('streamed task ends its turn', () => {
    expect(resultOf('streamed').output).toBe('Your order has shipped.');
  });

  test('final answer carries confidence', () => {
    const result = resultOf('confidence');

    expect(result.stopReason).toBe('final_answer');
    expect(result.confidence).toBe(0.75);
  });

  test('spent budget rejects the call', () => {
    expect(resultOf('budget allowed').stopReason).toBe('end_turn');
    expect(errorOf('budget exhausted').name).toBe('BudgetExceededError');
  });

  test('budget below one call rejects it', () => {
    expect(errorOf('budget too small').name).toBe('BudgetExceededError');
  });

  test('compressed history ends its turn', () => {
    expect(resultOf('compressed history').stopReason).toBe('end_turn');
    expect(servers[EAST].requests.at(-2)?.body).toMatchObject({ system: [{ text: expect.stringContaining('summarize') }] });
  });

  test('rate limit rejects the second call', () => {
    expect(resultOf('rate allowed').stopReason).toBe('end_turn');
    expect(errorOf('rate limited').name).toBe('RateLimitedError');
  });
});

describe('catalog coverage', () => {
  const entries = Object.entries(AGENT_METRICS) as Array<[AgentMetricKey, MetricDefinition]>;
  const covered = entries.filter(([key]) => LEFT_TO_OTHER_TESTS[key] === undefined);

  test('left-out entries exist', () => {
    for (const key of Object.keys(LEFT_TO_OTHER_TESTS)) {
      expect(Object.keys(AGENT_METRICS)).toContain(key);
    }
  });

  test('covered entries come from gateway or worker', () => {
    for (const [key, entry] of covered) {
      expect([key, ['gateway', 'worker'].includes(entry.emittedBy)]).toEqual([key, true]);
    }
  });

  test.each(covered)('%s is published', (_key, entry) => {
    const published = allPublished().filter((metric) => matches(metric, entry));

    expect(published.length).toBeGreaterThan(0);
  });

  test('every published metric is in the catalog', () => {
    const unknown = allPublished()
      .filter((metric) => !entries.some(([, entry]) => matches(metric, entry)))
      .map((metric) => `${metric.name} ${metric.unit} [${metric.dimensions.join(', ')}]`);

    expect([...new Set(unknown)]).toEqual([]);
  });
});

describe('metric values', () => {
  test('CacheHit is 0 per model call', () => {
    const cacheHits = publishedNamed('CacheHit');
    const latencies = publishedNamed('ModelLatency').filter((m) => m.dimensions.length === 1);

    expect(cacheHits.length).toBe(latencies.length);
    expect(new Set(cacheHits.map((metric) => metric.value))).toEqual(new Set([0]));
  });

  test('GuardBlocked names each layer', () => {
    const blocks = publishedNamed('GuardBlocked');

    expect(blocks.map((metric) => metric.dimensionValues)).toEqual([
      { Agent: 'support', Layer: 'guardrail input' },
      { Agent: 'support', Layer: 'guardrail' },
    ]);
    expect(blocks.map((metric) => metric.value)).toEqual([1, 1]);
  });

  test('ToolFailures marks the failing tool', () => {
    const failures = publishedNamed('ToolFailures').filter((m) => m.dimensions.includes('Tool'));

    expect(failures.map((metric) => [metric.dimensionValues.Tool, metric.value])).toEqual([
      ['lookup_order', 0],
      ['check_inventory', 1],
    ]);
  });

  test('Confidence is the reported value', () => {
    const confidences = publishedNamed('Confidence');

    expect(confidences.map((metric) => [metric.dimensionValues.Agent, metric.value])).toEqual([
      ['rated', 0.75],
    ]);
  });

  test('BudgetRejected counts a call above the limit', () => {
    const rejected = publishedNamed('BudgetRejected').map((metric) => metric.dimensionValues.Agent);

    expect(rejected).toContain('tiny');
  });

  test('BudgetRejected counts a spent budget', () => {
    const rejected = publishedNamed('BudgetRejected').map((metric) => metric.dimensionValues.Agent);

    expect(rejected.filter((agent) => agent === 'metered')).toEqual(['metered']);
  });

  test('breaker opens and closes once', () => {
    const opened = publishedNamed('BreakerOpened').filter((m) => m.dimensions.includes('Region'));
    const closed = publishedNamed('BreakerClosed').filter((m) => m.dimensions.includes('Region'));

    expect(opened.map((metric) => metric.dimensionValues)).toEqual([{ Agent: 'failover', Region: EAST }]);
    expect(closed.map((metric) => metric.dimensionValues)).toEqual([{ Agent: 'failover', Region: EAST }]);
  });
});
