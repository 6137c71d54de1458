import { randomUUID } from 'crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ApprovalStore } from '../shared/approvals';
import { NO_AUDIT, type AuditSink } from '../shared/audit';
import { APPROVAL_ENV, type ApprovalRuntimeConfig } from '../shared/contracts';
import { AgentStackError, InternalError } from '../shared/errors';
import { Logger } from '../shared/logger';
import { serveApprovalRequest } from './api';
import { sweepExpiredApprovals, type SweepResult } from './sweep';
import { isFunctionUrlEvent, jsonResult, type FunctionUrlResult } from './url-event';

/** The part of the Lambda context the handler reads. */
export interface ApprovalLambdaContext {
  readonly awsRequestId?: string;
}

/** Handler of function URL requests and of the scheduled expiry sweep. */
export type ApprovalHandler = (event: unknown, context?: ApprovalLambdaContext) => Promise<FunctionUrlResult | SweepResult>;

/** Settings of {@link createApprovalHandler}. */
export interface ApprovalHandlerOptions {
  readonly config: ApprovalRuntimeConfig;
  readonly client: DynamoDBDocumentClient;
  /** Client that sends continuation messages to background agents' task queues. */
  readonly sqs: SQSClient;
  /** @default NO_AUDIT */
  readonly audit?: AuditSink;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** @default - a Logger writing to stdout */
  readonly logger?: Logger;
}

/** Checks whether `event` is an EventBridge scheduled event, which starts the expiry sweep. */
function isScheduledEvent(event: unknown): boolean {
  const candidate = event as Record<string, unknown> | undefined;
  return candidate?.source === 'aws.events' && candidate['detail-type'] === 'Scheduled Event';
}

/**
 * Builds the decision function's handler: function URL requests go to the
 * decision API, and EventBridge scheduled events run the expiry sweep. Each
 * request ends with one JSON log line that records its outcome, and the
 * audit records it queued are delivered before it returns.
 */
export function createApprovalHandler(options: ApprovalHandlerOptions): ApprovalHandler {
  const now = options.now ?? Date.now;
  const logger = options.logger ?? new Logger({}, { service: 'approval-gate' });
  const audit = options.audit ?? NO_AUDIT;
  const store = new ApprovalStore({ client: options.client, table: options.config.table, now });

  async function flushAudit(log: Logger): Promise<void> {
    try {
      await audit.flush();
    } catch (error) {
      log.error('delivering audit records failed', {}, error);
    }
  }

  return async (event, lambdaContext) => {
    const requestId = lambdaContext?.awsRequestId ?? randomUUID();
    const log = logger.child({ requestId });
    const base = { store, sqs: options.sqs, audit, now, requestId, log };

    if (isScheduledEvent(event)) {
      try {
        return await sweepExpiredApprovals(base);
      } finally {
        await flushAudit(log);
      }
    }
    if (!isFunctionUrlEvent(event)) {
      // Raised rather than returned as a response, because only a misconfigured event source sends such an event.
      log.error('event is neither a function URL request nor a scheduled event', { expected: 'requestContext.http or source aws.events' });
      throw new Error(`Request ${requestId}: the approval function accepts only function URL requests and scheduled events.`);
    }

    const decision: Record<string, unknown> = { method: event.requestContext.http.method, path: event.rawPath };
    try {
      const result = await serveApprovalRequest(event, { ...base, decision });
      log.info('approval request finished', { ...decision, status: result.statusCode });
      return result;
    } catch (caught) {
      const error =
        caught instanceof AgentStackError
          ? caught
          : new InternalError(`Internal error; quote request id ${requestId} when you report it.`, requestId);
      const fields = { ...decision, status: error.statusCode, errorName: error.name };
      if (error.statusCode >= 500) {
        log.error('approval request failed', fields, caught);
      } else {
        log.warn('approval request rejected', { ...fields, reason: error.message });
      }
      return jsonResult(error.statusCode, { error: { ...error.toJSON(), requestId } }, requestId);
    } finally {
      await flushAudit(log);
    }
  };
}

/** Reads and checks the configuration in the `AGENT_APPROVAL_CONFIG` environment variable. */
export function loadApprovalConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ApprovalRuntimeConfig {
  const text = env[APPROVAL_ENV.config];
  if (text === undefined || text === '') {
    throw new Error(`${APPROVAL_ENV.config} is not set; deploy the approval function with the ApprovalGate construct.`);
  }
  const config = JSON.parse(text) as Partial<ApprovalRuntimeConfig>;
  if (typeof config.table !== 'string' || config.table === '') {
    throw new Error(
      `${APPROVAL_ENV.config} must contain table (got ${text.slice(0, 120)}); deploy the approval function with the ApprovalGate construct.`,
    );
  }
  return config as ApprovalRuntimeConfig;
}
