/**
 * The cost of one task of an agent that runs to its caps. Its tokens are the
 * loop cap times the token ceiling of each call, bounded by the task's token
 * cap, and priced at the route's most expensive target. The task also
 * causes guardrail text units, budget ledger writes, response cache writes,
 * log ingestion and web ACL requests.
 */
import type { GatewayAgentConfig, ModelPrice, ModelTarget } from '../../../lambda/shared/contracts';
import { planCounters } from '../../../lambda/gateway/budget/limits';
import type { StackModel } from '../model';
import { GUARDRAIL_TEXT_UNIT_CHARS, PriceKey, TRANSACTION_WRITE_UNITS_PER_ITEM } from './prices';
import { gatewayOf, GatewaySettings, WorkerSettings } from './settings';

/** Characters per token, the same estimate the gateway reserves with. */
export const CHARS_PER_TOKEN = 4;

/**
 * Bytes of CloudWatch Logs per model call: the gateway's log line and its
 * embedded metric format lines, and the worker's line for the call.
 */
// NOTE: an assumption, not measured on a deployment.
export const LOG_BYTES_PER_MODEL_CALL = 4_096;

/** Bytes of CloudWatch Logs per task: the worker's start and end lines and its task metrics. */
// NOTE: an assumption, not measured on a deployment.
export const LOG_BYTES_PER_TASK = 2_048;

/** Bytes of a response cache item besides the response text: keys, usage and expiry. */
// NOTE: an assumption; the item size is not measured.
export const RESPONSE_CACHE_ITEM_OVERHEAD_BYTES = 1_024;

/**
 * Ledger items a call adds to its counters' items in the two transactions:
 * the reservation record and its lease index entry when it reserves, the
 * record's state change and the lease entry's deletion when it settles.
 */
// NOTE: mirrors reserve() and writeRelease() of lambda/gateway/budget/ledger.ts;
// a change there changes the count.
export const LEDGER_ITEMS_BESIDES_COUNTERS = 4;

/** One priced line of an agent's variable cost. */
export interface VariableLine {
  readonly item: string;
  /** Quantity per task at the caps, in `unit`. */
  readonly quantity: number;
  /** Unit of the quantity, such as `tokens`. */
  readonly unit: string;
  /** Quantity that one unit of the price covers, such as 1,000,000 tokens. */
  readonly perPriceUnit: number;
  /** Price from the price table, when the line takes one. */
  readonly priceKey?: PriceKey;
  /** Price per unit in US dollars when it does not come from the price table, such as a model's token price. */
  readonly usdPerUnit?: number;
  /** Origin of a price that is not from the price table. */
  readonly priceSource?: string;
  readonly note?: string;
}

/** The variable cost of one agent, before prices from the table are applied. */
export interface AgentVariableCost {
  readonly stack: string;
  readonly agent: string;
  readonly mode: string;
  readonly maxIterations: number;
  readonly maxTokensPerCall: number;
  readonly maxTokensPerTask: number;
  /** Model calls per task at the caps, summary calls included. */
  readonly modelCalls: number;
  readonly summaryCalls: number;
  readonly lines: readonly VariableLine[];
  /** Caveats that apply to the whole agent. */
  readonly notes: readonly string[];
}

/** The highest price of each kind over the targets of a route, and where the prices come from. */
interface RoutePrice {
  readonly price: ModelPrice;
  readonly source: string;
  readonly missing: readonly string[];
}

function maxPrice(prices: readonly ModelPrice[]): ModelPrice {
  return {
    inputPerMillion: Math.max(...prices.map((p) => p.inputPerMillion)),
    outputPerMillion: Math.max(...prices.map((p) => p.outputPerMillion)),
    cacheReadPerMillion: Math.max(...prices.map((p) => p.cacheReadPerMillion)),
    cacheWritePerMillion: Math.max(...prices.map((p) => p.cacheWritePerMillion)),
  };
}

/**
 * Prices a route at its most expensive target. Prices come from the
 * gateway config's `budget.prices`, which the construct writes for every
 * target. Without a budget they come from the built-in table of
 * constructs/model-prices.ts, with its default regional premium.
 */
