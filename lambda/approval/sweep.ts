/**
 * The expiry sweep: on a schedule, every pending request past its deadline
 * is recorded as expired, which counts as a denial, audited, and reported
 * to a background agent through a continuation message. A realtime agent
 * learns of the expiry when its caller resumes or writes to the session.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { ApprovalStore } from '../shared/approvals';
import type { AuditSink } from '../shared/audit';
import type { Logger } from '../shared/logger';
import { recordExpiry } from './api';

/** Counts of one sweep. */
export interface SweepResult {
  /** Pending requests past their deadline that the sweep found. */
  readonly due: number;
  /** Requests this sweep recorded as expired; a request decided meanwhile is not counted. */
  readonly expired: number;
}

/** Records the expiry of every pending request past its deadline. */
export async function sweepExpiredApprovals(context: {
  readonly store: ApprovalStore;
  readonly sqs: SQSClient;
  readonly audit: AuditSink;
  readonly now: () => number;
  readonly requestId: string;
  readonly log: Logger;
}): Promise<SweepResult> {
  const due = await context.store.listDue();
  let expired = 0;
  for (const approval of due) {
    const result = await context.store.expire(approval.approvalId);
    if (result === undefined) continue;
    expired += 1;
    await recordExpiry(result, context);
  }
  context.log.info('expiry sweep finished', { due: due.length, expired });
  return { due: due.length, expired };
}
