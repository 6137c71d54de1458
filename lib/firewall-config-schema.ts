import { z } from 'zod';
import { DEFAULT_RATE_LIMIT, MAX_RATE_LIMIT, MIN_RATE_LIMIT } from '../constructs/firewall-rules';

/**
 * Schema of the `firewall` section of the config: the WAF web ACL in front
 * of the realtime endpoint, and the body size limit of the realtime workers.
 */

const managedRuleGroupSchema = z.strictObject({
  /** Rule group name, such as `AWSManagedRulesSQLiRuleSet`. */
  name: z.string().regex(/^[\w-]{1,128}$/, 'expected a rule group name such as AWSManagedRulesSQLiRuleSet'),
  vendorName: z.string().regex(/^[\w-]{1,128}$/, 'expected a vendor name such as AWS').default('AWS'),
  /** Without it the group follows the vendor's default version. */
  version: z.string().regex(/^[\w.-]{1,64}$/, 'expected a version such as Version_1.2').optional(),
  /** Rules of the group that count matching requests instead of taking their own action. */
  countRules: z.array(z.string().regex(/^[\w-]{1,128}$/, 'expected a rule name')).default([]),
});

export const firewallSchema = z
  .strictObject({
    /** Put the web ACL in front of the load balancer. Without it, on whenever the stack has a realtime endpoint. */
    enabled: z.boolean().optional(),
    /** Requests one client IP address may send in any 5-minute window. */
    rateLimit: z.number().int().min(MIN_RATE_LIMIT).max(MAX_RATE_LIMIT).default(DEFAULT_RATE_LIMIT),
    /** Managed rule groups evaluated after the core rule set, known bad inputs and IP reputation. */
    managedRuleGroups: z.array(managedRuleGroupSchema).default([]),
    /** Core rule set rules that count instead of blocking, beyond SizeRestrictions_BODY. */
    coreRuleSetCountRules: z.array(z.string().regex(/^[\w-]{1,128}$/, 'expected a rule name')).default([]),
    /** `count` records matches of the prompt-injection patterns without blocking, for tuning. */
    injectionAction: z.enum(['block', 'count']).default('block'),
    /** `block` rejects bodies over the 8 KB WAF inspects, while the default inspects the first 8 KB and lets the rest continue. */
    oversizeBody: z.enum(['inspect-first-8kb', 'block']).default('inspect-first-8kb'),
    /**
     * Maximum request body size every realtime worker accepts, in bytes.
     * Above it the worker responds with 413. An agent whose limits.maxBodyBytes is lower
     * keeps its own limit. Applies with or without the web ACL.
     */
    maxBodyBytes: z.number().int().min(1_024).max(1_048_576).optional(),
  })
  .prefault({});

export type FirewallConfig = z.output<typeof firewallSchema>;
