import { z } from 'zod';
import { DEFAULT_THRESHOLDS, THRESHOLD_RANGES, type AlarmThresholds, type ThresholdRange } from '../constructs/observability-settings';

/**
 * Schema of the `observability` section of the config. The defaults and
 * ranges come from the constructs' observability settings, which the
 * AgentObservability construct uses too.
 */

function thresholdSchema(field: keyof AlarmThresholds) {
  const range: ThresholdRange = THRESHOLD_RANGES[field];
  let schema = range.integer ? z.number().int() : z.number();
  schema = range.exclusiveMin ? schema.gt(range.min) : schema.min(range.min);
  return schema.max(range.max);
}

export const observabilitySchema = z
  .strictObject({
    /** Period of every alarm and graph, in whole minutes, because the metrics have one value per minute. */
    periodSeconds: thresholdSchema('periodSeconds').multipleOf(60).default(DEFAULT_THRESHOLDS.periodSeconds),
    /** Width of the TotalTokens anomaly band, in standard deviations. */
    tokenAnomalyBandWidth: thresholdSchema('tokenAnomalyBandWidth').default(DEFAULT_THRESHOLDS.tokenAnomalyBandWidth),
    tokenAnomalyEvaluationPeriods: thresholdSchema('tokenAnomalyEvaluationPeriods').default(DEFAULT_THRESHOLDS.tokenAnomalyEvaluationPeriods),
    loopIterationsShareOfCap: thresholdSchema('loopIterationsShareOfCap').default(DEFAULT_THRESHOLDS.loopIterationsShareOfCap),
    toolFailureRatePercent: thresholdSchema('toolFailureRatePercent').default(DEFAULT_THRESHOLDS.toolFailureRatePercent),
    failoverRatePercent: thresholdSchema('failoverRatePercent').default(DEFAULT_THRESHOLDS.failoverRatePercent),
    throttleRatePercent: thresholdSchema('throttleRatePercent').default(DEFAULT_THRESHOLDS.throttleRatePercent),
    minCallsForRate: thresholdSchema('minCallsForRate').default(DEFAULT_THRESHOLDS.minCallsForRate),
    budgetUsePercent: thresholdSchema('budgetUsePercent').default(DEFAULT_THRESHOLDS.budgetUsePercent),
    deadLetterMessages: thresholdSchema('deadLetterMessages').default(DEFAULT_THRESHOLDS.deadLetterMessages),
    /** Without it, each background agent gets twice its task timeout, at least 900 s. */
    oldestMessageAgeSeconds: thresholdSchema('oldestMessageAgeSeconds').optional(),
    modelCallFailures: thresholdSchema('modelCallFailures').default(DEFAULT_THRESHOLDS.modelCallFailures),
    gatewayErrors: thresholdSchema('gatewayErrors').default(DEFAULT_THRESHOLDS.gatewayErrors),
    loadBalancer5xx: thresholdSchema('loadBalancer5xx').default(DEFAULT_THRESHOLDS.loadBalancer5xx),
    target5xx: thresholdSchema('target5xx').default(DEFAULT_THRESHOLDS.target5xx),
    unhealthyTasks: thresholdSchema('unhealthyTasks').default(DEFAULT_THRESHOLDS.unhealthyTasks),
    /** An existing topic for the alarms. Without it the stack creates one, encrypted with the stack key. */
    alarmTopicArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/, 'expected an SNS topic ARN such as arn:aws:sns:us-east-1:111122223333:alarms')
      .optional(),
    /** Email addresses subscribed to the alarm topic. Each must confirm the email SNS sends. */
    alarmEmails: z.array(z.email()).default([]),
  })
  .prefault({});

export type ObservabilityConfig = z.output<typeof observabilitySchema>;
