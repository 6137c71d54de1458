/** Position of each section in the report. */
export const SECTION_ORDER = {
  architecture: 10,
  iam: 20,
  resourcePolicies: 30,
  network: 40,
  dataProtection: 50,
  checks: 60,
  cost: 70,
  changes: 80,
} as const;
