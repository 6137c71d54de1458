import { compareText } from '../assembly';
import { Block, Cell, renderBlocks, toned } from '../blocks';
import type { ReviewModel } from '../model';
import type { ReviewSection, SectionResult } from '../section';
import { SECTION_ORDER } from '../sections/order';
import { countIdleItems, formatNumber, IdleItem } from './idle';
import { describeCheck, HOURS_PER_MONTH, Price, PRICE_TABLE, PriceKey, pricesFor } from './prices';
import { findGateways, findWorkers } from './settings';
import { CHARS_PER_TOKEN, countVariableCosts, LOG_BYTES_PER_MODEL_CALL, LOG_BYTES_PER_TASK, RESPONSE_CACHE_ITEM_OVERHEAD_BYTES, VariableLine } from './variable';

/**
 * The fixed monthly cost at idle per stack region, and the cost of one task
 * of each agent that runs to its caps, per task and per 1,000 tasks.
 */
export const costSection: ReviewSection = {
  id: 'cost',
  title: 'Cost',
  order: SECTION_ORDER.cost,
  build: ({ model }) => buildCost(model),
};

/** A price found for a line, or why there is none. */
type Priced = { readonly price: Price; readonly missing?: undefined } | { readonly price?: undefined; readonly missing: string };

function findPrice(region: string | undefined, key: PriceKey | undefined): Priced {
  if (region === undefined) return { missing: 'no prices: the stack has no region (environment-agnostic)' };
  const prices = pricesFor(region);
  if (!prices) return { missing: `no prices for region ${region}` };
  if (key === undefined) return { missing: 'no verified price in the table' };
  const price = prices[key];
  return price ? { price } : { missing: `no price for this item in region ${region}` };
}

/** Rounds dollars, 6 decimals by default, so report.json carries no floating-point noise. */
function roundUsd(value: number, decimals = 6): number {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}

function formatUsd(value: number, decimals = 2): string {
  return `$${value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals })}`;
}

function describePrice(usd: number, unit: string, check?: Price['check']): string {
  const verified = check === 'third-party' ? ' (not verified on the AWS page)' : '';
  return `$${usd.toLocaleString('en-US', { maximumFractionDigits: 10 })} per ${unit}${verified}`;
}

function regionOf(model: ReviewModel, stackNames: string): string | undefined {
  const regions = stackNames.split(', ').map((name) => model.stack(name)?.region);
  return regions.every((r) => r === regions[0]) ? regions[0] : undefined;
}

export const ASSUMPTIONS: readonly string[] = [
  `A month is ${HOURS_PER_MONTH} hours, as the AWS pricing pages count it.`,
  'Idle means no traffic: each service runs the tasks of its scalable target\'s MinCapacity, averaged over the week of its scheduled actions, or its DesiredCount.',
  'The load balancer is billed for its hours only: with no traffic it uses no LCU.',
  'The custom metrics are an estimate from the metric catalog, the agents and the known dimension values, published every hour of the month.',
  'A task at its caps makes maxIterations model calls, and with history compression one summary call before each. Its tokens fill maxTokensPerTask, with as many as possible at the most expensive rate: output tokens up to maxIterations x maxTokensPerCall, then input tokens.',
  'Each token kind is priced at the most expensive target of the route. Input tokens take the higher of the input and cache write prices, so prompt cache writes are included, as the gateway reserves them.',
  `The guardrail evaluates every input and output token of every call, at ${CHARS_PER_TOKEN} characters per token, and each call rounds its input and its output up to a whole text unit. Each configured policy bills the units once.`,
  'Each model call writes its budget counters in a reserve and a settle transaction, with the reservation record and its lease entry, at 2 write request units per item of up to 1 KB.',
  `A response cache item is the response text at ${CHARS_PER_TOKEN} characters per token plus ${formatNumber(RESPONSE_CACHE_ITEM_OVERHEAD_BYTES)} bytes, written once per call.`,
  `Log ingestion is ${formatNumber(LOG_BYTES_PER_MODEL_CALL)} bytes per model call and ${formatNumber(LOG_BYTES_PER_TASK)} bytes per task, an assumption that is not measured, and a GB is 2^30 bytes.`,
  'A realtime task is one HTTP request that the web ACL inspects.',
];

export const NOT_COUNTED: readonly string[] = [
  'The last model call of a task can pass maxTokensPerTask by its input tokens, because the worker checks the cap before the call.',
  'Fargate tasks above the minimum that traffic scales out to, and their public IPv4 addresses where tasks have them.',
  'Lambda requests and duration, SQS, SNS, Firehose and S3 requests, DynamoDB reads, the agent memory writes and storage, and data processed by NAT gateways, interface endpoints and the load balancer.',
  'The AWS Free Tier, except the free dashboards, and volume discounts, Savings Plans and taxes.',
];

