import { requireField, type GatewayStep } from '../pipeline';

/** Sets the targets to try, in the order the agent's route lists them. */
export const resolveRouteStep: GatewayStep = {
  name: 'resolve-route',
  async run(context, next) {
    const agentConfig = requireField(context, 'agentConfig', this.name);
    // The invoke step, not this one, skips a target whose breaker is open, so
    // that the skip and its reason appear among the failures it reports.
    context.route = agentConfig.route;
    await next();
  },
};
