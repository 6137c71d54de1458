/**
 * Deterministic redaction of secrets in model output. Each secret found is
 * replaced with `[REDACTED:<kind>]`, so the caller and the memory never hold
 * it, and the kinds found are returned for the guard's metric and audit record.
 *
 * The formats recognized, each matched only where a token boundary surrounds it:
 *
 * - `aws-access-key-id`: AKIA, ASIA, ABIA, ACCA or A3T? followed by 16
 *   upper-case letters or digits, 20 characters in all.
 * - `aws-secret-access-key`: 40 characters of base64 after a name such as
 *   `aws_secret_access_key`, `SecretAccessKey` or `secret_key` and `=` or
 *   `:`, or after an access key id and a separator, as in a credentials CSV.
 *   A 40-character string alone is not redacted, because hex digests such as
 *   git commit ids have the same shape.
 * - `private-key`: a PEM block from `-----BEGIN ... PRIVATE KEY-----` (RSA,
 *   EC, DSA, OPENSSH, ENCRYPTED, PGP ... BLOCK) to its END line, or to the
 *   end of the text when the END line is missing.
 * - `jwt`: a JSON Web Token, three base64url segments of which the first two
 *   start with `eyJ`, the encoding of `{"`.
 * - `github-token`: `ghp_`, `gho_`, `ghu_`, `ghs_` or `ghr_` and 36 or more
 *   characters, or `github_pat_` and 22 or more. The prefixes and the
 *   character set are those of
 *   https://github.blog/changelog/2021-03-31-authentication-token-format-updates-are-generally-available
 * - `slack-token`: `xoxb-`, `xoxp-`, `xoxa-`, `xoxc-`, `xoxd-`, `xoxe-`,
 *   `xoxr-` or `xapp-` and 10 or more characters (the token types of
 *   https://docs.slack.dev/authentication/tokens).
 * - `stripe-secret-key`: `sk_live_` or `rk_live_` and 20 or more characters.
 * - `google-api-key`: `AIza` and 35 characters.
 * - `bearer-token`: 20 or more characters of the RFC 6750 b64token syntax
 *   after `Bearer` and a space, in any letter case.
 * - `card-number`: 13 to 19 digits, with single spaces or dashes allowed
 *   between them. The first digits must be those of a payment card network
 *   (see {@link isPaymentCardNumber}) and the Luhn checksum must be valid, so
 *   that order numbers and other long numbers stay.
 */

/** Kind of secret a redaction replaced. */
export type SecretKind =
  | 'aws-access-key-id'
  | 'aws-secret-access-key'
  | 'private-key'
  | 'jwt'
  | 'github-token'
  | 'slack-token'
  | 'stripe-secret-key'
  | 'google-api-key'
  | 'bearer-token'
  | 'card-number';

/** One secret in a text, as a half-open range of UTF-16 code unit offsets. */
export interface SecretSpan {
  readonly kind: SecretKind;
  readonly start: number;
  readonly end: number;
}

/** Text after redaction, and the kind of each secret replaced, in text order. */
export interface RedactionResult {
  readonly text: string;
  readonly redacted: readonly SecretKind[];
}

interface SecretRule {
  readonly kind: SecretKind;
  /** Global pattern. The secret is the group named `secret`, or the whole match without one. */
  readonly pattern: RegExp;
  /** Further check on the secret's text, such as the Luhn checksum. */
  readonly accept?: (secret: string) => boolean;
}

/** Returns the replacement text of a secret of `kind`. */
export function redactionMarker(kind: SecretKind): string {
  return `[REDACTED:${kind}]`;
}

const ACCESS_KEY_ID = '(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}';
const SECRET_KEY = '(?<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])';

/**
 * The rules, checked in this order. Only a PEM block and a card number may
 * contain whitespace, which the stream redactor relies on. Everything a
 * match needs before its secret fits in {@link STREAM_CONTEXT_CHARS}.
 */
const RULES: readonly SecretRule[] = [
  {
    kind: 'private-key',
    pattern:
      /-----BEGIN ((?:[A-Z0-9]{1,20} ){0,3})PRIVATE KEY( BLOCK)?-----[\s\S]*?(?:-----END \1PRIVATE KEY\2-----|$)/g,
  },
  {
    kind: 'aws-access-key-id',
    pattern: new RegExp(`(?<![A-Za-z0-9])${ACCESS_KEY_ID}(?![A-Za-z0-9])`, 'g'),
  },
  {
    kind: 'aws-secret-access-key',
    pattern: new RegExp(
      `(?<![A-Za-z0-9])(?:aws[_-]?)?secret[_-]?(?:access[_-]?)?key["']?[ \\t]{0,5}(?:=>|=|:)[ \\t]{0,5}["']?${SECRET_KEY}`,
      'gi',
    ),
  },
  {
    kind: 'aws-secret-access-key',
    pattern: new RegExp(`(?<![A-Za-z0-9])${ACCESS_KEY_ID}["']?[ \\t,;:|=]{1,5}["']?${SECRET_KEY}`, 'g'),
  },
  {
    kind: 'jwt',
    pattern: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g,
  },
  {
    kind: 'github-token',
    pattern: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9_]{36,}|github_pat_[A-Za-z0-9_]{22,})/g,
  },
  {
    kind: 'slack-token',
    pattern: /(?<![A-Za-z0-9_-])(?:xox[abcdepr]|xapp)-[A-Za-z0-9-]{10,}/g,
  },
  {
    kind: 'stripe-secret-key',
    pattern: /(?<![A-Za-z0-9_])[rs]k_live_[A-Za-z0-9]{20,}/g,
  },
  {
    kind: 'google-api-key',
    pattern: /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])/g,
  },
  {
    kind: 'bearer-token',
    pattern: /(?<![A-Za-z0-9])bearer[ \t]{1,5}(?<secret>[A-Za-z0-9._~+/-]{20,}=*)/gi,
  },
  {
    kind: 'card-number',
    pattern: /(?<![0-9])(?<![0-9][ -])[0-9](?:[ -]?[0-9]){12,18}(?![ -]?[0-9])/g,
    accept: isPaymentCardNumber,
  },
];

