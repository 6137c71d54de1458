/**
 * High-impact tool calls in the agent loop. When the model calls a `high`
 * impact tool, the task ends with stop reason `awaiting_approval`. The
 * assistant turn with the toolUse is saved without a result, a pending
 * request goes to the approvals table, and approvers are notified on the
 * SNS topic. A later task on the same session answers the toolUse: it
 * consumes the approval and runs the tool, or reports the denial or the
 * expiry to the model as a tool error, and the loop continues.
 */
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import {
  approvalAuditRecord,
  approvalCallHash,
  type Approval,
  type ApprovalStore,
  type ConsumeResult,
} from '../shared/approvals';
import type { AuditSink } from '../shared/audit';
import type { ConverseMessage } from '../shared/contracts';
import {
  ApprovalConflictError,
  ApprovalDeniedError,
  ApprovalMismatchError,
  ApprovalPendingError,
  type AgentStackError,
} from '../shared/errors';
import type { Logger } from '../shared/logger';
import { toolUses } from './history';
import type { LoadedSession } from './memory';
import { toolResultBlock, type ToolOutcome, type ToolRunner, type ToolUse } from './tools';

/**
 * SNS accepts messages of at most 262,144 bytes and subjects of less than
 * 100 characters without line breaks:
 * https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/sns/aws.sdk.kotlin.services.sns.model/-publish-request/message.html
 * https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/sns/aws.sdk.kotlin.services.sns.model/-publish-request/subject.html
 * The arguments in a notification are cut well below the message limit,
 * because the rest of the message and multi-byte characters need room too.
 */
const MAX_NOTIFIED_ARGUMENT_CHARS = 100_000;
const MAX_SUBJECT_CHARS = 99;

/** The task a high-impact call belongs to. */
export interface ApprovalContext {
  readonly requestId: string;
  readonly agent: string;
  readonly userId: string;
  readonly sessionId: string;
}

export interface ToolApprovalsOptions {
  readonly store: ApprovalStore;
  readonly sns: SNSClient;
  /** Topic on which approvers are notified of each request. */
  readonly topicArn: string;
  /** Seconds a request waits for a decision. */
  readonly expirySeconds: number;
  /** Task queue of a background agent, which receives the continuation message after a decision. */
  readonly queueUrl?: string;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
}

/** The tool results for the calls a session waited on, and how many tools ran. */
export interface AnsweredCalls {
  readonly turn: ConverseMessage;
  readonly toolCalls: number;
}

/** Stores, announces and resolves the approval requests of one agent's worker. */
export class ToolApprovals {
  private readonly now: () => number;

