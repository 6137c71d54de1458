import { randomUUID } from 'crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Authenticator } from '../shared/auth';
import { createAuthenticator } from '../shared/auth-factory';
import { FEEDBACK_ENV, type FeedbackRuntimeConfig, type WorkerAuthConfig } from '../shared/contracts';
import { AgentStackError, InternalError, NotFoundError } from '../shared/errors';
import { Logger } from '../shared/logger';
import { AGENT_METRICS } from '../shared/metric-catalog';
import { MetricsWriter } from '../shared/metrics';
import { isAlbEvent, jsonResult, readFeedbackRequest, type AlbEvent, type AlbResult } from './alb-event';
import { parseFeedbackBody } from './feedback-body';
import { FeedbackStore, type FeedbackRecord } from './store';

/** The part of the Lambda context the handler reads. */
export interface FeedbackContext {
  readonly awsRequestId?: string;
}

/** Handler of `POST /feedback` events from the load balancer. */
export type FeedbackHandler = (event: unknown, context?: FeedbackContext) => Promise<AlbResult>;

/** Settings of {@link createFeedbackHandler}. */
export interface FeedbackOptions {
  readonly config: FeedbackRuntimeConfig;
  readonly client: DynamoDBDocumentClient;
  /** @default - the authenticator that `config.auth` selects */
  readonly authenticator?: Authenticator;
  /** Clock in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** @default - a Logger writing to stdout */
  readonly logger?: Logger;
  /** @default - a MetricsWriter writing to stdout */
  readonly metrics?: MetricsWriter;
}

/** Fields of the decision log line that identify the request, as far as they are known. */
interface DecisionContext {
  user?: string;
  agent?: string;
  /** An agent name from the body that is not configured, shortened. */
  requestedAgent?: string;
  session?: string;
  ratedRequestId?: string;
  score?: number;
}

/**
 * Builds the feedback handler. It authenticates the caller as the realtime
 * agents do, validates the body, stores one record per user and rated
 * request, and writes the `Satisfaction` metric. Each request ends with one
 * JSON log line that records the decision.
 */
export function createFeedbackHandler(options: FeedbackOptions): FeedbackHandler {
  const { config } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger ?? new Logger({}, { service: 'feedback' });
  const metrics = options.metrics ?? new MetricsWriter({ now });
  const authenticator = options.authenticator ?? createAuthenticator(config.auth);
  const store = new FeedbackStore(options.client, config.table);
  const agents = new Set(config.agents);
  const satisfaction = AGENT_METRICS.satisfaction;

  async function record(event: AlbEvent, requestId: string, log: Logger, decision: DecisionContext): Promise<AlbResult> {
    const request = readFeedbackRequest(event, requestId);
    const userId = await authenticator.authenticate(request.headers, requestId, log);
    decision.user = userId;

    const body = parseFeedbackBody(request.body, requestId);
    decision.session = body.sessionId;
    decision.ratedRequestId = body.requestId;
    decision.score = body.score;
    if (!agents.has(body.agent)) {
      decision.requestedAgent = body.agent.slice(0, 64);
      throw new NotFoundError(
        `Agent ${JSON.stringify(decision.requestedAgent)} is not configured; send one of: ${[...agents].join(', ')}.`,
        requestId,
      );
    }
    decision.agent = body.agent;

    // NOTE: nothing checks that the rated request exists or was served to
    // this user in this session, so a user can score made-up request ids.
    // Under auth none every caller is `anonymous`, so only the first
    // anonymous score of a request is stored.
    const item: FeedbackRecord = {
      requestId: body.requestId,
      userId,
      agent: body.agent,
      sessionId: body.sessionId,
      score: body.score,
      ...(body.comment === undefined ? {} : { comment: body.comment }),
      createdAt: new Date(now()).toISOString(),
    };
    await store.put(item, requestId);

    // The dimension set comes from the catalog entry, whose only dimension is Agent.
    metrics.putGroups(
      { Agent: body.agent },
      [{ dimensions: satisfaction.dimensions, metrics: { [satisfaction.name]: { value: body.score, unit: satisfaction.unit } } }],
      { requestId, ratedRequestId: body.requestId },
    );
    return jsonResult(event, 201, { feedback: item, requestId }, requestId);
  }

  return async (event, context) => {
    const requestId = context?.awsRequestId ?? randomUUID();
    const log = logger.child({ requestId });
    if (!isAlbEvent(event)) {
      // Raised rather than returned as a response, because only a misconfigured event source sends such an event.
      log.error('Feedback event is not a load balancer request', { expected: 'httpMethod and path' });
      throw new Error(`Request ${requestId}: the feedback function accepts only Application Load Balancer events.`);
    }

    const decision: DecisionContext = {};
    try {
      const result = await record(event, requestId, log, decision);
      log.info('Feedback recorded', { decision: 'recorded', status: result.statusCode, ...decision });
      return result;
    } catch (caught) {
      const error =
        caught instanceof AgentStackError
          ? caught
          : new InternalError(`Internal error; quote request id ${requestId} when you report it.`, requestId);
      const fields = { decision: 'rejected', status: error.statusCode, errorName: error.name, ...decision };
      if (error.statusCode >= 500) {
        log.error('Feedback failed', fields, caught);
      } else {
        log.warn('Feedback rejected', { ...fields, reason: error.message });
      }
      return jsonResult(event, error.statusCode, { error: { ...error.toJSON(), requestId } }, requestId);
    }
  };
}

/** Reads and checks the configuration in the `AGENT_FEEDBACK_CONFIG` environment variable. */
export function loadFeedbackConfigFromEnv(env: NodeJS.ProcessEnv = process.env): FeedbackRuntimeConfig {
  const text = env[FEEDBACK_ENV.config];
  if (text === undefined || text === '') {
    throw new Error(`${FEEDBACK_ENV.config} is not set; deploy the feedback function with the AgentFeedback construct.`);
  }
  const config = JSON.parse(text) as Partial<FeedbackRuntimeConfig>;
  const authType = (config.auth as Partial<WorkerAuthConfig> | undefined)?.type;
  if (
    typeof config.table !== 'string' ||
    !Array.isArray(config.agents) ||
    !config.agents.every((agent) => typeof agent === 'string') ||
    !['none', 'jwt', 'alb-oidc'].includes(authType ?? '')
  ) {
    throw new Error(
      `${FEEDBACK_ENV.config} must contain table, agents and auth (got ${text.slice(0, 120)}); ` +
        'deploy the feedback function with the AgentFeedback construct.',
    );
  }
  return config as FeedbackRuntimeConfig;
}
