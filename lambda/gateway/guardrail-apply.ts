/**
 * The guardrail for calls to targets outside the guardrail's region. Bedrock
 * finds a guardrail only in its own region, so such a Converse call must not
 * name it. The gateway checks the user's text before the call and the
 * model's text after it with ApplyGuardrail in the guardrail's region.
 *
 * Request and response shapes follow the ApplyGuardrail API reference,
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ApplyGuardrail.html
 * and ApplyGuardrailRequest and ApplyGuardrailResponse of
 * @aws-sdk/client-bedrock-runtime 3.1178.0.
 */
import {
  ApplyGuardrailCommand,
  type ApplyGuardrailCommandOutput,
  type BedrockRuntimeClient,
} from '@aws-sdk/client-bedrock-runtime';
import type {
  ContentBlock,
  ConverseMessage,
  GatewayGuardrail,
  ModelTarget,
} from '../shared/contracts';
import { ModelCallError } from '../shared/errors';
import { guardrailBlockedError, interventions } from './guardrail';
import type { ResolvedGatewayRequest } from './pipeline';
import { asSentence } from './target-errors';

/** Checks whether a call to `target` names the guardrail in its `guardrailConfig`. */
export function namesGuardrailInline(
  guardrail: GatewayGuardrail | undefined,
  target: ModelTarget,
): boolean {
  return guardrail === undefined || guardrail.region === target.region;
}

/** Side of the call that ApplyGuardrail checks. */
export type GuardrailSource = 'INPUT' | 'OUTPUT';

/** Settings of {@link applyGuardrail}. */
export interface ApplyGuardrailOptions {
  /** Bedrock client of the guardrail's region. */
  readonly client: BedrockRuntimeClient;
  readonly guardrail: GatewayGuardrail;
  readonly source: GuardrailSource;
  /** Texts to check, each sent as one content block. */
  readonly texts: readonly string[];
  /** The model call the texts belong to, named in errors. */
  readonly target: ModelTarget;
  readonly requestId: string;
  readonly signal: AbortSignal;
  /**
   * Accepts a result that only masked text, and returns the masked texts.
   * When false, a masking result is raised as a block.
   */
  readonly acceptMasked: boolean;
}

/** Acts on the content in a way that stops it, which is every action but NONE and ANONYMIZED. */
export function blocks(entry: { action?: string }): boolean {
  return entry.action !== undefined && entry.action !== 'NONE' && entry.action !== 'ANONYMIZED';
}

/** Masks the content, which is the ANONYMIZED action of a sensitive information policy. */
export function masks(entry: { action?: string }): boolean {
  return entry.action === 'ANONYMIZED';
}

/**
 * Sends one ApplyGuardrail call with each text as a content block. A failure
 * raises ModelCallError with code GuardrailCheckFailed, unless `signal`
 * aborted the call, in which case the SDK's error is raised unchanged.
 */
export async function sendApplyGuardrail(
  options: Omit<ApplyGuardrailOptions, 'acceptMasked'>,
): Promise<ApplyGuardrailCommandOutput> {
  const { client, guardrail, source, texts, target, requestId, signal } = options;
  const command = new ApplyGuardrailCommand({
    guardrailIdentifier: guardrail.id,
    guardrailVersion: guardrail.version,
    source,
    content: texts.map((text) => ({ text: { text } })),
  });
  try {
    return await client.send(command, { abortSignal: signal });
  } catch (error) {
    if (signal.aborted) {
      throw error;
    }
    const { name, message } = error as Error;
    const side = source === 'INPUT' ? 'input' : 'output';
    // The errorCode is the gateway's own, so that the failover loop ends the
    // call: the next target would need the same guardrail check.
    throw new ModelCallError(
      `Bedrock ApplyGuardrail with guardrail ${guardrail.id} version ${guardrail.version} in ` +
        `${guardrail.region} failed for the ${side} of the call to model ${target.modelId} in ` +
        `${target.region}: ${name}: ${asSentence(message)} Retry the call. If it persists, check that the ` +
        "guardrail exists in that region and that the gateway role may apply it.",
      requestId,
      'GuardrailCheckFailed',
      { cause: error },
    );
  }
}

/**
 * Applies the guardrail to `texts` and returns them unchanged when it let
 * them pass, or the guardrail's masked texts when it only anonymized them.
 * Any other intervention raises GuardrailBlockedError naming the policies.
 */
