/**
 * `approvals list|show|approve|deny` of the operator command. It reads and
 * decides requests in the approvals table directly, with the same
 * conditional writes as the decision API, so a decision here and one
 * through the API still have exactly one winner.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { AuditSink } from '../shared/audit';
import {
  approvalAuditRecord,
  approvalView,
  continuationOf,
  type Approval,
  type ApprovalDecision,
  type ApprovalStore,
} from '../shared/approvals';

/** Environment variable that names the approvals table when `--approvals-table` is left out. */
export const APPROVALS_TABLE_ENV = 'AGENT_STACK_APPROVALS_TABLE';

/** Subcommands of `approvals`. */
export const APPROVAL_SUBCOMMANDS = ['list', 'show', 'approve', 'deny'] as const;

/** Inputs of one `approvals` run, which the CLI builds from its options. */
export interface ApprovalsCommandContext {
  readonly subcommand: string;
  readonly store: ApprovalStore;
  readonly sqs: () => SQSClient;
  /** Name from `--by`. */
  readonly by: string;
  /** Returns the ARN of the caller's AWS credentials, or undefined when it cannot be read. */
  readonly callerArn: () => Promise<string | undefined>;
  /** Audit log that each decision is written to before the command reports it. */
  readonly audit: AuditSink;
  readonly agent?: string;
  readonly id?: string;
  readonly reason?: string;
  /** Clock in epoch milliseconds. */
  readonly now: () => number;
  readonly print: (text: string, json: unknown) => void;
}

/** Error in the command line, which the CLI prints with the usage hint. */
export class ApprovalsUsageError extends Error {
  public override readonly name = 'ApprovalsUsageError';
}

/** A request that the command could not decide or find; the CLI exits with 1. */
export class ApprovalsCommandError extends Error {
  public override readonly name = 'ApprovalsCommandError';
}

const APPROVAL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Runs one `approvals` subcommand. */
export async function runApprovalsCommand(context: ApprovalsCommandContext): Promise<void> {
  const { store, print } = context;
  switch (context.subcommand) {
    case 'list': {
      if (context.agent === undefined || context.agent === '') {
        throw new ApprovalsUsageError('approvals list needs --agent NAME.');
      }
      const approvals = await store.listPending(context.agent);
      print(formatList(context.agent, approvals), { agent: context.agent, approvals: approvals.map(approvalView) });
      return;
    }
    case 'show': {
      const id = requireId(context);
      // find rather than read, because showing a request must not change it.
      // The sweep records a lapsed expiry and resumes a background agent.
      const approval = await store.find(id);
      if (approval === undefined) throw notFound(id);
      print(formatApproval(approval, context.now()), { approval: approvalView(approval) });
      return;
    }
    case 'approve':
    case 'deny': {
      const id = requireId(context);
      const decision: ApprovalDecision = context.subcommand === 'approve' ? 'approved' : 'denied';
      const arn = await context.callerArn();
      // NOTE: without an ARN from STS the approver is only the --by name,
      // which nothing verifies; the decision API always has a verified ARN.
      const decidedBy = arn === undefined ? context.by : `${context.by} (${arn})`;
      const result = await store.decide(id, decision, decidedBy, context.reason);
      if (result.kind === 'not-found') throw notFound(id);
      if (result.kind === 'conflict') {
        const { approval } = result;
        // This command recorded the expiry, so the sweep will not resume the agent.
        if (result.expiredNow) await sendContinuation(context.sqs, approval);
        throw new ApprovalsCommandError(
          `Approval ${id} is ${approval.state}` +
            (approval.decidedBy === undefined ? '' : ` (decided by ${approval.decidedBy} at ${approval.decidedAt})`) +
            '; only a pending request before its deadline can be decided.',
        );
      }
      // The decision is stored already, so a failed audit write is reported but does not undo it.
      const auditError = await context.audit
        .recordNow(approvalAuditRecord(result.approval, decision, `admin:${id}`, context.now(), context.reason))
        .then(
          () => undefined,
          (caught: unknown) => (caught instanceof Error ? caught.message : String(caught)),
        );
      const { continuation, error } = await sendContinuation(context.sqs, result.approval);
      const resumed =
        continuation === 'none'
          ? 'The caller of the realtime agent resumes the session with {"sessionId", "resume"}.'
          : continuation === 'sent'
            ? 'A continuation message resumes the background agent.'
            : `Sending the continuation message failed (${error}); resend it with POST /approvals/{id}/continue on the decision URL.`;
      const audited =
        auditError === undefined
          ? ''
          : ` Writing the decision to the audit log failed (${auditError}); the approvals table keeps it.`;
      print(`Approval ${id} is ${result.approval.state} by ${decidedBy}. ${resumed}${audited}`, {
        approval: approvalView(result.approval),
        continuation,
        ...(error === undefined ? {} : { continuationError: error }),
        ...(auditError === undefined ? {} : { auditError }),
      });
      return;
    }
    default:
      throw new ApprovalsUsageError(
        `Unknown approvals command ${context.subcommand}; use one of ${APPROVAL_SUBCOMMANDS.join(', ')}.`,
      );
  }
}

