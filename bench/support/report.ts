/**
 * Scaffolding shared by the benchmarks: the run's clock and progress lines,
 * the watchdog, the machine, software and source facts every results file
 * starts with, table formatting, and the results writer.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

/** Root of the repository, where node_modules and bench/results are. */
export const ROOT = path.resolve(__dirname, '..', '..');

/** Fields every results file starts with, in this order. */
export interface RunDescription {
  readonly machine: MachineFacts;
  /** Versions of the packages and tools the figures depend on, by name. */
  readonly software: Record<string, string>;
  readonly source: SourceFacts;
  /** ISO 8601 time at which the results were written. */
  readonly date: string;
  readonly durationSeconds: number;
  readonly units: string;
}

export interface MachineFacts {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly totalMemoryBytes: number;
  readonly platform: string;
  readonly node: string;
}

/** The measured commit, and whether lambda/ had uncommitted changes, which the figures then include. */
export interface SourceFacts {
  readonly commit: string;
  readonly lambdaModified: boolean | 'unknown';
}

/** Returns the path of `bench/results/<name>.json`. */
export function resultsPath(name: string): string {
  return path.join(ROOT, 'bench', 'results', `${name}.json`);
}

/** Returns the version of an installed package from its package.json. */
export function packageVersion(name: string): string {
  const file = path.join(ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** Returns the first line of `java -version`, which names the JVM that runs DynamoDB Local. */
export function javaVersion(): string {
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  return java.status === 0 ? java.stderr.split('\n')[0].trim() : 'unknown';
}

/** Returns the output of `git args`, trimmed, or 'unknown' when git is missing or fails. */
function readGit(args: string[]): string {
  const git = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : 'unknown';
}

function describeSource(): SourceFacts {
  const changes = readGit(['status', '--porcelain', '--', 'lambda']);
  return {
    commit: readGit(['rev-parse', 'HEAD']),
    lambdaModified: changes === 'unknown' ? 'unknown' : changes !== '',
  };
}

function describeMachine(): MachineFacts {
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/**
 * Clock, progress lines and watchdog of one benchmark run. The clock starts
 * when the run is created, so create it first thing in the script.
 */
export class BenchRun {
  private readonly startedAt = performance.now();
  private watchdog?: NodeJS.Timeout;

  /** `title` names the benchmark in messages, such as 'Budget benchmark'. */
  constructor(readonly title: string) {}

  /** Prints `message` to stderr with the seconds since the run started. */
  readonly progress = (message: string): void => {
    const seconds = ((performance.now() - this.startedAt) / 1000).toFixed(1);
    console.error(`[${seconds.padStart(5)} s] ${message}`);
  };

  /**
   * Ends the process with status 1 once `timeoutMs` have passed, so that a
   * call that hangs cannot keep the run going. The timer does not keep the
   * process alive by itself.
   */
  startWatchdog(timeoutMs: number): void {
    this.watchdog = setTimeout(() => {
      console.error(
        `${this.title} timed out after ${timeoutMs / 1000} s, so a call is probably ` +
          'hanging. Rerun it, and if it times out again, look for a call that never returns.',
      );
      process.exit(1);
    }, timeoutMs);
    this.watchdog.unref();
  }

  stopWatchdog(): void {
    clearTimeout(this.watchdog);
  }

  /** Describes the machine, the software, the measured source and the run's duration so far. */
  describe(software: Record<string, string>, units: string): RunDescription {
    return {
      machine: describeMachine(),
      software,
      source: describeSource(),
      date: new Date().toISOString(),
      durationSeconds: Math.round((performance.now() - this.startedAt) / 1000),
      units,
    };
  }
}

/** Returns the line that opens a printed report: title, date, commit and machine. */
export function formatRunHeading(title: string, run: RunDescription): string {
  const { machine } = run;
  const memoryGiB = (machine.totalMemoryBytes / 2 ** 30).toFixed(1);
  return (
    `${title}, ${run.date}, commit ${run.source.commit.slice(0, 7)}: ` +
    `${machine.nproc} CPUs (${machine.cpuModel}), ${memoryGiB} GiB, Node.js ${machine.node}`
  );
}

/** Formats rows as columns, the first left-aligned and the rest right-aligned. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((_, column) =>
    Math.max(...[header, ...rows].map((row) => row[column].length)),
  );
  const format = (row: string[]) =>
    row
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]),
      )
      .join('  ');
  return [format(header), ...rows.map(format)].join('\n');
}

/** Formats milliseconds to the microsecond, as the results files round them. */
export function formatMs(value: number): string {
  return value.toFixed(3);
}

/**
 * Writes `results` as indented JSON to `file` through a temporary file
 * renamed over it, so that an interrupted run never leaves half a file.
 */
export function writeResults(file: string, results: object): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(results, null, 2)}\n`);
  renameSync(temporary, file);
}
