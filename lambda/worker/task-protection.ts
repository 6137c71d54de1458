/**
 * ECS task scale-in protection. While a background task works on a message,
 * it requests protection from the ECS agent, so the service scheduler does
 * not stop it when the service scales in, and it releases the protection
 * once it is idle. See
 * https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html
 */
import { Logger } from '../shared/logger';

/** Maximum protection ECS grants in one request: 48 hours. */
export const MAX_PROTECTION_MINUTES = 2_880;

/** Turns scale-in protection on and off through the ECS agent endpoint. */
export class TaskProtection {
  /** Requests run one after another, so a release never overtakes a newer enable. */
  private queue: Promise<void> = Promise.resolve();

  /**
   * @param agentUri value of `ECS_AGENT_URI`; without it (outside ECS) every
   *   call does nothing.
   * @param expiresInMinutes how long one enable lasts; each new message renews it.
   */
  constructor(
    private readonly agentUri: string | undefined,
    private readonly expiresInMinutes: number,
    private readonly logger: Logger,
  ) {}

  /** Protects the task for `expiresInMinutes` from now. A failure is logged, not thrown. */
  enable(): Promise<void> {
    return this.enqueue({
      ProtectionEnabled: true,
      ExpiresInMinutes: Math.min(
        MAX_PROTECTION_MINUTES,
        Math.max(1, Math.ceil(this.expiresInMinutes)),
      ),
    });
  }

  /** Releases the protection. A failure is logged, not thrown. */
  disable(): Promise<void> {
    return this.enqueue({ ProtectionEnabled: false });
  }

  private enqueue(body: Record<string, unknown>): Promise<void> {
    this.queue = this.queue.then(() => this.put(body));
    return this.queue;
  }

  private async put(body: Record<string, unknown>): Promise<void> {
    if (!this.agentUri) return;
    const url = `${this.agentUri}/task-protection/v1/state`;
    try {
      const response = await fetch(url, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(5_000),
      });
      const result = (await response.json().catch(() => ({}))) as { failure?: unknown };
      if (!response.ok || result.failure) {
        this.logger.warn('changing task scale-in protection failed', {
          protectionEnabled: body.ProtectionEnabled,
          status: response.status,
          failure: result.failure,
        });
        return;
      }
      this.logger.debug('task scale-in protection changed', {
        protectionEnabled: body.ProtectionEnabled,
      });
    } catch (error) {
      // The task keeps working unprotected: a lost message is retried from
      // the queue, which is better than failing work that could finish.
      this.logger.warn(
        'changing task scale-in protection failed',
        { protectionEnabled: body.ProtectionEnabled },
        error,
      );
    }
  }
}
