/**
 * The secret redactor on whole texts and on texts that arrive in pieces. The
 * stream redactor must emit exactly what the buffered one makes of the whole
 * text, whatever the cuts, which a seeded random sweep checks.
 */
import {
  StreamRedactor,
  isPaymentCardNumber,
  passesLuhn,
  redactJsonStrings,
  redactSecrets,
  type SecretKind,
} from '../lambda/shared/redact';

// AWS's documented example credentials and example tokens of each format, none of them live.
const ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.' +
  'SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
const GITHUB_TOKEN = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a';
const SLACK_TOKEN = 'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy';
const PEM =
  '-----BEGIN RSA PRIVATE KEY-----\n' +
  'MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n' +
  'KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n' +
  '-----END RSA PRIVATE KEY-----';
const VISA = '4111 1111 1111 1111';

function marker(kind: SecretKind): string {
  return `[REDACTED:${kind}]`;
}

/** Streams `text` through a StreamRedactor in pieces of the given lengths, cycling them. */
function streamed(text: string, pieceLengths: readonly number[]): { text: string; redacted: readonly SecretKind[] } {
  const redactor = new StreamRedactor();
  let out = '';
  let offset = 0;
  for (let i = 0; offset < text.length; i++) {
    const length = pieceLengths[i % pieceLengths.length];
    out += redactor.push(text.slice(offset, offset + length));
    offset += length;
  }
  out += redactor.flush();
  return { text: out, redacted: redactor.redacted };
}

describe('redactSecrets', () => {
  test.each<[string, string, string, SecretKind]>([
    ['access key id', `id ${ACCESS_KEY_ID} ok`, `id ${marker('aws-access-key-id')} ok`, 'aws-access-key-id'],
    [
      'named secret key',
      `aws_secret_access_key = ${SECRET_ACCESS_KEY}\n`,
      `aws_secret_access_key = ${marker('aws-secret-access-key')}\n`,
      'aws-secret-access-key',
    ],
    [
      'secret key in JSON',
      `{"SecretAccessKey": "${SECRET_ACCESS_KEY}"}`,
      `{"SecretAccessKey": "${marker('aws-secret-access-key')}"}`,
      'aws-secret-access-key',
    ],
    ['PEM private key', `key:\n${PEM}\nend`, `key:\n${marker('private-key')}\nend`, 'private-key'],
    ['PEM without END line', 'x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r', `x ${marker('private-key')}`, 'private-key'],
    ['JWT', `token ${JWT}.`, `token ${marker('jwt')}.`, 'jwt'],
    ['GitHub token', `GH_TOKEN=${GITHUB_TOKEN}`, `GH_TOKEN=${marker('github-token')}`, 'github-token'],
    [
      'GitHub fine-grained token',
      'pat github_pat_11ABCDEFG0123456789abc_xyzXYZ0123456789 ok',
      `pat ${marker('github-token')} ok`,
      'github-token',
    ],
    ['Slack token', `slack: ${SLACK_TOKEN}`, `slack: ${marker('slack-token')}`, 'slack-token'],
    ['Stripe key', 'sk_live_4eC39HqLyjWDarjtT1zdp7dc', marker('stripe-secret-key'), 'stripe-secret-key'],
    [
      'Google API key',
      'key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe',
      `key=${marker('google-api-key')}`,
      'google-api-key',
    ],
    [
      'bearer token',
      'Authorization: Bearer 2YotnFZFEjr1zCsicMWpAA0123456789',
      `Authorization: Bearer ${marker('bearer-token')}`,
      'bearer-token',
    ],
    ['card with spaces', `card ${VISA}.`, `card ${marker('card-number')}.`, 'card-number'],
    ['card with dashes', 'amex 3782-822463-10005', `amex ${marker('card-number')}`, 'card-number'],
    ['card without separators', 'mc 5555555555554444', `mc ${marker('card-number')}`, 'card-number'],
  ])('redacts %s', (_name, text, expected, kind) => {
    const result = redactSecrets(text);

    expect(result.text).toBe(expected);
    expect(result.redacted).toEqual([kind]);
  });

  test.each([
    ['card failing Luhn', 'order 4111 1111 1111 1112 shipped'],
    ['order number', 'order 1234567890123456 shipped'],
    ['number longer than a card', 'id 41111111111111111111111 ok'],
    ['git commit id', 'commit 9fceb02d0ae598e95dc970b74767f19372d61af8 merged'],
    ['40 characters without a name', `value ${SECRET_ACCESS_KEY} alone`],
    ['short bearer word', 'Bearer authentication is described in RFC 6750.'],
    ['key id inside a word', `X${ACCESS_KEY_ID}`],
    ['phone number', 'call +1 415-555-0132 today'],
  ])('keeps %s', (_name, text) => {
    const result = redactSecrets(text);

    expect(result.text).toBe(text);
    expect(result.redacted).toEqual([]);
  });

  test('credentials CSV line', () => {
    const result = redactSecrets(`${ACCESS_KEY_ID},${SECRET_ACCESS_KEY}\n`);

    expect(result.text).toBe(`${marker('aws-access-key-id')},${marker('aws-secret-access-key')}\n`);
    expect(result.redacted).toEqual(['aws-access-key-id', 'aws-secret-access-key']);
  });

  test('bearer JWT counts once', () => {
    const result = redactSecrets(`Authorization: Bearer ${JWT}`);

    expect(result.text).toBe(`Authorization: Bearer ${marker('jwt')}`);
    expect(result.redacted).toHaveLength(1);
  });

  test('several secrets in order', () => {
    const result = redactSecrets(`a ${GITHUB_TOKEN} b ${VISA} c ${ACCESS_KEY_ID}`);

    expect(result.redacted).toEqual(['github-token', 'card-number', 'aws-access-key-id']);
  });
});

