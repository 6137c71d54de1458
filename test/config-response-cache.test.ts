/**
 * The `responseCache` section of an agent in the config file: its
 * defaults, the errors it raises with the config path, and what AgentStack
 * synthesizes from it.
 */
import { App, CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AgentStack } from '../lib/agent-stack';
import { ConfigError, validateConfig, type AgentStackConfigInput } from '../lib/config';

// Skips bundling the functions: the template only needs their asset hashes.
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

type Json = any;

function config(responseCache?: Json): AgentStackConfigInput {
  return {
    region: 'us-east-1',
    routes: { main: [{ region: 'us-east-1', modelId: 'amazon.nova-lite-v1:0' }] },
    agents: [{ name: 'faq', mode: 'background', systemPrompt: 'Answer questions about the product manual.', route: 'main', responseCache }],
  };
}

function configErrorOf(input: AgentStackConfigInput): ConfigError {
  try {
    validateConfig(input);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

/** Returns the message line that reports `jsonPath`, or an empty string. */
function lineFor(error: ConfigError, jsonPath: string): string {
  return error.message.split('\n').find((line) => line.trim().startsWith(`${jsonPath}: `)) ?? '';
}

describe('responseCache config', () => {
  test('off by default', () => {
    expect(validateConfig(config()).agents[0].responseCache).toBeUndefined();
  });

  test('defaults', () => {
    expect(validateConfig(config({ ttlSeconds: 600 })).agents[0].responseCache).toEqual({
      ttlSeconds: 600,
      scope: 'user',
      cacheToolTurns: false,
    });
  });

  test('agent scope with tool turns', () => {
    const error = configErrorOf(config({ ttlSeconds: 600, scope: 'agent', cacheToolTurns: true }));

    expect(lineFor(error, '$.agents[0].responseCache.cacheToolTurns')).toMatch(
      /cannot be true with scope agent, because tool results carry one user's data .* \(got true\)/,
    );
  });

  test('user scope with tool turns', () => {
    expect(validateConfig(config({ ttlSeconds: 600, cacheToolTurns: true })).agents[0].responseCache?.cacheToolTurns).toBe(true);
  });

  test('ttl required', () => {
    const error = configErrorOf(config({ scope: 'user' }));

    expect(lineFor(error, '$.agents[0].responseCache.ttlSeconds')).not.toBe('');
  });

  test.each([0, 1.5, 31_536_001])('ttl %s rejected', (ttlSeconds) => {
    const error = configErrorOf(config({ ttlSeconds }));

    expect(lineFor(error, '$.agents[0].responseCache.ttlSeconds')).toContain(`(got ${ttlSeconds})`);
  });

  test('unknown key', () => {
    const error = configErrorOf(config({ ttlSeconds: 600, ttl: 600 }));

    expect(lineFor(error, '$.agents[0].responseCache.ttl')).toContain('unknown key');
  });
});

describe('responseCache in AgentStack', () => {
  const stack = new AgentStack(new App({ context: NO_BUNDLING }), 'CacheStack', {
    config: config({ ttlSeconds: 900, scope: 'agent' }),
  });
  const template = Template.fromStack(stack);

  test('table name output', () => {
    const tableId = stack.getLogicalId(stack.gateway.responseCacheTable!.node.defaultChild as CfnElement);

    expect(template.toJSON().Outputs.ResponseCacheTableName.Value).toEqual({ Ref: tableId });
  });

  test('gateway gets the settings', () => {
    const fn = template.toJSON().Resources[stack.getLogicalId(stack.gateway.function.node.defaultChild as CfnElement)];
    const parts = fn.Properties.Environment.Variables.AGENT_GATEWAY_CONFIG['Fn::Join'][1] as unknown[];
    const text = parts.map((part) => (typeof part === 'string' ? part : 'TOKEN')).join('');

    expect(text).toContain('"responseCache":{"ttlSeconds":900,"scope":"agent","cacheToolTurns":false}');
  });

  test('no table without a cache', () => {
    const plain = new AgentStack(new App({ context: NO_BUNDLING }), 'PlainStack', { config: config() });

    expect(plain.gateway.responseCacheTable).toBeUndefined();
    expect(Template.fromStack(plain).toJSON().Outputs.ResponseCacheTableName).toBeUndefined();
  });
});
