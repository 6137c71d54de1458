/**
 * callWithFailover on its own, as the streaming path uses it: attempts are
 * plain functions, and the breaker keeps its state in memory.
 */
import { CircuitBreaker, callWithFailover, type FailoverEvent } from '../lambda/gateway';
import type { BreakerEvent } from '../lambda/gateway/breaker';
import { AllTargetsFailedError, ModelCallError } from '../lambda/shared/errors';

const EAST = { region: 'us-east-1', modelId: 'us.amazon.nova-pro-v1:0' };
const WEST = { region: 'us-west-2', modelId: 'us.amazon.nova-pro-v1:0' };

function memoryBreaker(failureThreshold = 5): CircuitBreaker {
  const settings = { failureThreshold, cooldownSeconds: 60, cacheTtlMs: 0 };
  return new CircuitBreaker({ settings, probeLeaseMs: 1_000 });
}

function unavailable(): Error {
  return Object.assign(new Error('Down.'), {
    name: 'ServiceUnavailableException',
    $fault: 'server',
    $metadata: { httpStatusCode: 503 },
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('callWithFailover', () => {
  test('ends an attempt that ignores its signal', async () => {
    const calls: string[] = [];
    const startedAt = Date.now();

    const result = await callWithFailover({
      targets: [EAST, WEST],
      breaker: memoryBreaker(),
      requestId: 'req-loop-1',
      attemptTimeoutMs: 100,
      attempt: async (target) => {
        calls.push(target.region);
        if (target === EAST) {
          // Never settles and keeps no timer, like a call that ignores its signal.
          await new Promise(() => undefined);
        }
        return target.region;
      },
    });

    expect(result.value).toBe(WEST.region);
    expect(calls).toEqual([EAST.region, WEST.region]);
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0].cause).toContain('attempt timeout of 100 ms');
    expect(Date.now() - startedAt).toBeLessThan(1_000);
  });

  test('keeps signal open after success until deadline', async () => {
    let streamSignal: AbortSignal | undefined;

    await callWithFailover({
      targets: [EAST],
      breaker: memoryBreaker(),
      requestId: 'req-loop-2',
      attemptTimeoutMs: 50,
      deadline: Date.now() + 300,
      attempt: async (_target, signal) => {
        streamSignal = signal;
        return 'first content block';
      },
    });

    await sleep(120);
    expect(streamSignal?.aborted).toBe(false);
    await sleep(300);
    expect(streamSignal?.aborted).toBe(true);
  });

  test('reports events in order', async () => {
    const events: Array<FailoverEvent | BreakerEvent> = [];

    await callWithFailover({
      targets: [EAST, WEST],
      breaker: memoryBreaker(1),
      requestId: 'req-loop-3',
      attemptTimeoutMs: 1_000,
      attempt: async (target) => {
        if (target === EAST) {
          throw unavailable();
        }
        return 'ok';
      },
      onEvent: (event) => events.push(event),
    });

    expect(events.map((event) => event.type)).toEqual(['breaker-opened', 'target-failed']);
    const failed = events[1] as FailoverEvent;
    expect(failed.target).toBe(EAST);
    expect(failed.next).toBe(WEST);
    expect(failed.cause).toBe('ServiceUnavailableException: Down.');
  });

  test('skips an open target without calling it', async () => {
    const breaker = memoryBreaker(1);
    const calls: string[] = [];
    const attempt = async (target: typeof EAST) => {
      calls.push(target.region);
      throw unavailable();
    };
    const options = { targets: [EAST], breaker, attemptTimeoutMs: 1_000, attempt };
    await callWithFailover({ ...options, requestId: 'req-a' }).catch(() => undefined);

    const error = await callWithFailover({ ...options, requestId: 'req-b' }).catch(
      (caught: unknown) => caught,
    );

    expect(calls).toEqual([EAST.region]);
    expect(error).toBeInstanceOf(AllTargetsFailedError);
    expect((error as AllTargetsFailedError).errorCode).toBe('BreakerOpen');
    expect((error as AllTargetsFailedError).requestId).toBe('req-b');
    expect((error as AllTargetsFailedError).failures[0].cause).toMatch(/^skipped: breaker open/);
  });

  test('raises unknown errors without failover', async () => {
    const calls: string[] = [];

    const error = await callWithFailover({
      targets: [EAST, WEST],
      breaker: memoryBreaker(),
      requestId: 'req-loop-5',
      attemptTimeoutMs: 1_000,
      attempt: async (target) => {
        calls.push(target.region);
        throw new TypeError('output.stream is not iterable');
      },
    }).catch((caught: unknown) => caught);

    expect(calls).toEqual([EAST.region]);
    expect(error).toBeInstanceOf(ModelCallError);
    expect((error as ModelCallError).errorCode).toBe('TypeError');
    expect((error as ModelCallError).message).toContain('output.stream is not iterable');
  });
});
