import { createStateTableClient } from '../gateway/breaker-table';
import { createKillSwitchHandler, loadKillSwitchConfigFromEnv, type KillSwitchResult } from './handler';

export * from './events';
export * from './handler';

let handle: ((event: unknown) => Promise<KillSwitchResult>) | undefined;

/** Lambda entry point; the handler is built on the first invocation and reused while the instance lives. */
export async function handler(event: unknown): Promise<KillSwitchResult> {
  handle ??= createKillSwitchHandler({ config: loadKillSwitchConfigFromEnv(), client: createStateTableClient() });
  return handle(event);
}
