import { z } from 'zod';
import { AUDIT_LOG_DEFAULTS } from '../constructs/audit-log';

/**
 * Schema of the `audit` section of the config. Its defaults are the
 * AuditLog construct's, so the stack and a construct used alone agree.
 */
export const auditSchema = z
  .strictObject({
    /**
     * Object Lock mode of the records: GOVERNANCE lets a principal with
     * s3:BypassGovernanceRetention delete early, COMPLIANCE lets nobody.
     */
    retentionMode: z.enum(['GOVERNANCE', 'COMPLIANCE']).default(AUDIT_LOG_DEFAULTS.retentionMode),
    /** Days each record is locked after it is written. */
    retentionDays: z.number().int().min(1).max(36_500).default(AUDIT_LOG_DEFAULTS.retentionDays),
    /** Keep prompt and output text in records beside their hashes. */
    fullText: z.boolean().default(AUDIT_LOG_DEFAULTS.fullText),
    /** Days after which records move to S3 Standard-IA; at least 30, as S3 requires. */
    infrequentAccessAfterDays: z.number().int().min(30).max(36_500).default(AUDIT_LOG_DEFAULTS.infrequentAccessAfterDays),
    /** Days after which records move to S3 Glacier Instant Retrieval. */
    instantRetrievalAfterDays: z.number().int().min(31).max(36_500).default(AUDIT_LOG_DEFAULTS.instantRetrievalAfterDays),
    /** Days after which records expire; without it they never do. */
    expireAfterDays: z.number().int().min(1).max(36_500).optional(),
  })
  .prefault({});

export type AuditConfig = z.output<typeof auditSchema>;
