/**
 * Which completed model call results the response cache may store.
 */
import { uncacheableResultReason } from '../lambda/gateway/response-cache';
import type { ModelCallResult } from '../lambda/gateway/pipeline';

const RESULT: ModelCallResult = {
  output: { role: 'assistant', content: [{ text: 'Paris.' }] },
  stopReason: 'end_turn',
  usage: { inputTokens: 10, outputTokens: 2, totalTokens: 12 },
  target: { region: 'us-west-2', modelId: 'us.amazon.nova-pro-v1:0' },
  latencyMs: 5,
};

describe('uncacheableResultReason', () => {
  test('plain answer may be stored', () => {
    expect(uncacheableResultReason(RESULT)).toBeUndefined();
  });

  test('masked output is never stored', () => {
    expect(uncacheableResultReason({ ...RESULT, guardrailMasked: true })).toBe('guardrail masked');
  });

  test('truncated output is never stored', () => {
    expect(uncacheableResultReason({ ...RESULT, stopReason: 'max_tokens' })).toBe('stop reason max_tokens');
  });

  test('tool use is never stored', () => {
    const toolUse = { toolUse: { toolUseId: 't1', name: 'lookup_order', input: {} } };
    expect(uncacheableResultReason({ ...RESULT, output: { role: 'assistant', content: [toolUse] } })).toBe('tool use');
  });
});
