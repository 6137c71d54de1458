import { AUDIT_FULL_TEXT_ENV, AUDIT_STREAM_ENV, type AuditRecord } from '../lambda/shared/audit';
import {
  AUDIT_RECORD_FIELDS,
  auditRecordProblems,
  auditTokensOf,
  buildAuditRecord,
  readAuditSettings,
  validateAuditRecord,
} from '../lambda/shared/audit-record';
import { canonicalJson, sha256Hex } from '../lambda/shared/canonical';

const TIME = new Date('2025-03-04T05:06:07.089Z');

const PROMPT = {
  system: 'You answer billing questions.',
  messages: [{ role: 'user', content: [{ text: 'What is my balance?' }] }],
};
const OUTPUT = { role: 'assistant', content: [{ text: 'Your balance is 12 dollars.' }] };

/** Builds a record with every field of the schema set. */
function fullRecord(): AuditRecord {
  const promptText = canonicalJson(PROMPT);
  const outputText = canonicalJson(OUTPUT);
  return {
    time: TIME.toISOString(),
    requestId: 'req-1',
    agent: 'billing',
    userId: 'user-1',
    sessionId: 'session-1',
    kind: 'approval',
    decision: 'approved',
    reason: 'approved by a person',
    model: 'us.anthropic.claude-sonnet-4-20250514-v1:0',
    region: 'us-east-1',
    tokens: { input: 10, output: 5, total: 17, cacheRead: 1, cacheWrite: 1 },
    costUsd: 0.0012,
    promptSha256: sha256Hex(promptText),
    outputSha256: sha256Hex(outputText),
    promptText,
    outputText,
    tool: 'refund',
    argumentsSha256: sha256Hex('{"amount":5}'),
    approvalId: 'approval-1',
    approver: 'reviewer@example.com',
    layer: 'tool result',
    textOmitted: false,
  };
}

describe('buildAuditRecord', () => {
  test('hashes prompt and output as canonical JSON', () => {
    const record = buildAuditRecord(
      { requestId: 'req-1', agent: 'billing', kind: 'model-call', decision: 'completed', prompt: PROMPT, output: OUTPUT, time: TIME },
      { fullText: false },
    );

    expect(record.promptSha256).toBe(sha256Hex(canonicalJson(PROMPT)));
    expect(record.outputSha256).toBe(sha256Hex(canonicalJson(OUTPUT)));
  });

  test('hash ignores key order', () => {
    const reordered = { messages: PROMPT.messages, system: PROMPT.system };
    const first = buildAuditRecord({ requestId: 'r', agent: 'a', kind: 'model-call', decision: 'completed', prompt: PROMPT }, { fullText: false });
    const second = buildAuditRecord({ requestId: 'r', agent: 'a', kind: 'model-call', decision: 'completed', prompt: reordered }, { fullText: false });

    expect(second.promptSha256).toBe(first.promptSha256);
  });

  test('leaves text out by default', () => {
    const record = buildAuditRecord(
      { requestId: 'req-1', agent: 'billing', kind: 'model-call', decision: 'completed', prompt: PROMPT, output: OUTPUT },
      { fullText: false },
    );

    expect(record).not.toHaveProperty('promptText');
    expect(record).not.toHaveProperty('outputText');
    expect(JSON.stringify(record)).not.toContain('balance');
  });

  test('full text matches its hashes', () => {
    const record = buildAuditRecord(
      { requestId: 'req-1', agent: 'billing', kind: 'model-call', decision: 'completed', prompt: PROMPT, output: OUTPUT },
      { fullText: true },
    );

    expect(record.promptText).toBe(canonicalJson(PROMPT));
    expect(record.outputText).toBe(canonicalJson(OUTPUT));
    expect(sha256Hex(record.promptText!)).toBe(record.promptSha256);
    expect(sha256Hex(record.outputText!)).toBe(record.outputSha256);
  });

  test('tool arguments keep only a hash', () => {
    const record = buildAuditRecord(
      { requestId: 'req-1', agent: 'billing', kind: 'tool-call', decision: 'completed', tool: 'refund', arguments: { amount: 5, note: 'late' } },
      { fullText: true },
    );

    expect(record.argumentsSha256).toBe(sha256Hex('{"amount":5,"note":"late"}'));
    expect(JSON.stringify(record)).not.toContain('late');
  });

  test('undefined fields are left out', () => {
    const record = buildAuditRecord(
      { requestId: 'req-1', agent: 'billing', kind: 'budget', decision: 'rejected', userId: undefined, reason: 'BudgetExceededError' },
      { fullText: false },
    );

    expect(Object.keys(record).sort()).toEqual(['agent', 'decision', 'kind', 'reason', 'requestId', 'time']);
  });

  test('time defaults to now in UTC', () => {
    const before = Date.now();
    const record = buildAuditRecord({ requestId: 'r', agent: 'a', kind: 'budget', decision: 'allowed' }, { fullText: false });

    expect(record.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(record.time)).toBeGreaterThanOrEqual(before);
  });

  test('built records are valid', () => {
    const record = buildAuditRecord(
      {
        requestId: 'req-1',
        agent: 'billing',
        userId: 'user-1',
        sessionId: 'session-1',
        kind: 'model-call',
        decision: 'completed',
        model: 'm',
        region: 'us-east-1',
        tokens: auditTokensOf({ inputTokens: 3, outputTokens: 4, totalTokens: 7 }),
        costUsd: 0,
        prompt: PROMPT,
        output: OUTPUT,
      },
      { fullText: true },
    );

    expect(auditRecordProblems(record)).toEqual([]);
  });
});