  constructor(private readonly options: ToolApprovalsOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Returns the first call of `uses` that needs a person's approval: a
   * high-impact tool of the agent with valid input. An invalid call is left
   * to the tool runner, which returns the validation error to the model, so no
   * person is asked to approve a call that cannot run.
   */
  gatedUse(uses: readonly ToolUse[], tools: ToolRunner): ToolUse | undefined {
    return uses.find((use) => tools.impactOf(use.name) === 'high' && tools.check(use) === undefined);
  }

  /**
   * Stores the pending request `approvalId` for `use`, audits it and
   * notifies approvers. A failed notification is logged and not raised,
   * because approvers can still list the request.
   */
  async request(
    approvalId: string,
    use: ToolUse,
    context: ApprovalContext,
    audit: AuditSink,
    log: Logger,
  ): Promise<Approval> {
    const approval = await this.options.store.create({
      approvalId,
      agent: context.agent,
      userId: context.userId,
      sessionId: context.sessionId,
      requestId: context.requestId,
      tool: use.name,
      toolUseId: use.toolUseId,
      input: use.input,
      expirySeconds: this.options.expirySeconds,
      queueUrl: this.options.queueUrl,
    });
    audit.record(approvalAuditRecord(approval, 'pending', context.requestId, this.now()));
    log.info('tool call waits for approval', {
      approvalId,
      tool: use.name,
      toolUseId: use.toolUseId,
      deadline: new Date(approval.deadlineMs).toISOString(),
    });
    try {
      await this.options.sns.send(notification(this.options.topicArn, approval));
    } catch (error) {
      log.error('notifying approvers failed; the request is still listed as pending', { approvalId }, error);
    }
    return approval;
  }

  /**
   * Builds the tool results for the calls of the session's last turn, which waits for
   * approval `session.pendingApprovalId`. `resume` is the approval id that
   * the caller resumes, or undefined for a new message. A new message is
   * rejected with ApprovalPendingError while the request is pending or
   * approved, so only an explicit resume runs an approved call. Raises
   * ApprovalConflictError when `resume` names another approval, and
   * ApprovalPendingError when a resumed request is still undecided; neither
   * changes the session.
   */
  async answer(
    session: LoadedSession,
    resume: string | undefined,
    context: ApprovalContext,
    tools: ToolRunner,
    audit: AuditSink,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<AnsweredCalls> {
    const approvalId = session.pendingApprovalId;
    if (approvalId === undefined || (resume !== undefined && resume !== approvalId)) {
      throw new ApprovalConflictError(
        `Session ${context.sessionId} does not wait for approval ${resume}: ` +
          (approvalId === undefined
            ? 'it waits for no approval, so the approval was used or belongs to another session.'
            : `it waits for approval ${approvalId}. Resume with that id.`),
        context.requestId,
      );
    }
    if (resume === undefined) await this.rejectNewMessageWhileOpen(approvalId, context, audit);

    const last = session.messages[session.messages.length - 1];
    const uses = last?.role === 'assistant' ? toolUses(last) : [];
    const gated = this.gatedUse(uses, tools);
    const outcomes: ToolOutcome[] = [];
    let toolCalls = 0;
    for (const use of uses) {
      if (use === gated) {
        const outcome = await this.runApproved(approvalId, use, context, tools, audit, log, signal);
        toolCalls += outcome.ran ? 1 : 0;
        outcomes.push(outcome.outcome);
      } else if (tools.impactOf(use.name) === 'high' && tools.check(use) === undefined) {
        outcomes.push({
          status: 'error',
          content:
            `Tool ${use.name} was not run: only one high-impact call of a model turn waits for approval. ` +
            'Call it again on its own after this one is decided.',
        });
      } else {
        toolCalls += 1;
        outcomes.push(await tools.run(use, context.requestId, log, signal));
      }
    }
    const content = uses.map((use, i) => toolResultBlock(use.toolUseId, outcomes[i]));
    return { turn: { role: 'user', content }, toolCalls };
  }

  /** Raises ApprovalPendingError while `approvalId` can still be approved or used. */
  private async rejectNewMessageWhileOpen(approvalId: string, context: ApprovalContext, audit: AuditSink) {
    const current = await this.options.store.read(approvalId);
    if (current?.expiredNow) {
      audit.record(approvalAuditRecord(current.approval, 'expired', context.requestId, this.now()));
    }
    const state = current?.approval.state;
    if (state !== 'pending' && state !== 'approved') return;
    const approval = current!.approval;
    throw new ApprovalPendingError(
      `Session ${context.sessionId} waits for approval ${approvalId} of tool ${approval.tool}, which is ${state}` +
        (state === 'pending' ? ` until ${new Date(approval.deadlineMs).toISOString()}` : '') +
        `, so it takes no new message. Send {"sessionId": "${context.sessionId}", "resume": "${approvalId}"} ` +
        'once a person has decided it.',
      context.requestId,
    );
  }

  /**
   * Consumes the approval for `use`, then records the tool call in the
   * audit log and waits until the log accepted it, and only then runs the
   * tool. Any other outcome becomes an error result for the model.
   */
  private async runApproved(
    approvalId: string,
    use: ToolUse,
    context: ApprovalContext,
    tools: ToolRunner,
    audit: AuditSink,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<{ outcome: ToolOutcome; ran: boolean }> {
    const callSha256 = approvalCallHash({ ...context, tool: use.name, input: use.input });
    const result = await this.options.store.consume(approvalId, callSha256, context.requestId);
    if (result.kind !== 'consumed') {
      const error = this.rejectionError(result, approvalId, use, context, audit);
      log.warn('approved tool call not run', { approvalId, tool: use.name, errorName: error.name, reason: error.message });
      return { outcome: { status: 'error', content: `${error.name}: ${error.message}` }, ran: false };
    }

    const { approval } = result;
    try {
      await audit.recordNow({
        time: new Date(this.now()).toISOString(),
        requestId: context.requestId,
        agent: context.agent,
        userId: context.userId,
        sessionId: context.sessionId,
        kind: 'tool-call',
        decision: 'allowed',
        reason: `approved by ${approval.decidedBy}`,
        tool: use.name,
        argumentsSha256: approval.argumentsSha256,
        approvalId,
        approver: approval.decidedBy,
      });
    } catch (error) {
      log.error('audit log rejected the approved tool call; not running it', { approvalId, tool: use.name }, error);
      return {
        outcome: {
          status: 'error',
          content:
            `Tool ${use.name} was not run, because its audit record could not be written. ` +
            `Approval ${approvalId} is used up; tell the user that the action needs a new approval.`,
        },
        ran: false,
      };
    }
    log.info('running approved tool call', { approvalId, tool: use.name, approver: approval.decidedBy });
    return { outcome: await tools.run(use, context.requestId, log, signal, approvalId), ran: true };
  }

  /**
   * Returns the error that explains a failed consume, auditing the expiry
   * this call recorded and every rejected use. Raises for a request that is
   * still pending, so the caller learns that it resumed too early.
   */
  private rejectionError(
    result: Exclude<ConsumeResult, { kind: 'consumed' }>,
    approvalId: string,
    use: ToolUse,
    context: ApprovalContext,
    audit: AuditSink,
  ): AgentStackError {
    const { requestId } = context;
    if (result.kind === 'not-found') {
      return new ApprovalDeniedError(
        `Tool ${use.name} was not run: approval ${approvalId} does not exist any more. ` +
          'Tell the user that the action needs a new approval.',
        requestId,
      );
    }
    const { approval, reason } = result;
    const now = this.now();
    switch (reason) {
      case 'pending':
        throw new ApprovalPendingError(
          `Approval ${approvalId} of tool ${use.name} is still pending until ` +
            `${new Date(approval.deadlineMs).toISOString()}; resume the session after a person has decided it.`,
          requestId,
        );
      case 'denied':
        return new ApprovalDeniedError(
          `Tool ${use.name} was not run: ${approval.decidedBy} denied approval ${approvalId}` +
            (approval.decisionReason === undefined ? '.' : ` with the reason: ${approval.decisionReason}.`) +
            ' Tell the user that the action was not carried out.',
          requestId,
        );
      case 'expired':
        if (result.expiredNow) audit.record(approvalAuditRecord(approval, 'expired', requestId, now));
        return new ApprovalDeniedError(
          `Tool ${use.name} was not run: approval ${approvalId} expired undecided at ` +
            `${new Date(approval.deadlineMs).toISOString()}. Tell the user that the action was not carried out.`,
          requestId,
        );
      case 'used':
        audit.record(approvalAuditRecord(approval, 'rejected', requestId, now, 'ApprovalConflictError'));
        return new ApprovalConflictError(
          `Tool ${use.name} was not run again: approval ${approvalId} was already used by request ` +
            `${approval.executedBy} at ${approval.executedAt}. An approval allows one call.`,
          requestId,
        );
      default:
        audit.record(approvalAuditRecord(approval, 'rejected', requestId, now, 'ApprovalMismatchError'));
        return new ApprovalMismatchError(
          `Tool ${use.name} was not run: approval ${approvalId} was granted for a different call ` +
            '(tool, arguments, agent, user or session), and an approval allows only the call it was granted for.',
          requestId,
        );
    }
  }
}

/** Builds the SNS message that notifies approvers of `approval` and shows how to decide it. */
function notification(topicArn: string, approval: Approval): PublishCommand {
  const args = JSON.stringify(approval.input, null, 2) ?? 'null';
  const shownArgs =
    args.length > MAX_NOTIFIED_ARGUMENT_CHARS
      ? `${args.slice(0, MAX_NOTIFIED_ARGUMENT_CHARS)}\n... (cut; show the request for all arguments)`
      : args;
  const id = approval.approvalId;
  const message = [
    `Agent ${approval.agent} requests approval to call tool ${approval.tool}.`,
    '',
    `Approval id:  ${id}`,
    `User:         ${approval.userId}`,
    `Session:      ${approval.sessionId}`,
    `Request id:   ${approval.requestId}`,
    `Requested at: ${approval.requestedAt}`,
    `Expires at:   ${new Date(approval.deadlineMs).toISOString()} (then it counts as denied)`,
    '',
    `Arguments (SHA-256 of the canonical JSON ${approval.argumentsSha256}):`,
    shownArgs,
    '',
    'Decide with the operator command:',
    `  npm run admin -- approvals show --id ${id}`,
    `  npm run admin -- approvals approve --id ${id} --by NAME [--reason TEXT]`,
    `  npm run admin -- approvals deny --id ${id} --by NAME --reason TEXT`,
    `or with a SigV4-signed POST to <ApprovalUrl>/approvals/${id}/approve or /deny.`,
  ].join('\n');
  return new PublishCommand({
    TopicArn: topicArn,
    Subject: `Approval needed: ${approval.tool} for agent ${approval.agent}`.slice(0, MAX_SUBJECT_CHARS),
    Message: message,
    MessageAttributes: {
      agent: { DataType: 'String', StringValue: approval.agent },
      tool: { DataType: 'String', StringValue: approval.tool },
      approvalId: { DataType: 'String', StringValue: id },
    },
  });
}
