/**
 * Continuation messages: after a decision or an expiry, a background
 * agent's task queue receives `{ resume, sessionId, userId }`, and the
 * worker that takes it resumes the session, which runs the approved call
 * or reports the denial to the model.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { continuationOf, type Approval } from '../shared/approvals';
import type { Logger } from '../shared/logger';

/** Outcome of a continuation: `none` for a realtime agent, whose caller resumes the session itself. */
export type ContinuationOutcome = 'sent' | 'failed' | 'none';

/**
 * Sends the continuation message of `approval` to the queue it names.
 * A failure is logged and returned rather than raised, because the
 * decision is already stored; `POST /approvals/{id}/continue` sends it again.
 */
export async function sendContinuation(sqs: SQSClient, approval: Approval, log: Logger): Promise<ContinuationOutcome> {
  if (approval.queueUrl === undefined) return 'none';
  try {
    await sqs.send(
      new SendMessageCommand({ QueueUrl: approval.queueUrl, MessageBody: JSON.stringify(continuationOf(approval)) }),
    );
    log.info('continuation message sent', { approvalId: approval.approvalId, state: approval.state, queueUrl: approval.queueUrl });
    return 'sent';
  } catch (error) {
    log.error(
      'sending the continuation message failed; the agent resumes after POST /approvals/{id}/continue',
      { approvalId: approval.approvalId, state: approval.state, queueUrl: approval.queueUrl },
      error,
    );
    return 'failed';
  }
}