/**
 * Checks `secret` against the Luhn checksum and the first digits of the
 * payment card networks. Spaces and dashes between the digits are ignored.
 */
export function isPaymentCardNumber(secret: string): boolean {
  const digits = secret.replace(/[ -]/g, '');
  if (digits.length < 13 || digits.length > 19) {
    return false;
  }
  return hasCardNetworkPrefix(digits) && passesLuhn(digits);
}

/**
 * Checks the first digits: major industry identifiers 3 to 6 of ISO/IEC 7812
 * (American Express, Diners, JCB, Visa, Mastercard, Maestro, Discover,
 * UnionPay), Mir's 2200 to 2204 and Mastercard's 2221 to 2720.
 */
function hasCardNetworkPrefix(digits: string): boolean {
  if ('3456'.includes(digits[0])) {
    return true;
  }
  const four = Number(digits.slice(0, 4));
  return (four >= 2200 && four <= 2204) || (four >= 2221 && four <= 2720);
}

/** Checks the Luhn (mod 10) checksum of a string of digits. */
export function passesLuhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let digit = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/**
 * Finds the secrets in `text` and returns them in text order. Overlapping
 * matches, such as a JWT after `Bearer`, merge into one span whose kind is
 * that of the match that starts first.
 */
export function findSecrets(text: string): SecretSpan[] {
  const found: SecretSpan[] = [];
  for (const rule of RULES) {
    rule.pattern.lastIndex = 0;
    for (const match of text.matchAll(rule.pattern)) {
      const secret = match.groups?.secret ?? match[0];
      if (rule.accept !== undefined && !rule.accept(secret)) {
        continue;
      }
      const offset = match.groups?.secret === undefined ? 0 : match[0].lastIndexOf(secret);
      const start = match.index + offset;
      found.push({ kind: rule.kind, start, end: start + secret.length });
    }
  }
  return mergeSpans(found);
}

function mergeSpans(spans: SecretSpan[]): SecretSpan[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: SecretSpan[] = [];
  for (const span of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && span.start < last.end) {
      merged[merged.length - 1] = { ...last, end: Math.max(last.end, span.end) };
    } else {
      merged.push(span);
    }
  }
  return merged;
}

/** Replaces `spans`, which are in text order and do not overlap, with their markers. */
function replaceSpans(text: string, spans: readonly SecretSpan[]): string {
  let out = '';
  let from = 0;
  for (const span of spans) {
    out += text.slice(from, span.start) + redactionMarker(span.kind);
    from = span.end;
  }
  return out + text.slice(from);
}

/** Replaces every secret in `text` with its marker. */
export function redactSecrets(text: string): RedactionResult {
  const spans = findSecrets(text);
  return { text: replaceSpans(text, spans), redacted: spans.map((span) => span.kind) };
}

/**
 * Characters of text already emitted that the stream redactor keeps as
 * context. A rule then still sees what it matches before a secret, such as
 * `secret_key=`, `Bearer ` or an access key id before its secret key, and
 * every lookbehind sees the text before the cut. The longest is the named
 * secret key, with 36 characters of name, quotes, separators and lookbehind.
 */
export const STREAM_CONTEXT_CHARS = 64;

/** Characters of a PEM private key header at most: `-----BEGIN `, three words of 20 and `PRIVATE KEY BLOCK-----`. */
const MAX_PEM_HEADER_CHARS = 96;

/** A PEM header cut short at the end of the text, such as `-----BEGIN RSA PRIV`. */
const PARTIAL_PEM_HEADER = /-{1,5}(?:B(?:E(?:G(?:I(?:N(?: [A-Z0-9 ]*-{0,5})?)?)?)?)?)?$/;

/** Digits of a card number at most; a longer run of digits is never one. */
const MAX_CARD_DIGITS = 19;

/** Digits with single spaces or dashes between them, at the end of the text, perhaps with a separator last. */
const TRAILING_DIGITS = /[0-9](?:[ -]?[0-9])*[ -]?$/;

const WHITESPACE = /\s/;

