/**
 * Time from a target's first throttle to the response of the next target.
 * Two loopback servers stand in for two regions. The first throttles every
 * call with 429 ThrottlingException, and the second returns text.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import {
  DEFAULT_SDK_MAX_ATTEMPTS,
  createBedrockClient,
  createGatewayHandler,
  resolveClientSettings,
} from '../../lambda/gateway';
import type { GatewayRuntimeConfig } from '../../lambda/shared/contracts';
import {
  startBedrockServer,
  textResponse,
  type BedrockServer,
} from '../../test/support/bedrock-server';
import {
  BENCH_CREDENTIALS,
  BENCH_MODEL_ID,
  NullSink,
  createBenchLogger,
  createBenchMetrics,
  gatewayEvent,
  lambdaContext,
} from './loopback';
import { percentilesOf, withinBounds, type LoopBounds, type Percentiles } from './stats';

const PRIMARY = { region: 'us-east-1', modelId: BENCH_MODEL_ID };
const SECONDARY = { region: 'us-west-2', modelId: BENCH_MODEL_ID };
const AGENT = 'bench-failover';
const REPLY = 'Paris.';
// Real Bedrock sends the error type with this namespace suffix, which the SDK strips.
const ERROR_TYPE_SUFFIX = ':http://internal.amazon.com/coral/com.amazon.bedrock/';
const THROTTLE_MESSAGE = 'Too many requests, please wait before trying again.';

/** One way to run the failover measurement. */
export interface FailoverMode {
  /** SDK attempts per target. Undefined leaves the gateway's default. */
  readonly sdkMaxAttempts?: number;
  /** Runs in flight at once. */
  readonly concurrency: number;
  readonly warmup: LoopBounds;
  readonly measured: LoopBounds;
}

export interface FailoverResult extends Percentiles {
  readonly sdkMaxAttempts: number;
  readonly sdkMaxAttemptsIsDefault: boolean;
  readonly concurrency: number;
  readonly warmupRuns: number;
  readonly runs: number;
  /** Distinct counts of calls the throttled server received per run. */
  readonly throttledCallsPerRun: number[];
}

/** Loopback server that throttles every call and stamps the first throttle of each run. */
interface ThrottleServer {
  readonly endpoint: string;
  /** performance.now() when the server sent the run's first 429. */
  firstThrottleAt(runId: string): number | undefined;
  callsOf(runId: string): number;
  close(): Promise<void>;
}

/** Reads the run id, which each run sends as its prompt text. */
function runIdOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { messages?: Array<{ content?: Array<{ text?: string }> }> };
    return parsed.messages?.[0]?.content?.[0]?.text ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Starts the throttling server. The shared loopback server does not report
 * when it sends a response, so this one sends the same 429 wire format and
 * stamps the time itself, in the benchmark's own process and clock.
 */
async function startThrottleServer(): Promise<ThrottleServer> {
  const firstThrottle = new Map<string, number>();
  const calls = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const runId = runIdOf(Buffer.concat(chunks).toString('utf8'));
      const body = JSON.stringify({ message: THROTTLE_MESSAGE });
      calls.set(runId, (calls.get(runId) ?? 0) + 1);
      if (!firstThrottle.has(runId)) {
        firstThrottle.set(runId, performance.now());
      }
      res.writeHead(429, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-amzn-requestid': randomUUID(),
        'x-amzn-errortype': `ThrottlingException${ERROR_TYPE_SUFFIX}`,
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    firstThrottleAt: (runId) => firstThrottle.get(runId),
    callsOf: (runId) => calls.get(runId) ?? 0,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive clients hold idle connections that would keep close() waiting.
      server.closeAllConnections();
      await closed;
    },
  };
}

function failoverConfig(sdkMaxAttempts: number | undefined): GatewayRuntimeConfig {
  return {
    agents: { [AGENT]: { route: [PRIMARY, SECONDARY], maxTokensPerCall: 256 } },
    client: sdkMaxAttempts === undefined ? undefined : { sdkMaxAttempts },
  };
}