function priceRoute(route: readonly ModelTarget[], gateway: GatewaySettings): RoutePrice | undefined {
  const configured = gateway.config.budget?.prices;
  const found: ModelPrice[] = [];
  const missing: string[] = [];
  let source = 'budget.prices of the gateway config';
  for (const target of route) {
    const price = configured?.[target.modelId];
    if (price) {
      found.push(price);
      continue;
    }
    // Loaded only here, because the table's module loads aws-cdk-lib.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const table = require('../../../constructs/model-prices') as typeof import('../../../constructs/model-prices');
    const listed = table.priceTarget(target.modelId, { regionalPremiumPercent: table.DEFAULT_REGIONAL_PREMIUM_PERCENT });
    if (listed) {
      found.push(listed.price);
      source = configured ? 'budget.prices of the gateway config and constructs/model-prices.ts' : 'constructs/model-prices.ts, with the default regional premium';
    } else {
      missing.push(target.modelId);
    }
  }
  if (found.length === 0) return undefined;
  return { price: maxPrice(found), source, missing };
}

/** One kind of token with the most a task can have of it and its price per million. */
interface TokenBucket {
  readonly item: string;
  readonly cap: number;
  readonly usdPerMillion: number;
  readonly source: string;
}

/**
 * Spends a task's token cap on the most expensive kinds of token first, so
 * that no split of the same tokens costs more.
 */
function fillTokens(total: number, buckets: readonly TokenBucket[]): Array<TokenBucket & { tokens: number }> {
  let left = total;
  return [...buckets]
    .sort((a, b) => b.usdPerMillion - a.usdPerMillion)
    .map((bucket) => {
      const tokens = Math.min(bucket.cap, left);
      left -= tokens;
      return { ...bucket, tokens };
    });
}

/** Finds the guardrail resource a gateway config names by reference, and the policies it bills. */
function guardrailPolicies(stack: StackModel, guardrailId: string): { keys: PriceKey[]; found: boolean } {
  // The config names a guardrail of the template as `<LogicalId.GuardrailId>`.
  const logicalId = /^<([^.>]+)[.>]/.exec(guardrailId)?.[1];
  const guardrail = logicalId === undefined ? undefined : stack.resource(logicalId);
  if (guardrail?.type !== 'AWS::Bedrock::Guardrail') return { keys: [], found: false };
  const p = guardrail.properties;
  const keys: PriceKey[] = [];
  if (p.ContentPolicyConfig !== undefined) keys.push('guardrailContentThousandUnits');
  if (p.TopicPolicyConfig !== undefined) keys.push('guardrailTopicThousandUnits');
  const pii = (p.SensitiveInformationPolicyConfig as { PiiEntitiesConfig?: unknown[] } | undefined)?.PiiEntitiesConfig;
  if (Array.isArray(pii) && pii.length > 0) keys.push('guardrailPiiThousandUnits');
  return { keys, found: true };
}

const GUARDRAIL_POLICY_NAMES: Partial<Record<PriceKey, string>> = {
  guardrailContentThousandUnits: 'content filters',
  guardrailTopicThousandUnits: 'denied topics',
  guardrailPiiThousandUnits: 'sensitive information filters',
};

/** Counts the variable cost of every agent with a worker and a gateway entry. */
export function countVariableCosts(workers: readonly WorkerSettings[], gateways: readonly GatewaySettings[]): AgentVariableCost[] {
  return workers.flatMap((worker) => {
    const gateway = gatewayOf(gateways, worker);
    const entry = gateway?.config.agents[worker.config.agent];
    if (!gateway || !entry) return [];
    return [agentCost(worker, gateway, entry)];
  });
}

