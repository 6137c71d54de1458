/**
 * Routes of the decision API behind the IAM-authenticated function URL:
 *
 * - `GET /approvals?agent=NAME` lists the agent's pending requests.
 * - `GET /approvals/{id}` returns one request.
 * - `POST /approvals/{id}/approve` and `POST /approvals/{id}/deny`, with an
 *   optional body `{"reason": "..."}`, decide a pending request.
 * - `POST /approvals/{id}/continue` sends the continuation message of a
 *   decided or expired request of a background agent again.
 *
 * The approver is the verified IAM caller, never a field of the body.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { approvalAuditRecord, approvalView, type Approval, type ApprovalDecision, type ApprovalStore } from '../shared/approvals';
import type { AuditSink } from '../shared/audit';
import {
  ApprovalConflictError,
  InvalidRequestError,
  MethodNotAllowedError,
  NotFoundError,
} from '../shared/errors';
import type { Logger } from '../shared/logger';
import { sendContinuation } from './continuation';
import { callerArn, jsonBody, jsonResult, type FunctionUrlEvent, type FunctionUrlResult } from './url-event';

/** Approval ids are UUIDs, which the worker generates. */
const APPROVAL_ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const AGENT_NAME = /^[a-z][a-z0-9-]{0,29}$/;
const ONE_APPROVAL = new RegExp(`^/approvals/(${APPROVAL_ID})$`);
const APPROVAL_ACTION = new RegExp(`^/approvals/(${APPROVAL_ID})/(approve|deny|continue)$`);
const MAX_REASON_CHARS = 1_000;

/** Dependencies and state of one API request. */
export interface ApiContext {
  readonly store: ApprovalStore;
  readonly sqs: SQSClient;
  readonly audit: AuditSink;
  readonly now: () => number;
  readonly requestId: string;
  readonly log: Logger;
  /** Filled while the request runs, for its decision log line. */
  readonly decision: Record<string, unknown>;
}

/** Serves one function URL request; raises the AgentStackError that the caller receives. */
export async function serveApprovalRequest(event: FunctionUrlEvent, context: ApiContext): Promise<FunctionUrlResult> {
  const { requestId, decision } = context;
  const approver = callerArn(event, requestId);
  decision.caller = approver;
  const method = event.requestContext.http.method.toUpperCase();
  const path = event.rawPath.replace(/\/+$/, '') || '/';

  if (path === '/approvals') {
    requireMethod(method, 'GET', path, requestId);
    const agent = event.queryStringParameters?.agent;
    if (agent === undefined || !AGENT_NAME.test(agent)) {
      throw new InvalidRequestError('Query parameter agent is missing or not an agent name; send GET /approvals?agent=NAME.', requestId);
    }
    decision.agent = agent;
    const approvals = await context.store.listPending(agent);
    decision.listed = approvals.length;
    return jsonResult(200, { approvals: approvals.map(approvalView), requestId }, requestId);
  }

  const one = ONE_APPROVAL.exec(path);
  if (one) {
    requireMethod(method, 'GET', path, requestId);
    decision.approvalId = one[1];
    const approval = await readApproval(one[1], context);
    return jsonResult(200, { approval: approvalView(approval), requestId }, requestId);
  }

  const action = APPROVAL_ACTION.exec(path);
  if (action) {
    requireMethod(method, 'POST', path, requestId);
    const [, approvalId, verb] = action;
    decision.approvalId = approvalId;
    if (verb === 'continue') return resendContinuation(approvalId, context);
    const reason = readReason(jsonBody(event, requestId), requestId);
    return decide(approvalId, verb === 'approve' ? 'approved' : 'denied', approver, reason, context);
  }

  throw new NotFoundError(
    `No route for ${path}; use GET /approvals?agent=NAME, GET /approvals/{id} or POST /approvals/{id}/approve, /deny or /continue.`,
    requestId,
  );
}

/**
 * Decides the request. When it is no longer pending, the caller gets 409
 * with the state it is in. A request that this call found past its
 * deadline is recorded as expired first, and a background agent is resumed.
 */