function buildCost(model: ReviewModel): SectionResult {
  const workers = findWorkers(model);
  const gateways = findGateways(model);
  const idle = countIdleItems(model, workers, gateways).map((item) => priceIdle(model, item));
  const agents = countVariableCosts(workers, gateways).map((cost) => {
    const region = model.stack(cost.stack)?.region;
    const lines = cost.lines.map((line) => priceLine(region, line));
    const usdPerTask = lines.every((l) => l.usdPerTask !== null) ? lines.reduce((sum, l) => sum + (l.usdPerTask ?? 0), 0) : null;
    return { ...cost, region, lines, usdPerTask };
  });

  const pricedIdle = idle.filter((i) => i.monthlyUsd !== null);
  const unpricedIdle = idle.filter((i) => i.monthlyUsd === null && i.quantity > 0);
  const totalMonthlyUsd = roundUsd(pricedIdle.reduce((sum, i) => sum + (i.monthlyUsd ?? 0), 0));
  const regions = [...new Set(model.stacks.map((s) => s.region ?? 'none'))].sort(compareText);

  const blocks: Block[] = [
    {
      kind: 'paragraph',
      text:
        `List prices in US dollars for the stacks' regions (${regions.join(', ')}), from the price table read on ${PRICE_TABLE.readOn}: ${PRICE_TABLE.source} ` +
        'Model token prices come from the gateway config in the template. Counts and sizes come from the templates; token ceilings from the agents\' settings synthesized into them.',
    },
    { kind: 'heading', text: 'Fixed monthly cost at idle' },
    {
      kind: 'table',
      headers: ['Item', 'Stack', 'Basis', 'Quantity', 'Unit price', 'Monthly', 'Note'],
      rows: [
        ...idle.map((i): Cell[] => [
          i.item,
          i.stack,
          i.basis,
          formatNumber(i.quantity),
          i.unitPrice ?? '',
          i.monthlyUsd === null ? toned(i.missing ?? '', 'muted') : formatUsd(i.monthlyUsd),
          i.note ?? '',
        ]),
        ...(idle.length > 0
          ? [[
              toned(unpricedIdle.length > 0 ? `Total of the priced items (${unpricedIdle.length} item(s) without a price)` : 'Total', unpricedIdle.length > 0 ? 'bad' : undefined),
              '',
              '',
              '',
              '',
              formatUsd(totalMonthlyUsd),
              '',
            ] as Cell[]]
          : []),
      ],
      empty: 'Nothing in the templates costs money at idle.',
    },
    { kind: 'heading', text: 'Variable cost per task at the caps' },
    {
      kind: 'paragraph',
      text: 'One task of each agent that runs to its loop cap and token ceilings, the worst case the settings allow, and 1,000 such tasks. Real tasks cost less; the tokens they use are on the CostUsd metric.',
    },
    {
      kind: 'table',
      headers: ['Agent', 'Item', 'Per task', 'Unit price', 'Per task USD', 'Per 1,000 tasks USD'],
      rows: agents.flatMap((a) => [
        ...a.lines.map((l): Cell[] => [
          a.agent,
          l.item,
          `${formatNumber(l.quantity)} ${l.unit}`,
          l.unitPrice ?? '',
          l.usdPerTask === null ? toned(l.missing ?? '', 'muted') : formatUsd(l.usdPerTask, 6),
          l.usdPerTask === null ? '' : formatUsd(l.usdPerTask * 1_000, 4),
        ]),
        [
          a.agent,
          `Total: ${a.maxIterations} iterations x ${formatNumber(a.maxTokensPerCall)} tokens per call, ${formatNumber(a.maxTokensPerTask)} tokens per task, ${a.modelCalls} model call(s)`,
          '',
          '',
          a.usdPerTask === null ? toned('not every line has a price', 'bad') : formatUsd(a.usdPerTask, 4),
          a.usdPerTask === null ? '' : formatUsd(a.usdPerTask * 1_000, 2),
        ] as Cell[],
      ]),
      empty: 'No agent with a worker and a gateway entry, so no variable cost.',
    },
    ...(agents.some((a) => a.notes.length > 0) ? [{ kind: 'list' as const, items: agents.flatMap((a) => a.notes.map((n) => `${a.agent}: ${n}`)) }] : []),
    { kind: 'heading', text: 'Assumptions' },
    { kind: 'list', items: [...ASSUMPTIONS] },
    { kind: 'heading', text: 'Not counted' },
    { kind: 'list', items: [...NOT_COUNTED] },
    { kind: 'heading', text: 'Price table' },
    {
      kind: 'table',
      headers: ['Price', 'Region', 'USD', 'Unit', 'Checked', 'Source', 'Read on'],
      rows: priceRows().map((p) => [p.key, p.region, String(p.usd), p.unit, p.note ? `${describeCheck(p)}. ${p.note}` : describeCheck(p), p.source, p.readOn]),
      empty: 'The price table is empty.',
    },
  ];

  return {
    findings: [],
    data: {
      priceTable: { readOn: PRICE_TABLE.readOn, source: PRICE_TABLE.source, regions: Object.keys(PRICE_TABLE.regions).sort(compareText) },
      regions,
      idle: {
        items: idle.map((i) => ({
          kind: i.kind,
          stack: i.stack,
          item: i.item,
          resources: i.resources,
          quantity: i.quantity,
          basis: i.basis,
          priceKey: i.priceKey ?? null,
          unitPrice: i.unitPriceUsd,
          monthlyUsd: i.monthlyUsd,
          missingPrice: i.missing ?? null,
          note: i.note ?? null,
        })),
        totalMonthlyUsd,
        unpricedItems: unpricedIdle.length,
      },
      variable: agents.map((a) => ({
        stack: a.stack,
        agent: a.agent,
        mode: a.mode,
        maxIterations: a.maxIterations,
        maxTokensPerCall: a.maxTokensPerCall,
        maxTokensPerTask: a.maxTokensPerTask,
        modelCalls: a.modelCalls,
        summaryCalls: a.summaryCalls,
        lines: a.lines.map((l) => ({
          item: l.item,
          quantity: l.quantity,
          unit: l.unit,
          perPriceUnit: l.perPriceUnit,
          unitPrice: l.unitPriceUsd,
          usdPerTask: l.usdPerTask === null ? null : roundUsd(l.usdPerTask, 9),
          usdPer1000Tasks: l.usdPerTask === null ? null : roundUsd(l.usdPerTask * 1_000),
          missingPrice: l.missing ?? null,
        })),
        usdPerTask: a.usdPerTask === null ? null : roundUsd(a.usdPerTask, 9),
        usdPer1000Tasks: a.usdPerTask === null ? null : roundUsd(a.usdPerTask * 1_000),
        notes: a.notes,
      })),
      assumptions: ASSUMPTIONS,
      notCounted: NOT_COUNTED,
      prices: priceRows(),
    },
    ...renderBlocks(blocks),
  };
}

