/**
 * Reads the worker's settings from its environment. The construct writes
 * these variables, so a mistake here is a deployment bug: the worker stops
 * at start with a message that names the variable and the field.
 */
import Ajv from 'ajv';
import { FINAL_ANSWER_TOOL, WORKER_ENV, WorkerRuntimeConfig } from '../shared/contracts';

/**
 * Overrides the base URL of the load balancer's public signing keys. Only
 * tests set it; in AWS the URL follows from the region.
 */
export const ALB_PUBLIC_KEYS_URL_ENV = 'AGENT_ALB_PUBLIC_KEYS_URL';

/**
 * Address the realtime server binds. Unset in ECS, where the load balancer
 * reaches the task on its network interface; tests set 127.0.0.1.
 */
export const LISTEN_HOST_ENV = 'AGENT_LISTEN_HOST';

/** Set by ECS in every task; the task protection endpoint lives under it. */
export const ECS_AGENT_URI_ENV = 'ECS_AGENT_URI';

export interface WorkerSettings {
  readonly config: WorkerRuntimeConfig;
  readonly gatewayFunction: string;
  readonly memoryTable: string;
  /** Set in background mode only. */
  readonly queueUrl?: string;
  /** Set in realtime mode only; 0 picks a free port. */
  readonly port?: number;
  /** Address to bind, or undefined for all interfaces. */
  readonly listenHost?: string;
  /** Base URL of the ECS agent, or undefined outside ECS. */
  readonly ecsAgentUri?: string;
  /** Base URL of the load balancer's public keys, without a trailing slash. */
  readonly albPublicKeysUrl?: string;
}

const positive = { type: 'integer', minimum: 1 };

const authSchema = {
  oneOf: [
    {
      type: 'object',
      required: ['type'],
      properties: { type: { const: 'none' } },
    },
    {
      type: 'object',
      required: ['type', 'issuer', 'audience', 'jwksUri', 'userClaim'],
      properties: {
        type: { const: 'jwt' },
        issuer: { type: 'string', minLength: 1 },
        audience: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
        jwksUri: { type: 'string', pattern: '^https?://' },
        userClaim: { type: 'string', minLength: 1 },
      },
    },
    {
      type: 'object',
      required: ['type', 'region', 'userClaim'],
      properties: {
        type: { const: 'alb-oidc' },
        region: { type: 'string', pattern: '^[a-z]{2}(-[a-z]+)+-\\d$' },
        loadBalancerArn: { type: 'string', pattern: '^arn:aws[a-z-]*:elasticloadbalancing:' },
        userClaim: { type: 'string', minLength: 1 },
      },
    },
  ],
};

const configSchema = {
  type: 'object',
  required: [
    'agent',
    'mode',
    'systemPrompt',
    'tools',
    'limits',
    'memoryTtlDays',
    'auth',
    'concurrency',
  ],
  properties: {
    agent: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,29}$' },
    mode: { enum: ['realtime', 'background'] },
    systemPrompt: { type: 'string', minLength: 1 },
    tools: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'description', 'inputSchema', 'impact', 'functionName'],
        properties: {
          name: { type: 'string', minLength: 1 },
          description: { type: 'string', minLength: 1 },
          inputSchema: { type: 'object' },
          impact: { enum: ['low', 'high'] },
          functionName: { type: 'string', minLength: 1 },
        },
      },
    },
    limits: {
      type: 'object',
      required: [
        'maxIterations',
        'maxTokensPerTask',
        'maxTokensPerCall',
        'taskTimeoutSeconds',
        'maxBodyBytes',
      ],
      properties: {
        maxIterations: positive,
        maxTokensPerTask: positive,
        maxTokensPerCall: positive,
        taskTimeoutSeconds: positive,
        maxBodyBytes: positive,
      },
    },
    memoryTtlDays: positive,
    auth: authSchema,
    concurrency: positive,
    confidence: { type: 'boolean' },
    approvals: {
      type: 'object',
      required: ['table', 'topicArn', 'expirySeconds'],
      properties: {
        table: { type: 'string', minLength: 1 },
        topicArn: { type: 'string', pattern: '^arn:aws[a-z-]*:sns:' },
        expirySeconds: positive,
      },
    },
    history: {
      type: 'object',
      required: ['maxInputTokens', 'summaryAgent', 'maxToolResultChars'],
      properties: {
        maxInputTokens: positive,
        summaryAgent: { type: 'string', minLength: 1 },
        maxToolResultChars: positive,
      },
    },
  },
};

const validateConfig = new Ajv({ allErrors: true }).compile<WorkerRuntimeConfig>(configSchema);

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) {
    throw new Error(`Environment variable ${name} is missing; the AgentService construct sets it.`);
  }
  return value;
}

/** Parses and validates the JSON in `AGENT_WORKER_CONFIG`. */
export function parseWorkerConfig(json: string): WorkerRuntimeConfig {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new Error(`${WORKER_ENV.config} is not valid JSON: ${(error as Error).message}`);
  }
  if (!validateConfig(value)) {
    const problems = (validateConfig.errors ?? [])
      .map((e) => `${e.instancePath || '/'} ${e.message}`)
      .join('; ');
    throw new Error(`${WORKER_ENV.config} is invalid: ${problems}`);
  }
  if (value.confidence && value.tools.some((tool) => tool.name === FINAL_ANSWER_TOOL)) {
    throw new Error(
      `${WORKER_ENV.config} is invalid: /tools has a tool named ${FINAL_ANSWER_TOOL}, which ` +
        'the worker offers itself when confidence is true. Rename the tool or turn confidence off.',
    );
  }
  return value;
}

/** Reads every setting the worker needs from `env`. */
export function readWorkerSettings(env: NodeJS.ProcessEnv = process.env): WorkerSettings {
  const config = parseWorkerConfig(required(env, WORKER_ENV.config));
  const settings = {
    config,
    gatewayFunction: required(env, WORKER_ENV.gatewayFunction),
    memoryTable: required(env, WORKER_ENV.memoryTable),
    ecsAgentUri: env[ECS_AGENT_URI_ENV] || undefined,
    albPublicKeysUrl: env[ALB_PUBLIC_KEYS_URL_ENV]?.replace(/\/+$/, '') || undefined,
  };
  if (config.mode === 'background') {
    return { ...settings, queueUrl: required(env, WORKER_ENV.queueUrl) };
  }
  // Port 0 lets the system pick a free port, which the start log line reports.
  const portText = required(env, WORKER_ENV.port);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`${WORKER_ENV.port} is ${portText}; set it to a TCP port from 0 to 65535.`);
  }
  return { ...settings, port, listenHost: env[LISTEN_HOST_ENV] || undefined };
}
