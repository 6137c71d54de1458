import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AuditSink } from '../shared/audit';
import { createAuditSinkFromEnv } from '../shared/audit-firehose';
import type { GatewayRuntimeConfig } from '../shared/contracts';
import { MetricsWriter } from '../shared/metrics';
import { cacheClientsByRegion, createBedrockClient, type ClientForRegion } from './bedrock-client';
import { CircuitBreaker } from './breaker';
import { BudgetLedger, type BudgetLedgerOptions } from './budget/ledger';
import { LimitOverrideStore } from './budget/overrides';
import { DEFAULT_SUSPENSION_CACHE_MS, SuspensionStore } from './budget/suspension';
import { DynamoBreakerStore, createStateTableClient } from './breaker-table';
import { validateGatewayConfig } from './config';
import { ResponseCacheStore } from './response-cache';
import type { GatewayServices } from './pipeline';
import { PrefixTraffic } from './prompt-cache-planner';
import { resolveBreakerSettings, resolveClientSettings } from './settings';

/**
 * Milliseconds a probe keeps its claim beyond the attempt timeout, so that
 * the probe's result is written before another instance may claim it.
 */
export const PROBE_LEASE_MARGIN_MS = 1_000;

/** Settings of {@link createGatewayServices}. */
export interface GatewayServicesOptions {
  /** Agents with their routes and limits, and the client, breaker and guardrail settings. */
  readonly config: GatewayRuntimeConfig;
  /**
   * Factory of the Bedrock client for a region, called once per region.
   * @default - createBedrockClient with the configuration's client settings
   */
  readonly clientForRegion?: ClientForRegion;
  /**
   * Writer of the EMF metric lines.
   * @default - a MetricsWriter writing to stdout
   */
  readonly metrics?: MetricsWriter;
  /**
   * DynamoDB client for the breaker state table named by `config.stateTable`.
   * @default - createStateTableClient(), in the function's own region
   */
  readonly stateTableClient?: DynamoDBDocumentClient;
  /**
   * Clock in epoch milliseconds.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * DynamoDB client for the budget ledger table named by `config.budget.table`.
   * @default - createStateTableClient(), in the function's own region
   */
  readonly budgetTableClient?: DynamoDBDocumentClient;
  /**
   * Settings of the budget ledger beyond its client, configuration and clock.
   * @default - the ledger's defaults
   */
  readonly budgetLedgerOptions?: Partial<Omit<BudgetLedgerOptions, 'client' | 'config' | 'now'>>;
  /**
   * Milliseconds an instance reuses an agent's suspension read and its
   * limit overrides read.
   * @default DEFAULT_SUSPENSION_CACHE_MS
   */
  readonly suspensionCacheMs?: number;
  /**
   * Destination of audit records.
   * @default - createAuditSinkFromEnv(): a Firehose sink on the stream named
   * by AGENT_AUDIT_STREAM, or NO_AUDIT when it is unset
   */
  readonly audit?: AuditSink;
  /**
   * Keep prompt and output text in audit records.
   * @default - AGENT_AUDIT_FULL_TEXT is `true` when `audit` is not set, false when it is
   */
  readonly auditFullText?: boolean;
  /**
   * DynamoDB client for the response cache table named by `config.responseCacheTable`.
   * @default - createStateTableClient(), in the function's own region
   */
  readonly responseCacheTableClient?: DynamoDBDocumentClient;
}

/**
 * Validates the configuration and builds what every request of a handler
 * shares: one Bedrock client per region, the circuit breakers and the
 * metrics writer. `source` names the configuration in validation errors.
 */
export function createGatewayServices(
  options: GatewayServicesOptions,
  source: string,
): GatewayServices {
  const config = validateGatewayConfig(options.config, source);
  const now = options.now ?? Date.now;
  const clientSettings = resolveClientSettings(config);
  const clientForRegion = cacheClientsByRegion(
    options.clientForRegion ?? ((region, settings) => createBedrockClient(region, { settings })),
    clientSettings,
  );
  const sharedStore =
    config.stateTable === undefined
      ? undefined
      : new DynamoBreakerStore(
          options.stateTableClient ?? createStateTableClient(),
          config.stateTable,
        );
  const breaker = new CircuitBreaker({
    settings: resolveBreakerSettings(config),
    sharedStore,
    probeLeaseMs: clientSettings.attemptTimeoutMs + PROBE_LEASE_MARGIN_MS,
    now,
  });
  const metrics = options.metrics ?? new MetricsWriter({ now });
  const budgetTableClient =
    config.budget === undefined ? undefined : (options.budgetTableClient ?? createStateTableClient());
  const budget =
    config.budget === undefined || budgetTableClient === undefined
      ? undefined
      : new BudgetLedger({
          metrics,
          overrides: new LimitOverrideStore({
            client: budgetTableClient,
            table: config.budget.table,
            now,
            cacheTtlMs: options.suspensionCacheMs ?? DEFAULT_SUSPENSION_CACHE_MS,
          }),
          ...options.budgetLedgerOptions,
          client: budgetTableClient,
          config: config.budget,
          now,
        });
  const suspensions =
    config.budget === undefined || budgetTableClient === undefined
      ? undefined
      : new SuspensionStore({
          client: budgetTableClient,
          table: config.budget.table,
          now,
          cacheTtlMs: options.suspensionCacheMs,
        });
  const fromEnv = options.audit === undefined ? createAuditSinkFromEnv() : undefined;
  const audit = options.audit ?? fromEnv!.sink;
  const auditFullText = options.auditFullText ?? fromEnv?.fullText ?? false;
  const responseCache =
    config.responseCacheTable === undefined
      ? undefined
      : new ResponseCacheStore({
          client: options.responseCacheTableClient ?? createStateTableClient(),
          table: config.responseCacheTable,
          now,
        });
  const promptCacheTraffic = new PrefixTraffic();
  return {
    config,
    clientForRegion,
    clientSettings,
    breaker,
    metrics,
    now,
    budget,
    suspensions,
    audit,
    auditFullText,
    promptCacheTraffic,
    responseCache,
  };
}
