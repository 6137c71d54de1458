/**
 * Latency the gateway adds over a direct SDK call. Both sides call the same
 * loopback Bedrock server through the real SDK and NodeHttpHandler, in
 * alternating pairs, so that machine noise hits both alike.
 */
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  type ConverseCommandInput,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  BEDROCK_KEEP_ALIVE_PROBE_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_FIRST_BYTE_TIMEOUT_MS,
  DEFAULT_SDK_MAX_ATTEMPTS,
  createBedrockClient,
  createGatewayHandler,
  createGatewayServices,
  createGatewayStreamHandler,
  type GatewayHandler,
  type GatewayStreamHandler,
} from '../../lambda/gateway';
import type { GatewayRuntimeConfig, GatewayStreamEvent } from '../../lambda/shared/contracts';
import {
  startBedrockServer,
  textResponse,
  type BedrockServer,
} from '../../test/support/bedrock-server';
import { splitWords } from '../../test/support/bedrock-stream';
import {
  BENCH_CREDENTIALS,
  BENCH_MODEL_ID,
  NullSink,
  createBenchLogger,
  createBenchMetrics,
  gatewayEvent,
  lambdaContext,
} from './loopback';
import { addedLatencyOf, withinBounds, type AddedLatency, type LoopBounds } from './stats';

const REGION = 'us-east-1';
const AGENT = 'bench';
const MAX_TOKENS = 1024;
const PROMPT = 'What is the capital of France?';
// The loopback server streams one delta per word, so this is a 23-delta stream.
const REPLY =
  'Paris is the capital of France. It lies on the Seine in the north of the country ' +
  'and has about two million residents.';

const CONFIG: GatewayRuntimeConfig = {
  agents: {
    [AGENT]: { route: [{ region: REGION, modelId: BENCH_MODEL_ID }], maxTokensPerCall: MAX_TOKENS },
  },
};

// The input the gateway builds from the request, so that both sides send the same body.
const DIRECT_INPUT: ConverseCommandInput = {
  modelId: BENCH_MODEL_ID,
  messages: [{ role: 'user', content: [{ text: PROMPT }] }],
  inferenceConfig: { maxTokens: MAX_TOKENS },
};

// JSON.stringify writes keys in insertion order, and the gateway builds delta events type first.
const DELTA_LINE_PREFIX = '{"type":"delta"';

/** Settings of {@link measureAddedLatency}. */
export interface LatencyOptions {
  /** Pairs run and discarded first, so that connections, JIT and caches are warm. */
  readonly warmup: LoopBounds;
  /** Pairs measured per mode, buffered and streamed. */
  readonly measured: LoopBounds;
}

/** Added latency of buffered Converse calls. */
export interface BufferedLatency extends AddedLatency {
  readonly pairs: number;
}

/** Added latency of ConverseStream calls, to the first delta and to the end of the stream. */
export interface StreamedLatency {
  readonly pairs: number;
  readonly deltasPerStream: number;
  readonly firstDelta: AddedLatency;
  readonly end: AddedLatency;
}

export interface LatencyResult {
  readonly warmupPairs: { readonly buffered: number; readonly streamed: number };
  readonly buffered: BufferedLatency;
  readonly streamed: StreamedLatency;
  /** Log and metric lines the gateway wrote during the run, all to the null device. */
  readonly gatewayLogLines: number;
}

/** Milliseconds from sending a streamed call to its first text delta and to its end. */
interface StreamTiming {
  readonly firstDeltaMs: number;
  readonly endMs: number;
}

/** Writable that keeps the gateway's NDJSON output and stamps the first `delta` line. */
class EventCapture extends Writable {
  firstDeltaAt?: number;
  private readonly chunks: Buffer[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    if (
      this.firstDeltaAt === undefined &&
      chunk.toString('latin1', 0, DELTA_LINE_PREFIX.length) === DELTA_LINE_PREFIX
    ) {
      this.firstDeltaAt = performance.now();
    }
    this.chunks.push(chunk);
    callback();
  }

