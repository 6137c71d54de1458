/**
 * Structured logger for the runtime: one JSON object per line on stdout,
 * with fixed keys so that CloudWatch Logs Insights can query them.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys every line of one request carries. */
export interface LogContext {
  requestId?: string;
  agent?: string;
  user?: string;
  session?: string;
  [key: string]: unknown;
}

/** Destination of log lines. Tests pass an array-backed sink. */
export type LogSink = (line: string) => void;

function errorFields(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    return { errorName: error.name, errorMessage: error.message };
  }
  return { errorMessage: String(error) };
}

export class Logger {
  private static coldStart = true;
  private readonly minLevel: number;

  constructor(
    private readonly context: LogContext = {},
    private readonly options: { level?: LogLevel; sink?: LogSink; service?: string } = {},
  ) {
    const fromEnv = (process.env.LOG_LEVEL ?? '').toLowerCase() as LogLevel;
    this.minLevel = LEVEL_ORDER[options.level ?? fromEnv] ?? LEVEL_ORDER.info;
  }

  /** Returns a logger that adds `extra` to every line. */
  child(extra: LogContext): Logger {
    return new Logger({ ...this.context, ...extra }, this.options);
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    this.write('debug', message, fields);
  }

  info(message: string, fields?: Record<string, unknown>): void {
    this.write('info', message, fields);
  }

  warn(message: string, fields?: Record<string, unknown>, error?: unknown): void {
    this.write('warn', message, error === undefined ? fields : { ...fields, ...errorFields(error) });
  }

  error(message: string, fields?: Record<string, unknown>, error?: unknown): void {
    this.write('error', message, error === undefined ? fields : { ...fields, ...errorFields(error) });
  }

  private write(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (LEVEL_ORDER[level] < this.minLevel) return;
    const coldStart = Logger.coldStart;
    Logger.coldStart = false;
    const line = JSON.stringify({
      timestamp: new Date().toISOString(),
      level,
      message,
      service: this.options.service ?? process.env.AGENT_SERVICE_NAME,
      coldStart,
      ...this.context,
      ...fields,
    });
    (this.options.sink ?? ((text: string) => process.stdout.write(`${text}\n`)))(line);
  }
}