export async function applyGuardrail(options: ApplyGuardrailOptions): Promise<string[]> {
  const { guardrail, source, texts, target, requestId } = options;
  if (texts.length === 0) {
    return [];
  }
  const output = await sendApplyGuardrail(options);
  if (output.action !== 'GUARDRAIL_INTERVENED') {
    return [...texts];
  }
  const assessments = output.assessments ?? [];
  const blocking = assessments.flatMap((assessment) => interventions(assessment, blocks));
  const masking = assessments.flatMap((assessment) => interventions(assessment, masks));
  const outputs = output.outputs ?? [];
  // NOTE: the masked texts replace the checked ones by position, which assumes
  // one output per content block. Any other count is raised as a block,
  // because the unmasked text must not pass.
  const maskedOnly = blocking.length === 0 && masking.length > 0;
  if (options.acceptMasked && maskedOnly && outputs.length === texts.length) {
    return outputs.map((entry) => entry.text ?? '');
  }
  const layer = source === 'INPUT' ? 'guardrail input' : 'guardrail output';
  const policies = blocking.length > 0 ? blocking : masking;
  throw guardrailBlockedError(guardrail, target, requestId, layer, policies);
}

/** Returns the text of each `text` block, in order. */
function textsOf(content: readonly ContentBlock[]): string[] {
  return content.flatMap((block) => (typeof block.text === 'string' ? [block.text] : []));
}

/** Returns `content` with its text blocks replaced, in order, by `texts`. */
function replaceTexts(content: readonly ContentBlock[], texts: readonly string[]): ContentBlock[] {
  let next = 0;
  return content.map((block) => (typeof block.text === 'string' ? { text: texts[next++] } : block));
}

/**
 * The guardrail checks of one request for targets outside the guardrail's
 * region. The input is checked once per request, on the first such target,
 * and the result is reused when the call fails over to another one.
 */
export class CrossRegionGuardrail {
  private checkedRequest?: ResolvedGatewayRequest;

  constructor(
    private readonly client: BedrockRuntimeClient,
    private readonly guardrail: GatewayGuardrail,
    private readonly request: ResolvedGatewayRequest,
    private readonly requestId: string,
  ) {}

  /**
   * Checks the text blocks of the user's messages and returns the request
   * to send, with masked text where the guardrail anonymized it. The system
   * prompt is not checked, as Converse does not check it without guardContent.
   */
  async checkInput(target: ModelTarget, signal: AbortSignal): Promise<ResolvedGatewayRequest> {
    if (this.checkedRequest !== undefined) {
      return this.checkedRequest;
    }
    const userMessages = this.request.messages.filter((message) => message.role === 'user');
    const texts = await applyGuardrail({
      client: this.client,
      guardrail: this.guardrail,
      source: 'INPUT',
      texts: userMessages.flatMap((message) => textsOf(message.content)),
      target,
      requestId: this.requestId,
      signal,
      acceptMasked: true,
    });
    let next = 0;
    const messages = this.request.messages.map((message) => {
      if (message.role !== 'user') {
        return message;
      }
      const count = textsOf(message.content).length;
      const content = replaceTexts(message.content, texts.slice(next, next + count));
      next += count;
      return { ...message, content };
    });
    this.checkedRequest = { ...this.request, messages };
    return this.checkedRequest;
  }

  /**
   * Checks the text blocks of the model's message and returns it, with
   * masked text where the guardrail anonymized it and `acceptMasked` is set.
   */
  async checkOutput(
    message: ConverseMessage,
    target: ModelTarget,
    signal: AbortSignal,
    acceptMasked: boolean,
  ): Promise<ConverseMessage> {
    const texts = await applyGuardrail({
      client: this.client,
      guardrail: this.guardrail,
      source: 'OUTPUT',
      texts: textsOf(message.content),
      target,
      requestId: this.requestId,
      signal,
      acceptMasked,
    });
    return { ...message, content: replaceTexts(message.content, texts) };
  }
}

/**
 * Creates the cross-region checks of one request, or returns undefined when
 * no guardrail is configured or no target of the route is outside its region.
 */
export function createCrossRegionGuardrail(
  clientForRegion: (region: string) => BedrockRuntimeClient,
  guardrail: GatewayGuardrail | undefined,
  route: readonly ModelTarget[],
  request: ResolvedGatewayRequest,
  requestId: string,
): CrossRegionGuardrail | undefined {
  if (guardrail === undefined) {
    return undefined;
  }
  if (route.every((target) => namesGuardrailInline(guardrail, target))) {
    return undefined;
  }
  const client = clientForRegion(guardrail.region);
  return new CrossRegionGuardrail(client, guardrail, request, requestId);
}
