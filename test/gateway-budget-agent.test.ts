/**
 * The budgetAgent setting of a gateway entry, which points an entry such as
 * a history summary entry at the agent whose limits its calls count against.
 */
import { validateGatewayConfig } from '../lambda/gateway/config';

const ROUTE = [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }];

describe('budgetAgent', () => {
  test('names a configured agent', () => {
    const config = validateGatewayConfig(
      { agents: { support: { route: ROUTE, maxTokensPerCall: 100 }, 'support.summary': { route: ROUTE, maxTokensPerCall: 100, budgetAgent: 'support' } } },
      'test',
    );

    expect(config.agents['support.summary'].budgetAgent).toBe('support');
  });

  test('unknown agent is rejected', () => {
    expect(() =>
      validateGatewayConfig({ agents: { 'support.summary': { route: ROUTE, maxTokensPerCall: 100, budgetAgent: 'support' } } }, 'test'),
    ).toThrow('agents.support.summary.budgetAgent is support, which is not a configured agent');
  });
});
