import { requireField, type GatewayStep } from '../pipeline';

/** Turns the model call result into the response the caller receives. */
export const respondStep: GatewayStep = {
  name: 'respond',
  async run(context, next) {
    const result = requireField(context, 'result', this.name);
    context.response = { ok: true, requestId: context.requestId, ...result };
    await next();
  },
};
