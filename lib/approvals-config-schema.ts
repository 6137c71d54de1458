import { z } from 'zod';

/**
 * Schema of the `approvals` section of the config. The stack creates an
 * ApprovalGate when any agent has a tool of `high` impact.
 */

/** IAM role ARN, with an optional path. */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

export const approvalsSchema = z
  .strictObject({
    /** Minutes a request waits for a decision before it expires, which counts as a denial; at most 30 days. */
    expiryMinutes: z.number().int().min(1).max(43_200).default(1_440),
    /** IAM roles allowed to list and decide requests through the decision URL. */
    approverRoleArns: z
      .array(z.string().regex(ROLE_ARN, 'expected an IAM role ARN such as arn:aws:iam::111122223333:role/Approvers'))
      .default([]),
    /**
     * Email addresses notified of each request. With any, requests go to a
     * topic of their own instead of the alarm topic, so that approvers get
     * no alarms. Each must confirm the email SNS sends.
     */
    notificationEmails: z.array(z.email()).default([]),
  })
  .prefault({});

export type ApprovalsConfig = z.output<typeof approvalsSchema>;