function agentCost(worker: WorkerSettings, gateway: GatewaySettings, entry: GatewayAgentConfig): AgentVariableCost {
  const { agent, mode, limits } = worker.config;
  const notes: string[] = [];
  const calls = limits.maxIterations;
  const maxTokensPerCall = Math.min(limits.maxTokensPerCall, entry.maxTokensPerCall);

  // Summary calls of history compression: at most one before each model call.
  const summaryAgent = (worker.config as { history?: { summaryAgent?: string } }).history?.summaryAgent;
  const summaryEntry = summaryAgent === undefined ? undefined : gateway.config.agents[summaryAgent];
  const summaryCalls = summaryEntry ? calls : 0;
  if (summaryAgent !== undefined && !summaryEntry) notes.push(`The summary entry ${summaryAgent} is not in the gateway config, so summary calls are not counted.`);

  const lines: VariableLine[] = [];
  const mainPrice = priceRoute(entry.route, gateway);
  const summaryPrice = summaryEntry ? priceRoute(summaryEntry.route, gateway) : undefined;
  for (const missing of [...(mainPrice?.missing ?? []), ...(summaryPrice?.missing ?? [])]) notes.push(`No price for target ${missing}; the route is priced without it.`);
  if (!mainPrice) {
    notes.push('No target of the route has a price, so the tokens are not priced.');
  } else {
    const buckets: TokenBucket[] = [
      { item: 'Output tokens', cap: calls * maxTokensPerCall, usdPerMillion: mainPrice.price.outputPerMillion, source: mainPrice.source },
      {
        item: 'Input tokens, at the higher of the input and cache write prices',
        cap: Number.POSITIVE_INFINITY,
        usdPerMillion: Math.max(mainPrice.price.inputPerMillion, mainPrice.price.cacheWritePerMillion, summaryPrice?.price.inputPerMillion ?? 0, summaryPrice?.price.cacheWritePerMillion ?? 0),
        source: mainPrice.source,
      },
    ];
    if (summaryEntry && summaryPrice) {
      buckets.push({ item: `Summary output tokens (${summaryAgent})`, cap: summaryCalls * summaryEntry.maxTokensPerCall, usdPerMillion: summaryPrice.price.outputPerMillion, source: summaryPrice.source });
    }
    for (const bucket of fillTokens(limits.maxTokensPerTask, buckets)) {
      if (bucket.tokens === 0) continue;
      lines.push({ item: bucket.item, quantity: bucket.tokens, unit: 'tokens', perPriceUnit: 1e6, usdPerUnit: bucket.usdPerMillion, priceSource: bucket.source });
    }
  }

  const modelCalls = calls + summaryCalls;
  // Every token of every call is counted as text the guardrail evaluates, rounded up to whole units per call on each side.
  if (gateway.config.guardrail) {
    const units = Math.ceil((limits.maxTokensPerTask * CHARS_PER_TOKEN) / GUARDRAIL_TEXT_UNIT_CHARS) + 2 * modelCalls;
    const { keys, found } = guardrailPolicies(gateway.stack, gateway.config.guardrail.id);
    if (!found) notes.push(`The guardrail ${gateway.config.guardrail.id} is not in this template, so its policies and their text units are not priced.`);
    for (const key of keys) {
      lines.push({ item: `Guardrail text units, ${GUARDRAIL_POLICY_NAMES[key]}`, quantity: units, unit: 'text units', perPriceUnit: 1_000, priceKey: key });
    }
  }

  if (gateway.config.budget) {
    const counters = (name: string) => planCounters(gateway.config.budget!, name, 'user', 0).length;
    const writeUnits =
      calls * TRANSACTION_WRITE_UNITS_PER_ITEM * (2 * counters(agent) + LEDGER_ITEMS_BESIDES_COUNTERS) +
      summaryCalls * TRANSACTION_WRITE_UNITS_PER_ITEM * (2 * counters(summaryAgent ?? agent) + LEDGER_ITEMS_BESIDES_COUNTERS);
    lines.push({
      item: `Budget ledger writes: ${counters(agent)} counter(s) per call, reserved and settled in two transactions`,
      quantity: writeUnits,
      unit: 'write request units',
      perPriceUnit: 1e6,
      priceKey: 'dynamoDbMillionWriteUnits',
    });
  }

  if (entry.responseCache) {
    const itemKb = Math.ceil((maxTokensPerCall * CHARS_PER_TOKEN + RESPONSE_CACHE_ITEM_OVERHEAD_BYTES) / 1024);
    lines.push({ item: `Response cache writes: ${itemKb} KB per call`, quantity: calls * itemKb, unit: 'write request units', perPriceUnit: 1e6, priceKey: 'dynamoDbMillionWriteUnits' });
  }

  const logBytes = modelCalls * LOG_BYTES_PER_MODEL_CALL + LOG_BYTES_PER_TASK;
  lines.push({ item: 'Log ingestion', quantity: logBytes, unit: 'bytes', perPriceUnit: 1024 ** 3, priceKey: 'logsIngestionGb' });

  if (mode === 'realtime' && worker.stack.ofType('AWS::WAFv2::WebACL').length > 0) {
    lines.push({ item: 'Web ACL requests', quantity: 1, unit: 'HTTP request', perPriceUnit: 1e6, priceKey: 'wafMillionRequests' });
  }

  return {
    stack: worker.stack.name,
    agent,
    mode,
    maxIterations: limits.maxIterations,
    maxTokensPerCall,
    maxTokensPerTask: limits.maxTokensPerTask,
    modelCalls,
    summaryCalls,
    lines,
    notes,
  };
}
