/**
 * Background mode: long-polls the agent's SQS queue and runs one agent task
 * per message, up to `concurrency` at once. A message is deleted only after
 * its task succeeded. Any other outcome returns it to the queue, and SQS
 * moves it to the dead-letter queue after the redrive policy's
 * maxReceiveCount receives. A task that fails because the agent is
 * suspended instead pauses the consumer until the suspension ends.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { randomUUID } from 'crypto';
import { setTimeout as sleep } from 'timers/promises';
import { WorkerRuntimeConfig } from '../shared/contracts';
import { AgentSuspendedError, SuspensionDetails } from '../shared/errors';
import { Logger } from '../shared/logger';
import { AgentResult, AgentTask } from './agent-loop';
import { TaskAbortedError, isAbortError } from './errors';
import { SESSION_ID_PATTERN } from './memory';
import { TaskProtection } from './task-protection';

/**
 * Body of a task message, written by the producer that owns the user
 * identity, or a continuation message `{ resume, sessionId, userId }` that
 * the ApprovalGate sends after a high-impact call was decided or expired.
 */
export type TaskMessage =
  | { readonly message: string; readonly sessionId?: string; readonly userId: string; readonly resume?: undefined }
  | { readonly resume: string; readonly sessionId: string; readonly userId: string; readonly message?: undefined };

export interface QueueConsumerOptions {
  readonly sqs: SQSClient;
  readonly queueUrl: string;
  readonly config: WorkerRuntimeConfig;
  readonly runTask: (task: AgentTask, signal: AbortSignal) => Promise<AgentResult>;
  readonly protection: TaskProtection;
  readonly logger: Logger;
  /** @default 30 */
  readonly heartbeatSeconds?: number;
  /**
   * Visibility timeout each heartbeat sets, counted from the heartbeat. It
   * outlasts several missed heartbeats, and a crashed worker's message
   * returns to the queue at most this long after the last one.
   * @default 120
   */
  readonly visibilityTimeoutSeconds?: number;
  /** Long-poll wait of one receive; 20 is the SQS maximum. @default 20 */
  readonly waitTimeSeconds?: number;
  /**
   * Seconds the consumer pauses for a suspension without an end time, after
   * which it receives again to learn whether the suspension still applies.
   * @default 300
   */
  readonly suspensionPauseSeconds?: number;
  /** Minimum pause for a suspension that ends sooner or has already lapsed. @default 60 */
  readonly minSuspensionPauseSeconds?: number;
}

/** Maximum visibility timeout SQS accepts: 12 hours. */
export const MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200;

/**
 * Computes how long the consumer pauses for a suspension, in whole seconds.
 * The suspended message gets the same visibility timeout, so that it
 * returns to the queue when the consumer receives again. The result is the
 * time left until `until`, at least `minSeconds` and at most the SQS
 * maximum. A suspension without an end, or with an unreadable `until`,
 * pauses for `noEndSeconds`.
 */
export function suspensionPauseSeconds(
  suspension: SuspensionDetails,
  nowMs: number,
  minSeconds: number,
  noEndSeconds: number,
): number {
  const untilMs = suspension.until === undefined ? NaN : Date.parse(suspension.until);
  const seconds = Number.isNaN(untilMs) ? noEndSeconds : Math.ceil((untilMs - nowMs) / 1000);
  return Math.min(MAX_VISIBILITY_TIMEOUT_SECONDS, Math.max(minSeconds, seconds));
}

/** Parses a message body, returning a reason instead of throwing when it is invalid. */
export function parseTaskMessage(body: string | undefined, maxBytes: number): TaskMessage | string {
  if (body === undefined) return 'the message has no body';
  if (Buffer.byteLength(body) > maxBytes) return `the body is larger than ${maxBytes} bytes`;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return 'the body is not valid JSON';
  }
  if (!value || typeof value !== 'object' || Array.isArray(value))
    return 'the body is not a JSON object';
  const { message, sessionId, userId, resume } = value as Record<string, unknown>;
  if (resume === undefined && (typeof message !== 'string' || message.trim() === ''))
    return 'field message is missing or empty';
  if (typeof userId !== 'string' || userId === '' || userId.length > 256) {
    return 'field userId must be a string of 1 to 256 characters';
  }
  if (
    sessionId !== undefined &&
    (typeof sessionId !== 'string' || !SESSION_ID_PATTERN.test(sessionId))
  ) {
    return 'field sessionId must be 1 to 128 letters, digits, _ or -';
  }
  if (resume === undefined) return { message: message as string, sessionId, userId };
  if (typeof resume !== 'string' || resume === '' || resume.length > 64) {
    return 'field resume must be an approval id of 1 to 64 characters';
  }
  if (message !== undefined) return 'a continuation message has resume and no message';
  if (sessionId === undefined) return 'field sessionId is required with resume';
  return { resume, sessionId, userId };
}

