import { WORKER_ENV } from '../lambda/shared/contracts';
import { parseWorkerConfig, readWorkerSettings } from '../lambda/worker/settings';
import { workerConfig } from './support/worker-harness';

function env(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return {
    [WORKER_ENV.config]: JSON.stringify(workerConfig()),
    [WORKER_ENV.gatewayFunction]: 'agent-gateway',
    [WORKER_ENV.memoryTable]: 'agent-memory',
    [WORKER_ENV.port]: '8080',
    ...overrides,
  };
}

describe('worker settings', () => {
  test('reads a realtime configuration', () => {
    const settings = readWorkerSettings(env({ AGENT_LISTEN_HOST: '127.0.0.1' }));
    expect(settings.port).toBe(8080);
    expect(settings.listenHost).toBe('127.0.0.1');
    expect(settings.queueUrl).toBeUndefined();
    expect(settings.config.limits.maxIterations).toBe(8);
  });

  test('names a missing variable', () => {
    expect(() => readWorkerSettings(env({ [WORKER_ENV.memoryTable]: undefined }))).toThrow(
      'Environment variable AGENT_MEMORY_TABLE is missing; the AgentService construct sets it.',
    );
  });

  test('requires the queue URL in background mode', () => {
    const config = JSON.stringify(workerConfig({ mode: 'background' }));
    expect(() => readWorkerSettings(env({ [WORKER_ENV.config]: config }))).toThrow(
      /AGENT_QUEUE_URL is missing/,
    );
  });

  test('rejects an invalid port', () => {
    expect(() => readWorkerSettings(env({ [WORKER_ENV.port]: '80a' }))).toThrow(
      'PORT is 80a; set it to a TCP port from 0 to 65535.',
    );
  });

  test('rejects invalid JSON', () => {
    expect(() => parseWorkerConfig('{')).toThrow(/^AGENT_WORKER_CONFIG is not valid JSON/);
  });

  test('names the invalid field', () => {
    const config = workerConfig();
    const invalid = { ...config, limits: { ...config.limits, maxIterations: 0 } };
    expect(() => parseWorkerConfig(JSON.stringify(invalid))).toThrow(
      /AGENT_WORKER_CONFIG is invalid: \/limits\/maxIterations must be >= 1/,
    );
  });

  test('reads confidence', () => {
    expect(parseWorkerConfig(JSON.stringify(workerConfig({ confidence: true }))).confidence).toBe(true);
    expect(parseWorkerConfig(JSON.stringify(workerConfig())).confidence).toBeUndefined();
  });

  test('rejects a non-boolean confidence', () => {
    const invalid = { ...workerConfig(), confidence: 'yes' };
    expect(() => parseWorkerConfig(JSON.stringify(invalid))).toThrow(
      /AGENT_WORKER_CONFIG is invalid: \/confidence must be boolean/,
    );
  });

  test('reads approval settings', () => {
    const approvals = { table: 'approvals', topicArn: 'arn:aws:sns:us-east-1:111122223333:approvals', expirySeconds: 3_600 };

    expect(parseWorkerConfig(JSON.stringify(workerConfig({ approvals }))).approvals).toEqual(approvals);
  });

  test('rejects approvals without a topic', () => {
    const invalid = { ...workerConfig(), approvals: { table: 'approvals', topicArn: 'approvals', expirySeconds: 3_600 } };

    expect(() => parseWorkerConfig(JSON.stringify(invalid))).toThrow(/\/approvals\/topicArn must match pattern/);
  });

  test('rejects a final_answer tool with confidence', () => {
    const config = workerConfig({ confidence: true });
    const clashing = { ...config, tools: [{ ...config.tools[0], name: 'final_answer' }] };
    expect(() => parseWorkerConfig(JSON.stringify(clashing))).toThrow(
      /\/tools has a tool named final_answer, which the worker offers itself when confidence is true/,
    );
  });
});
