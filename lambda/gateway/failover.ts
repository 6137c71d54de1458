import type { ModelTarget } from '../shared/contracts';
import { AllTargetsFailedError, TimeoutError, type TargetFailure } from '../shared/errors';
import type { BreakerDecision, BreakerEvent, CircuitBreaker } from './breaker';
import { classifyModelError, type FailureClassification } from './classify';
import { describeFailure, toTargetError } from './target-errors';

/** One target given up on: it failed with an error that fails over, or its breaker skipped it. */
export interface FailoverEvent {
  readonly type: 'target-failed' | 'target-skipped';
  readonly target: ModelTarget;
  /** Error name and message, or the reason the target was skipped. */
  readonly cause: string;
  /** Set for `target-failed`. */
  readonly classification?: FailureClassification;
  /** The target tried next, or undefined when none is left. */
  readonly next?: ModelTarget;
}

/** Receives every failover and breaker event of one call, in order. */
export type FailoverListener = (event: FailoverEvent | BreakerEvent) => void;

/** Settings of {@link callWithFailover}. */
export interface CallWithFailoverOptions<T> {
  /** Targets in order of preference. */
  readonly targets: readonly ModelTarget[];
  readonly breaker: CircuitBreaker;
  /** Request id, carried by the errors this function raises. */
  readonly requestId: string;
  /**
   * Epoch milliseconds after which no attempt may run. An attempt still
   * running then is aborted, and the call fails with TimeoutError.
   * @default - no deadline
   */
  readonly deadline?: number;
  /** Milliseconds one attempt may take before it is aborted and counts as a timeout. */
  readonly attemptTimeoutMs: number;
  /**
   * Calls one target. It must stop when `signal` aborts. Resolving ends the
   * loop with success, so a stream resolves once its first content block has
   * arrived and fails over only before that. After `attempt` resolves, the
   * signal aborts only at the deadline, so a stream may keep using it.
   */
  readonly attempt: (target: ModelTarget, signal: AbortSignal) => Promise<T>;
  /**
   * Decides whether an error fails over.
   * @default classifyModelError
   */
  readonly classify?: (error: unknown) => FailureClassification;
  /** Receives failover and breaker events, for logs and metrics. */
  readonly onEvent?: FailoverListener;
  /**
   * Clock in epoch milliseconds.
   * @default Date.now
   */
  readonly now?: () => number;
}

/** Result of {@link callWithFailover}. */
export interface FailoverResult<T> {
  readonly value: T;
  /** The target that served the call. */
  readonly target: ModelTarget;
  /** Targets given up on before it, in order. */
  readonly failures: readonly TargetFailure[];
}

/** Rejects when `signal` aborts, so that an attempt that ignores its signal still ends. */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  // The losing promise's rejection has no other handler.
  work.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function formatTargets(failures: readonly TargetFailure[]): string {
  return failures.map((f) => `${f.modelId} in ${f.region} (${f.cause})`).join('; ');
}

function timeoutError(
  requestId: string,
  deadline: number,
  failures: readonly TargetFailure[],
  target: ModelTarget | undefined,
  cause?: unknown,
): TimeoutError {
  const where = target === undefined ? '' : ` while calling ${target.modelId} in ${target.region}`;
  const tried =
    failures.length === 0 ? '' : ` Targets given up on before: ${formatTargets(failures)}.`;
  return new TimeoutError(
    `The model call reached its deadline of ${new Date(deadline).toISOString()}${where}.${tried} ` +
      'Raise the gateway timeout or requestDeadlineMs, or lower maxTokens.',
    requestId,
    { cause },
  );
}

/**
 * Calls the targets in order until one serves the call. A target whose
 * breaker is open is skipped. An error that fails over counts against the
 * target's breaker and moves on to the next target. Any other error ends
 * the call at once with a typed error. When no target is left, the call
 * fails with AllTargetsFailedError listing each target and its cause.
 */
export async function callWithFailover<T>(
  options: CallWithFailoverOptions<T>,
): Promise<FailoverResult<T>> {
  const { targets, breaker, requestId, deadline, onEvent } = options;
  const classify = options.classify ?? classifyModelError;
  const now = options.now ?? Date.now;
  const failures: TargetFailure[] = [];
  const deadlineSignal =
    deadline === undefined ? undefined : AbortSignal.timeout(Math.max(0, deadline - now()));
  // Stays when every target was skipped, because then no error code exists.
  let lastCode = 'BreakerOpen';

  for (let index = 0; index < targets.length; index++) {
    const target = targets[index];
    const next = targets[index + 1];
    if (deadline !== undefined && now() >= deadline) {
      throw timeoutError(requestId, deadline, failures, undefined);
    }

    const decision: BreakerDecision = await breaker.acquire(target, onEvent);
    if (!decision.allowed) {
      const cause = decision.skipReason ?? 'skipped: breaker open';
      failures.push({ region: target.region, modelId: target.modelId, cause });
      onEvent?.({ type: 'target-skipped', target, cause, next });
      continue;
    }

    const attemptTimer = new AbortController();
    const timer = setTimeout(() => attemptTimer.abort(), options.attemptTimeoutMs);
    const signal =
      deadlineSignal === undefined
        ? attemptTimer.signal
        : AbortSignal.any([deadlineSignal, attemptTimer.signal]);
    try {
      const value = await abortable(options.attempt(target, signal), signal);
      await breaker.recordSuccess(target, decision, onEvent);
      return { value, target, failures };
    } catch (error) {
      if (deadlineSignal?.aborted) {
        throw timeoutError(requestId, deadline!, failures, target, error);
      }
      const classification: FailureClassification = attemptTimer.signal.aborted
        ? {
            kind: 'timeout',
            failover: true,
            code: 'AttemptTimeout',
            message: `no response within the attempt timeout of ${options.attemptTimeoutMs} ms`,
          }
        : classify(error);
      if (!classification.failover) {
        // A target that responded, even with an error, counts as reachable. An
        // abort or an unrecognised error is no evidence about the target, so the
        // breaker is left alone, and a probe it ended lets its lease run out.
        if (classification.kind !== 'aborted' && classification.kind !== 'unknown') {
          await breaker.recordSuccess(target, decision, onEvent);
        }
        throw toTargetError(error, classification, target, requestId);
      }
      lastCode = classification.code;
      const cause = describeFailure(classification);
      failures.push({ region: target.region, modelId: target.modelId, cause });
      await breaker.recordFailure(target, decision, onEvent);
      onEvent?.({ type: 'target-failed', target, cause, classification, next });
    } finally {
      clearTimeout(timer);
    }
  }

  throw new AllTargetsFailedError(
    `No target of the route could serve the model call: ${formatTargets(failures)}. ` +
      'Retry later. If it persists, add a target in another region or fix the failing ones.',
    requestId,
    lastCode,
    failures,
  );
}