/** Receives and processes task messages until {@link QueueConsumer.stop} is called. */
export class QueueConsumer {
  /**
   * Tasks running, by request id rather than message id, because SQS can
   * hand out a message again while its first task still runs.
   */
  private readonly inFlight = new Map<string, AbortController>();
  private readonly work = new Set<Promise<void>>();
  private readonly stopReceiving = new AbortController();
  private slotFreed: (() => void) | undefined;
  /** Epoch milliseconds until which the consumer receives no messages because the agent is suspended. */
  private pausedUntilMs = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly options: QueueConsumerOptions) {}

  /** Starts polling; the promise settles when the consumer has stopped. */
  start(): Promise<void> {
    this.running ??= this.poll();
    return this.running;
  }

  /**
   * Stops receiving, cancels the tasks in flight and returns their messages
   * to the queue, then releases the scale-in protection.
   */
  async stop(): Promise<void> {
    this.stopReceiving.abort();
    this.slotFreed?.();
    for (const controller of this.inFlight.values()) controller.abort();
    await this.running;
    await Promise.allSettled([...this.work]);
    await this.options.protection.disable();
  }

  private get stopping(): boolean {
    return this.stopReceiving.signal.aborted;
  }

  private async poll(): Promise<void> {
    const { sqs, queueUrl, config, logger } = this.options;
    logger.info('queue consumer started', { queueUrl, concurrency: config.concurrency });
    while (!this.stopping) {
      if (this.paused) {
        await this.waitForPauseEnd();
        continue;
      }
      const free = config.concurrency - this.inFlight.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let messages: Message[] = [];
      try {
        const output = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: Math.min(10, free),
            WaitTimeSeconds: this.options.waitTimeSeconds ?? 20,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
          { abortSignal: this.stopReceiving.signal },
        );
        messages = output.Messages ?? [];
      } catch (error) {
        if (this.stopping) break;
        logger.error('receiving messages failed; retrying in 5 seconds', { queueUrl }, error);
        await sleep(5_000, undefined, { signal: this.stopReceiving.signal }).catch(() => undefined);
        continue;
      }
      for (const message of messages) {
        const done = this.process(message).finally(() => this.work.delete(done));
        this.work.add(done);
      }
    }
    logger.info('queue consumer stopped receiving', { inFlight: this.inFlight.size });
  }

  private async process(message: Message): Promise<void> {
    const { config, protection } = this.options;
    const messageId = message.MessageId ?? 'unknown';
    const receipt = message.ReceiptHandle!;
    const requestId = randomUUID();
    const log = this.options.logger.child({
      requestId,
      agent: config.agent,
      messageId,
      receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 0),
    });
    if (this.paused) {
      // Received by a long poll that was already waiting when the pause began.
      await this.handBackWhilePaused(receipt, log);
      return;
    }
    const cancel = new AbortController();
    this.inFlight.set(requestId, cancel);
    if (this.stopping) cancel.abort();
    await protection.enable();
    const heartbeat = setInterval(
      () => {
        this.setVisibility(receipt, this.options.visibilityTimeoutSeconds ?? 120)
          .then(() => log.debug('message visibility extended'))
          .catch((error) => log.warn('extending message visibility failed', {}, error));
      },
      (this.options.heartbeatSeconds ?? 30) * 1000,
    );

    try {
      const task = parseTaskMessage(message.Body, config.limits.maxBodyBytes);
      if (typeof task === 'string') {
        // Deleting it would lose it. Returned, it reaches the dead-letter queue,
        // where a person can inspect it.
        log.error('message is not a valid task; returning it for the dead-letter queue', {
          reason: task,
        });
        await this.returnToQueue(receipt, log);
        return;
      }
      const sessionId = task.sessionId ?? randomUUID();
      const agentTask: AgentTask =
        task.resume === undefined
          ? { requestId, userId: task.userId, sessionId, message: task.message }
          : { requestId, userId: task.userId, sessionId, resume: task.resume };
      const result = await this.options.runTask(agentTask, cancel.signal);
      clearInterval(heartbeat);
      // NOTE: the output is stored only in the session's memory. No result
      // queue or callback notifies the producer that the task finished.
      log.info('task finished for message', {
        session: result.sessionId,
        stopReason: result.stopReason,
        approvalId: result.approvalId,
        resume: task.resume,
      });
      await this.delete(receipt, log);
    } catch (error) {
      clearInterval(heartbeat);
      if (error instanceof AgentSuspendedError) {
        await this.pauseForSuspension(error, receipt, log);
        return;
      }
      if (error instanceof TaskAbortedError || isAbortError(error)) {
        log.info('task cancelled because the worker is stopping; returning the message');
      } else {
        log.error('task failed; returning the message for another attempt', {}, error);
      }
      await this.returnToQueue(receipt, log);
    } finally {
      clearInterval(heartbeat);
      this.inFlight.delete(requestId);
      if (this.inFlight.size === 0) await protection.disable();
      this.slotFreed?.();
      this.slotFreed = undefined;
    }
  }

  private get paused(): boolean {
    return this.pausedUntilMs > Date.now();
  }

  /**
   * Hands the message back with a visibility timeout that ends when the
   * suspension does, and stops receiving until then. SQS has no way to undo
   * the receive, so each suspended cycle still counts against the redrive
   * policy's maxReceiveCount. A message that meets the suspension on each of
   * its first maxReceiveCount receives moves to the dead-letter queue on the
   * next one. With the 300-second pause and maxReceiveCount 5, a suspension
   * without an end therefore dead-letters a waiting message after about 25
   * minutes. The pause spaces the receives out, so it does not prevent this.
   */
  private async pauseForSuspension(
    error: AgentSuspendedError,
    receipt: string,
    log: Logger,
  ): Promise<void> {
    const pauseSeconds = suspensionPauseSeconds(
      error.details,
      Date.now(),
      this.options.minSuspensionPauseSeconds ?? 60,
      this.options.suspensionPauseSeconds ?? 300,
    );
    const wasPaused = this.paused;
    this.pausedUntilMs = Math.max(this.pausedUntilMs, Date.now() + pauseSeconds * 1000);
    if (!wasPaused) {
      this.options.logger.warn('agent is suspended; pausing the queue consumer', {
        agent: error.details.agent,
        reason: error.details.reason,
        until: error.details.until,
        pauseSeconds,
        resumeAt: new Date(this.pausedUntilMs).toISOString(),
      });
    }
    // Tasks still in flight are not protected any more, because they reach
    // the same suspension at their next model call.
    await this.options.protection.disable();
    await this.handBack(receipt, pauseSeconds, log);
  }

  private async handBackWhilePaused(receipt: string, log: Logger): Promise<void> {
    const seconds = Math.max(1, Math.ceil((this.pausedUntilMs - Date.now()) / 1000));
    await this.handBack(receipt, seconds, log);
  }

  private async handBack(receipt: string, seconds: number, log: Logger): Promise<void> {
    try {
      await this.setVisibility(receipt, seconds);
      log.info('agent is suspended; message handed back', { visibilityTimeoutSeconds: seconds });
    } catch (error) {
      log.warn(
        'handing the message back failed; it returns when its visibility timeout ends',
        { visibilityTimeoutSeconds: seconds },
        error,
      );
    }
  }

  /** Sleeps until the pause ends or the consumer stops, then logs the resume. */
  private async waitForPauseEnd(): Promise<void> {
    while (this.paused && !this.stopping) {
      await sleep(this.pausedUntilMs - Date.now(), undefined, {
        signal: this.stopReceiving.signal,
      }).catch(() => undefined);
    }
    if (this.stopping) return;
    this.options.logger.info('queue consumer resumed receiving after the suspension pause', {
      agent: this.options.config.agent,
    });
  }

  private async delete(receipt: string, log: Logger): Promise<void> {
    try {
      await this.options.sqs.send(
        new DeleteMessageCommand({ QueueUrl: this.options.queueUrl, ReceiptHandle: receipt }),
      );
      log.info('message deleted');
    } catch (error) {
      // Not returned to the queue on purpose: the task succeeded, and the
      // message comes back by itself only if its receipt has expired.
      log.error('deleting the processed message failed; it may be processed again', {}, error);
    }
  }

  /** Makes the message visible again at once, counting this receive against maxReceiveCount. */
  private async returnToQueue(receipt: string, log: Logger): Promise<void> {
    try {
      await this.setVisibility(receipt, 0);
    } catch (error) {
      log.warn(
        'returning the message failed; it returns when its visibility timeout ends',
        {},
        error,
      );
    }
  }

  private async setVisibility(receipt: string, seconds: number): Promise<void> {
    await this.options.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.options.queueUrl,
        ReceiptHandle: receipt,
        VisibilityTimeout: seconds,
      }),
    );
  }
}
