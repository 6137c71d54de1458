/**
 * Reading side of the gateway's streamed response: newline-delimited JSON
 * events, split across payload chunks at arbitrary bytes, assembled into
 * the same GatewayResponse that a buffered call returns.
 */
import type {
  ContentBlock,
  GatewayResponse,
  GatewayStreamEvent,
  ModelTarget,
  StreamUsage,
} from '../shared/contracts';
import { ModelCallError, errorFromResponse } from '../shared/errors';

/**
 * Splits a byte stream into lines. A UTF-8 character or a line may span two
 * chunks, so the decoder keeps the incomplete tail until the next chunk.
 */
export class LineDecoder {
  private readonly decoder = new TextDecoder('utf-8');
  private tail = '';

  /** Returns the complete lines in `bytes` and keeps the rest. */
  push(bytes: Uint8Array): string[] {
    const text = this.tail + this.decoder.decode(bytes, { stream: true });
    const lines = text.split('\n');
    this.tail = lines.pop() ?? '';
    return lines.filter((line) => line.trim() !== '');
  }

  /** Returns the last line when the stream ended without a newline after it. */
  end(): string[] {
    const rest = this.tail + this.decoder.decode();
    this.tail = '';
    return rest.trim() === '' ? [] : [rest];
  }
}

const EVENT_TYPES = new Set(['start', 'delta', 'toolUse', 'stop', 'usage', 'error']);

/** Parses one line into an event, raising ModelCallError when it is not one. */
export function parseStreamEvent(line: string, requestId: string): GatewayStreamEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new ModelCallError(
      `The gateway streamed a line that is not JSON for request ${requestId}. Check that it ` +
        'runs the same package version as the worker.',
      requestId,
      'InvalidGatewayResponse',
      { cause: error },
    );
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== 'string') {
    throw new ModelCallError(
      `The gateway streamed an event without a type for request ${requestId}. Check that it ` +
        'runs the same package version as the worker.',
      requestId,
      'InvalidGatewayResponse',
    );
  }
  // An event type newer than this worker is skipped, so that the gateway can add one.
  return EVENT_TYPES.has(type) ? (value as GatewayStreamEvent) : undefined;
}

/** Collects stream events into the response a buffered call would have returned. */
export class StreamResponseAssembler {
  private readonly blocks = new Map<number, ContentBlock>();
  private target?: ModelTarget;
  private stopReason?: string;
  private usage?: StreamUsage;
  private latencyMs = 0;
  private error?: Extract<GatewayStreamEvent, { type: 'error' }>;

  constructor(private readonly requestId: string) {}

  /** True once the stream's last event, `usage` or `error`, has arrived. */
  get complete(): boolean {
    return this.usage !== undefined || this.error !== undefined;
  }

  accept(event: GatewayStreamEvent): void {
    switch (event.type) {
      case 'start':
        this.target = event.target;
        break;
      case 'delta': {
        const text = (this.blocks.get(event.index)?.text as string | undefined) ?? '';
        this.blocks.set(event.index, { text: text + event.text });
        break;
      }
      case 'toolUse': {
        const { toolUseId, name, input } = event;
        this.blocks.set(event.index, { toolUse: { toolUseId, name, input } });
        break;
      }
      case 'stop':
        this.stopReason = event.stopReason;
        break;
      case 'usage':
        this.usage = event.usage;
        this.latencyMs = event.latencyMs;
        break;
      case 'error':
        this.error = event;
        break;
    }
  }

  /**
   * Returns the assembled response, or raises the typed error the gateway
   * streamed, or ModelCallError when the stream ended before its last event.
   */
  response(): GatewayResponse {
    if (this.error !== undefined) {
      throw errorFromResponse(this.error.error, this.requestId);
    }
    if (this.target === undefined || this.stopReason === undefined || this.usage === undefined) {
      throw new ModelCallError(
        `The gateway's stream for request ${this.requestId} ended before its usage event, so ` +
          'the model output is incomplete. Retry the call.',
        this.requestId,
        'IncompleteGatewayStream',
      );
    }
    const indexes = [...this.blocks.keys()].sort((a, b) => a - b);
    const { inputTokens, outputTokens, totalTokens, cacheReadInputTokens, cacheWriteInputTokens } = this.usage;
    return {
      ok: true,
      requestId: this.requestId,
      output: { role: 'assistant', content: indexes.map((index) => this.blocks.get(index)!) },
      stopReason: this.stopReason,
      usage: {
        inputTokens,
        outputTokens,
        totalTokens,
        ...(cacheReadInputTokens === undefined ? {} : { cacheReadInputTokens }),
        ...(cacheWriteInputTokens === undefined ? {} : { cacheWriteInputTokens }),
      },
      target: this.target,
      latencyMs: this.latencyMs,
    };
  }
}
