import { ScanCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { BudgetWindow } from '../shared/errors';
import { fromNanoUsd } from '../gateway/budget/pricing';
import { keyPart, spendCounterKey, windowAt, type WindowSpan } from '../gateway/budget/windows';

/** Spend of one agent, or of one user of one agent, in a window. */
export interface SpendLine {
  readonly agent: string;
  /** Missing on an agent's line. */
  readonly userId?: string;
  /** Calls whose reservation was created in the window. */
  readonly calls: number;
  /** Calls settled with their actual usage. */
  readonly settled: number;
  /** Calls still holding a reservation. */
  readonly inFlight: number;
  /** Calls whose reservation was released after its lease without usage. */
  readonly reclaimed: number;
  /** Tokens of settled calls. */
  readonly tokens: number;
  /** Cost of settled calls in US dollars. */
  readonly usd: number;
  /** Worst case still reserved by calls in flight, in tokens. */
  readonly reservedTokens: number;
}

/** One limit counter of the window, as the gateway's conditions read it. */
export interface CounterLine {
  /** Partition key, such as `budget#agent#support` or `rate#user#support#alice`. */
  readonly counter: string;
  readonly spentTokens: number;
  readonly spentUsd: number;
  readonly reservedTokens: number;
  readonly reservedUsd: number;
}

/** Spend per agent and per user in one UTC window. */
export interface SpendReport {
  readonly window: BudgetWindow;
  /** First instant of the window, ISO 8601. */
  readonly start: string;
  /** First instant of the next window, ISO 8601. */
  readonly end: string;
  readonly agents: readonly SpendLine[];
  readonly users: readonly SpendLine[];
  readonly counters: readonly CounterLine[];
  /** Items the scan read, which is what the report cost in read capacity. */
  readonly scannedItems: number;
}

/** Settings of {@link readSpendReport}. */
export interface SpendReportRequest {
  readonly client: DynamoDBDocumentClient;
  readonly table: string;
  readonly window: Exclude<BudgetWindow, 'minute'>;
  /** An instant inside the window to report, in epoch milliseconds. */
  readonly at: number;
  /** Only this agent. @default - every agent */
  readonly agent?: string;
}

type MutableLine = { -readonly [K in keyof SpendLine]: SpendLine[K] };

function emptyLine(agent: string, userId?: string): MutableLine {
  return { agent, ...(userId === undefined ? {} : { userId }), calls: 0, settled: 0, inFlight: 0, reclaimed: 0, tokens: 0, usd: 0, reservedTokens: 0 };
}

function addReservation(line: MutableLine, item: Record<string, unknown>): void {
  line.calls += 1;
  if (item.state === 'reserved') {
    line.inFlight += 1;
    line.reservedTokens += Number(item.tokens ?? 0);
  } else if (item.state === 'reclaimed') {
    line.reclaimed += 1;
  }
  // A call that settled after its reservation was reclaimed has state `settled` and its actual usage.
  if (item.state === 'settled') {
    line.settled += 1;
    line.tokens += Number(item.actualTokens ?? 0);
    line.usd += fromNanoUsd(Number(item.actualNanoUsd ?? 0));
  }
}

function byName(a: SpendLine, b: SpendLine): number {
  return a.agent.localeCompare(b.agent) || (a.userId ?? '').localeCompare(b.userId ?? '');
}

/**
 * Reads the spend of every agent and user in the window that contains
 * `at`, from the reservation records the gateway writes for every call, and
 * the limit counters of that window. The reservation records make the
 * report complete for agents without limits, which have no counters.
 *
 * NOTE: this scans the whole ledger table, so its cost grows with the
 * number of calls kept (reservation records live for their retention
 * period). It is meant for an operator's occasional look, not for polling.
 */
export async function readSpendReport(request: SpendReportRequest): Promise<SpendReport> {
  const span: WindowSpan = windowAt(request.window, request.at);
  const start = new Date(span.startMs).toISOString();
  const end = new Date(span.endMs).toISOString();
  const agents = new Map<string, MutableLine>();
  const users = new Map<string, MutableLine>();
  const counters: CounterLine[] = [];

  let scannedItems = 0;
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await request.client.send(
      new ScanCommand({
        TableName: request.table,
        FilterExpression:
          '(begins_with(pk, :reservation) AND createdAt >= :start AND createdAt < :end) OR ' +
          '(begins_with(pk, :budget) AND sk = :window)',
        ExpressionAttributeValues: {
          ':reservation': 'reservation#',
          ':budget': 'budget#',
          ':start': start,
          ':end': end,
          ':window': span.key,
        },
        ExclusiveStartKey: startKey,
      }),
    );
    scannedItems += page.ScannedCount ?? 0;
    for (const item of page.Items ?? []) {
      const pk = String(item.pk);
      if (pk.startsWith('budget#')) {
        counters.push({
          counter: pk,
          spentTokens: Number(item.spentTokens ?? 0),
          spentUsd: fromNanoUsd(Number(item.spentNanoUsd ?? 0)),
          reservedTokens: Number(item.reservedTokens ?? 0),
          reservedUsd: fromNanoUsd(Number(item.reservedNanoUsd ?? 0)),
        });
        continue;
      }

      const agent = String(item.agent);
      if (request.agent !== undefined && agent !== request.agent) {
        continue;
      }
      const userId = String(item.userId);
      const agentLine = agents.get(agent) ?? emptyLine(agent);
      agents.set(agent, agentLine);
      addReservation(agentLine, item);

      const userKey = JSON.stringify([agent, userId]);
      const userLine = users.get(userKey) ?? emptyLine(agent, userId);
      users.set(userKey, userLine);
      addReservation(userLine, item);
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);

  // Counters of other agents are in the same scan, so they are left out here.
  const agentFilter = request.agent;
  const relevant =
    agentFilter === undefined
      ? counters
      : counters.filter(
          (line) =>
            line.counter === spendCounterKey('stack', agentFilter, '') ||
            line.counter === spendCounterKey('agent', agentFilter, '') ||
            line.counter.startsWith(`budget#user#${keyPart(agentFilter)}#`),
        );
  return {
    window: request.window,
    start,
    end,
    agents: [...agents.values()].sort(byName),
    users: [...users.values()].sort(byName),
    counters: relevant.sort((a, b) => a.counter.localeCompare(b.counter)),
    scannedItems,
  };
}
