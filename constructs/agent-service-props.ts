import { Duration } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { WorkerAuthConfig } from '../lambda/shared/contracts';
import type { AgentEndpoint } from './agent-endpoint';
import type { AgentMemory } from './agent-memory';
import type { AgentTool } from './agent-tool';
import type { ApprovalGate } from './approval-gate';
import type { AuditLog } from './audit-log';
import type { ModelGateway } from './model-gateway';

/** History compression of an agent: when and how its history is shortened. */
export interface AgentHistoryCompression {
  /**
   * Input tokens one call may take, estimated with a 25 % margin. Beyond
   * it the oldest turns are replaced by a summary, which the gateway entry
   * `summaryAgentName(agentName)` writes. The ModelGateway must serve that
   * entry with the route of the cheaper model.
   */
  readonly maxInputTokens: number;

  /**
   * Characters of one tool result beyond which it is cut inside its
   * toolResult, with a note saying so.
   *
   * @default 20000
   */
  readonly maxToolResultChars?: number;
}

/** A period with a different number of warm tasks, such as business hours. */
export interface WarmWindow {
  /** When the window starts, for example `Schedule.cron({ hour: '7', weekDay: 'MON-FRI' })`. */
  readonly schedule: appscaling.Schedule;
  /** Tasks kept running from then on. */
  readonly minTasks: number;
}

export interface AgentServiceProps {
  /** Agent name: lower-case letters, digits and `-`. */
  readonly agentName: string;
  /** `realtime` serves HTTP behind the endpoint; `background` consumes a task queue. */
  readonly mode: 'realtime' | 'background';
  readonly cluster: ecs.ICluster;
  readonly systemPrompt: string;
  readonly gateway: ModelGateway;
  readonly memory: AgentMemory;

  /**
   * Tools the agent may call.
   *
   * @default - no tools
   */
  readonly tools?: AgentTool[];

  /**
   * Where calls of the agent's high-impact tools wait for a person's
   * decision. The worker gets the gate's table, topic and expiry in its
   * configuration and the grants to request approvals, and the gate may
   * send continuation messages to a background agent's task queue.
   *
   * @default - none, so the worker rejects every call of a high-impact tool
   */
  readonly approvalGate?: ApprovalGate;

  /**
   * Audit log of the agent's tool calls and approvals. The worker gets the
   * log's environment and may put records on its stream.
   *
   * @default - none, so the worker records nothing
   */
  readonly auditLog?: AuditLog;

  /**
   * Load balancer a realtime agent is routed through. Required for realtime agents.
   *
   * @default - none
   */
  readonly endpoint?: AgentEndpoint;

  /**
   * Container image of the agent.
   *
   * @default - the package's reference worker, built from its bundled Dockerfile at deploy time
   */
  readonly image?: ecs.ContainerImage;

  /**
   * Fargate CPU units of one task.
   *
   * @default 512
   */
  readonly cpu?: number;

  /**
   * Memory of one task in MiB; it must be a size Fargate allows for `cpu`.
   *
   * @default 1024
   */
  readonly memoryLimitMiB?: number;

  /**
   * CPU architecture of the task, which must match the image.
   *
   * @default ecs.CpuArchitecture.X86_64
   */
  readonly cpuArchitecture?: ecs.CpuArchitecture;

  /**
   * Maximum time one task (a request or a queue message) may run.
   *
   * @default Duration.minutes(5)
   */
  readonly taskTimeout?: Duration;
  /**
   * Model calls in one task before the agent loop stops.
   *
   * @default 10
   */
  readonly maxIterations?: number;

  /**
   * Total tokens of one task before the agent loop stops.
   *
   * @default 100000
   */
  readonly maxTokensPerTask?: number;

  /**
   * Ceiling of `maxTokens` for one model call.
   *
   * @default 4096
   */
  readonly maxTokensPerCall?: number;

  /**
   * History compression: the oldest turns of a long conversation are
   * replaced by a summary, and long tool results are cut.
   *
   * @default - none, so every call sends the whole history
   */
  readonly history?: AgentHistoryCompression;

  /**
   * Offer the model a `final_answer` tool whose input carries the answer and
   * a confidence from 0 to 1. The task ends when the model calls it, and the
   * worker publishes the confidence as the `Confidence` metric. A model that
   * answers in plain text still ends the task, without a confidence. No tool
   * of the agent may be named `final_answer` then.
   *
   * @default false
   */
  readonly confidence?: boolean;

  /**
   * Largest request or message body in bytes; larger realtime requests get 413.
   *
   * @default 262144
   */
  readonly maxBodyBytes?: number;

  /**
   * Tasks kept running when idle.
   *
   * @default - 1 for realtime agents, 0 for background agents
   */
  readonly minTasks?: number;
  /**
   * Maximum number of running tasks.
   *
   * @default 4
   */
  readonly maxTasks?: number;
  /**
   * Realtime scaling target: requests per task per minute.
   *
   * @default 60
   */
  readonly requestsPerTarget?: number;
  /**
   * Background scaling target: visible plus in-flight messages per task.
   *
   * @default 2
   */
  readonly backlogPerTask?: number;
  /**
   * Schedules that change `minTasks`, such as more warm tasks in business hours.
   *
   * @default - none
   */
  readonly warmWindows?: WarmWindow[];

  /**
   * Receives before a message moves to the dead-letter queue.
   *
   * @default 3
   */
  readonly maxReceiveCount?: number;
  /**
   * Retention of messages in the task queue.
   *
   * @default Duration.days(14)
   */
  readonly queueRetention?: Duration;
  /**
   * Messages one task handles at once.
   *
   * @default 1
   */
  readonly concurrency?: number;

  /**
   * Lifetime of memory items.
   *
   * @default Duration.days(30)
   */
  readonly memoryTtl?: Duration;

  /**
   * Authentication of realtime callers.
   *
   * @default - the endpoint's authentication
   */
  readonly auth?: WorkerAuthConfig;

  /**
   * Key for the queues and the log group.
   *
   * @default - AWS managed keys
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Subnets of the tasks.
   *
   * @default - the cluster VPC's private subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Retention of the agent's logs.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}
