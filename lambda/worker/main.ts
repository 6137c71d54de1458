/**
 * Entry point of the agent worker container. It reads its settings from the
 * environment, then serves HTTP (realtime agents) or consumes the task
 * queue (background agents) until ECS stops it with SIGTERM.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ApprovalStore } from '../shared/approvals';
import { createAuditSinkFromEnv } from '../shared/audit-firehose';
import { Logger } from '../shared/logger';
import { MetricsWriter } from '../shared/metrics';
import { AgentLoopDeps, AgentTask, runAgentTask } from './agent-loop';
import { ToolApprovals } from './approvals';
import { createAuthenticator } from '../shared/auth-factory';
import { exitAfterOutputDrains } from './exit';
import { startRealtimeServer } from './http-server';
import { DynamoSessionMemory } from './memory';
import { ModelStreamListener } from './model-client';
import { QueueConsumer } from './queue-consumer';
import { WorkerSettings, readWorkerSettings } from './settings';
import { StreamingGatewayModelClient } from './stream-client';
import { flushAudit } from './task-audit';
import { TaskProtection } from './task-protection';
import { ToolRunner } from './tools';

/**
 * Runs `shutdown` once on SIGTERM or SIGINT, then exits with status 0 once
 * stdout has drained, so the last task's log and metric lines reach the log driver.
 */
function onStopSignal(logger: Logger, shutdown: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info('stop signal received; shutting down', { signal });
    shutdown()
      .catch((error) => logger.error('shutdown failed', {}, error))
      .finally(() => {
        logger.info('worker stopped');
        void exitAfterOutputDrains(0);
      });
  };
  process.once('SIGTERM', handle);
  process.once('SIGINT', handle);
}

async function run(settings: WorkerSettings, logger: Logger): Promise<void> {
  const { config } = settings;
  // Clients use the default credential chain and region; AWS_ENDPOINT_URL_<SERVICE>
  // variables redirect them, which the tests use to reach local servers.
  const lambda = new LambdaClient({});
  const dynamodb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  const metrics = new MetricsWriter();
  // Tool calls keep only the hash of their arguments, so the full text setting does not apply here.
  const { sink: audit } = createAuditSinkFromEnv({ logger });
  const deps: AgentLoopDeps = {
    config,
    // Streams only for a listener, which the realtime server passes on a streamed request.
    model: new StreamingGatewayModelClient(lambda, settings.gatewayFunction),
    tools: new ToolRunner(config.agent, config.tools, lambda, metrics, audit),
    memory: new DynamoSessionMemory(dynamodb, settings.memoryTable, config.memoryTtlDays),
    logger,
    metrics,
    approvals:
      config.approvals &&
      new ToolApprovals({
        store: new ApprovalStore({ client: dynamodb, table: config.approvals.table }),
        sns: new SNSClient({}),
        topicArn: config.approvals.topicArn,
        expirySeconds: config.approvals.expirySeconds,
        queueUrl: settings.queueUrl,
      }),
    audit,
  };
  const runTask = (task: AgentTask, signal: AbortSignal, listener?: ModelStreamListener) =>
    runAgentTask(task, deps, signal, listener);

  if (config.mode === 'realtime') {
    const authenticator = createAuthenticator(config.auth, {
      albPublicKeysUrl: settings.albPublicKeysUrl,
    });
    const { server, port } = await startRealtimeServer(
      { config, authenticator, runTask, logger },
      settings.port!,
      settings.listenHost,
    );
    logger.info('realtime server listening', { port, host: settings.listenHost ?? 'all' });
    // Requests in flight may finish until ECS's stop timeout sends SIGKILL,
    // and then the audit records still queued are delivered.
    onStopSignal(logger, async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await flushAudit(audit, logger);
    });
    return;
  }

  // Each message renews the protection, so it only has to outlast one task
  // plus the time to save memory and delete the message.
  const protection = new TaskProtection(
    settings.ecsAgentUri,
    (config.limits.taskTimeoutSeconds + 120) / 60,
    logger,
  );
  const consumer = new QueueConsumer({
    // By default the SDK sends each call to the host of the queue URL and
    // ignores AWS_ENDPOINT_URL_SQS. The regional endpoint serves every queue
    // of the region, because the JSON protocol carries the URL in the body.
    sqs: new SQSClient({ useQueueUrlAsEndpoint: false }),
    queueUrl: settings.queueUrl!,
    config,
    runTask,
    protection,
    logger,
  });
  onStopSignal(logger, async () => {
    await consumer.stop();
    await flushAudit(audit, logger);
  });
  await consumer.start();
}

function main(): void {
  const logger = new Logger({}, { service: process.env.AGENT_SERVICE_NAME ?? 'agent-worker' });
  let settings: WorkerSettings;
  try {
    settings = readWorkerSettings();
  } catch (error) {
    logger.error('worker settings are invalid; stopping', {}, error);
    void exitAfterOutputDrains(1);
    return;
  }
  logger.info('worker starting', { agent: settings.config.agent, mode: settings.config.mode });
  run(settings, logger.child({ agent: settings.config.agent })).catch((error) => {
    logger.error('worker failed; stopping', {}, error);
    void exitAfterOutputDrains(1);
  });
}

main();
