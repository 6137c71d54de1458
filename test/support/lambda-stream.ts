/**
 * Response streaming half of the loopback Lambda server: the
 * InvokeWithResponseStream body as AWS event-stream frames, encoded with
 * the SDK's own `@smithy/eventstream-codec` so that the real
 * `@aws-sdk/client-lambda` decodes them.
 *
 * The wire format follows the SDK's schema for the operation in
 * @aws-sdk/client-lambda 3.1178.0: a `PayloadChunk` event whose body is the
 * raw payload bytes, and an `InvokeComplete` event whose JSON body has
 * `ErrorCode`, `ErrorDetails` and `LogResult`. The function's content type
 * travels in the HTTP Content-Type header, as ResponseStreamContentType.
 */
import { randomUUID } from 'crypto';
import type { ServerResponse } from 'http';
import { Writable } from 'stream';
import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';

/**
 * A handler in the shape that Lambda's `awslambda.streamifyResponse` wraps:
 * it writes its response to `responseStream` and ends it. The event is typed
 * `never` so that handlers declared with their own event type can be registered.
 */
export type LocalStreamingHandler<Context> = (
  event: never,
  responseStream: Writable,
  context: Context,
) => Promise<void>;

/** Fields of the InvokeComplete event. */
export interface InvokeCompleteFields {
  readonly ErrorCode?: string;
  readonly ErrorDetails?: string;
  readonly LogResult?: string;
}

const codec = new EventStreamCodec(toUtf8, fromUtf8);

function eventFrame(eventType: string, contentType: string, body: Uint8Array): Uint8Array {
  const headers: MessageHeaders = {
    ':message-type': { type: 'string', value: 'event' },
    ':event-type': { type: 'string', value: eventType },
    ':content-type': { type: 'string', value: contentType },
  };
  return codec.encode({ headers, body });
}

/** Encodes one PayloadChunk event carrying `payload` as its body. */
export function encodePayloadChunk(payload: Uint8Array): Uint8Array {
  return eventFrame('PayloadChunk', 'application/octet-stream', payload);
}

/** Encodes the InvokeComplete event that ends every stream, with an error code on failure. */
export function encodeInvokeComplete(fields: InvokeCompleteFields): Uint8Array {
  return eventFrame('InvokeComplete', 'application/json', fromUtf8(JSON.stringify(fields)));
}

/** Options of one streamed invocation. */
export interface StreamedInvocationOptions {
  /**
   * Largest payload per PayloadChunk. Smaller chunks split the function's
   * writes, which tests use to check that a reader joins lines across chunks.
   * @default - one PayloadChunk per write
   */
  readonly maxChunkBytes?: number;
}

/**
 * Sends the response of one InvokeWithResponseStream call: status 200, one
 * PayloadChunk per write of `run`'s Writable, then InvokeComplete. When
 * `run` rejects, InvokeComplete carries `Unhandled` and the error, like a
 * function error. A client that disconnects destroys the Writable.
 */
export async function serveStreamedInvocation(
  res: ServerResponse,
  run: (responseStream: Writable) => Promise<void>,
  options: StreamedInvocationOptions = {},
): Promise<{ error?: Error }> {
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'x-amzn-requestid': randomUUID(),
    'x-amz-executed-version': '$LATEST',
  });
  res.flushHeaders();

  const send = (frame: Uint8Array, done: (error?: Error | null) => void) => {
    if (res.destroyed) {
      done(new Error('The invoking client closed the connection.'));
      return;
    }
    res.write(frame, done);
  };
  const responseStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const size = options.maxChunkBytes ?? chunk.length;
      const parts: Buffer[] = [];
      for (let offset = 0; offset < chunk.length; offset += Math.max(1, size)) {
        parts.push(chunk.subarray(offset, offset + Math.max(1, size)));
      }
      const sendNext = (index: number) => {
        if (index >= parts.length) {
          done();
          return;
        }
        send(encodePayloadChunk(parts[index]), (error) =>
          error ? done(error) : sendNext(index + 1),
        );
      };
      sendNext(0);
    },
  });
  // NOTE: the Lambda documentation does not say whether a running function
  // learns that its invoker disconnected, so this propagation is the loopback
  // server's choice.
  res.once('close', () => {
    if (!responseStream.writableFinished) {
      responseStream.destroy();
    }
  });
  responseStream.on('error', () => undefined);

  let failure: Error | undefined;
  try {
    await run(responseStream);
    if (!responseStream.writableFinished && !responseStream.destroyed) {
      throw new Error('The streaming handler returned before it ended its response stream.');
    }
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
  }
  if (!res.destroyed) {
    const complete =
      failure === undefined
        ? {}
        : { ErrorCode: 'Unhandled', ErrorDetails: `${failure.name}: ${failure.message}` };
    res.end(encodeInvokeComplete(complete));
  }
  return { error: failure };
}

/**
 * Sends a buffered handler's result through InvokeWithResponseStream: its
 * JSON as one PayloadChunk, then InvokeComplete, which carries `Unhandled`
 * when `run` rejects.
 */
export async function serveResultAsStream(
  res: ServerResponse,
  run: () => Promise<unknown>,
): Promise<{ error?: Error }> {
  // NOTE: the Lambda documentation does not say how InvokeWithResponseStream
  // returns a function that is not streamified; this server sends one chunk.
  let value: unknown;
  let failure: Error | undefined;
  try {
    value = await run();
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
  }
  res.writeHead(200, {
    'content-type': 'application/json',
    'x-amzn-requestid': randomUUID(),
    'x-amz-executed-version': '$LATEST',
  });
  if (failure === undefined) {
    // Lambda serializes an undefined result as null.
    res.write(encodePayloadChunk(Buffer.from(JSON.stringify(value ?? null))));
    res.end(encodeInvokeComplete({}));
  } else {
    const details = `${failure.name}: ${failure.message}`;
    res.end(encodeInvokeComplete({ ErrorCode: 'Unhandled', ErrorDetails: details }));
  }
  return { error: failure };
}
