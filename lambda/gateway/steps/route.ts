import { requireField, type GatewayStep } from '../pipeline';

/** Sets the targets to try, in the order the agent's route lists them. */
export const resolveRouteStep: GatewayStep = {
  name: 'resolve-route',
  async run(context, next) {
    const agentConfig = requireField(context, 'agentConfig', this.name);
    // NOTE: every target is kept, because no circuit breaker tracks failing targets yet.
    context.route = agentConfig.route;
    await next();
  },
};
