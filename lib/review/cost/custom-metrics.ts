import { AGENT_METRICS, MetricDefinition } from '../../../lambda/shared/metric-catalog';
import { compareText } from '../assembly';
import type { GatewaySettings, WorkerSettings } from './settings';

/**
 * Values the runtime writes for dimensions whose values the templates do
 * not list. They are copied from the runtime's types, so the count is an
 * estimate that a new error name or stop reason makes too low.
 */
export const KNOWN_DIMENSION_VALUES: Readonly<Record<string, readonly string[]>> = {
  // `success` and the errors a gateway request can end with (lambda/shared/errors.ts).
  Outcome: [
    'success',
    'InvalidRequestError',
    'UnauthorizedError',
    'ModelCallError',
    'AllTargetsFailedError',
    'GuardrailBlockedError',
    'TimeoutError',
    'BudgetExceededError',
    'RateLimitedError',
    'BudgetUnavailableError',
    'AgentSuspendedError',
    'InternalError',
  ],
  // GuardrailLayer of lambda/shared/errors.ts, and `redaction`.
  Layer: ['pattern', 'guardrail input', 'guardrail output', 'tool result', 'guardrail', 'redaction'],
  // StopReason of lambda/worker/agent-loop.ts.
  Reason: ['end_turn', 'final_answer', 'awaiting_approval', 'max_iterations', 'max_tokens_per_task', 'repeated_tool_call', 'timeout'],
  // Windows the kill switch publishes BudgetUsePercent for.
  Window: ['day', 'month'],
};

/** The estimated number of custom metrics, with how it was counted. */
export interface CustomMetricEstimate {
  readonly count: number;
  readonly basis: string;
  readonly stacks: readonly string[];
}

interface AgentDimensions {
  readonly models: number;
  readonly regions: number;
  readonly targets: number;
  readonly tools: number;
}

/** Returns the number of dimension value sets of one catalog entry for one agent. */
function combinations(definition: MetricDefinition, agent: AgentDimensions): number {
  const dimensions = definition.dimensions.filter((d) => d !== 'Agent');
  if (dimensions.includes('Model') && dimensions.includes('Region')) {
    return agent.targets * product(dimensions.filter((d) => d !== 'Model' && d !== 'Region'), agent);
  }
  return product(dimensions, agent);
}

function product(dimensions: readonly string[], agent: AgentDimensions): number {
  let count = 1;
  for (const dimension of dimensions) {
    if (dimension === 'Model') count *= agent.models;
    else if (dimension === 'Region') count *= agent.regions;
    else if (dimension === 'Tool') count *= agent.tools;
    else count *= KNOWN_DIMENSION_VALUES[dimension]?.length ?? 1;
  }
  return count;
}

/**
 * Estimates the custom metrics the runtime publishes in namespace
 * `AgentStack`: for each entry of the metric catalog, the agents that emit
 * it times the value sets of its dimensions. Gateway metrics count for each
 * agent in a gateway's config, summary entries included, with the models
 * and regions of its route. Worker, kill switch and feedback metrics count
 * for each agent with a worker, with its tools.
 */
export function estimateCustomMetrics(workers: readonly WorkerSettings[], gateways: readonly GatewaySettings[]): CustomMetricEstimate {
  const definitions: MetricDefinition[] = Object.values(AGENT_METRICS);
  const perAgent = new Map<string, number>();
  const stacks = new Set<string>();
  for (const gateway of gateways) {
    for (const [agent, settings] of Object.entries(gateway.config.agents)) {
      const route = settings.route ?? [];
      const dimensions = {
        models: new Set(route.map((t) => t.modelId)).size,
        regions: new Set(route.map((t) => t.region)).size,
        targets: new Set(route.map((t) => `${t.region} ${t.modelId}`)).size,
        tools: 0,
      };
      const count = definitions.filter((d) => d.emittedBy === 'gateway').reduce((sum, d) => sum + combinations(d, dimensions), 0);
      perAgent.set(agent, (perAgent.get(agent) ?? 0) + count);
      stacks.add(gateway.stack.name);
    }
  }
  for (const worker of workers) {
    const tools = worker.config.tools.length + (worker.config.confidence ? 1 : 0);
    const dimensions = { models: 0, regions: 0, targets: 0, tools };
    const count = definitions.filter((d) => d.emittedBy !== 'gateway').reduce((sum, d) => sum + combinations(d, dimensions), 0);
    perAgent.set(worker.config.agent, (perAgent.get(worker.config.agent) ?? 0) + count);
    stacks.add(worker.stack.name);
  }
  const agents = [...perAgent.entries()].sort(([a], [b]) => compareText(a, b));
  const count = agents.reduce((sum, [, n]) => sum + n, 0);
  return {
    count,
    basis: `${definitions.length} catalog entries; per agent: ${agents.map(([agent, n]) => `${agent} ${n}`).join(', ')}`,
    stacks: [...stacks].sort(compareText),
  };
}
