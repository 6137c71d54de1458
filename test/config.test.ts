import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { AgentStack } from '../lib/agent-stack';
import { ConfigError, loadConfig, validateConfig } from '../lib/config';

const ROOT = path.resolve(__dirname, '..');
const EXAMPLE_FILE = path.join(ROOT, 'agent-stack.config.json');

// SQS caps the visibility timeout at 12 hours and the stack adds 60 s to
// the task timeout, so this is the longest background task timeout.
const MAX_BACKGROUND_TIMEOUT_SECONDS = 12 * 60 * 60 - 60;

type Json = any;

/** Reads a fresh copy of the example config. */
function example(): Json {
  return JSON.parse(fs.readFileSync(EXAMPLE_FILE, 'utf8'));
}

/**
 * Returns a valid config that sets nothing optional, so every default applies.
 * The only agent is a background one, which lets natGateways keep its
 * default of 0, and the tool is an existing function, so no file is read.
 */
function minimal(): Json {
  return {
    region: 'us-east-1',
    endpoint: {
      auth: {
        type: 'jwt',
        issuer: 'https://issuer.example.com/',
        audience: ['agents'],
        jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
      },
    },
    routes: { main: [{ region: 'us-east-1', modelId: 'amazon.nova-pro-v1:0' }] },
    agents: [
      {
        name: 'summarizer',
        mode: 'background',
        systemPrompt: 'Summarize the document you are given.',
        route: 'main',
        tools: [
          {
            name: 'fetch_document',
            description: 'Fetch a document by its id.',
            impact: 'low',
            inputSchema: { type: 'object' },
            handler: { functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:fetch-document' },
          },
        ],
      },
    ],
  };
}

/** Returns the ConfigError that `run` raises, and fails the test when it raises nothing. */
function configErrorOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

/** Validates the example after `mutate` changed it and returns the error. */
function rejectionOf(mutate: (config: Json) => void): ConfigError {
  const config = example();
  mutate(config);
  return configErrorOf(() => validateConfig(config));
}

/** Returns the message line that reports `jsonPath`, or an empty string. */
function lineFor(error: ConfigError, jsonPath: string): string {
  return error.message.split('\n').find((line) => line.trim().startsWith(`${jsonPath}: `)) ?? '';
}

function scratchDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'agent-config-'));
}

describe('example config', () => {
  test('loads from its file', () => {
    const config = loadConfig(EXAMPLE_FILE);

    expect(config.agents.map((a) => a.name)).toEqual(['support', 'research']);
    expect(config.agents.map((a) => a.mode)).toEqual(['realtime', 'background']);
  });

  test('resolves tool entries to existing files', () => {
    const config = loadConfig(EXAMPLE_FILE);
    const entries = config.agents.flatMap((a) => a.tools).map((t) => ('entry' in t.handler ? t.handler.entry : ''));

    expect(entries.length).toBeGreaterThan(0);
    for (const entry of entries) {
      expect(path.isAbsolute(entry)).toBe(true);
      expect(fs.existsSync(entry)).toBe(true);
    }
  });

  test('validates as an object too', () => {
    expect(() => validateConfig(example())).not.toThrow();
  });
});

