/**
 * Pieces shared by the gateway benchmarks: credentials, the logger and
 * metrics writer that discard their lines, and the Lambda context.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { devNull } from 'node:os';
import type { GatewayLambdaContext } from '../../lambda/gateway';
import { Logger } from '../../lambda/shared/logger';
import { MetricsWriter } from '../../lambda/shared/metrics';

/** Credentials that only sign requests to the loopback servers. */
export const BENCH_CREDENTIALS = {
  accessKeyId: 'AKIDLOOPBACKBENCH',
  secretAccessKey: 'loopback-secret',
};

export const BENCH_MODEL_ID = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';

/** Milliseconds a Lambda context reports as remaining, the gateway's default timeout of 120 s. */
const LAMBDA_REMAINING_MS = 120_000;

/**
 * Returns a Lambda context as the runtime passes it. Lambda always provides
 * the remaining time, so the gateway always sets a deadline, and its timer
 * belongs in the measurement.
 */
export function lambdaContext(awsRequestId: string): GatewayLambdaContext {
  return { awsRequestId, getRemainingTimeInMillis: () => LAMBDA_REMAINING_MS };
}

/**
 * Sink for the gateway's log and metric lines. It writes them to the null
 * device, so that the serialization and the write system call are measured
 * as in Lambda, where the lines go to stdout, without flooding the terminal.
 */
export class NullSink {
  private readonly fd = openSync(devNull, 'w');
  lines = 0;

  readonly write = (line: string): void => {
    writeSync(this.fd, `${line}\n`);
    this.lines += 1;
  };

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Creates the logger at level info, the Logger's default, which writes one
 * line per buffered request and two per streamed request.
 */
export function createBenchLogger(sink: NullSink): Logger {
  return new Logger({}, { level: 'info', sink: sink.write });
}

export function createBenchMetrics(sink: NullSink): MetricsWriter {
  return new MetricsWriter({ sink: sink.write });
}

/** Builds a gateway request whose prompt is `text`. */
export function gatewayEvent(
  requestId: string,
  agent: string,
  text: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    requestId,
    agent,
    userId: 'bench-user',
    sessionId: 'bench-session',
    messages: [{ role: 'user', content: [{ text }] }],
    ...extra,
  };
}