/**
 * Redacts one text block that arrives in pieces, such as the deltas of a
 * streamed response. However the block is cut, the text it emits is the text
 * that {@link redactSecrets} makes of the whole block.
 *
 * It emits text only up to a cut that no secret can cross:
 *
 * 1. The cut is right after a whitespace character, so the last run of
 *    non-whitespace, where a token may still grow, is held until whitespace
 *    ends it. Every secret other than a PEM block and a card number is such
 *    a run, and what a rule matches before the secret stays in the context.
 * 2. The cut is before digits at the end that could still become a card
 *    number, and before the start of a PEM header cut short at the end.
 * 3. The cut is never inside a secret found in the text held. A PEM block
 *    without its END line reaches to the end, so it is held whole.
 *
 * The held text is emitted by {@link flush} at the end of the block. A run
 * without whitespace is therefore held until it ends, however long it is.
 */
export class StreamRedactor {
  private pending = '';
  /** The last characters emitted, unredacted, as context for the rules. */
  private context = '';
  /** Length of the start of `pending` known to contain no whitespace. */
  private noWhitespaceChars = 0;
  private readonly redactedKinds: SecretKind[] = [];

  /** Kind of each secret replaced so far, in text order. */
  get redacted(): readonly SecretKind[] {
    return this.redactedKinds;
  }

  /** Adds `text` and returns the redacted text that can be emitted now, possibly empty. */
  push(text: string): string {
    this.pending += text;
    let cut = this.lastBoundaryAtOrBefore(this.partialSecretStart());
    if (cut <= 0) {
      return '';
    }
    const spans = this.pendingSpans();
    for (let previous = -1; cut !== previous && cut > 0; ) {
      previous = cut;
      // A secret that reaches the end of the text held may still grow.
      const end = this.pending.length;
      const crossing = spans.find((span) => span.start < cut && (span.end > cut || span.end === end));
      cut = this.lastBoundaryAtOrBefore(crossing === undefined ? cut : crossing.start);
    }
    if (cut <= 0) {
      return '';
    }
    return this.emit(cut, spans.filter((span) => span.end <= cut));
  }

  /** Returns the rest of the block, redacted, and resets the held text. */
  flush(): string {
    const out = this.emit(this.pending.length, this.pendingSpans());
    this.context = '';
    return out;
  }

  /**
   * Returns the offset in `pending` of the earliest partial secret that
   * contains whitespace: trailing digits of at most a card's length, or a
   * PEM header cut short. Returns the length of `pending` when there is none.
   */
  private partialSecretStart(): number {
    let start = this.pending.length;
    const digits = TRAILING_DIGITS.exec(this.pending.slice(-2 * MAX_CARD_DIGITS - 1));
    if (digits !== null && digits[0].replace(/[ -]/g, '').length <= MAX_CARD_DIGITS) {
      start = this.pending.length - digits[0].length;
    }
    const header = PARTIAL_PEM_HEADER.exec(this.pending.slice(-MAX_PEM_HEADER_CHARS));
    if (header !== null) {
      start = Math.min(start, this.pending.length - header[0].length);
    }
    return start;
  }

  /** Finds the secrets of the held text, with offsets into `pending`. */
  private pendingSpans(): SecretSpan[] {
    const shift = this.context.length;
    return findSecrets(this.context + this.pending)
      .filter((span) => span.end > shift)
      .map((span) => ({ kind: span.kind, start: Math.max(0, span.start - shift), end: span.end - shift }));
  }

  /** Emits `pending` up to `cut` with `spans` replaced, and keeps the rest. */
  private emit(cut: number, spans: readonly SecretSpan[]): string {
    const raw = this.pending.slice(0, cut);
    this.redactedKinds.push(...spans.map((span) => span.kind));
    this.context = (this.context + raw).slice(-STREAM_CONTEXT_CHARS);
    this.pending = this.pending.slice(cut);
    this.noWhitespaceChars = Math.max(0, this.noWhitespaceChars - cut);
    return replaceSpans(raw, spans);
  }

  /** Returns the largest offset at or before `limit` that follows a whitespace character, or 0. */
  private lastBoundaryAtOrBefore(limit: number): number {
    for (let index = Math.min(limit, this.pending.length); index > this.noWhitespaceChars; index--) {
      if (WHITESPACE.test(this.pending[index - 1])) {
        return index;
      }
    }
    this.noWhitespaceChars = Math.max(this.noWhitespaceChars, Math.min(limit, this.pending.length));
    return 0;
  }
}

/**
 * Returns `value` with every string in it redacted, for tool-use input, and
 * the kind of each secret replaced. Object keys are kept as they are.
 */
export function redactJsonStrings(value: unknown): { value: unknown; redacted: SecretKind[] } {
  const redacted: SecretKind[] = [];
  const walk = (item: unknown): unknown => {
    if (typeof item === 'string') {
      const result = redactSecrets(item);
      redacted.push(...result.redacted);
      return result.text;
    }
    if (Array.isArray(item)) {
      return item.map(walk);
    }
    if (item !== null && typeof item === 'object') {
      return Object.fromEntries(Object.entries(item).map(([key, member]) => [key, walk(member)]));
    }
    return item;
  };
  return { value: walk(value), redacted };
}