async function decide(
  approvalId: string,
  decision: ApprovalDecision,
  approver: string,
  reason: string | undefined,
  context: ApiContext,
): Promise<FunctionUrlResult> {
  const { requestId, log } = context;
  const result = await context.store.decide(approvalId, decision, approver, reason);
  if (result.kind === 'not-found') throw notFound(approvalId, requestId);
  if (result.kind === 'conflict') {
    const { approval } = result;
    if (result.expiredNow) await recordExpiry(approval, context);
    context.decision.state = approval.state;
    throw new ApprovalConflictError(
      `Approval ${approvalId} is ${approval.state}` +
        (approval.decidedBy === undefined ? '' : ` (decided by ${approval.decidedBy} at ${approval.decidedAt})`) +
        ', so it cannot be decided again; only a pending request before its deadline can be.',
      requestId,
    );
  }

  const { approval } = result;
  context.audit.record(approvalAuditRecord(approval, decision, requestId, context.now(), reason));
  context.decision.state = approval.state;
  context.decision.agent = approval.agent;
  context.decision.tool = approval.tool;
  log.info('approval decided', { approvalId, state: approval.state, agent: approval.agent, tool: approval.tool, approver });
  const continuation = await sendContinuation(context.sqs, approval, log);
  return jsonResult(200, { approval: approvalView(approval), continuation, requestId }, requestId);
}

/** Returns the request, recording its expiry when it is pending past its deadline. */
async function readApproval(approvalId: string, context: ApiContext): Promise<Approval> {
  const current = await context.store.read(approvalId);
  if (current === undefined) throw notFound(approvalId, context.requestId);
  if (current.expiredNow) await recordExpiry(current.approval, context);
  return current.approval;
}

async function resendContinuation(approvalId: string, context: ApiContext): Promise<FunctionUrlResult> {
  const { requestId } = context;
  const approval = await readApproval(approvalId, context);
  if (approval.queueUrl === undefined) {
    throw new InvalidRequestError(
      `Approval ${approvalId} belongs to realtime agent ${approval.agent}, whose caller resumes the session itself.`,
      requestId,
    );
  }
  if (approval.state === 'pending' || approval.state === 'executed') {
    throw new ApprovalConflictError(
      `Approval ${approvalId} is ${approval.state}; a continuation is sent only for an approved, denied or expired request.`,
      requestId,
    );
  }
  const continuation = await sendContinuation(context.sqs, approval, context.log);
  return jsonResult(200, { approval: approvalView(approval), continuation, requestId }, requestId);
}

/** Audits an expiry that this request recorded and resumes a background agent, so it can tell the user. */
export async function recordExpiry(approval: Approval, context: Pick<ApiContext, 'audit' | 'sqs' | 'now' | 'requestId' | 'log'>) {
  context.audit.record(approvalAuditRecord(approval, 'expired', context.requestId, context.now()));
  context.log.info('approval expired', { approvalId: approval.approvalId, agent: approval.agent, tool: approval.tool });
  await sendContinuation(context.sqs, approval, context.log);
}

function readReason(body: Record<string, unknown>, requestId: string): string | undefined {
  const { reason, ...rest } = body;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `Unknown field(s) ${unknown.join(', ')}; the body accepts only reason. The approver is the signed-in IAM identity.`,
      requestId,
    );
  }
  if (reason === undefined) return undefined;
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > MAX_REASON_CHARS) {
    throw new InvalidRequestError(`Field reason must be a string of 1 to ${MAX_REASON_CHARS} characters.`, requestId);
  }
  return reason;
}

function requireMethod(method: string, expected: string, path: string, requestId: string): void {
  if (method !== expected) throw new MethodNotAllowedError(`Use ${expected} on ${path}.`, requestId);
}

function notFound(approvalId: string, requestId: string): NotFoundError {
  return new NotFoundError(
    `Approval ${approvalId} does not exist, or its item passed its retention and was removed.`,
    requestId,
  );
}