  events(): GatewayStreamEvent[] {
    const text = Buffer.concat(this.chunks).toString('utf8');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as GatewayStreamEvent);
  }
}

/**
 * Creates the direct client with the transport settings that
 * createBedrockClient gives the gateway's clients: HTTP/1.1 keep-alive,
 * the same timeouts and the same number of attempts.
 */
function createDirectClient(endpoint: string): BedrockRuntimeClient {
  return new BedrockRuntimeClient({
    region: REGION,
    endpoint,
    credentials: BENCH_CREDENTIALS,
    maxAttempts: DEFAULT_SDK_MAX_ATTEMPTS,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
      requestTimeout: DEFAULT_FIRST_BYTE_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      httpAgent: { keepAlive: true, keepAliveMsecs: BEDROCK_KEEP_ALIVE_PROBE_MS },
    }),
  });
}

function checkText(side: string, text: string | undefined): void {
  if (text !== REPLY) {
    throw new Error(`The ${side} call returned unexpected text: ${JSON.stringify(text)}.`);
  }
}

/** The four measured calls, each against the one loopback server. */
class LatencyArms {
  private readonly sink = new NullSink();
  private readonly direct: BedrockRuntimeClient;
  private readonly gatewayClients: BedrockRuntimeClient[] = [];
  private readonly buffered: GatewayHandler;
  private readonly streamed: GatewayStreamHandler;

  constructor(private readonly server: BedrockServer) {
    this.direct = createDirectClient(server.endpoint);
    // Both handlers share one set of services, as the Lambda entry point builds them.
    const services = createGatewayServices(
      {
        config: CONFIG,
        metrics: createBenchMetrics(this.sink),
        clientForRegion: (region, settings) => {
          const client = createBedrockClient(region, {
            settings,
            endpoint: server.endpoint,
            credentials: BENCH_CREDENTIALS,
          });
          this.gatewayClients.push(client);
          return client;
        },
      },
      'the latency benchmark',
    );
    const logger = createBenchLogger(this.sink);
    this.buffered = createGatewayHandler({ config: CONFIG, services, logger });
    this.streamed = createGatewayStreamHandler({ config: CONFIG, services, logger });
  }

  get logLines(): number {
    return this.sink.lines;
  }

  async gatewayBuffered(i: number): Promise<number> {
    this.server.script(textResponse(REPLY));
    const requestId = `bench-buffered-${i}`;
    const event = gatewayEvent(requestId, AGENT, PROMPT);
    const startedAt = performance.now();
    const result = await this.buffered(event, lambdaContext(requestId));
    const elapsed = performance.now() - startedAt;
    if (!result.ok) {
      throw new Error(`The gateway call failed: ${result.error.name}: ${result.error.message}`);
    }
    checkText('gateway Converse', result.output.content[0]?.text as string | undefined);
    return elapsed;
  }

  async directBuffered(): Promise<number> {
    this.server.script(textResponse(REPLY));
    const startedAt = performance.now();
    const output = await this.direct.send(new ConverseCommand(DIRECT_INPUT));
    const elapsed = performance.now() - startedAt;
    checkText('direct Converse', output.output?.message?.content?.[0]?.text);
    return elapsed;
  }

  async gatewayStream(i: number): Promise<StreamTiming> {
    this.server.script(textResponse(REPLY));
    const requestId = `bench-stream-${i}`;
    const event = gatewayEvent(requestId, AGENT, PROMPT, { stream: true });
    const capture = new EventCapture();
    const startedAt = performance.now();
    await this.streamed(event, capture, lambdaContext(requestId));
    const endedAt = performance.now();

    const events = capture.events();
    const failure = events.find((e) => e.type === 'error');
    if (failure !== undefined) {
      throw new Error(`The gateway stream failed: ${JSON.stringify(failure)}`);
    }
    if (capture.firstDeltaAt === undefined || events.at(-1)?.type !== 'usage') {
      throw new Error(`The gateway stream ended early: ${JSON.stringify(events)}`);
    }
    const text = events.map((e) => (e.type === 'delta' ? e.text : '')).join('');
    checkText('gateway ConverseStream', text);
    return { firstDeltaMs: capture.firstDeltaAt - startedAt, endMs: endedAt - startedAt };
  }

