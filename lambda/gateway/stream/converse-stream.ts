import {
  ConverseStreamCommand,
  type BedrockRuntimeClient,
  type ConverseStreamOutput,
  type ConverseStreamTrace,
} from '@aws-sdk/client-bedrock-runtime';
import type {
  ContentBlock,
  ConverseMessage,
  GatewayGuardrail,
  GatewayStreamEvent,
  ModelTarget,
  Usage,
} from '../../shared/contracts';
import { ModelCallError } from '../../shared/errors';
import type { ResolvedGatewayRequest } from '../pipeline';
import type { CachePointPlan } from '../prompt-cache';
import { buildConverseInput, normalizeUsage } from '../steps/invoke-model';

/** A ConverseStream call that has delivered its first content event. */
export interface OpenedStream {
  readonly target: ModelTarget;
  /** Epoch milliseconds when the call was sent. */
  readonly startedAt: number;
  /** The first content event, or messageStop when the model generated nothing. */
  readonly first: ConverseStreamOutput;
  /** The events after `first`. */
  readonly rest: AsyncIterator<ConverseStreamOutput>;
}

/**
 * Checks whether an event begins the content. ConverseStream opens a text
 * block with its first contentBlockDelta and a toolUse block with a
 * contentBlockStart, per the ConverseStreamOutput union in the Bedrock API
 * reference:
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html
 */
function beginsContent(event: ConverseStreamOutput): boolean {
  return (
    event.contentBlockStart !== undefined ||
    event.contentBlockDelta !== undefined ||
    event.messageStop !== undefined
  );
}

/**
 * Sends ConverseStream to `target` and reads up to the first content event.
 * Events before it carry no content, and the gateway sends its own `start`,
 * so they are dropped. Any failure up to here is thrown as the SDK raised
 * it, so the caller may still fail over to another target.
 */
export async function openConverseStream(
  client: BedrockRuntimeClient,
  request: ResolvedGatewayRequest,
  target: ModelTarget,
  signal: AbortSignal,
  now: () => number,
  guardrail?: GatewayGuardrail,
  cachePoints?: CachePointPlan,
): Promise<OpenedStream> {
  const startedAt = now();
  // The guardrail's default stream processing mode is synchronous: Bedrock
  // checks each chunk before sending it, so blocked text is never streamed, per
  // https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-streaming.html
  const command = new ConverseStreamCommand(buildConverseInput(request, target, guardrail, cachePoints));
  // The SDK resolves send() only after the first event has arrived, so an
  // exception frame sent first rejects here, like an HTTP error status.
  const output = await client.send(command, { abortSignal: signal });
  const rest = output.stream?.[Symbol.asyncIterator]();
  if (rest !== undefined) {
    for (let next = await rest.next(); !next.done; next = await rest.next()) {
      if (beginsContent(next.value)) {
        return { target, startedAt, first: next.value, rest };
      }
    }
  }
  throw new ModelCallError(
    `Bedrock ConverseStream on model ${target.modelId} in ${target.region} ended before ` +
      'any content. Retry the call; if it persists, try another target.',
    request.requestId,
    'IncompleteStream',
  );
}

interface ToolUseInProgress {
  readonly toolUseId: string;
  readonly name: string;
  readonly inputParts: string[];
}

/**
 * Turns ConverseStream events into gateway stream events and keeps the
 * output message, the stop reason and the usage for the end of the call.
 */
export class StreamAssembler {
  /** Characters of text and tool input generated so far, for estimating usage. */
  outputChars = 0;
  stopReason?: string;
  usage?: Usage;
  /** Guardrail trace from the metadata event, which locates a block. */
  trace?: ConverseStreamTrace;
  private readonly blocks = new Map<number, ContentBlock>();
  private readonly toolUses = new Map<number, ToolUseInProgress>();

  constructor(
    private readonly requestId: string,
    private readonly target: ModelTarget,
  ) {}