/** Sends the continuation message of a background agent's request; a failure is returned, not raised. */
async function sendContinuation(
  sqs: () => SQSClient,
  approval: Approval,
): Promise<{ continuation: 'sent' | 'failed' | 'none'; error?: string }> {
  if (approval.queueUrl === undefined) return { continuation: 'none' };
  try {
    await sqs().send(new SendMessageCommand({ QueueUrl: approval.queueUrl, MessageBody: JSON.stringify(continuationOf(approval)) }));
    return { continuation: 'sent' };
  } catch (error) {
    return { continuation: 'failed', error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

function requireId(context: ApprovalsCommandContext): string {
  if (context.id === undefined) {
    throw new ApprovalsUsageError(`approvals ${context.subcommand} needs --id ID, the approval id (a UUID) from the notification.`);
  }
  if (!APPROVAL_ID.test(context.id)) {
    throw new ApprovalsUsageError(
      `Invalid --id ${context.id}: expected a lower-case UUID such as 123e4567-e89b-12d3-a456-426614174000, the approval id from the notification.`,
    );
  }
  return context.id;
}

function notFound(id: string): ApprovalsCommandError {
  return new ApprovalsCommandError(`Approval ${id} does not exist, or its item passed its retention and was removed.`);
}

function formatList(agent: string, approvals: readonly Approval[]): string {
  if (approvals.length === 0) return `No pending approvals for agent ${agent}.`;
  const rows = approvals.map((approval) => [
    approval.approvalId,
    approval.tool,
    approval.userId,
    approval.sessionId,
    new Date(approval.deadlineMs).toISOString(),
  ]);
  const headers = ['id', 'tool', 'user', 'session', 'deadline'];
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column].length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd();
  return [`Pending approvals for agent ${agent}, soonest deadline first:`, '', line(headers), ...rows.map(line)].join('\n');
}

function formatApproval(approval: Approval, now: number): string {
  const lines = [
    `Approval ${approval.approvalId}: ${approval.state}`,
    `Agent ${approval.agent}, tool ${approval.tool}, user ${approval.userId}, session ${approval.sessionId}`,
    `Requested at ${approval.requestedAt} by request ${approval.requestId}; deadline ${new Date(approval.deadlineMs).toISOString()}`,
  ];
  if (approval.decidedBy !== undefined) {
    lines.push(
      `Decided by ${approval.decidedBy} at ${approval.decidedAt}` +
        (approval.decisionReason === undefined ? '' : ` with the reason: ${approval.decisionReason}`),
    );
  }
  if (approval.expiredAt !== undefined) lines.push(`Expired at ${approval.expiredAt}`);
  if (approval.state === 'pending' && approval.deadlineMs <= now) {
    lines.push('The deadline has passed, so the request counts as expired; the expiry sweep records it.');
  }
  if (approval.executedAt !== undefined) lines.push(`Used at ${approval.executedAt} by request ${approval.executedBy}`);
  lines.push(`Arguments (SHA-256 ${approval.argumentsSha256}):`, JSON.stringify(approval.input, null, 2));
  return lines.join('\n');
}
