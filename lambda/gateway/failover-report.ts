import type { GatewayRuntimeConfig, ModelTarget } from '../shared/contracts';
import type { Logger } from '../shared/logger';
import type { MetricsWriter } from '../shared/metrics';
import type { BreakerEvent } from './breaker';
import type { FailoverEvent, FailoverListener } from './failover';

/** Settings of {@link createFailoverReporter}. */
export interface FailoverReporterOptions {
  /** Logger whose lines carry the request id, agent and user. */
  readonly logger: Logger;
  readonly metrics: MetricsWriter;
  /** Agent whose request this is, the `Agent` dimension of every metric. */
  readonly agent: string;
  readonly requestId: string;
}

function isTargetEvent(event: FailoverEvent | BreakerEvent): event is FailoverEvent {
  return event.type === 'target-failed' || event.type === 'target-skipped';
}

function describeTarget(target: ModelTarget): { region: string; modelId: string } {
  return { region: target.region, modelId: target.modelId };
}

/**
 * Creates the listener that turns failover and breaker events into one log
 * line each and the metrics `Failover`, `Throttled`, `BreakerOpened` and
 * `BreakerClosed` in namespace AgentStack, with dimensions Agent and Region
 * and also Agent alone.
 */
export function createFailoverReporter(options: FailoverReporterOptions): FailoverListener {
  const { logger, metrics, agent, requestId } = options;
  const count = (name: string, target: ModelTarget) =>
    metrics.putGroups(
      { Agent: agent, Region: target.region },
      [{ dimensions: ['Agent', 'Region'], rollups: [['Agent']], metrics: { [name]: { value: 1, unit: 'Count' } } }],
      { requestId, modelId: target.modelId },
    );

  const reportTarget = (event: FailoverEvent) => {
    const fields = {
      target: describeTarget(event.target),
      cause: event.cause,
      kind: event.classification?.kind,
      nextTarget: event.next === undefined ? undefined : describeTarget(event.next),
    };
    if (event.type === 'target-skipped') {
      logger.info('Model target skipped', fields);
    } else {
      logger.warn('Model target failed', fields);
    }
    if (event.classification?.kind === 'throttled') {
      count('Throttled', event.target);
    }
    if (event.next !== undefined) {
      count('Failover', event.target);
    }
  };

  const reportBreaker = (event: BreakerEvent) => {
    switch (event.type) {
      case 'breaker-opened':
        logger.warn('Circuit breaker opened', {
          target: describeTarget(event.target),
          cause: `open until ${new Date(event.openUntil).toISOString()}`,
        });
        count('BreakerOpened', event.target);
        break;
      case 'breaker-closed':
        logger.info('Circuit breaker closed', {
          target: describeTarget(event.target),
          cause: 'probe succeeded',
        });
        count('BreakerClosed', event.target);
        break;
      case 'breaker-probe':
        logger.info('Circuit breaker probe claimed', {
          target: describeTarget(event.target),
          cause: `cooldown ended; lease until ${new Date(event.probeUntil).toISOString()}`,
        });
        break;
      case 'breaker-state-unavailable':
        logger.warn(
          'Breaker state table failed, so in-memory breaker state is used',
          { operation: event.operation, retryAt: new Date(event.retryAt).toISOString() },
          event.error,
        );
        break;
    }
  };

  return (event) => {
    if (isTargetEvent(event)) {
      reportTarget(event);
    } else {
      reportBreaker(event);
    }
  };
}

/** Value of the `Agent` dimension for a payload whose agent is not configured. */
export const UNKNOWN_AGENT = 'unknown';

/** Settings of {@link putOutcomeMetric}. */
export interface OutcomeMetricOptions {
  readonly metrics: MetricsWriter;
  readonly config: GatewayRuntimeConfig;
  /** Agent named by the payload, which may be invalid. */
  readonly agent: string | undefined;
  /** `success`, or the name of the error that ended the request. */
  readonly outcome: string;
  readonly requestId: string;
  /** Target that served or last tried the call, when one was chosen. */
  readonly target?: ModelTarget;
}

/**
 * Writes the metric `ModelCalls` (Count) for one finished request, with
 * dimensions Agent and Outcome. An agent that is not configured is counted
 * as `unknown`, so that invalid payloads cannot add dimension values.
 */
export function putOutcomeMetric(options: OutcomeMetricOptions): void {
  const { metrics, config, agent, outcome, requestId, target } = options;
  const configured = agent !== undefined && Object.hasOwn(config.agents, agent);
  metrics.put(
    { Agent: configured ? agent : UNKNOWN_AGENT, Outcome: outcome },
    { ModelCalls: { value: 1, unit: 'Count' } },
    { requestId, region: target?.region, modelId: target?.modelId },
  );
}
