/**
 * Model client that streams: it invokes the ModelGateway function with
 * InvokeWithResponseStream and hands each event to a listener as it arrives,
 * so a realtime caller sees tokens while the model still generates them.
 */
import {
  InvokeWithResponseStreamCommand,
  type InvokeWithResponseStreamCompleteEvent,
  type InvokeWithResponseStreamResponseEvent,
  type LambdaClient,
} from '@aws-sdk/client-lambda';
import type { GatewayRequest, GatewayResponse, GatewayStreamRequest } from '../shared/contracts';
import { AgentStackError, ModelCallError } from '../shared/errors';
import { isAbortError } from './errors';
import { GatewayModelClient, type ModelClient, type ModelStreamListener } from './model-client';
import { LineDecoder, StreamResponseAssembler, parseStreamEvent } from './stream-reader';

/**
 * {@link ModelClient} that streams when a listener is given and makes a
 * buffered Invoke call otherwise, so that background tasks, which pass no
 * listener, keep the simpler call.
 */
export class StreamingGatewayModelClient implements ModelClient {
  private readonly buffered: GatewayModelClient;

  constructor(
    private readonly lambda: LambdaClient,
    private readonly functionName: string,
  ) {
    this.buffered = new GatewayModelClient(lambda, functionName);
  }

  converse(
    request: GatewayRequest,
    signal?: AbortSignal,
    listener?: ModelStreamListener,
  ): Promise<GatewayResponse> {
    return listener === undefined
      ? this.buffered.converse(request, signal)
      : this.converseStream(request, listener, signal);
  }

  /**
   * Streams one model call. Resolves with the assembled response once the
   * gateway's `usage` event arrived, and raises the gateway's typed error
   * when it streamed an `error` event or the invocation failed.
   */
  async converseStream(
    request: GatewayRequest,
    listener: ModelStreamListener,
    signal?: AbortSignal,
  ): Promise<GatewayResponse> {
    const payload: GatewayStreamRequest = { ...request, stream: true };
    // InvokeWithResponseStream needs only lambda:InvokeFunction, per
    // https://docs.aws.amazon.com/lambda/latest/api/API_InvokeWithResponseStream.html
    const command = new InvokeWithResponseStreamCommand({
      FunctionName: this.functionName,
      Payload: Buffer.from(JSON.stringify(payload)),
    });
    const lines = new LineDecoder();
    const assembler = new StreamResponseAssembler(request.requestId);
    const deliver = (line: string) => {
      const event = parseStreamEvent(line, request.requestId);
      if (event !== undefined) {
        assembler.accept(event);
        listener(event);
      }
    };

    // Aborted in `finally`, so that a stream left unread never keeps its connection open.
    const call = new AbortController();
    const callSignal = signal === undefined ? call.signal : AbortSignal.any([signal, call.signal]);
    let complete: InvokeWithResponseStreamCompleteEvent | undefined;
    try {
      // The SDK resolves send() once the first event has arrived.
      const output = await this.lambda.send(command, { abortSignal: callSignal });
      const events: AsyncIterable<InvokeWithResponseStreamResponseEvent> | undefined =
        output.EventStream;
      for await (const event of events ?? []) {
        if (event.PayloadChunk?.Payload !== undefined) {
          lines.push(event.PayloadChunk.Payload).forEach(deliver);
        }
        if (event.InvokeComplete !== undefined) {
          complete = event.InvokeComplete;
        }
        // The gateway settles the budget after the last event, and the
        // response does not wait for that write.
        if (assembler.complete) {
          break;
        }
      }
      if (!assembler.complete) {
        lines.end().forEach(deliver);
      }
    } catch (error) {
      if (isAbortError(error) || error instanceof AgentStackError) throw error;
      throw new ModelCallError(
        `Streaming from the gateway function ${this.functionName} failed: ` +
          `${(error as Error).message}. Check that the function exists and the task role ` +
          'may invoke it.',
        request.requestId,
        (error as Error).name,
        { cause: error },
      );
    } finally {
      call.abort();
    }

    if (complete?.ErrorCode) {
      throw new ModelCallError(
        `The gateway function ${this.functionName} failed (${complete.ErrorCode}): ` +
          `${complete.ErrorDetails ?? 'no error details'}. Its logs carry request id ` +
          `${request.requestId}.`,
        request.requestId,
        'GatewayFunctionError',
      );
    }
    return assembler.response();
  }
}
