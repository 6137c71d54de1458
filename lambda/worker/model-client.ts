/**
 * Model access for the agent loop. The worker has no Bedrock permission, so
 * every call goes through the ModelGateway function, which enforces budgets
 * and guardrails before it reaches a model.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  GatewayErrorResponse,
  GatewayRequest,
  GatewayResponse,
  GatewayStreamEvent,
} from '../shared/contracts';
import { AgentStackError, ModelCallError, errorFromResponse } from '../shared/errors';
import { isAbortError } from './errors';

/** Receives the events of a streamed model call as they arrive. */
export type ModelStreamListener = (event: GatewayStreamEvent) => void;

/**
 * Sends one Converse request and returns the model's turn. A client that
 * can stream passes the events to `listener` while the turn is generated;
 * one that cannot ignores it.
 */
export interface ModelClient {
  converse(
    request: GatewayRequest,
    signal?: AbortSignal,
    listener?: ModelStreamListener,
  ): Promise<GatewayResponse>;
}

/** Decodes a Lambda response payload; an empty payload decodes to undefined. */
export function decodePayload(payload: Uint8Array | undefined): unknown {
  const text = payload ? Buffer.from(payload).toString('utf8') : '';
  return text === '' ? undefined : JSON.parse(text);
}

/** Reads `errorMessage` from the payload Lambda returns for a thrown handler. */
export function functionErrorMessage(payload: unknown): string {
  if (payload && typeof payload === 'object' && 'errorMessage' in payload) {
    return String((payload as { errorMessage: unknown }).errorMessage);
  }
  return 'no error message in the payload';
}

function isGatewayResponse(value: unknown): value is GatewayResponse | GatewayErrorResponse {
  if (!value || typeof value !== 'object') return false;
  const body = value as Record<string, unknown>;
  if (body.ok === false) {
    const error = body.error as Record<string, unknown> | undefined;
    return typeof error?.name === 'string' && typeof error.message === 'string';
  }
  const output = body.output as Record<string, unknown> | undefined;
  const usage = body.usage as Record<string, unknown> | undefined;
  return (
    body.ok === true &&
    output?.role === 'assistant' &&
    Array.isArray(output.content) &&
    typeof body.stopReason === 'string' &&
    typeof usage?.totalTokens === 'number'
  );
}

/** {@link ModelClient} that invokes the ModelGateway Lambda function. */
export class GatewayModelClient implements ModelClient {
  constructor(
    private readonly lambda: LambdaClient,
    private readonly functionName: string,
  ) {}

  async converse(request: GatewayRequest, signal?: AbortSignal): Promise<GatewayResponse> {
    const command = new InvokeCommand({
      FunctionName: this.functionName,
      Payload: Buffer.from(JSON.stringify(request)),
    });

    let payload: unknown;
    let functionError: string | undefined;
    try {
      const response = await this.lambda.send(command, { abortSignal: signal });
      functionError = response.FunctionError;
      payload = decodePayload(response.Payload);
    } catch (error) {
      if (isAbortError(error) || error instanceof AgentStackError) throw error;
      throw new ModelCallError(
        `Invoking the gateway function ${this.functionName} failed: ${(error as Error).message}. ` +
          'Check that the function exists and the task role may invoke it.',
        request.requestId,
        (error as Error).name,
        { cause: error },
      );
    }

    if (functionError) {
      throw new ModelCallError(
        `The gateway function ${this.functionName} failed (${functionError}): ` +
          `${functionErrorMessage(payload)}. Its logs carry request id ${request.requestId}.`,
        request.requestId,
        'GatewayFunctionError',
      );
    }
    if (!isGatewayResponse(payload)) {
      throw new ModelCallError(
        `The gateway function ${this.functionName} returned a payload that is not a ` +
          'gateway response; check that it runs the same package version as the worker.',
        request.requestId,
        'InvalidGatewayResponse',
      );
    }
    if (!payload.ok) {
      throw errorFromResponse(payload.error, request.requestId);
    }
    return payload;
  }
}