describe('config defaults', () => {
  const config = validateConfig(minimal());
  const agent = config.agents[0];
  const tool = agent.tools[0];
  const auth = config.endpoint?.auth;
  const userClaim = auth && 'userClaim' in auth ? auth.userClaim : undefined;
  const guardrailSettings = () => {
    if ('existing' in config.guardrail) throw new Error('expected guardrail settings, got an existing guardrail');
    return config.guardrail;
  };

  test.each<[string, () => unknown, unknown]>([
    ['stackName', () => config.stackName, 'AgentStack'],
    ['limits.cpu', () => agent.limits.cpu, 512],
    ['limits.memoryMiB', () => agent.limits.memoryMiB, 1_024],
    ['limits.taskTimeoutSeconds', () => agent.limits.taskTimeoutSeconds, 300],
    ['limits.maxIterations', () => agent.limits.maxIterations, 10],
    ['limits.maxTokensPerTask', () => agent.limits.maxTokensPerTask, 100_000],
    ['limits.maxTokensPerCall', () => agent.limits.maxTokensPerCall, 4_096],
    ['limits.maxBodyBytes', () => agent.limits.maxBodyBytes, 262_144],
    ['scaling.minTasks', () => agent.scaling.minTasks, undefined],
    ['scaling.maxTasks', () => agent.scaling.maxTasks, 4],
    ['scaling.requestsPerTarget', () => agent.scaling.requestsPerTarget, 60],
    ['scaling.backlogPerTask', () => agent.scaling.backlogPerTask, 2],
    ['scaling.warmWindows', () => agent.scaling.warmWindows, []],
    ['queue.maxReceiveCount', () => agent.queue.maxReceiveCount, 3],
    ['queue.retentionDays', () => agent.queue.retentionDays, 14],
    ['queue.concurrency', () => agent.queue.concurrency, 1],
    ['confidence', () => agent.confidence, false],
    ['checkToolResults', () => agent.checkToolResults, true],
    ['promptCache', () => agent.promptCache, 'auto'],
    ['expectedCallsPer5Minutes', () => agent.expectedCallsPer5Minutes, undefined],
    ['tools[].untrustedOutput', () => tool.untrustedOutput, true],
    ['network.vpcCidr', () => config.network.vpcCidr, '10.0.0.0/16'],
    ['network.maxAzs', () => config.network.maxAzs, 2],
    ['network.natGateways', () => config.network.natGateways, 0],
    ['network.flowLogRetentionDays', () => config.network.flowLogRetentionDays, 365],
    ['gateway.memoryMiB', () => config.gateway.memoryMiB, 1_024],
    ['gateway.timeoutSeconds', () => config.gateway.timeoutSeconds, 120],
    ['gateway.inVpc', () => config.gateway.inVpc, false],
    ['gateway.provisionedConcurrency', () => config.gateway.provisionedConcurrency, 0],
    ['gateway.client.connectTimeoutMs', () => config.gateway.client.connectTimeoutMs, 1_000],
    ['gateway.client.firstByteTimeoutMs', () => config.gateway.client.firstByteTimeoutMs, 10_000],
    ['gateway.client.attemptTimeoutMs', () => config.gateway.client.attemptTimeoutMs, 60_000],
    ['gateway.client.sdkMaxAttempts', () => config.gateway.client.sdkMaxAttempts, 1],
    ['gateway.client.requestDeadlineMs', () => config.gateway.client.requestDeadlineMs, 115_000],
    ['gateway.breaker.failureThreshold', () => config.gateway.breaker.failureThreshold, 5],
    ['gateway.breaker.cooldownSeconds', () => config.gateway.breaker.cooldownSeconds, 30],
    ['gateway.breaker.cacheTtlMs', () => config.gateway.breaker.cacheTtlMs, 2_000],
    ['guardrail.promptAttack', () => guardrailSettings().promptAttack, { inputStrength: 'HIGH', outputStrength: 'NONE' }],
    ['guardrail.deniedTopics', () => guardrailSettings().deniedTopics, []],
    ['guardrail.words', () => guardrailSettings().words, []],
    ['guardrail.managedWordLists', () => guardrailSettings().managedWordLists, []],
    ['guardrail.piiEntities', () => guardrailSettings().piiEntities, []],
    [
      'guardrail.blockedInputMessage',
      () => guardrailSettings().blockedInputMessage,
      'Sorry, this request cannot be processed because it breaks our usage policy.',
    ],
    [
      'guardrail.blockedOutputMessage',
      () => guardrailSettings().blockedOutputMessage,
      'Sorry, the response was withheld because it breaks our usage policy.',
    ],
    ['firewall.enabled', () => config.firewall.enabled, undefined],
    ['firewall.rateLimit', () => config.firewall.rateLimit, 1_000],
    ['firewall.managedRuleGroups', () => config.firewall.managedRuleGroups, []],
    ['firewall.coreRuleSetCountRules', () => config.firewall.coreRuleSetCountRules, []],
    ['firewall.injectionAction', () => config.firewall.injectionAction, 'block'],
    ['firewall.oversizeBody', () => config.firewall.oversizeBody, 'inspect-first-8kb'],
    ['firewall.maxBodyBytes', () => config.firewall.maxBodyBytes, undefined],
    ['approvals.expiryMinutes', () => config.approvals.expiryMinutes, 1_440],
    ['approvals.approverRoleArns', () => config.approvals.approverRoleArns, []],
    ['approvals.notificationEmails', () => config.approvals.notificationEmails, []],
    ['memory.ttlDays', () => config.memory.ttlDays, 30],
    ['logRetentionDays', () => config.logRetentionDays, 90],
    ['tool.timeoutSeconds', () => tool.timeoutSeconds, 30],
    ['tool.memoryMiB', () => tool.memoryMiB, 256],
    ['tool.maxConcurrency', () => tool.maxConcurrency, 10],
    ['tool.policyStatements', () => tool.policyStatements, []],
    ['endpoint.auth.userClaim', () => userClaim, 'sub'],
  ])('%s', (_field, read, expected) => {
    expect(read()).toEqual(expected);
  });

  test.each(['hate', 'insults', 'sexual', 'violence', 'misconduct'] as const)('guardrail.contentFilters.%s', (category) => {
    expect(guardrailSettings().contentFilters[category]).toEqual({ inputStrength: 'HIGH', outputStrength: 'HIGH' });
  });

  test('guardrail topic examples', () => {
    const input = minimal();
    input.guardrail = { deniedTopics: [{ name: 'Legal advice', definition: 'Advice on laws and contracts.' }] };

    const topic = (validateConfig(input).guardrail as Json).deniedTopics[0];

    expect(topic.examples).toEqual([]);
  });

  test('guardrail pii applies both ways', () => {
    const input = minimal();
    input.guardrail = { piiEntities: [{ type: 'EMAIL', action: 'ANONYMIZE' }] };

    const entity = (validateConfig(input).guardrail as Json).piiEntities[0];

    expect(entity.appliesTo).toEqual(['input', 'output']);
  });

  test('existing guardrail has no settings', () => {
    const input = minimal();
    input.guardrail = { existing: { id: 'abc123def456', version: '3' } };

    expect(validateConfig(input).guardrail).toEqual({ existing: { id: 'abc123def456', version: '3' } });
  });

  // The client defaults follow the Lambda timeout, so that they stay valid
  // for a short one: each is capped at the next wider bound.
  test.each<[number, Record<string, number>]>([
    [30, { requestDeadlineMs: 27_000, attemptTimeoutMs: 27_000, firstByteTimeoutMs: 10_000, connectTimeoutMs: 1_000 }],
    [5, { requestDeadlineMs: 4_500, attemptTimeoutMs: 4_500, firstByteTimeoutMs: 4_500, connectTimeoutMs: 1_000 }],
    [900, { requestDeadlineMs: 895_000, attemptTimeoutMs: 60_000, firstByteTimeoutMs: 10_000, connectTimeoutMs: 1_000 }],
  ])('client defaults for a %i s timeout', (timeoutSeconds, expected) => {
    const input = minimal();
    input.gateway = { timeoutSeconds };

    expect(validateConfig(input).gateway.client).toEqual({ ...expected, sdkMaxAttempts: 1 });
  });

  test('attempt default capped by deadline', () => {
    const input = minimal();
    input.gateway = { client: { requestDeadlineMs: 20_000 } };

    expect(validateConfig(input).gateway.client.attemptTimeoutMs).toBe(20_000);
  });

  test('tools default to none', () => {
    const input = minimal();
    delete input.agents[0].tools;

    expect(validateConfig(input).agents[0].tools).toEqual([]);
  });
});

