export * from './agent-stack';
export * from './config';
export * from '../constructs/agent-endpoint';
export * from '../constructs/agent-feedback';
export * from '../constructs/agent-firewall';
export * from '../constructs/agent-memory';
export * from '../constructs/agent-network';
export * from '../constructs/agent-observability';
export * from '../constructs/agent-service';
export * from '../constructs/agent-tool';
export * from '../constructs/approval-gate';
export * from '../constructs/audit-log';
export * from '../constructs/gateway-guardrail';
export * from '../constructs/gateway-guardrail-settings';
export * from '../constructs/grant-reasons';
export * from '../constructs/kill-switch';
export * from '../constructs/model-gateway';
export * from '../constructs/model-prices';
export * from '../constructs/token-budget';
export {
  INJECTION_PATTERNS,
  checkWafRegexSubset,
  findInjection,
  normalizeForInspection,
  type InjectionPattern,
} from '../lambda/shared/injection-patterns';
export {
  AUDIT_FULL_TEXT_ENV,
  AUDIT_STREAM_ENV,
  NO_AUDIT,
  type AuditDecision,
  type AuditKind,
  type AuditRecord,
  type AuditSink,
  type AuditTokens,
} from '../lambda/shared/audit';
export { AUDIT_RECORD_FIELDS, auditRecordProblems, buildAuditRecord, validateAuditRecord } from '../lambda/shared/audit-record';
export { summaryAgentName } from '../lambda/shared/contracts';
export type {
  AgentBudgetConfig,
  ApprovalRuntimeConfig,
  FeedbackRuntimeConfig,
  GatewayBudgetConfig,
  ModelPrice,
  RateLimits,
  ResponseCacheScope,
  ResponseCacheSettings,
  SpendLimits,
  WindowLimits,
  GatewayRequest,
  GatewayResponse,
  GatewayErrorResponse,
  ModelTarget,
  WorkerAuthConfig,
  WorkerApprovalConfig,
  WorkerRuntimeConfig,
  WorkerToolConfig,
} from '../lambda/shared/contracts';
