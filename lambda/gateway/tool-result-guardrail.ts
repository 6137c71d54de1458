/**
 * ApplyGuardrail on tool results. A guardrail named in a Converse call
 * evaluates the messages but not tool results. The input guard therefore
 * sends the text of results that may carry outside data to ApplyGuardrail
 * with source INPUT, in the guardrail's own region, before they reach the model.
 *
 * Request and response shapes follow the ApplyGuardrail API reference,
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ApplyGuardrail.html
 * One call carries a list of text content blocks and returns one `action`
 * for all of them, so a block cannot be told apart from the others in its
 * call. Guardrails count text in text units of up to 1,000 characters, per
 * policy. In most regions the default quota of the content filter policy is
 * 25 text units per second and 25 calls per second, and 200 units and 50
 * calls in us-east-1 and us-west-2 (Service Quotas codes L-01F3CD81 and
 * L-9072D6F0 of Amazon Bedrock).
 */
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { GatewayGuardrail, ModelTarget } from '../shared/contracts';
import { GuardrailBlockedError } from '../shared/errors';
import { interventions } from './guardrail';
import { blocks, masks, sendApplyGuardrail } from './guardrail-apply';
import type { ToolResultEntry } from './tool-results';

/**
 * Characters sent in one ApplyGuardrail call: 25 text units, the default
 * per-second quota of the content filter policy in most regions, so that
 * one call never needs more than a second of that quota.
 */
// NOTE: the API reference names no maximum size of one request, which a
// request over it learns from a ValidationException. 25,000 characters is
// an estimate chosen to stay within the quota above.
export const MAX_GUARDRAIL_CALL_CHARS = 25_000;

/**
 * Characters that consecutive pieces of a text longer than one call share,
 * so that an instruction cut at a piece boundary is whole in one of them.
 */
export const GUARDRAIL_PIECE_OVERLAP_CHARS = 1_000;

/** One ApplyGuardrail call: its texts, and the tool results they came from. */
interface GuardrailBatch {
  readonly texts: string[];
  readonly entries: ToolResultEntry[];
  chars: number;
}

/** Splits a text longer than one call into overlapping pieces of at most one call. */
export function splitForGuardrail(text: string): string[] {
  if (text.length <= MAX_GUARDRAIL_CALL_CHARS) {
    return [text];
  }
  const pieces: string[] = [];
  const stride = MAX_GUARDRAIL_CALL_CHARS - GUARDRAIL_PIECE_OVERLAP_CHARS;
  for (let start = 0; start < text.length; start += stride) {
    pieces.push(text.slice(start, start + MAX_GUARDRAIL_CALL_CHARS));
    if (start + MAX_GUARDRAIL_CALL_CHARS >= text.length) {
      break;
    }
  }
  return pieces;
}

/** Packs the non-empty texts of `entries` into calls of at most {@link MAX_GUARDRAIL_CALL_CHARS}. */
export function batchToolResults(entries: readonly ToolResultEntry[]): GuardrailBatch[] {
  const batches: GuardrailBatch[] = [];
  let current: GuardrailBatch = { texts: [], entries: [], chars: 0 };
  for (const entry of entries) {
    const pieces = entry.texts.filter((text) => text.trim() !== '').flatMap(splitForGuardrail);
    for (const piece of pieces) {
      if (current.chars + piece.length > MAX_GUARDRAIL_CALL_CHARS && current.texts.length > 0) {
        batches.push(current);
        current = { texts: [], entries: [], chars: 0 };
      }
      current.texts.push(piece);
      current.chars += piece.length;
      if (!current.entries.includes(entry)) {
        current.entries.push(entry);
      }
    }
  }
  if (current.texts.length > 0) {
    batches.push(current);
  }
  return batches;
}

/** Settings of {@link findGuardrailToolResultBlock}. */
export interface ToolResultGuardrailOptions {
  /** Bedrock client of the guardrail's region. */
  readonly client: BedrockRuntimeClient;
  readonly guardrail: GatewayGuardrail;
  readonly entries: readonly ToolResultEntry[];
  /** The model call the results are for, named in errors; the route's first target. */
  readonly target: ModelTarget;
  readonly requestId: string;
  readonly signal: AbortSignal;
}

/** Names the tool results of a batch for a message, such as `tool fetch_page (toolUseId tu-1)`. */
export function describeToolResults(entries: readonly ToolResultEntry[]): string {
  const names = entries.map((entry) => `${entry.tool} (toolUseId ${entry.toolUseId})`);
  return `${entries.length === 1 ? 'tool' : 'tools'} ${names.join(', ')}`;
}

/** A block of tool results by the guardrail, and the results of the call it blocked. */
export interface ToolResultBlock {
  readonly error: GuardrailBlockedError;
  readonly entries: readonly ToolResultEntry[];
}

/**
 * Sends the results' texts to ApplyGuardrail, one call per batch, in order,
 * and returns a GuardrailBlockedError with layer `tool result` for the first
 * batch in which the guardrail intervened, or undefined when none did. A
 * failed call raises ModelCallError (see sendApplyGuardrail). A result that the guardrail only
 * masked, such as one with an email address under an anonymizing PII
 * policy, passes unchanged, because this check looks for instructions and
 * the tool's data stays as the tool returned it. An intervention whose
 * assessments name no policy is raised as a block, as applyGuardrail does.
 */
export async function findGuardrailToolResultBlock(
  options: ToolResultGuardrailOptions,
): Promise<ToolResultBlock | undefined> {
  const { guardrail, requestId } = options;
  for (const batch of batchToolResults(options.entries)) {
    const output = await sendApplyGuardrail({ ...options, source: 'INPUT', texts: batch.texts });
    if (output.action !== 'GUARDRAIL_INTERVENED') {
      continue;
    }
    const assessments = output.assessments ?? [];
    const blocking = assessments.flatMap((assessment) => interventions(assessment, blocks));
    const masking = assessments.flatMap((assessment) => interventions(assessment, masks));
    if (blocking.length === 0 && masking.length > 0) {
      continue;
    }
    const policy = blocking.length === 0 ? undefined : [...new Set(blocking)].join(', ');
    const firedBy = policy === undefined ? ', and its assessments name no policy' : ` (${policy})`;
    const error = new GuardrailBlockedError(
      `Guardrail ${guardrail.id} version ${guardrail.version} blocked the result of ` +
        `${describeToolResults(batch.entries)}${firedBy}, so request ${requestId} was not sent to a ` +
        'model. The result may carry instructions from outside data: leave it out of the conversation ' +
        "or report the tool's failure to the model instead. If the block is wrong, adjust the guardrail's policy.",
      requestId,
      'tool result',
      policy,
    );
    return { error, entries: batch.entries };
  }
  return undefined;
}