describe('card checks', () => {
  test('Luhn accepts valid numbers', () => {
    expect(passesLuhn('4111111111111111')).toBe(true);
    expect(passesLuhn('378282246310005')).toBe(true);
  });

  test('Luhn rejects a changed digit', () => {
    expect(passesLuhn('4111111111111112')).toBe(false);
  });

  test('network prefix required', () => {
    // 1 is no card network's first digit, so this Luhn-valid number is kept.
    expect(passesLuhn('1111111111111117')).toBe(true);
    expect(isPaymentCardNumber('1111111111111117')).toBe(false);
    expect(isPaymentCardNumber('2221000000000009')).toBe(true);
  });
});

describe('StreamRedactor', () => {
  test.each<[string, string]>([
    ['access key id', `The key is ${ACCESS_KEY_ID} for the build user. `],
    ['secret key', `aws_secret_access_key = ${SECRET_ACCESS_KEY}\nregion = us-east-1\n`],
    ['PEM private key', `Here it is:\n${PEM}\nKeep it safe.`],
    ['JWT', `Send Authorization: Bearer ${JWT} with each call.`],
    ['card number', `Charge ${VISA} today, not order 4111 1111 1111 1112.`],
  ])('secret split across deltas: %s', (_name, text) => {
    const expected = redactSecrets(text);

    for (const size of [1, 2, 3, 5, 7, 16]) {
      const result = streamed(text, [size]);
      expect(result.text).toBe(expected.text);
      expect(result.redacted).toEqual(expected.redacted);
    }
  });

  test('holds back a partial secret', () => {
    const redactor = new StreamRedactor();
    const prose = 'word '.repeat(4);

    const first = redactor.push(`${prose}key AKIAIOSFOD`);
    const second = redactor.push('NN7EXAMPLE and more text');

    expect(first + second).not.toContain('AKIAIOSFOD');
    expect(first + second + redactor.flush()).toBe(`${prose}key ${marker('aws-access-key-id')} and more text`);
  });

  test('holds only the last word', () => {
    const redactor = new StreamRedactor();

    const first = redactor.push('The capital of France is Par');
    const second = redactor.push('is. It lies on');

    expect(first).toBe('The capital of France is ');
    expect(second).toBe('Paris. It lies ');
    expect(redactor.flush()).toBe('on');
  });

  test('holds digits that may become a card', () => {
    const redactor = new StreamRedactor();

    const first = redactor.push('Pay with 4111 1111 ');
    const second = redactor.push('1111 1111 now');

    expect(first).toBe('Pay with ');
    expect(second).toBe(`${marker('card-number')} `);
    expect(redactor.flush()).toBe('now');
  });

  test('holds a PEM header cut short', () => {
    const redactor = new StreamRedactor();

    const first = redactor.push('Key follows\n-----BEGIN RSA PRIV');
    const second = redactor.push('ATE KEY-----\nMIIBOgIBAAJBAKj34Gkx\n');

    expect(first).toBe('Key follows\n');
    expect(second).toBe('');
    expect(redactor.flush()).toBe(marker('private-key'));
  });

  test('holds an unfinished PEM block', () => {
    const redactor = new StreamRedactor();
    const header = 'intro '.repeat(3);

    const out = redactor.push(`${header}-----BEGIN EC PRIVATE KEY-----\n${'MHcCAQEEI '.repeat(40)}`);

    expect(out).toBe(header);
    expect(redactor.flush()).toBe(marker('private-key'));
  });

  test('random cuts match whole text', () => {
    const parts = [
      `The key ${ACCESS_KEY_ID} and `,
      `aws_secret_access_key=${SECRET_ACCESS_KEY}\n`,
      `${PEM}\n`,
      `Authorization: Bearer ${JWT}${'x'.repeat(150)} `,
      `card ${VISA} ok, order 4111 1111 1111 1112. `,
      `${GITHUB_TOKEN} `,
      'lorem ipsum dolor sit amet ',
      'a'.repeat(400),
      '\n',
      `${ACCESS_KEY_ID},${SECRET_ACCESS_KEY} `,
      `{"token":"${SLACK_TOKEN}","n":5} `,
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn',
    ];
    // A linear congruential generator with a fixed seed, so that a failure repeats.
    let seed = 20261204;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const mismatches: string[] = [];

    for (let round = 0; round < 500; round++) {
      let text = '';
      const count = 1 + Math.floor(random() * 8);
      for (let i = 0; i < count; i++) text += parts[Math.floor(random() * parts.length)];
      const lengths = Array.from({ length: 16 }, () => 1 + Math.floor(random() * 12));
      const expected = redactSecrets(text);
      const result = streamed(text, lengths);
      if (result.text !== expected.text || result.redacted.join() !== expected.redacted.join()) {
        mismatches.push(JSON.stringify({ text, lengths }));
      }
    }

    expect(mismatches).toEqual([]);
  });
});

describe('redactJsonStrings', () => {
  test('redacts nested strings', () => {
    const input = { url: `https://example.com/?k=${ACCESS_KEY_ID}`, headers: [{ auth: `Bearer ${JWT}` }], n: 3 };

    const result = redactJsonStrings(input);

    expect(result.value).toEqual({
      url: `https://example.com/?k=${marker('aws-access-key-id')}`,
      headers: [{ auth: `Bearer ${marker('jwt')}` }],
      n: 3,
    });
    expect(result.redacted).toEqual(['aws-access-key-id', 'jwt']);
  });

  test('keeps clean input equal', () => {
    const input = { orderId: 'ORD-10002', quantity: 2, tags: ['a', null] };

    expect(redactJsonStrings(input)).toEqual({ value: input, redacted: [] });
  });
});
