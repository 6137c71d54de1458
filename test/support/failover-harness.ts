/**
 * Gateway handlers whose regions are separate loopback Bedrock servers, for
 * failover and circuit-breaker tests. Each region's client goes through the
 * real SDK and NodeHttpHandler to its own server on 127.0.0.1.
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { GatewayHandler } from '../../lambda/gateway';
import type {
  GatewayErrorResponse,
  GatewayResponse,
  GatewayRuntimeConfig,
} from '../../lambda/shared/contracts';
import { startBedrockServer, type BedrockServer } from './bedrock-server';

/** Credentials that only sign requests to the loopback servers. */
export const TEST_CREDENTIALS = {
  accessKeyId: 'AKIDLOOPBACKTEST',
  secretAccessKey: 'loopback-secret',
};

/** The modules a gateway is built from, so that a test can load a second copy in isolation. */
export interface GatewayModules {
  readonly gateway: typeof import('../../lambda/gateway');
  readonly logger: typeof import('../../lambda/shared/logger');
  readonly metrics: typeof import('../../lambda/shared/metrics');
}

/** Loads the gateway modules in the test's own module registry. */
export function loadGatewayModules(): GatewayModules {
  return {
    gateway: require('../../lambda/gateway'),
    logger: require('../../lambda/shared/logger'),
    metrics: require('../../lambda/shared/metrics'),
  };
}

/**
 * Loads a second copy of the gateway modules in a registry of their own, so
 * that a handler built from it shares no module state with the test's.
 */
export function loadIsolatedGatewayModules(): GatewayModules {
  let modules: GatewayModules | undefined;
  jest.isolateModules(() => {
    modules = loadGatewayModules();
  });
  return modules!;
}

/** One loopback server per region. */
export type RegionServers = Record<string, BedrockServer>;

/** Starts one loopback server per region. */
export async function startRegionServers(regions: readonly string[]): Promise<RegionServers> {
  const servers: RegionServers = {};
  for (const region of regions) {
    servers[region] = await startBedrockServer();
  }
  return servers;
}

/** A handler with its captured log and metric lines. */
export interface TestGateway {
  readonly handle: GatewayHandler;
  /** Log lines written so far, parsed. */
  logs(): Array<Record<string, any>>;
  /** EMF lines written so far, parsed. */
  metricLines(): Array<Record<string, any>>;
}

/** Settings of {@link RegionalGateways.create}. */
export interface TestGatewayOptions {
  readonly config: GatewayRuntimeConfig;
  /** Endpoint per region; a region missing here goes to `servers`. */
  readonly endpoints?: Record<string, string>;
  readonly stateTableClient?: DynamoDBDocumentClient;
  /** @default - the modules of the test's own registry */
  readonly modules?: GatewayModules;
}

/** Builds handlers on region servers and destroys their clients at the end. */
export class RegionalGateways {
  private readonly clients: BedrockRuntimeClient[] = [];

  constructor(private readonly servers: RegionServers) {}

  create(options: TestGatewayOptions): TestGateway {
    const modules = options.modules ?? loadGatewayModules();
    const logLines: string[] = [];
    const metricLines: string[] = [];
    const handle = modules.gateway.createGatewayHandler({
      config: options.config,
      logger: new modules.logger.Logger(
        {},
        { level: 'debug', sink: (line) => logLines.push(line) },
      ),
      metrics: new modules.metrics.MetricsWriter({ sink: (line) => metricLines.push(line) }),
      stateTableClient: options.stateTableClient,
      clientForRegion: (region, settings) => {
        const endpoint = options.endpoints?.[region] ?? this.servers[region]?.endpoint;
        if (endpoint === undefined) {
          throw new Error(`No loopback server for region ${region}; start one for it.`);
        }
        const client = modules.gateway.createBedrockClient(region, {
          settings,
          endpoint,
          credentials: TEST_CREDENTIALS,
        });
        this.clients.push(client);
        return client;
      },
    });
    return {
      handle,
      logs: () => logLines.map((line) => JSON.parse(line)),
      metricLines: () => metricLines.map((line) => JSON.parse(line)),
    };
  }

  /** Destroys every client the handlers created. */
  destroy(): void {
    for (const client of this.clients.splice(0)) {
      client.destroy();
    }
  }
}

/** Returns the EMF lines that publish metric `name`. */
export function metricsNamed(lines: Array<Record<string, any>>, name: string) {
  return lines.filter((line) =>
    (line._aws?.CloudWatchMetrics ?? []).some((group: any) =>
      group.Metrics.some((metric: any) => metric.Name === name),
    ),
  );
}

/** Builds a gateway request for `agent`. */
export function gatewayRequest(
  agent: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    requestId: 'req-failover-1',
    agent,
    userId: 'user-7',
    sessionId: 'session-3',
    messages: [{ role: 'user', content: [{ text: 'What is the capital of France?' }] }],
    ...overrides,
  };
}

export function expectSuccess(result: GatewayResponse | GatewayErrorResponse): GatewayResponse {
  if (!result.ok) {
    throw new Error(`Expected success, got ${result.error.name}: ${result.error.message}`);
  }
  return result;
}

export function expectFailure(
  result: GatewayResponse | GatewayErrorResponse,
): GatewayErrorResponse {
  if (result.ok) {
    throw new Error(`Expected an error, got a response from ${result.target.region}`);
  }
  return result;
}
