import type { GuardrailLayer } from './errors';

/** Environment variable that names the Firehose stream of the audit log. */
export const AUDIT_STREAM_ENV = 'AGENT_AUDIT_STREAM';

/** Environment variable that is `true` when audit records keep the full prompt and output text. */
export const AUDIT_FULL_TEXT_ENV = 'AGENT_AUDIT_FULL_TEXT';

/** Kind of decision an audit record keeps. */
export type AuditKind = 'model-call' | 'budget' | 'guard' | 'tool-call' | 'approval';

/**
 * Outcome of a decision: `allowed` and `completed` let work go on,
 * `rejected`, `blocked`, `failed`, `denied` and `expired` stopped it, and
 * `pending` waits for a person.
 */
export type AuditDecision =
  | 'allowed'
  | 'completed'
  | 'rejected'
  | 'blocked'
  | 'failed'
  | 'pending'
  | 'approved'
  | 'denied'
  | 'expired';

/** Token counts of a model call, as the audit log keeps them. */
export interface AuditTokens {
  readonly input: number;
  readonly output: number;
  readonly total: number;
  readonly cacheRead?: number;
  readonly cacheWrite?: number;
}

/**
 * One decision, as one JSON line in the audit log. Prompts and outputs are
 * kept as SHA-256 hashes, and as text only when the deployment enables it.
 */
export interface AuditRecord {
  /** ISO 8601 time of the decision. */
  readonly time: string;
  readonly requestId: string;
  readonly agent: string;
  /** Verified user id, missing when the decision has no user. */
  readonly userId?: string;
  readonly sessionId?: string;
  readonly kind: AuditKind;
  readonly decision: AuditDecision;
  /** Cause of the decision, such as an error name, a limit or a guard policy. */
  readonly reason?: string;
  /** Model id or inference profile id of a model call. */
  readonly model?: string;
  readonly region?: string;
  readonly tokens?: AuditTokens;
  readonly costUsd?: number;
  /** Hex SHA-256 of the canonical JSON of the prompt (system prompt, messages and tools). */
  readonly promptSha256?: string;
  /** Hex SHA-256 of the canonical JSON of the output. */
  readonly outputSha256?: string;
  /** Prompt text, only when full text is enabled. */
  readonly promptText?: string;
  /** Output text, only when full text is enabled. */
  readonly outputText?: string;
  /** Tool name of a tool call or an approval. */
  readonly tool?: string;
  /** Hex SHA-256 of the canonical JSON of a tool call's arguments. */
  readonly argumentsSha256?: string;
  readonly approvalId?: string;
  /** Person who approved or denied, from their verified identity. */
  readonly approver?: string;
  /** Guard layer of a guard verdict. */
  readonly layer?: GuardrailLayer | 'redaction';
  /**
   * True when `promptText` and `outputText` were left out, although full
   * text is enabled, because the record would have exceeded the largest
   * record Firehose accepts. The hashes are kept.
   */
  readonly textOmitted?: boolean;
}

/**
 * Destination of audit records. `record` queues without waiting, so a
 * request never waits on the log, and `flush` delivers what is queued.
 * A Lambda handler flushes before its response completes, because a frozen
 * execution environment loses what it holds. `recordNow` delivers one
 * record and resolves once the log accepted it, for a side effect that must
 * not happen unaudited, such as a high-impact tool call.
 */
export interface AuditSink {
  record(record: AuditRecord): void;
  recordNow(record: AuditRecord): Promise<void>;
  /** Delivers every queued record; rejects when some could not be delivered after retries. */
  flush(): Promise<void>;
}

/** Sink that drops every record, for deployments without an audit log. */
export const NO_AUDIT: AuditSink = {
  record: () => undefined,
  recordNow: async () => undefined,
  flush: async () => undefined,
};