interface PricedIdleItem extends IdleItem {
  readonly unitPrice?: string;
  readonly unitPriceUsd: number | null;
  readonly monthlyUsd: number | null;
  readonly missing?: string;
}

function priceIdle(model: ReviewModel, item: IdleItem): PricedIdleItem {
  const found = findPrice(regionOf(model, item.stack), item.priceKey);
  if (!found.price) return { ...item, unitPriceUsd: null, monthlyUsd: item.quantity === 0 ? 0 : null, missing: found.missing };
  return {
    ...item,
    unitPrice: describePrice(found.price.usd, found.price.unit, found.price.check),
    unitPriceUsd: found.price.usd,
    monthlyUsd: roundUsd(item.quantity * found.price.usd),
  };
}

interface PricedLine extends VariableLine {
  readonly unitPrice?: string;
  readonly unitPriceUsd: number | null;
  readonly usdPerTask: number | null;
  readonly missing?: string;
}

function priceLine(region: string | undefined, line: VariableLine): PricedLine {
  if (line.usdPerUnit !== undefined) {
    return {
      ...line,
      unitPrice: `${describePrice(line.usdPerUnit, `${formatNumber(line.perPriceUnit)} ${line.unit}`)}, from ${line.priceSource}`,
      unitPriceUsd: line.usdPerUnit,
      usdPerTask: (line.quantity / line.perPriceUnit) * line.usdPerUnit,
    };
  }
  const found = findPrice(region, line.priceKey);
  if (!found.price) return { ...line, unitPriceUsd: null, usdPerTask: null, missing: found.missing };
  return {
    ...line,
    unitPrice: describePrice(found.price.usd, found.price.unit, found.price.check),
    unitPriceUsd: found.price.usd,
    usdPerTask: (line.quantity / line.perPriceUnit) * found.price.usd,
  };
}

function priceRows(): Array<Price & { key: PriceKey; region: string }> {
  return Object.entries(PRICE_TABLE.regions)
    .sort(([a], [b]) => compareText(a, b))
    .flatMap(([region, prices]) => (Object.entries(prices) as Array<[PriceKey, Price]>).map(([key, price]) => ({ key, region, ...price })));
}