describe('auditTokensOf', () => {
  test('maps counts without cache', () => {
    expect(auditTokensOf({ inputTokens: 3, outputTokens: 4, totalTokens: 7 })).toEqual({ input: 3, output: 4, total: 7 });
  });

  test('keeps reported cache counts', () => {
    const tokens = auditTokensOf({ inputTokens: 3, outputTokens: 4, totalTokens: 12, cacheReadInputTokens: 2, cacheWriteInputTokens: 3 });

    expect(tokens).toEqual({ input: 3, output: 4, total: 12, cacheRead: 2, cacheWrite: 3 });
  });
});

describe('auditRecordProblems', () => {
  test('record with every field is valid', () => {
    const record = fullRecord();

    expect(Object.keys(record).sort()).toEqual(Object.keys(AUDIT_RECORD_FIELDS).sort());
    expect(auditRecordProblems(record)).toEqual([]);
  });

  test.each<[string, (record: Record<string, unknown>) => void, RegExp]>([
    ['missing request id', (r) => delete r.requestId, /^requestId is missing$/],
    ['missing time', (r) => delete r.time, /^time is missing$/],
    ['empty agent', (r) => (r.agent = ''), /^agent must be a non-empty string/],
    ['unknown field', (r) => (r.prompt = 'text'), /^prompt is not an audit record field$/],
    ['unknown kind', (r) => (r.kind = 'login'), /^kind must be one of model-call, budget, guard, tool-call, approval/],
    ['unknown decision', (r) => (r.decision = 'maybe'), /^decision must be one of/],
    ['local time', (r) => (r.time = '2025-03-04T05:06:07.089+02:00'), /^time does not match/],
    ['impossible date', (r) => (r.time = '2025-13-40T05:06:07.089Z'), /^time is not a valid date/],
    ['upper-case hash', (r) => (r.argumentsSha256 = 'A'.repeat(64)), /^argumentsSha256 does not match/],
    ['short hash', (r) => (r.argumentsSha256 = 'ab'), /^argumentsSha256 does not match/],
    ['negative cost', (r) => (r.costUsd = -1), /^costUsd must be a finite number of 0 or more/],
    ['cost as text', (r) => (r.costUsd = '0.1'), /^costUsd must be a finite number/],
    ['fractional tokens', (r) => (r.tokens = { input: 1.5, output: 1, total: 3 }), /^tokens.input must be a whole number/],
    ['tokens without total', (r) => (r.tokens = { input: 1, output: 1 }), /^tokens.total is missing$/],
    ['unknown token field', (r) => (r.tokens = { input: 1, output: 1, total: 2, reasoning: 1 }), /^tokens.reasoning is not a token field/],
    ['tokens as a number', (r) => (r.tokens = 3), /^tokens must be an object/],
    ['text omitted as text', (r) => (r.textOmitted = 'yes'), /^textOmitted must be true or false/],
    ['prompt text edited', (r) => (r.promptText = `${r.promptText} `), /^promptSha256 is not the SHA-256 of promptText$/],
    ['output text without hash', (r) => delete r.outputSha256, /^outputText needs outputSha256/],
  ])('reports %s', (_name, change, expected) => {
    const record = fullRecord() as unknown as Record<string, unknown>;
    change(record);

    const problems = auditRecordProblems(record);

    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });

  test('reports a value that is not an object', () => {
    expect(auditRecordProblems('record')).toEqual(['an audit record must be a JSON object (got string)']);
    expect(auditRecordProblems(null)).toEqual(['an audit record must be a JSON object (got null)']);
  });

  test('reports every problem at once', () => {
    expect(auditRecordProblems({})).toEqual(['time is missing', 'requestId is missing', 'agent is missing', 'kind is missing', 'decision is missing']);
  });

  test('validateAuditRecord raises with the problems', () => {
    const record = { ...fullRecord(), kind: 'login' };

    expect(() => validateAuditRecord(record)).toThrow(/^Invalid audit record: kind must be one of .*\. Fix the code that builds the record\.$/);
  });

  test('validateAuditRecord returns a valid record', () => {
    const record = fullRecord();

    expect(validateAuditRecord(record)).toBe(record);
  });
});

describe('readAuditSettings', () => {
  test('unset means no audit log', () => {
    expect(readAuditSettings({})).toEqual({ streamName: undefined, fullText: false });
  });

  test('empty stream name means no audit log', () => {
    expect(readAuditSettings({ [AUDIT_STREAM_ENV]: '' }).streamName).toBeUndefined();
  });

  test('reads stream and full text', () => {
    const settings = readAuditSettings({ [AUDIT_STREAM_ENV]: 'audit-stream', [AUDIT_FULL_TEXT_ENV]: 'true' });

    expect(settings).toEqual({ streamName: 'audit-stream', fullText: true });
  });

  test('false turns full text off', () => {
    expect(readAuditSettings({ [AUDIT_FULL_TEXT_ENV]: 'false' }).fullText).toBe(false);
  });

  test('rejects other full text values', () => {
    expect(() => readAuditSettings({ [AUDIT_FULL_TEXT_ENV]: 'yes' })).toThrow(
      'AGENT_AUDIT_FULL_TEXT is "yes", but it must be true or false; set it to true to keep prompt and output text in audit records, or leave it unset.',
    );
  });
});
