/**
 * Identity of the task that runs in the current async context, so that
 * tool calls are audited with their user and session however the call was
 * reached: from the agent loop, or when a resumed session runs the calls
 * that waited for approval.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditSink } from '../shared/audit';
import type { Logger } from '../shared/logger';

/** Ids of one task, as its audit records carry them. */
export interface TaskIdentity {
  readonly requestId: string;
  readonly userId: string;
  readonly sessionId: string;
}

const taskIdentity = new AsyncLocalStorage<TaskIdentity>();

/** Runs `work` with `identity` as the current task of every call it makes. */
export function runInTask<T>(identity: TaskIdentity, work: () => Promise<T>): Promise<T> {
  return taskIdentity.run(identity, work);
}

/** Returns the identity of the task that runs in this async context, or undefined outside one. */
export function currentTask(): TaskIdentity | undefined {
  return taskIdentity.getStore();
}

/**
 * Delivers the queued audit records, logging rather than raising a
 * failure, because the tool calls they record have already run and the
 * sink logs the request ids it lost.
 */
export async function flushAudit(audit: AuditSink, logger: Logger): Promise<void> {
  try {
    await audit.flush();
  } catch (error) {
    logger.error('Delivering audit records failed', {}, error);
  }
}