  async directStream(): Promise<StreamTiming> {
    this.server.script(textResponse(REPLY));
    const startedAt = performance.now();
    const output = await this.direct.send(new ConverseStreamCommand(DIRECT_INPUT));
    let firstDeltaAt: number | undefined;
    let text = '';
    let stopReason: string | undefined;
    for await (const event of output.stream ?? []) {
      const delta = event.contentBlockDelta?.delta?.text;
      if (delta !== undefined) {
        firstDeltaAt ??= performance.now();
        text += delta;
      }
      stopReason ??= event.messageStop?.stopReason;
    }
    const endedAt = performance.now();
    if (firstDeltaAt === undefined || stopReason === undefined) {
      throw new Error('The direct stream ended without a delta or a stop reason.');
    }
    checkText('direct ConverseStream', text);
    return { firstDeltaMs: firstDeltaAt - startedAt, endMs: endedAt - startedAt };
  }

  close(): void {
    this.direct.destroy();
    this.gatewayClients.forEach((client) => client.destroy());
    this.sink.close();
  }
}

/**
 * Runs gateway and direct calls in pairs within `bounds`. Odd pairs run the
 * direct call first, so that neither side always follows the other.
 */
async function alternate<T>(
  bounds: LoopBounds,
  server: BedrockServer,
  gateway: (i: number) => Promise<T>,
  direct: () => Promise<T>,
): Promise<{ gateway: T[]; direct: T[] }> {
  const samples = { gateway: [] as T[], direct: [] as T[] };
  const inBounds = withinBounds(bounds);
  for (let i = 0; inBounds(i); i++) {
    if (i % 2 === 0) {
      samples.gateway.push(await gateway(i));
      samples.direct.push(await direct());
    } else {
      samples.direct.push(await direct());
      samples.gateway.push(await gateway(i));
    }
    // Drops the recorded requests, which would otherwise grow for the whole run.
    server.reset();
  }
  return samples;
}

async function runPairs(arms: LatencyArms, server: BedrockServer, bounds: LoopBounds) {
  const buffered = await alternate(
    bounds,
    server,
    (i) => arms.gatewayBuffered(i),
    () => arms.directBuffered(),
  );
  const streamed = await alternate(
    bounds,
    server,
    (i) => arms.gatewayStream(i),
    () => arms.directStream(),
  );
  return { buffered, streamed };
}

/** Measures the added latency of buffered and streamed calls. */
export async function measureAddedLatency(
  options: LatencyOptions,
  progress: (message: string) => void,
): Promise<LatencyResult> {
  const server = await startBedrockServer();
  const arms = new LatencyArms(server);
  try {
    progress(`Warming up with up to ${options.warmup.iterations} pairs per mode`);
    const warm = await runPairs(arms, server, options.warmup);
    progress(`Measuring up to ${options.measured.iterations} pairs per mode`);
    const { buffered, streamed } = await runPairs(arms, server, options.measured);
    return {
      warmupPairs: {
        buffered: warm.buffered.gateway.length,
        streamed: warm.streamed.gateway.length,
      },
      buffered: {
        pairs: buffered.gateway.length,
        ...addedLatencyOf(buffered.direct, buffered.gateway),
      },
      streamed: {
        pairs: streamed.gateway.length,
        deltasPerStream: splitWords(REPLY).length,
        firstDelta: addedLatencyOf(
          streamed.direct.map((t) => t.firstDeltaMs),
          streamed.gateway.map((t) => t.firstDeltaMs),
        ),
        end: addedLatencyOf(
          streamed.direct.map((t) => t.endMs),
          streamed.gateway.map((t) => t.endMs),
        ),
      },
      gatewayLogLines: arms.logLines,
    };
  } finally {
    arms.close();
    await server.close();
  }
}