describe('config rejection', () => {
  test('unknown top-level key', () => {
    const error = rejectionOf((c) => {
      c.regoin = 'us-east-1';
    });

    expect(lineFor(error, '$.regoin')).toContain('unknown key');
  });

  test('unknown nested key', () => {
    const error = rejectionOf((c) => {
      c.agents[0].limits.cpuUnits = 512;
    });

    expect(lineFor(error, '$.agents[0].limits.cpuUnits')).toContain('unknown key');
  });

  test('every unknown key listed', () => {
    const error = rejectionOf((c) => {
      c.regoin = 'us-east-1';
      c.agents[1].queue.retention = 3;
    });

    expect(error.issues.map((i) => i.path).sort()).toEqual(['$.agents[1].queue.retention', '$.regoin']);
  });

  test('idle timeout below a realtime task', () => {
    const error = rejectionOf((c) => {
      c.endpoint.idleTimeoutSeconds = 60;
    });
    const line = lineFor(error, '$.endpoint.idleTimeoutSeconds');

    expect(line).toContain('use at least 125');
    expect(line).toContain('(got 60)');
  });

  test('wrong type for a number', () => {
    const error = rejectionOf((c) => {
      c.agents[0].limits.memoryMiB = '1024';
    });
    const line = lineFor(error, '$.agents[0].limits.memoryMiB');

    expect(line).toContain('expected number');
    expect(line).toContain('(got "1024")');
  });

  test('wrong type for a boolean', () => {
    const error = rejectionOf((c) => {
      c.gateway = { inVpc: 'yes' };
    });
    const line = lineFor(error, '$.gateway.inVpc');

    expect(line).toContain('expected boolean');
    expect(line).toContain('(got "yes")');
  });

  test('number above its maximum', () => {
    const error = rejectionOf((c) => {
      c.agents[0].scaling.maxTasks = 1_001;
    });
    const line = lineFor(error, '$.agents[0].scaling.maxTasks');

    expect(line).toContain('<=1000');
    expect(line).toContain('(got 1001)');
  });

  test('number below its minimum', () => {
    const error = rejectionOf((c) => {
      c.agents[1].limits.maxIterations = 0;
    });
    const line = lineFor(error, '$.agents[1].limits.maxIterations');

    expect(line).toContain('>=1');
    expect(line).toContain('(got 0)');
  });

  test('fractional number', () => {
    const error = rejectionOf((c) => {
      c.agents[1].queue.maxReceiveCount = 2.5;
    });
    const line = lineFor(error, '$.agents[1].queue.maxReceiveCount');

    expect(line).toContain('expected int');
    expect(line).toContain('(got 2.5)');
  });

  test('cpu outside the fargate sizes', () => {
    const error = rejectionOf((c) => {
      c.agents[0].limits.cpu = 300;
    });
    const line = lineFor(error, '$.agents[0].limits.cpu');

    expect(line).toContain('256|512|1024|2048|4096|8192|16384');
    expect(line).toContain('(got 300)');
  });

  test('unknown agent mode', () => {
    const error = rejectionOf((c) => {
      c.agents[0].mode = 'batch';
    });
    const line = lineFor(error, '$.agents[0].mode');

    expect(line).toContain('"realtime"|"background"');
    expect(line).toContain('(got "batch")');
  });

  test('unknown auth type', () => {
    const error = rejectionOf((c) => {
      c.endpoint.auth.type = 'saml';
    });
    const line = lineFor(error, '$.endpoint.auth.type');

    expect(line).toContain('"jwt", "cognito", "oidc", "none"');
    expect(line).toContain('(got "saml")');
  });

  test('tool with entry and function arn', () => {
    const error = rejectionOf((c) => {
      c.agents[0].tools[0].handler.functionArn = 'arn:aws:lambda:us-east-1:123456789012:function:lookup';
    });

    expect(lineFor(error, '$.agents[0].tools[0].handler')).toContain('exactly one of { "entry"');
  });

  test('duplicate agent names', () => {
    const error = rejectionOf((c) => {
      c.agents[1].name = 'support';
    });
    const line = lineFor(error, '$.agents[1].name');

    expect(line).toContain('agents[0] already uses it');
    expect(line).toContain('(got "support")');
  });

  test('tool named twice in one agent', () => {
    const error = rejectionOf((c) => {
      c.agents[0].tools[1].name = 'lookup_order';
    });
    const line = lineFor(error, '$.agents[0].tools[1].name');

    expect(line).toContain('tools[0] already uses it');
    expect(line).toContain('(got "lookup_order")');
  });

  test('minTasks above maxTasks', () => {
    const error = rejectionOf((c) => {
      c.agents[0].scaling.minTasks = 11;
    });
    const line = lineFor(error, '$.agents[0].scaling.minTasks');

    expect(line).toContain('exceeds maxTasks (10)');
    expect(line).toContain('(got 11)');
  });

  test('warm window above maxTasks', () => {
    const error = rejectionOf((c) => {
      c.agents[0].scaling.warmWindows[0].minTasks = 12;
    });
    const line = lineFor(error, '$.agents[0].scaling.warmWindows[0].minTasks');

    expect(line).toContain('exceeds maxTasks (10)');
    expect(line).toContain('(got 12)');
  });

  test('realtime agent with minTasks 0', () => {
    const error = rejectionOf((c) => {
      c.agents[0].scaling.minTasks = 0;
    });
    const line = lineFor(error, '$.agents[0].scaling.minTasks');

    expect(line).toContain('at least 1 for a realtime agent');
    expect(line).toContain('(got 0)');
  });

  test('background timeout at the visibility limit', () => {
    const config = example();
    config.agents[1].limits.taskTimeoutSeconds = MAX_BACKGROUND_TIMEOUT_SECONDS;

    expect(validateConfig(config).agents[1].limits.taskTimeoutSeconds).toBe(43_140);
  });

  test('background timeout past the visibility limit', () => {
    const error = rejectionOf((c) => {
      c.agents[1].limits.taskTimeoutSeconds = MAX_BACKGROUND_TIMEOUT_SECONDS + 1;
    });
    const line = lineFor(error, '$.agents[1].limits.taskTimeoutSeconds');

    expect(line).toContain('at most 43140');
    expect(line).toContain('(got 43141)');
  });

  test('realtime timeout at 3600', () => {
    const config = example();
    config.agents[0].limits.taskTimeoutSeconds = 3_600;

    expect(validateConfig(config).agents[0].limits.taskTimeoutSeconds).toBe(3_600);
  });

  test('realtime timeout above 3600', () => {
    const error = rejectionOf((c) => {
      c.agents[0].limits.taskTimeoutSeconds = 3_601;
    });
    const line = lineFor(error, '$.agents[0].limits.taskTimeoutSeconds');

    expect(line).toContain('at most 3600 for a realtime agent');
    expect(line).toContain('(got 3601)');
  });

  test('route without targets', () => {
    const error = rejectionOf((c) => {
      c.routes['claude-haiku'] = [];
    });
    const line = lineFor(error, '$.routes["claude-haiku"]');

    expect(line).toContain('at least one target');
    expect(line).toContain('(got [])');
  });

  test('no routes at all', () => {
    const error = rejectionOf((c) => {
      c.routes = {};
    });
    const line = lineFor(error, '$.agents[0].route');

    expect(line).toContain('expected one of (none defined)');
    expect(line).toContain('(got "claude-haiku")');
  });

  test('agent naming a missing route', () => {
    const error = rejectionOf((c) => {
      c.agents[1].route = 'claude-opus';
    });
    const line = lineFor(error, '$.agents[1].route');

    expect(line).toContain('expected one of claude-sonnet, claude-haiku');
    expect(line).toContain('(got "claude-opus")');
  });

  test('account without availabilityZones', () => {
    const error = rejectionOf((c) => {
      c.account = '123456789012';
    });

    expect(lineFor(error, '$.availabilityZones')).toContain('required when account is set');
  });

  test('zone of another region', () => {
    const error = rejectionOf((c) => {
      c.account = '123456789012';
      c.availabilityZones = ['us-east-1a', 'us-west-2b'];
    });
    const line = lineFor(error, '$.availabilityZones[1]');

    expect(line).toContain('expected a zone of region us-east-1');
    expect(line).toContain('(got "us-west-2b")');
  });

  test('invalid fargate cpu and memory', () => {
    const error = rejectionOf((c) => {
      c.agents[0].limits.cpu = 512;
      c.agents[0].limits.memoryMiB = 8_192;
    });
    const line = lineFor(error, '$.agents[0].limits.memoryMiB');

    expect(line).toContain('not valid with cpu 512');
    expect(line).toContain('Fargate allows 1024 to 4096 in steps of 1024');
    expect(line).toContain('(got 8192)');
  });

  test('tool entry file missing', () => {
    const dir = scratchDir();
    const file = path.join(dir, 'agents.json');
    const config = example();
    config.agents[0].tools[0].handler.entry = 'tools/missing.ts';
    fs.writeFileSync(file, JSON.stringify(config));

    const error = configErrorOf(() => loadConfig(file));
    const line = lineFor(error, '$.agents[0].tools[0].handler.entry');

    expect(line).toContain(`file not found at ${path.join(dir, 'tools', 'missing.ts')}`);
    expect(line).toContain('(got "tools/missing.ts")');
    expect(error.message).toContain(`Invalid ${file}:`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('cognito auth without certificateArn', () => {
    const error = rejectionOf((c) => {
      c.endpoint.auth = {
        type: 'cognito',
        userPoolArn: 'arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_EXAMPLE11',
        userPoolClientId: 'client',
        userPoolDomain: 'agents',
      };
    });

    expect(lineFor(error, '$.endpoint.certificateArn')).toContain('required with auth type cognito');
  });

  test('jwt auth with natGateways 0', () => {
    const error = rejectionOf((c) => {
      c.network.natGateways = 0;
    });
    const line = lineFor(error, '$.network.natGateways');

    expect(line).toContain('must be at least 1 with auth type jwt');
    expect(line).toContain('(got 0)');
  });

  test('file with invalid json', () => {
    const dir = scratchDir();
    const file = path.join(dir, 'agents.json');
    fs.writeFileSync(file, '{ "region": ');

    const error = configErrorOf(() => loadConfig(file));

    expect(lineFor(error, '$')).toContain('invalid JSON');
    expect(error.message).toContain(file);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('file that does not exist', () => {
    const file = path.join(os.tmpdir(), 'agent-config-missing', 'agents.json');
    const error = configErrorOf(() => loadConfig(file));

    expect(lineFor(error, '$')).toContain('cannot read file');
    expect(error.message).toContain(file);
  });
});

describe('budget defaults', () => {
  const withBudget = () => {
    const input = minimal();
    input.budget = {};
    return validateConfig(input);
  };

  test('no budget section by default', () => {
    const config = validateConfig(minimal());

    expect(config.budget).toBeUndefined();
    expect(config.agents[0].budget).toBeUndefined();
  });

  test.each<[string, (budget: Json) => unknown, unknown]>([
    ['budget.leaseSeconds', (b) => b.leaseSeconds, 900],
    ['budget.failOpen', (b) => b.failOpen, false],
    ['budget.allowAnonymous', (b) => b.allowAnonymous, false],
    ['budget.regionalPremiumPercent', (b) => b.regionalPremiumPercent, 10],
    ['budget.prices', (b) => b.prices, {}],
    ['budget.stack', (b) => b.stack, undefined],
  ])('%s', (_field, read, expected) => {
    expect(read(withBudget().budget)).toEqual(expected);
  });

  test('example sets agent budgets', () => {
    const config = loadConfig(EXAMPLE_FILE);

    expect(config.budget?.stack).toEqual({ daily: { usd: 300 }, monthly: { usd: 5_000 } });
    expect(config.agents[0].budget?.perUser).toEqual({ daily: { usd: 2 } });
    expect(config.agents[0].budget?.perUserRate).toEqual({ requestsPerMinute: 20 });
    expect(config.agents[1].budget?.agent?.monthly).toEqual({ usd: 1_500 });
  });

  test('price override admits a model', () => {
    const config = example();
    config.routes['claude-haiku'].push({ region: 'us-east-1', modelId: 'us.example.custom-v1:0' });
    config.budget.prices = {
      'example.custom-v1:0': { inputPerMillion: 1, outputPerMillion: 2, cacheReadPerMillion: 0.1, cacheWritePerMillion: 1 },
    };

    expect(validateConfig(config).budget?.prices['example.custom-v1:0'].outputPerMillion).toBe(2);
  });
});

describe('budget rejection', () => {
  test('lease at the gateway timeout', () => {
    const error = rejectionOf((c) => {
      c.gateway = { timeoutSeconds: 300 };
      c.budget.leaseSeconds = 300;
    });
    const line = lineFor(error, '$.budget.leaseSeconds');

    expect(line).toContain('must be longer than gateway.timeoutSeconds (300)');
    expect(line).toContain('raise leaseSeconds or lower gateway.timeoutSeconds');
    expect(line).toContain('(got 300)');
  });

  test('lease below a minute', () => {
    const error = rejectionOf((c) => {
      c.budget.leaseSeconds = 30;
    });
    const line = lineFor(error, '$.budget.leaseSeconds');

    expect(line).toContain('>=60');
    expect(line).toContain('(got 30)');
  });

  test('agent budget without budget section', () => {
    const error = rejectionOf((c) => {
      delete c.budget;
    });
    const line = lineFor(error, '$.agents[0].budget');

    expect(line).toContain('has no effect without the top-level budget section');
    expect(line).toContain('add "budget": {}');
  });

  test('target without a price', () => {
    const error = rejectionOf((c) => {
      c.routes['claude-sonnet'][2].modelId = 'us.example.unknown-v1:0';
    });
    const line = lineFor(error, '$.routes["claude-sonnet"][2].modelId');

    expect(line).toContain('has no price: the built-in table does not list example.unknown-v1:0');
    expect(line).toContain('add budget.prices["example.unknown-v1:0"]');
    expect(line).toContain('(got "us.example.unknown-v1:0")');
  });

  test('unpriced target allowed without budget', () => {
    const config = example();
    delete config.budget;
    for (const agent of config.agents) delete agent.budget;
    config.routes['claude-sonnet'][2].modelId = 'us.example.unknown-v1:0';

    expect(() => validateConfig(config)).not.toThrow();
  });

  test('stack daily above monthly', () => {
    const error = rejectionOf((c) => {
      c.budget.stack = { daily: { usd: 600 }, monthly: { usd: 500 } };
    });
    const line = lineFor(error, '$.budget.stack.daily.usd');

    expect(line).toContain('exceeds monthly.usd (500)');
    expect(line).toContain('(got 600)');
  });

  test('agent daily tokens above monthly', () => {
    const error = rejectionOf((c) => {
      c.agents[1].budget.agent = { daily: { tokens: 2_000 }, monthly: { tokens: 1_000 } };
    });
    const line = lineFor(error, '$.agents[1].budget.agent.daily.tokens');

    expect(line).toContain('exceeds monthly.tokens (1000)');
    expect(line).toContain('(got 2000)');
  });

  test('price missing a field', () => {
    const error = rejectionOf((c) => {
      c.budget.prices = { 'amazon.nova-pro-v1:0': { inputPerMillion: 0.8, outputPerMillion: 3.2, cacheReadPerMillion: 0.2 } };
    });

    expect(lineFor(error, '$.budget.prices["amazon.nova-pro-v1:0"].cacheWritePerMillion')).toContain('expected number');
  });

  test('negative usd cap', () => {
    const error = rejectionOf((c) => {
      c.agents[0].budget.perUser.daily.usd = -5;
    });
    const line = lineFor(error, '$.agents[0].budget.perUser.daily.usd');

    expect(line).toContain('>=0.01');
    expect(line).toContain('(got -5)');
  });

  test('fractional requests per minute', () => {
    const error = rejectionOf((c) => {
      c.agents[0].budget.perUserRate.requestsPerMinute = 2.5;
    });

    expect(lineFor(error, '$.agents[0].budget.perUserRate.requestsPerMinute')).toContain('expected int');
  });

  test('regional premium above 100', () => {
    const error = rejectionOf((c) => {
      c.budget.regionalPremiumPercent = 101;
    });
    const line = lineFor(error, '$.budget.regionalPremiumPercent');

    expect(line).toContain('<=100');
    expect(line).toContain('(got 101)');
  });

  test('failOpen not a boolean', () => {
    const error = rejectionOf((c) => {
      c.budget.failOpen = 'yes';
    });

    expect(lineFor(error, '$.budget.failOpen')).toContain('expected boolean');
  });

  test('unknown budget key', () => {
    const error = rejectionOf((c) => {
      c.budget.perUser = { daily: { usd: 1 } };
    });

    expect(lineFor(error, '$.budget.perUser')).toContain('unknown key');
  });

  test('unknown agent budget key', () => {
    const error = rejectionOf((c) => {
      c.agents[0].budget.user = {};
    });

    expect(lineFor(error, '$.agents[0].budget.user')).toContain('unknown key');
  });
});

describe('gateway rejection', () => {
  test('deadline at the lambda timeout', () => {
    const error = rejectionOf((c) => {
      c.gateway = { timeoutSeconds: 120, client: { requestDeadlineMs: 120_000 } };
    });
    const line = lineFor(error, '$.gateway.client.requestDeadlineMs');

    expect(line).toContain('must be below the Lambda timeout of 120000 ms (gateway.timeoutSeconds)');
    expect(line).toContain('use at most 115000 or raise gateway.timeoutSeconds');
    expect(line).toContain('(got 120000)');
  });

  test('deadline above the lambda timeout', () => {
    const error = rejectionOf((c) => {
      c.gateway = { timeoutSeconds: 60, client: { requestDeadlineMs: 90_000 } };
    });
    const line = lineFor(error, '$.gateway.client.requestDeadlineMs');

    expect(line).toContain('must be below the Lambda timeout of 60000 ms');
    expect(line).toContain('(got 90000)');
  });

  test('deadline just below the timeout', () => {
    const config = example();
    config.gateway = { timeoutSeconds: 120, client: { requestDeadlineMs: 119_999 } };

    expect(validateConfig(config).gateway.client.requestDeadlineMs).toBe(119_999);
  });

  test('attempt timeout above the deadline', () => {
    const error = rejectionOf((c) => {
      c.gateway = { client: { attemptTimeoutMs: 116_000 } };
    });
    const line = lineFor(error, '$.gateway.client.attemptTimeoutMs');

    expect(line).toContain('exceeds requestDeadlineMs (115000)');
    expect(line).toContain('lower attemptTimeoutMs, or raise gateway.timeoutSeconds and with it requestDeadlineMs');
    expect(line).toContain('(got 116000)');
  });

  test('first byte above the attempt timeout', () => {
    const error = rejectionOf((c) => {
      c.gateway = { client: { attemptTimeoutMs: 8_000, firstByteTimeoutMs: 9_000 } };
    });
    const line = lineFor(error, '$.gateway.client.firstByteTimeoutMs');

    expect(line).toContain('exceeds attemptTimeoutMs (8000)');
    expect(line).toContain('(got 9000)');
  });

  test('connect above the first byte timeout', () => {
    const error = rejectionOf((c) => {
      c.gateway = { client: { firstByteTimeoutMs: 2_000, connectTimeoutMs: 3_000 } };
    });
    const line = lineFor(error, '$.gateway.client.connectTimeoutMs');

    expect(line).toContain('exceeds firstByteTimeoutMs (2000)');
    expect(line).toContain('(got 3000)');
  });

  test.each([0, 11])('sdkMaxAttempts of %i', (attempts) => {
    const error = rejectionOf((c) => {
      c.gateway = { client: { sdkMaxAttempts: attempts } };
    });

    expect(lineFor(error, '$.gateway.client.sdkMaxAttempts')).toContain(`(got ${attempts})`);
  });

  test('cache ttl at the cooldown', () => {
    const error = rejectionOf((c) => {
      c.gateway = { breaker: { cooldownSeconds: 2, cacheTtlMs: 2_000 } };
    });
    const line = lineFor(error, '$.gateway.breaker.cacheTtlMs');

    expect(line).toContain('must be below the cooldown of 2000 ms (cooldownSeconds)');
    expect(line).toContain('lower cacheTtlMs or raise cooldownSeconds');
    expect(line).toContain('(got 2000)');
  });

  test('cooldown of zero', () => {
    const error = rejectionOf((c) => {
      c.gateway = { breaker: { cooldownSeconds: 0 } };
    });
    const line = lineFor(error, '$.gateway.breaker.cooldownSeconds');

    expect(line).toContain('>=1');
    expect(line).toContain('(got 0)');
  });

  test('failure threshold of zero', () => {
    const error = rejectionOf((c) => {
      c.gateway = { breaker: { failureThreshold: 0 } };
    });

    expect(lineFor(error, '$.gateway.breaker.failureThreshold')).toContain('(got 0)');
  });

  test('negative provisioned concurrency', () => {
    const error = rejectionOf((c) => {
      c.gateway = { provisionedConcurrency: -1 };
    });
    const line = lineFor(error, '$.gateway.provisionedConcurrency');

    expect(line).toContain('>=0');
    expect(line).toContain('(got -1)');
  });

  test('fractional provisioned concurrency', () => {
    const error = rejectionOf((c) => {
      c.gateway = { provisionedConcurrency: 1.5 };
    });

    expect(lineFor(error, '$.gateway.provisionedConcurrency')).toContain('expected int');
  });

  test('unknown client key', () => {
    const error = rejectionOf((c) => {
      c.gateway = { client: { readTimeoutMs: 1_000 } };
    });

    expect(lineFor(error, '$.gateway.client.readTimeoutMs')).toContain('unknown key');
  });
});

describe('guardrail rejection', () => {
  test('existing with settings', () => {
    const error = rejectionOf((c) => {
      c.guardrail.existing = { id: 'abc123def456', version: '1' };
    });
    const line = lineFor(error, '$.guardrail.existing');

    expect(line).toContain('cannot be combined with deniedTopics, managedWordLists, piiEntities');
    expect(line).toContain('remove existing to let the stack create the guardrail');
  });

  test('existing id with capitals', () => {
    const error = rejectionOf((c) => {
      c.guardrail = { existing: { id: 'Abc-123', version: '1' } };
    });
    const line = lineFor(error, '$.guardrail.existing.id');

    expect(line).toContain('1 to 64 lower-case letters and digits');
    expect(line).toContain('(got "Abc-123")');
  });

  test('existing version not a number', () => {
    const error = rejectionOf((c) => {
      c.guardrail = { existing: { id: 'abc123def456', version: 'v1' } };
    });
    const line = lineFor(error, '$.guardrail.existing.version');

    expect(line).toContain('published version number');
    expect(line).toContain('(got "v1")');
  });

  test('prompt attack on output', () => {
    const error = rejectionOf((c) => {
      c.guardrail.promptAttack = { inputStrength: 'HIGH', outputStrength: 'HIGH' };
    });
    const line = lineFor(error, '$.guardrail.promptAttack.outputStrength');

    expect(line).toContain('must be NONE');
    expect(line).toContain('prompts only');
    expect(line).toContain('(got "HIGH")');
  });

  test('unknown filter strength', () => {
    const error = rejectionOf((c) => {
      c.guardrail.contentFilters = { hate: { inputStrength: 'STRICT' } };
    });
    const line = lineFor(error, '$.guardrail.contentFilters.hate.inputStrength');

    expect(line).toContain('"NONE"|"LOW"|"MEDIUM"|"HIGH"');
    expect(line).toContain('(got "STRICT")');
  });

  test('unknown content category', () => {
    const error = rejectionOf((c) => {
      c.guardrail.contentFilters = { profanity: { inputStrength: 'HIGH' } };
    });

    expect(lineFor(error, '$.guardrail.contentFilters.profanity')).toContain('unknown key');
  });

  test('guardrail without any filter', () => {
    const none = { inputStrength: 'NONE', outputStrength: 'NONE' };
    const error = rejectionOf((c) => {
      c.guardrail = {
        contentFilters: { hate: none, insults: none, sexual: none, violence: none, misconduct: none },
        promptAttack: { inputStrength: 'NONE' },
      };
    });

    expect(lineFor(error, '$.guardrail')).toContain('has no filter');
    expect(lineFor(error, '$.guardrail')).toContain('name an existing guardrail');
  });

  test('one filter is enough', () => {
    const none = { inputStrength: 'NONE', outputStrength: 'NONE' };
    const config = example();
    config.guardrail = {
      contentFilters: { hate: none, insults: none, sexual: none, violence: none, misconduct: none },
      promptAttack: { inputStrength: 'NONE' },
      words: ['discount code'],
    };

    expect(validateConfig(config).guardrail).toMatchObject({ words: ['discount code'] });
  });

  test('topic named twice', () => {
    const error = rejectionOf((c) => {
      c.guardrail.deniedTopics.push({ name: 'Financial advice', definition: 'Anything about money.' });
    });
    const line = lineFor(error, '$.guardrail.deniedTopics[1].name');

    expect(line).toContain('names a topic already listed');
    expect(line).toContain('(got "Financial advice")');
  });

  test('topic definition too long', () => {
    const error = rejectionOf((c) => {
      c.guardrail.deniedTopics[0].definition = 'x'.repeat(201);
    });

    expect(lineFor(error, '$.guardrail.deniedTopics[0].definition')).toContain('<=200');
  });

  test('topic name with a slash', () => {
    const error = rejectionOf((c) => {
      c.guardrail.deniedTopics[0].name = 'Loans/credit';
    });
    const line = lineFor(error, '$.guardrail.deniedTopics[0].name');

    expect(line).toContain('letters, digits, spaces and -_!?.');
    expect(line).toContain('(got "Loans/credit")');
  });

  test('pii type listed twice', () => {
    const error = rejectionOf((c) => {
      c.guardrail.piiEntities.push({ type: 'CREDIT_DEBIT_CARD_NUMBER', action: 'BLOCK' });
    });
    const line = lineFor(error, '$.guardrail.piiEntities[2].type');

    expect(line).toContain('repeats a PII type');
    expect(line).toContain('(got "CREDIT_DEBIT_CARD_NUMBER")');
  });

  test('unknown pii type', () => {
    const error = rejectionOf((c) => {
      c.guardrail.piiEntities[0].type = 'CARD';
    });

    expect(lineFor(error, '$.guardrail.piiEntities[0].type')).toContain('(got "CARD")');
  });

  test('pii action mask', () => {
    const error = rejectionOf((c) => {
      c.guardrail.piiEntities[0].action = 'MASK';
    });
    const line = lineFor(error, '$.guardrail.piiEntities[0].action');

    expect(line).toContain('"BLOCK"|"ANONYMIZE"');
    expect(line).toContain('(got "MASK")');
  });

  test('pii applying nowhere', () => {
    const error = rejectionOf((c) => {
      c.guardrail.piiEntities[0].appliesTo = [];
    });

    expect(lineFor(error, '$.guardrail.piiEntities[0].appliesTo')).toContain('list "input", "output" or both');
  });

  test('word listed twice', () => {
    const error = rejectionOf((c) => {
      c.guardrail.words = ['coupon', 'coupon'];
    });
    const line = lineFor(error, '$.guardrail.words[1]');

    expect(line).toContain('repeats a word');
    expect(line).toContain('(got "coupon")');
  });

  test('blocked message too long', () => {
    const error = rejectionOf((c) => {
      c.guardrail.blockedInputMessage = 'x'.repeat(501);
    });

    expect(lineFor(error, '$.guardrail.blockedInputMessage')).toContain('<=500');
  });

  test('unknown guardrail key', () => {
    const error = rejectionOf((c) => {
      c.guardrail.regexes = [];
    });

    expect(lineFor(error, '$.guardrail.regexes')).toContain('unknown key');
  });
});

describe('config sources', () => {
  // One bad config per validation phase: the schema and the cross-field checks.
  const badConfigs: Array<[string, (c: Json) => void]> = [
    ['schema', (c) => void (c.agents[0].limits.cpu = 300)],
    ['cross-field', (c) => void (c.agents[0].scaling.minTasks = 11)],
  ];

  test.each(badConfigs)('file and object agree on %s errors', (_phase, mutate) => {
    const config = example();
    mutate(config);
    const dir = scratchDir();
    const file = path.join(dir, 'agents.json');
    fs.writeFileSync(file, JSON.stringify(config));

    const fromFile = configErrorOf(() => loadConfig(file));
    const fromObject = configErrorOf(() => validateConfig(config));

    expect(fromFile.issues).toEqual(fromObject.issues);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test.each(badConfigs)('agent stack rejects %s errors', (_phase, mutate) => {
    const config = example();
    mutate(config);
    const app = new App();

    const fromStack = configErrorOf(() => new AgentStack(app, 'AgentStack', { config, configDir: ROOT }));

    expect(fromStack.issues).toEqual(configErrorOf(() => validateConfig(config)).issues);
    // The config is checked before the stack exists, so nothing is left behind.
    expect(app.node.children).toHaveLength(0);
  });

  test('agent stack checks tool entries', () => {
    const config = example();
    config.agents[1].tools[0].handler.entry = 'examples/tools/missing.ts';

    const error = configErrorOf(() => new AgentStack(new App(), 'AgentStack', { config, configDir: ROOT }));

    expect(lineFor(error, '$.agents[1].tools[0].handler.entry')).toContain('file not found');
  });
});

describe('history settings', () => {
  test('history off by default', () => {
    expect(validateConfig(minimal()).agents[0].history).toBeUndefined();
  });

  test('tool result limit defaults', () => {
    const config = minimal();
    config.agents[0].history = { maxInputTokens: 50_000, summaryRoute: 'main' };

    expect(validateConfig(config).agents[0].history).toEqual({
      maxInputTokens: 50_000,
      summaryRoute: 'main',
      maxToolResultChars: 20_000,
    });
  });

  test('unknown summary route rejected', () => {
    const config = minimal();
    config.agents[0].history = { maxInputTokens: 50_000, summaryRoute: 'cheap' };

    const error = configErrorOf(() => validateConfig(config));

    expect(lineFor(error, '$.agents[0].history.summaryRoute')).toContain('no such route; expected one of main');
  });

  test('budget below floor rejected', () => {
    const config = minimal();
    config.agents[0].history = { maxInputTokens: 1_000, summaryRoute: 'main' };

    const error = configErrorOf(() => validateConfig(config));

    expect(lineFor(error, '$.agents[0].history.maxInputTokens')).not.toBe('');
  });
});

describe('tool policy wildcards', () => {
  const statement = { actions: ['s3:GetObject'], resources: ['arn:aws:s3:::company-kb/*'] };

  test('wildcard without reason is rejected', () => {
    const error = rejectionOf((config) => {
      config.agents[1].tools[0].policyStatements = [statement];
    });

    const line = lineFor(error, '$.agents[1].tools[0].policyStatements[0]');
    expect(line).toContain('uses the wildcard arn:aws:s3:::company-kb/*');
    expect(line).toContain('add "reason"');
  });

  test('wildcard with reason is accepted', () => {
    const config = example();
    config.agents[1].tools[0].policyStatements = [{ ...statement, reason: 'The tool reads any document of the knowledge base bucket.' }];

    expect(validateConfig(config).agents[1].tools[0].policyStatements[0].reason).toContain('knowledge base');
  });
});
