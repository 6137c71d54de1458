import type { Writable } from 'node:stream';
import { GATEWAY_STREAM_CONTENT_TYPE } from '../../shared/contracts';
import type { GatewayHandler, GatewayLambdaContext } from '../handler';
import type { GatewayStreamHandler } from './handler';

/** The response stream that Lambda passes to a streaming handler. */
export interface LambdaResponseStream extends Writable {
  /** Sets the content type, which InvokeWithResponseStream returns as ResponseStreamContentType. */
  setContentType?(contentType: string): void;
}

/** A handler in the shape that `awslambda.streamifyResponse` wraps. */
export type ResponseStreamHandler = (
  event: unknown,
  responseStream: LambdaResponseStream,
  context?: GatewayLambdaContext,
) => Promise<void>;

/** The part of the `awslambda` global of Lambda's Node.js runtimes that the gateway uses. */
export interface LambdaStreamingRuntime {
  streamifyResponse(handler: ResponseStreamHandler): unknown;
}

/** Checks whether a payload requests a streamed response with `stream: true`. */
export function isStreamRequest(event: unknown): boolean {
  return (
    event !== null &&
    typeof event === 'object' &&
    (event as { stream?: unknown }).stream === true
  );
}

/**
 * Creates the streaming handler body that serves both kinds of request. A
 * `stream: true` request gets newline-delimited events. Any other request
 * gets the buffered handler's one JSON result, written whole, so a plain
 * Invoke still returns a GatewayResponse: Lambda buffers the stream of a
 * streaming function called with Invoke, per
 * https://docs.aws.amazon.com/lambda/latest/dg/config-rs-invoke-furls.html
 * ("You can still invoke your function without response streaming by
 * directly calling the Invoke API operation").
 */
export function createResponseStreamHandler(
  buffered: GatewayHandler,
  streamed: GatewayStreamHandler,
): ResponseStreamHandler {
  return async (event, responseStream, context) => {
    if (isStreamRequest(event)) {
      responseStream.setContentType?.(GATEWAY_STREAM_CONTENT_TYPE);
      await streamed(event, responseStream, context);
      return;
    }
    responseStream.setContentType?.('application/json');
    const result = await buffered(event, context);
    // Lambda reports a streaming handler that returns before its stream ended as failed.
    await new Promise<void>((resolve) => {
      responseStream.once('close', resolve);
      responseStream.end(JSON.stringify(result), () => resolve());
    });
  };
}

/** Returns the `awslambda` global when the process runs in a Lambda Node.js runtime. */
export function lambdaStreamingRuntime(): LambdaStreamingRuntime | undefined {
  const runtime = (globalThis as { awslambda?: Partial<LambdaStreamingRuntime> }).awslambda;
  return typeof runtime?.streamifyResponse === 'function'
    ? (runtime as LambdaStreamingRuntime)
    : undefined;
}

/**
 * Returns the gateway's Lambda entry point. Lambda's Node.js runtimes
 * provide the `awslambda` global, whose streamifyResponse marks a handler
 * as streaming, per
 * https://docs.aws.amazon.com/lambda/latest/dg/config-rs-write-functions.html
 * There the entry point serves buffered and streamed requests alike.
 * Elsewhere, such as in tests, it is the buffered handler, unchanged.
 */
export function selectLambdaEntry(
  buffered: GatewayHandler,
  streamed: GatewayStreamHandler,
  runtime: LambdaStreamingRuntime | undefined = lambdaStreamingRuntime(),
): GatewayHandler {
  if (runtime === undefined) {
    return buffered;
  }
  // The runtime calls the marked handler as (event, responseStream, context),
  // so the GatewayHandler type holds only outside Lambda, where no caller uses it.
  const streaming = createResponseStreamHandler(buffered, streamed);
  return runtime.streamifyResponse(streaming) as GatewayHandler;
}
