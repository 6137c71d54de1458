import type { GatewayRuntimeConfig, WorkerRuntimeConfig } from '../../../lambda/shared/contracts';
import { GATEWAY_ENV, WORKER_ENV } from '../../../lambda/shared/contracts';
import { compareText } from '../assembly';
import { CfnValue, flatten } from '../cfn';
import type { ResourceModel, ReviewModel, StackModel } from '../model';

/** The settings of one agent's worker, as synthesized into its task definition. */
export interface WorkerSettings {
  readonly stack: StackModel;
  readonly taskDefinition: ResourceModel;
  readonly config: WorkerRuntimeConfig;
}

/** The settings of one ModelGateway function, as synthesized into its environment. */
export interface GatewaySettings {
  readonly stack: StackModel;
  readonly function: ResourceModel;
  readonly config: GatewayRuntimeConfig;
}

/**
 * Parses a JSON environment value. References in it, such as a table name,
 * become text like `<Table>`, which keeps the JSON valid because the
 * template writes them inside JSON strings. Returns undefined for a value
 * that is not JSON.
 */
export function parseJsonValue(value: CfnValue): unknown {
  try {
    return JSON.parse(flatten(value));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Returns the worker settings of every task definition that has `AGENT_WORKER_CONFIG`, by stack and agent name. */
export function findWorkers(model: ReviewModel): WorkerSettings[] {
  const workers: WorkerSettings[] = [];
  for (const stack of model.stacks) {
    for (const taskDefinition of stack.ofType('AWS::ECS::TaskDefinition')) {
      const containers = (taskDefinition.properties.ContainerDefinitions ?? []) as Array<{ Environment?: Array<{ Name?: string; Value?: CfnValue }> }>;
      for (const container of containers) {
        const variable = (container.Environment ?? []).find((e) => e.Name === WORKER_ENV.config);
        const config = variable === undefined ? undefined : parseJsonValue(variable.Value);
        if (isObject(config) && typeof config.agent === 'string' && isObject(config.limits)) {
          workers.push({ stack, taskDefinition, config: config as unknown as WorkerRuntimeConfig });
        }
      }
    }
  }
  return workers.sort((a, b) => compareText(a.stack.name, b.stack.name) || compareText(a.config.agent, b.config.agent));
}

/** Returns the settings of every function that has `AGENT_GATEWAY_CONFIG`. */
export function findGateways(model: ReviewModel): GatewaySettings[] {
  const gateways: GatewaySettings[] = [];
  for (const stack of model.stacks) {
    for (const fn of stack.ofType('AWS::Lambda::Function')) {
      const variables = ((fn.properties.Environment as { Variables?: Record<string, CfnValue> } | undefined)?.Variables ?? {}) as Record<string, CfnValue>;
      const config = variables[GATEWAY_ENV.config] === undefined ? undefined : parseJsonValue(variables[GATEWAY_ENV.config]);
      if (isObject(config) && isObject(config.agents)) {
        gateways.push({ stack, function: fn, config: config as unknown as GatewayRuntimeConfig });
      }
    }
  }
  return gateways.sort((a, b) => compareText(a.stack.name, b.stack.name) || compareText(a.function.logicalId, b.function.logicalId));
}

/** Returns the gateway that serves an agent: one in the worker's stack whose config lists the agent. */
export function gatewayOf(gateways: readonly GatewaySettings[], worker: WorkerSettings): GatewaySettings | undefined {
  return (
    gateways.find((g) => g.stack === worker.stack && Object.hasOwn(g.config.agents, worker.config.agent)) ??
    gateways.find((g) => Object.hasOwn(g.config.agents, worker.config.agent))
  );
}