/** Runs `runOnce` with up to `concurrency` runs in flight, within `bounds`. */
async function runPool<T>(
  bounds: LoopBounds,
  concurrency: number,
  runOnce: (i: number) => Promise<T>,
): Promise<T[]> {
  const inBounds = withinBounds(bounds);
  const results: T[] = [];
  let next = 0;
  const worker = async () => {
    while (inBounds(next)) {
      const i = next;
      next += 1;
      results.push(await runOnce(i));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

/** Measurement of one failover run. */
interface FailoverRun {
  readonly elapsedMs: number;
  readonly throttledCalls: number;
}

/**
 * Runner of failover runs. Each run gets a fresh handler, so that its
 * breaker starts closed, and a fresh client for the throttled region, so
 * that its SDK retry quota starts full. The secondary region's client is
 * shared and stays warm, as a container's client pool would.
 */
class FailoverRunner {
  private readonly config: GatewayRuntimeConfig;
  private readonly secondary: BedrockRuntimeClient;
  private readonly sink = new NullSink();

  constructor(
    private readonly throttle: ThrottleServer,
    private readonly secondaryServer: BedrockServer,
    mode: FailoverMode,
  ) {
    this.config = failoverConfig(mode.sdkMaxAttempts);
    this.secondary = createBedrockClient(SECONDARY.region, {
      settings: resolveClientSettings(this.config),
      endpoint: secondaryServer.endpoint,
      credentials: BENCH_CREDENTIALS,
    });
  }

  async run(runId: string): Promise<FailoverRun> {
    const primaryClients: BedrockRuntimeClient[] = [];
    const handler = createGatewayHandler({
      config: this.config,
      logger: createBenchLogger(this.sink),
      metrics: createBenchMetrics(this.sink),
      clientForRegion: (region, settings) => {
        if (region !== PRIMARY.region) {
          return this.secondary;
        }
        const client = createBedrockClient(region, {
          settings,
          endpoint: this.throttle.endpoint,
          credentials: BENCH_CREDENTIALS,
        });
        primaryClients.push(client);
        return client;
      },
    });
    this.secondaryServer.script(textResponse(REPLY));
    try {
      const result = await handler(gatewayEvent(runId, AGENT, runId), lambdaContext(runId));
      const respondedAt = performance.now();
      if (!result.ok) {
        const { name, message } = result.error;
        throw new Error(`Failover run ${runId} failed: ${name}: ${message}`);
      }
      if (result.target.region !== SECONDARY.region) {
        throw new Error(`Failover run ${runId} got its response from ${result.target.region}.`);
      }
      const throttledAt = this.throttle.firstThrottleAt(runId);
      if (throttledAt === undefined) {
        throw new Error(`Failover run ${runId} never reached the throttling server.`);
      }
      return { elapsedMs: respondedAt - throttledAt, throttledCalls: this.throttle.callsOf(runId) };
    } finally {
      primaryClients.forEach((client) => client.destroy());
    }
  }

  close(): void {
    this.secondary.destroy();
    this.sink.close();
  }
}

async function measureMode(
  throttle: ThrottleServer,
  secondaryServer: BedrockServer,
  mode: FailoverMode,
): Promise<FailoverResult> {
  const runner = new FailoverRunner(throttle, secondaryServer, mode);
  const label = mode.sdkMaxAttempts ?? 'default';
  try {
    const warm = await runPool(mode.warmup, mode.concurrency, (i) =>
      runner.run(`warmup-${label}-${i}`),
    );
    const runs = await runPool(mode.measured, mode.concurrency, (i) =>
      runner.run(`run-${label}-${i}`),
    );
    if (secondaryServer.pending() !== 0) {
      const left = secondaryServer.pending();
      throw new Error(`The secondary server has ${left} scripted responses left unused.`);
    }
    secondaryServer.reset();
    const throttledCalls = [...new Set(runs.map((run) => run.throttledCalls))];
    return {
      sdkMaxAttempts: mode.sdkMaxAttempts ?? DEFAULT_SDK_MAX_ATTEMPTS,
      sdkMaxAttemptsIsDefault: mode.sdkMaxAttempts === undefined,
      concurrency: mode.concurrency,
      warmupRuns: warm.length,
      runs: runs.length,
      throttledCallsPerRun: throttledCalls.sort((a, b) => a - b),
      ...percentilesOf(runs.map((run) => run.elapsedMs)),
    };
  } finally {
    runner.close();
  }
}

/** Measures failover after a throttle once per mode, in order. */
export async function measureFailover(
  modes: readonly FailoverMode[],
  progress: (message: string) => void,
): Promise<FailoverResult[]> {
  const [throttle, secondaryServer] = await Promise.all([
    startThrottleServer(),
    startBedrockServer(),
  ]);
  try {
    const results: FailoverResult[] = [];
    for (const mode of modes) {
      const attempts = mode.sdkMaxAttempts ?? `default (${DEFAULT_SDK_MAX_ATTEMPTS})`;
      progress(
        `Measuring failover with sdkMaxAttempts ${attempts}: up to ` +
          `${mode.measured.iterations} runs, ${mode.concurrency} at a time`,
      );
      results.push(await measureMode(throttle, secondaryServer, mode));
    }
    return results;
  } finally {
    await Promise.all([throttle.close(), secondaryServer.close()]);
  }
}
