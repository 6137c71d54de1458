/**
 * Everything the worker talks to, started on loopback for one test file:
 * the loopback Bedrock server behind the real gateway handler, the example
 * tool handlers behind a Lambda Invoke server, and DynamoDB Local.
 */
import { randomUUID } from 'crypto';
import { readFileSync } from 'fs';
import { join } from 'path';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createGatewayHandler } from '../../lambda/gateway';
import { WorkerRuntimeConfig, WorkerToolConfig } from '../../lambda/shared/contracts';
import { Logger } from '../../lambda/shared/logger';
import { MetricsWriter } from '../../lambda/shared/metrics';
import { AgentLoopDeps, AgentTask, runAgentTask } from '../../lambda/worker/agent-loop';
import { DynamoSessionMemory } from '../../lambda/worker/memory';
import { GatewayModelClient } from '../../lambda/worker/model-client';
import { ToolRunner } from '../../lambda/worker/tools';
import { handler as issueRefund } from '../../examples/tools/issue-refund';
import { handler as lookupOrder } from '../../examples/tools/lookup-order';
import { handler as searchKnowledgeBase } from '../../examples/tools/search-knowledge-base';
import { BedrockServer, startBedrockServer } from './bedrock-server';
import {
  DynamoDbLocal,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  startDynamoDbLocal,
} from './dynamodb-local';
import { LambdaServer, startLambdaServer } from './lambda-server';

export const AGENT = 'support';
export const GATEWAY_FUNCTION = 'agent-gateway';
export const MODEL_TARGET = { region: LOCAL_REGION, modelId: 'test.loopback-model-v1:0' };
export const MAX_TOKENS_PER_CALL = 2_048;

/** A tool whose function always throws, standing in for a broken dependency. */
export const FAILING_TOOL: WorkerToolConfig = {
  name: 'check_inventory',
  description: 'Check stock for a SKU.',
  impact: 'low',
  inputSchema: {
    type: 'object',
    properties: { sku: { type: 'string' } },
    required: ['sku'],
    additionalProperties: false,
  },
  functionName: 'check-inventory',
};

interface ConfigTool {
  name: string;
  description: string;
  impact: 'low' | 'high';
  inputSchema: Record<string, unknown>;
  handler: { entry: string };
}

/** Tools of the example config, whose entries name the example handlers. */
function exampleTools(): WorkerToolConfig[] {
  const file = join(__dirname, '..', '..', 'agent-stack.config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as {
    agents: Array<{ tools?: ConfigTool[] }>;
  };
  return config.agents
    .flatMap((agent) => agent.tools ?? [])
    .map((tool) => ({
      name: tool.name,
      description: tool.description,
      impact: tool.impact,
      inputSchema: tool.inputSchema,
      functionName: tool.name.replace(/_/g, '-'),
    }));
}

/** Worker configuration with the example tools plus {@link FAILING_TOOL}. */
export function workerConfig(
  overrides: Partial<Omit<WorkerRuntimeConfig, 'limits'>> & {
    limits?: Partial<WorkerRuntimeConfig['limits']>;
  } = {},
): WorkerRuntimeConfig {
  const { limits, ...rest } = overrides;
  return {
    agent: AGENT,
    mode: 'realtime',
    systemPrompt: 'You are the support agent of an online shop.',
    tools: [...exampleTools(), FAILING_TOOL],
    memoryTtlDays: 7,
    auth: { type: 'none' },
    concurrency: 1,
    ...rest,
    limits: {
      maxIterations: 8,
      maxTokensPerTask: 60_000,
      maxTokensPerCall: MAX_TOKENS_PER_CALL,
      taskTimeoutSeconds: 30,
      maxBodyBytes: 4_096,
      ...limits,
    },
  };
}

export interface WorkerHarness {
  readonly bedrock: BedrockServer;
  readonly lambda: LambdaServer;
  readonly dynamo: DynamoDbLocal;
  readonly lambdaClient: LambdaClient;
  /** Log lines of the worker and the gateway, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  readonly logger: Logger;
  /** EMF lines of the worker's task and tool metrics, parsed. */
  readonly metricLines: Array<Record<string, unknown>>;
  /** Writer that appends to {@link metricLines}. */
  readonly metrics: MetricsWriter;
  deps(config?: WorkerRuntimeConfig): AgentLoopDeps;
  run(
    task: Partial<AgentTask> & { message: string },
    config?: WorkerRuntimeConfig,
    signal?: AbortSignal,
  ): ReturnType<typeof runAgentTask>;
  close(): Promise<void>;
}

export async function startWorkerHarness(): Promise<WorkerHarness> {
  const logs: Array<Record<string, unknown>> = [];
  const logger = new Logger({}, { level: 'debug', sink: (line) => logs.push(JSON.parse(line)) });
  const metricLines: Array<Record<string, unknown>> = [];
  const metrics = new MetricsWriter({ sink: (line) => metricLines.push(JSON.parse(line)) });
  const [bedrock, lambda, dynamo] = await Promise.all([
    startBedrockServer(),
    startLambdaServer(),
    startDynamoDbLocal(),
  ]);

  const bedrockClients: BedrockRuntimeClient[] = [];
  lambda.register(
    GATEWAY_FUNCTION,
    createGatewayHandler({
      config: {
        agents: { [AGENT]: { route: [MODEL_TARGET], maxTokensPerCall: MAX_TOKENS_PER_CALL } },
      },
      clientForRegion: (region) => {
        const client = new BedrockRuntimeClient({
          region,
          endpoint: bedrock.endpoint,
          credentials: LOCAL_CREDENTIALS,
          requestHandler: new NodeHttpHandler(),
          maxAttempts: 1,
        });
        bedrockClients.push(client);
        return client;
      },
      logger: logger.child({ component: 'gateway' }),
    }),
  );
  lambda.register('lookup-order', lookupOrder);
  lambda.register('issue-refund', issueRefund);
  lambda.register('search-knowledge-base', searchKnowledgeBase);
  lambda.register(FAILING_TOOL.functionName, () => {
    throw new Error('inventory service is unavailable');
  });

  const lambdaClient = new LambdaClient({
    endpoint: lambda.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  const deps = (config = workerConfig()): AgentLoopDeps => ({
    config,
    model: new GatewayModelClient(lambdaClient, GATEWAY_FUNCTION),
    tools: new ToolRunner(config.agent, config.tools, lambdaClient, metrics),
    memory: new DynamoSessionMemory(dynamo.documentClient, dynamo.tableName, config.memoryTtlDays),
    logger,
    metrics,
  });

  return {
    bedrock,
    lambda,
    dynamo,
    lambdaClient,
    logs,
    logger,
    metricLines,
    metrics,
    deps,
    run: (task, config, signal) =>
      runAgentTask(
        {
          requestId: task.requestId ?? randomUUID(),
          userId: task.userId ?? 'user-1',
          sessionId: task.sessionId ?? randomUUID(),
          message: task.message,
        },
        deps(config),
        signal,
      ),
    async close() {
      lambdaClient.destroy();
      bedrockClients.forEach((client) => client.destroy());
      await Promise.all([bedrock.close(), lambda.close(), dynamo.stop()]);
    },
  };
}
