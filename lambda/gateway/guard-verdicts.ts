import type { AuditDecision } from '../shared/audit';
import { buildAuditRecord } from '../shared/audit-record';
import type { ModelTarget } from '../shared/contracts';
import type { GuardrailBlockedError, GuardrailLayer } from '../shared/errors';
import { AGENT_METRICS } from '../shared/metric-catalog';
import type { SecretKind } from '../shared/redact';
import type { GatewayContext, ResolvedGatewayRequest } from './pipeline';

/** Layer of a guard verdict: one of the layers that block, or the output redaction. */
export type GuardVerdictLayer = GuardrailLayer | 'redaction';

/** One decision of a guard, as the GuardBlocked metric and a `guard` audit record keep it. */
export interface GuardVerdict {
  readonly layer: GuardVerdictLayer;
  /** `blocked` ends the request, and `allowed` lets it go on, as after a redaction. */
  readonly decision: Extract<AuditDecision, 'blocked' | 'allowed'>;
  /** The pattern, the guardrail policy or the secret kinds behind the verdict; never the content. */
  readonly reason: string;
  /** Value of the metric: 1 for a block, the number of secrets replaced for a redaction. */
  readonly count: number;
  /** Tool whose result the verdict is about. */
  readonly tool?: string;
  /** Model call the verdict belongs to, when one was made or tried. */
  readonly target?: ModelTarget;
}

/**
 * Writes the metric GuardBlocked with dimensions Agent and Layer and queues
 * one `guard` audit record for `verdict`.
 */
export function recordGuardVerdict(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  verdict: GuardVerdict,
): void {
  const { services } = context;
  const metric = AGENT_METRICS.guardBlocked;
  services.metrics.put(
    { Agent: request.agent, Layer: verdict.layer },
    { [metric.name]: { value: verdict.count, unit: metric.unit } },
    { requestId: context.requestId, reason: verdict.reason, tool: verdict.tool },
  );
  services.audit.record(
    buildAuditRecord(
      {
        requestId: context.requestId,
        agent: request.agent,
        userId: request.userId,
        sessionId: request.sessionId,
        kind: 'guard',
        decision: verdict.decision,
        reason: verdict.reason,
        layer: verdict.layer,
        tool: verdict.tool,
        model: verdict.target?.modelId,
        region: verdict.target?.region,
      },
      { fullText: services.auditFullText },
    ),
  );
}

/** Blocks already recorded, so that the handler's final record of the error is skipped. */
const recordedBlocks = new WeakSet<GuardrailBlockedError>();

/**
 * Records the verdict of a guard that raised `error`, once per error. The
 * step that raises it may call this with the tool it checked, and the
 * handlers call it for every GuardrailBlockedError that ends a request.
 */
export function recordGuardBlock(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  error: GuardrailBlockedError,
  details: Pick<GuardVerdict, 'tool' | 'target'> = {},
): void {
  if (recordedBlocks.has(error)) {
    return;
  }
  recordedBlocks.add(error);
  recordGuardVerdict(context, request, {
    layer: error.layer,
    decision: 'blocked',
    reason: error.policy ?? 'no policy named',
    count: 1,
    tool: details.tool,
    target: details.target ?? context.result?.target ?? context.failedCall?.target,
  });
}

/** Returns the reason of a redaction verdict, such as `redacted 2 secrets: aws-access-key-id, jwt`. */
export function redactionReason(kinds: readonly SecretKind[]): string {
  const noun = kinds.length === 1 ? 'secret' : 'secrets';
  return `redacted ${kinds.length} ${noun}: ${[...new Set(kinds)].join(', ')}`;
}

/** Records the redaction of `kinds` from the output of the call to `target`, when any. */
export function recordRedaction(
  context: GatewayContext,
  request: ResolvedGatewayRequest,
  kinds: readonly SecretKind[],
  target: ModelTarget | undefined,
): void {
  if (kinds.length === 0) {
    return;
  }
  recordGuardVerdict(context, request, {
    layer: 'redaction',
    decision: 'allowed',
    reason: redactionReason(kinds),
    count: kinds.length,
    target,
  });
}