  /** Returns the gateway events that `event` produces, usually zero or one. */
  accept(event: ConverseStreamOutput): GatewayStreamEvent[] {
    if (event.contentBlockStart?.start?.toolUse !== undefined) {
      const { toolUseId = '', name = '' } = event.contentBlockStart.start.toolUse;
      const index = event.contentBlockStart.contentBlockIndex ?? 0;
      this.toolUses.set(index, { toolUseId, name, inputParts: [] });
      return [];
    }
    if (event.contentBlockDelta !== undefined) {
      const index = event.contentBlockDelta.contentBlockIndex ?? 0;
      const delta = event.contentBlockDelta.delta;
      if (delta?.text !== undefined) {
        this.outputChars += delta.text.length;
        const block = this.blocks.get(index) as { text?: string } | undefined;
        this.blocks.set(index, { text: `${block?.text ?? ''}${delta.text}` });
        return [{ type: 'delta', index, text: delta.text }];
      }
      if (delta?.toolUse?.input !== undefined) {
        this.outputChars += delta.toolUse.input.length;
        this.toolUses.get(index)?.inputParts.push(delta.toolUse.input);
      }
      // NOTE: reasoning and citation deltas are not forwarded, so a caller
      // sees neither and the output message lacks their blocks.
      return [];
    }
    if (event.contentBlockStop !== undefined) {
      return this.finishToolUse(event.contentBlockStop.contentBlockIndex ?? 0);
    }
    if (event.messageStop !== undefined) {
      this.stopReason = event.messageStop.stopReason ?? 'unknown';
      return [{ type: 'stop', stopReason: this.stopReason }];
    }
    if (event.metadata?.usage !== undefined) {
      this.usage = normalizeUsage(event.metadata.usage);
    }
    if (event.metadata?.trace !== undefined) {
      this.trace = event.metadata.trace;
    }
    return [];
  }

  /** Returns the output message generated so far, its blocks in index order. */
  message(): ConverseMessage {
    const indexes = [...this.blocks.keys()].sort((a, b) => a - b);
    return { role: 'assistant', content: indexes.map((index) => this.blocks.get(index)!) };
  }

  private finishToolUse(index: number): GatewayStreamEvent[] {
    const toolUse = this.toolUses.get(index);
    if (toolUse === undefined) {
      return [];
    }
    this.toolUses.delete(index);
    const text = toolUse.inputParts.join('');
    let input: unknown;
    try {
      // A tool without parameters may stream no input at all.
      input = text.trim() === '' ? {} : JSON.parse(text);
    } catch (error) {
      throw new ModelCallError(
        `Bedrock ConverseStream on model ${this.target.modelId} in ${this.target.region} ` +
          `streamed tool input for ${toolUse.name} that is not valid JSON. Retry the call.`,
        this.requestId,
        'InvalidToolInput',
        { cause: error },
      );
    }
    const { toolUseId, name } = toolUse;
    this.blocks.set(index, { toolUse: { toolUseId, name, input } });
    return [{ type: 'toolUse', index, toolUseId, name, input }];
  }
}

/**
 * Feeds every event of an opened stream, the first included, through the
 * assembler and writes the gateway events it produces. Returns when the
 * stream ends, and raises IncompleteStream when it ended without messageStop.
 */
export async function pumpStream(
  opened: OpenedStream,
  assembler: StreamAssembler,
  write: (event: GatewayStreamEvent) => Promise<void>,
  requestId: string,
): Promise<void> {
  let event: ConverseStreamOutput | undefined = opened.first;
  while (event !== undefined) {
    for (const out of assembler.accept(event)) {
      await write(out);
    }
    const next: IteratorResult<ConverseStreamOutput> = await opened.rest.next();
    event = next.done ? undefined : next.value;
  }
  if (assembler.stopReason === undefined) {
    const { modelId, region } = opened.target;
    throw new ModelCallError(
      `Bedrock ConverseStream on model ${modelId} in ${region} ended without a stop ` +
        'reason, so the output is incomplete. Retry the call.',
      requestId,
      'IncompleteStream',
    );
  }
}
