/**
 * Known prompt-injection phrasings, written once and used in two places. The
 * WAF regex pattern sets in front of the load balancer (AgentFirewall) see
 * only the first 8 KB of a request body. The gateway's runtime guard checks
 * the whole text of every request.
 *
 * Both places match the same normalised text. WAF applies these text
 * transformations to the body, in this order:
 *
 * 1. `JS_DECODE`: decodes `\n`, `\"`, `\uHHHH` and the other escapes of the
 *    JSON string. The runtime receives text that `JSON.parse` already decoded.
 * 2. `LOWERCASE`: converts `A-Z` to `a-z`, and no other letters.
 * 3. `COMPRESS_WHITE_SPACE`: replaces form feed, tab, newline, carriage
 *    return, vertical tab and non-breaking space with a space, then replaces
 *    each run of spaces with one space.
 *
 * {@link normalizeForInspection} does steps 2 and 3, so a pattern is written
 * in lower case with single spaces between words.
 * https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-transformation.html
 *
 * Every pattern stays inside the regex subset that both WAF and JavaScript
 * accept with the same meaning ({@link checkWafRegexSubset}). WAF uses PCRE
 * but does not support backreferences, capturing groups, lookaround, atomic
 * groups, possessive quantifiers, conditionals, recursion, backtracking
 * control verbs, `\C`, `\R` or `\K`, large repeat counts, excessive wildcard
 * or nested repeats, or many `|` branches.
 * https://docs.aws.amazon.com/waf/latest/developerguide/waf-regex-pattern-support.html
 *
 * The patterns catch the common English phrasings. They miss paraphrases,
 * other languages, encodings such as base64 and homoglyph spellings; the
 * Bedrock guardrail's prompt-attack filter is the layer for those.
 */

/** One known prompt-injection phrasing. */
export interface InjectionPattern {
  /** Stable identifier, reported by the guard and used in WAF logs and metrics. */
  readonly id: string;
  /** Regular expression source in the WAF subset, matched against normalised text. */
  readonly source: string;
  /** Summary of the phrasings the pattern catches, for reviewers and log readers. */
  readonly description: string;
}

/** A pattern compiled for the runtime guard. */
export interface CompiledInjectionPattern extends InjectionPattern {
  readonly regex: RegExp;
}

/**
 * Maximum characters in one WAF regex pattern, and patterns in one regex
 * pattern set. Both are fixed WAF quotas.
 * https://docs.aws.amazon.com/waf/latest/developerguide/limits.html
 */
export const WAF_MAX_PATTERN_LENGTH = 200;
export const WAF_MAX_PATTERNS_PER_SET = 10;

// NOTE: WAF names these limits without numbers ("large values of
// quantifiers", "excessive wildcard repeated patterns", "large number of |
// branches"). These thresholds are conservative guesses, and the WAF API
// rejects a pattern beyond its real limit when the stack deploys.
/** Maximum count in a `{n}`, `{n,}` or `{n,m}` quantifier. */
export const MAX_REPEAT_COUNT = 100;
/** Maximum number of `|` branches in one pattern. */
export const MAX_BRANCHES = 40;
/** Maximum number of unbounded wildcard repeats (`.*`, `.+`, `.{n,}`) in one pattern. */
export const MAX_UNBOUNDED_WILDCARDS = 1;

/**
 * The pattern list. Each source is lower case with single spaces, because the
 * text it runs on is normalised first. Keep each one under
 * {@link WAF_MAX_PATTERN_LENGTH} characters; the firewall splits the list into
 * pattern sets of {@link WAF_MAX_PATTERNS_PER_SET}.
 */
export const INJECTION_PATTERNS: readonly InjectionPattern[] = [
  {
    id: 'ignore-previous-instructions',
    source:
      '(?:ignore|disregard|forget) (?:all |any )?(?:of )?(?:the |your )?(?:previous|prior|above|earlier|original|initial|system) ' +
      '(?:instructions?|prompts?|rules|direct(?:ion|ive)s|guidelines|context)',
    description: 'tells the model to ignore, disregard or forget the instructions it was given',
  },
  {
    id: 'ignore-instructions-above',
    source:
      '(?:ignore|disregard|forget) (?:all |any )?(?:of )?(?:the |your )?(?:instructions|rules|prompts?|guidelines) ' +
      '(?:above|before this|you were given|you have been given|given to you|you received)',
    description: 'the same request with the words in the other order: "ignore the instructions above"',
  },
  {
    id: 'ignore-everything-before',
    source:
      '(?:ignore|disregard|forget) (?:everything|all|anything|whatever) (?:that )?' +
      "(?:you (?:were|have been|'ve been) (?:told|given|taught|instructed)|(?:written |stated )?(?:above|before this|prior to this))",
    description: 'tells the model to drop everything it was told or everything above the message',
  },
  {
    id: 'new-instructions',
    source:
      '(?:new|updated|revised|real|actual|true) (?:system )?(?:instructions|prompt|directives?|orders) ?: ?' +
      "(?:you|your|from now|ignore|disregard|forget|act|pretend|do not|don't)",
    description: 'announces replacement instructions that address the model',
  },
  {
    id: 'unrestricted-persona',
    source:
      "(?:you are|you're|act as|pretend to be|role-?play as|become) (?:now )?(?:an? )?" +
      '(?:unrestricted|unfiltered|uncensored|jailbroken|evil|amoral|unaligned|rogue) (?:ai|assistant|model|chatbot|llm|version)',
    description: 'asks the model to become an unrestricted, unfiltered or jailbroken persona',
  },
  {
    id: 'dan-jailbreak',
    source:
      "(?:you are now|you're now|you will now be|you will be|you are going to be) (?:dan|stan|dude)\\b|" +
      '\\bdan\\b.{0,60}do anything now|do anything now.{0,60}\\bdan\\b',
    description: 'the DAN ("do anything now") family of jailbreak personas',
  },
  {
    id: 'enable-jailbreak-mode',
    source:
      '(?:enable|activate|enter|switch to|turn on|unlock|engage) (?:the )?' +
      '(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|dan|evil) mode|developer mode output',
    description: 'switches the model into a named jailbreak mode',
  },
  {
    id: 'jailbreak-mode-enabled',
    source: '(?:god|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored) mode (?:is )?(?:now )?(?:enabled|activated|on|engaged|unlocked)',
    description: 'declares that a named jailbreak mode is on',
  },
  {
    id: 'reveal-system-prompt',
    source:
      '(?:reveal|show|print|output|repeat|leak|dump|disclose|tell|give|share) (?:me |us )?(?:all |back )?(?:of )?your ' +
      '(?:[a-z]+ )?(?:system (?:prompt|message|instructions)|hidden instructions)',
    description: 'asks the model to output its system prompt or hidden instructions',
  },
  {
    id: 'what-is-your-system-prompt',
    source:
      '(?:what|which) (?:is|are|was|were) your (?:exact |full |original |initial |hidden |secret )?' +
      '(?:system prompt|system message|system instructions|hidden instructions|initial instructions)',
    description: 'asks what the system prompt is',
  },
  {
    id: 'repeat-text-above',
    source:
      '(?:repeat|print|output|recite) (?:the |all )?(?:words|text|everything) (?:above|before this)(?: verbatim)? starting (?:with|from)|' +
      '(?:initial|secret|hidden|original) (?:prompt|instructions) verbatim',
    description: 'asks for the text above the message, verbatim, a way to extract the system prompt',
  },
  {
    id: 'chat-template-token',
    source: '<\\|(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|end_header_id|eot_id)\\|>|\\[/?inst\\]|<</?sys>>',
    description: 'special tokens of model chat templates, used to fake a system or user turn',
  },
  {
    id: 'fake-prompt-boundary',
    source:
      '[-=#*<\\[/] ?end of (?:the )?(?:system )?(?:prompt|instructions)|(?:begin|start) (?:of )?(?:new|admin|developer|system) (?:instructions|prompt)|' +
      '#{2,} ?(?:system|instruction|new instructions?) ?:',
    description: 'text that pretends a system prompt ended or a new one begins',
  },
  {
    id: 'admin-override',
    source: '(?:system|admin|administrator|developer|security|root|sudo) override ?(?::|activated|enabled|engaged|accepted|granted|protocol|mode)',
    description: 'declares an administrator or developer override of the model rules',
  },
  {
    id: 'claims-developer',
    source: "(?:i am|i'm|this is) your (?:developer|creator|administrator|admin|programmer|maker|owner)s?\\b",
    description: 'claims to be the developer or administrator of the model, usually to give it orders',
  },
  {
    id: 'bypass-safety',
    source:
      '(?:bypass|disable|turn off|ignore|remove|circumvent|evade) (?:all )?(?:of )?your ' +
      '(?:safety |content |ethical |own )?(?:filters?|guardrails|guidelines|restrictions|censorship|rules|programming)',
    description: 'tells the model to disable its safety filters, rules or guidelines',
  },
  {
    id: 'you-have-no-restrictions',
    source:
      'you (?:have|has|now have) no (?:more )?(?:restrictions|filters|rules|limits|limitations|ethics|morals|guidelines|boundaries|policies|guardrails)',
    description: 'tells the model it has no restrictions, filters or rules',
  },
  {
    id: 'not-bound-by-rules',
    source:
      "(?:you are|you're) (?:now )?(?:(?:not|no longer) (?:bound|restricted|constrained) by|" +
      'free (?:of|from) (?:all |any |your )?(?:restrictions|rules|filters|guidelines|censorship|programming))',
    description: 'tells the model it is no longer bound by its rules',
  },
  {
    id: 'respond-without-restrictions',
    source:
      '(?:answer|respond|reply|speak|talk|act|operate|write|continue) (?:freely |honestly )?without (?:any )?' +
      '(?:restrictions|filters|censorship|limitations|guardrails|ethical|moral|safety)',
    description: 'asks for answers without restrictions, filters or censorship',
  },
  {
    id: 'note-to-ai',
    source:
      '(?:(?:note|message|instructions?|important) (?:to|for) (?:the |any |all )?|attention )' +
      '(?:ai|llm|language model|chatbot|ai assistant|ai model|ai agent)s? ?[:,-]',
    description: 'text addressed to an AI that reads it, the usual form of indirect injection in documents and tool results',
  },
  {
    id: 'if-you-are-an-ai',
    source:
      'if you are an? (?:ai|llm|large language model|language model|ai assistant|chatbot|ai agent|ai model) ' +
      '(?:reading|summari[sz]ing|processing|parsing|that reads|who reads)',
    description: 'indirect injection that addresses whichever AI reads the document',
  },
  {
    id: 'exfiltrate-conversation',
    source:
      '(?:send|post|upload|forward|exfiltrate|leak) (?:all |the |your )?(?:full |entire )?' +
      '(?:conversation|chat (?:history|log)|system prompt|secrets|credentials|api keys?|passwords) to (?:https?:|ftp:|www\\.)',
    description: 'asks the model to send the conversation, secrets or credentials to an outside address',
  },
  {
    id: 'reveal-secrets',
    source:
      '(?:reveal|print|show|output|dump|give|tell|leak|share) (?:me |us )?(?:all )?(?:of )?your (?:[a-z]+ )?' +
      '(?:(?:api|secret|access) keys?|credentials|passwords|environment variables|env vars|secrets)',
    description: 'asks the model to output its API keys, credentials or environment variables',
  },
  {
    id: 'markdown-image-exfiltration',
    source: '!\\[[^\\]]{0,60}\\]\\(https?://[^)\\s]{1,100}(?:\\{|\\$|%7b)',
    description: 'a markdown image whose URL has a placeholder for data, which leaks the data when the reply is rendered',
  },
];

/**
 * Returns `text` normalised as the WAF rule normalises a request body after
 * `JS_DECODE`: `A-Z` lowered to `a-z`, the WAF whitespace characters replaced
 * with spaces and each run of spaces compressed to one.
 */
// NOTE: WAF works on bytes, so for a non-breaking space, which UTF-8 sends as
// C2 A0, it may replace only the A0 byte and leave a C2 byte before the space.
// This function treats the character as a whole and replaces it with a space.
export function normalizeForInspection(text: string): string {
  return text
    .replace(/[A-Z]+/g, (letters) => letters.toLowerCase())
    .replace(/[\f\t\n\r\v\u00a0]/g, ' ')
    .replace(/ {2,}/g, ' ');
}

/**
 * Checks that `source` uses only regex features that WAF supports and that
 * mean the same in WAF (PCRE) and JavaScript. Returns one message per
 * problem, or an empty array when the pattern is valid.
 */
export function checkWafRegexSubset(source: string): string[] {
  const problems: string[] = [];
  if (source.length === 0) problems.push('the pattern is empty');
  if (source.length > WAF_MAX_PATTERN_LENGTH) {
    problems.push(`the pattern has ${source.length} characters; WAF accepts at most ${WAF_MAX_PATTERN_LENGTH}`);
  }
  try {
    new RegExp(source);
  } catch (error) {
    problems.push(`JavaScript cannot compile the pattern: ${(error as Error).message}`);
  }
  // The scanner also runs on a pattern JavaScript rejects, so that PCRE-only
  // syntax such as (?>...) gets its specific reason.
  problems.push(...new SubsetScanner(source).scan());
  return problems;
}

/**
 * Validates every pattern and compiles it for the runtime guard. Throws when
 * a pattern is outside the WAF subset or two patterns share an id.
 */
export function compileInjectionPatterns(
  patterns: readonly InjectionPattern[] = INJECTION_PATTERNS,
): CompiledInjectionPattern[] {
  const seen = new Set<string>();
  return patterns.map((pattern) => {
    if (seen.has(pattern.id)) {
      throw new Error(`Injection pattern id ${pattern.id} is used twice; give each pattern its own id.`);
    }
    seen.add(pattern.id);
    const problems = checkWafRegexSubset(pattern.source);
    if (problems.length > 0) {
      throw new Error(`Injection pattern ${pattern.id} is outside the WAF regex subset: ${problems.join('; ')}.`);
    }
    // No flags: the text is lowercased by normalizeForInspection, and the
    // JavaScript non-unicode mode matches PCRE's non-UTF mode most closely.
    return { ...pattern, regex: new RegExp(pattern.source) };
  });
}

let defaultPatterns: CompiledInjectionPattern[] | undefined;

/**
 * Normalises `text` and returns the id of the first pattern that matches it,
 * or undefined when none does. Without `patterns`, uses
 * {@link INJECTION_PATTERNS}, compiled once.
 */
export function findInjection(
  text: string,
  patterns: readonly CompiledInjectionPattern[] = (defaultPatterns ??= compileInjectionPatterns()),
): string | undefined {
  const normalized = normalizeForInspection(text);
  return patterns.find((pattern) => pattern.regex.test(normalized))?.id;
}

/** Escapes after `\` that mean the same in PCRE and JavaScript, outside a character class. */
const PORTABLE_ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S', 'b', 'B', 'n', 'r', 't', 'f']);
/** The same inside a character class, where `\b` means backspace in both and is left out. */
const PORTABLE_CLASS_ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S', 'n', 'r', 't', 'f']);

/** Reason for rejecting each escape that WAF or JavaScript treats specially. */
const REJECTED_ESCAPES: Record<string, string> = {
  C: 'the \\C single-byte directive is not supported by WAF',
  R: 'the \\R newline directive is not supported by WAF',
  K: 'the \\K match reset is not supported by WAF',
  k: 'named backreferences are not supported by WAF',
  g: 'backreferences are not supported by WAF',
  u: '\\u escapes are JavaScript only; write the character or use \\xHH for ASCII',
  v: '\\v is a vertical tab in JavaScript but any vertical whitespace in PCRE',
  h: '\\h is PCRE only',
  H: '\\H is PCRE only',
  V: '\\V is PCRE only',
  N: '\\N is PCRE only',
  X: '\\X is PCRE only',
  A: '\\A is PCRE only; use ^',
  z: '\\z is PCRE only; use $',
  Z: '\\Z is PCRE only; use $',
  G: '\\G is PCRE only',
  Q: '\\Q...\\E quoting is PCRE only; escape each character',
  E: '\\E is PCRE only',
  p: '\\p{...} needs the u flag in JavaScript, which the guard does not use',
  P: '\\P{...} needs the u flag in JavaScript, which the guard does not use',
  c: '\\c control escapes are not portable; use \\xHH',
  e: '\\e is PCRE only; use \\x1b',
  a: '\\a is PCRE only; use \\x07',
  o: '\\o{...} is PCRE only; use \\xHH',
  '0': '\\0 is NUL in JavaScript but an octal escape in PCRE; use \\x00',
};

/** An open group while scanning: whether anything inside it repeats. */
interface OpenGroup {
  containsRepeat: boolean;
}

/** The last thing scanned that a quantifier may apply to. */
type Atom = { kind: 'char' | 'class' | 'dot' } | { kind: 'group'; containsRepeat: boolean } | undefined;

/**
 * Walks a pattern and reports each construct that WAF rejects or that means
 * something else in PCRE than in JavaScript.
 */
class SubsetScanner {
  private readonly problems: string[] = [];
  private readonly groups: OpenGroup[] = [];
  private atom: Atom;
  private branches = 1;
  private unboundedWildcards = 0;
  private index = 0;

  constructor(private readonly source: string) {}

  scan(): string[] {
    while (this.index < this.source.length) {
      const char = this.source[this.index];
      const at = this.index;
      if (char.charCodeAt(0) > 0x7e) {
        this.report(at, `non-ASCII character ${JSON.stringify(char)}: WAF matches bytes and JavaScript matches UTF-16 code units`);
      }
      if (char === '\\') this.scanEscape();
      else if (char === '[') this.scanClass();
      else if (char === '(') this.openGroup();
      else if (char === ')') this.closeGroup();
      else if (char === '|') this.addBranch();
      else if (char === '*' || char === '+' || char === '?') this.scanQuantifier(char, undefined);
      else if (char === '{') this.scanBraces();
      else if (char === ']' || char === '}') {
        this.report(at, `unescaped ${char}; write \\${char} for the literal character`);
        this.atom = { kind: 'char' };
        this.index += 1;
      } else if (char === '^' || char === '$') {
        this.atom = undefined;
        this.index += 1;
      } else {
        if (char >= 'A' && char <= 'Z') {
          this.report(at, `upper-case ${char} never matches, because the text is lowercased first`);
        }
        this.atom = { kind: char === '.' ? 'dot' : 'char' };
        this.index += 1;
      }
    }
    if (this.branches > MAX_BRANCHES) {
      this.problems.push(`the pattern has ${this.branches} branches; keep it at ${MAX_BRANCHES} or fewer, or split it`);
    }
    if (this.unboundedWildcards > MAX_UNBOUNDED_WILDCARDS) {
      this.problems.push(
        `the pattern repeats a wildcard without bound ${this.unboundedWildcards} times; ` +
          `keep it at ${MAX_UNBOUNDED_WILDCARDS}, or bound it as .{0,n}`,
      );
    }
    return this.problems;
  }

  private report(offset: number, message: string): void {
    this.problems.push(`offset ${offset}: ${message}`);
  }

  private scanEscape(): void {
    const at = this.index;
    const next = this.source[at + 1];
    this.index += 2;
    this.atom = { kind: 'char' };
    if (next >= '1' && next <= '9') {
      this.report(at, `\\${next} is a backreference, which WAF does not support`);
    } else if (next === 'x') {
      if (!/^[0-9a-fA-F]{2}$/.test(this.source.slice(at + 2, at + 4))) {
        this.report(at, '\\x needs exactly two hex digits');
      }
      this.index += 2;
    } else if (REJECTED_ESCAPES[next] !== undefined) {
      this.report(at, REJECTED_ESCAPES[next]);
    } else if (/[A-Za-z0-9]/.test(next)) {
      if (!PORTABLE_ESCAPES.has(next)) this.report(at, `\\${next} is not a portable escape`);
      if (next === 'b' || next === 'B') this.atom = undefined;
    }
  }

  private scanClass(): void {
    const at = this.index;
    this.index += 1;
    if (this.source[this.index] === '^') this.index += 1;
    if (this.source[this.index] === ']') {
      this.report(at, '[] and [^] mean "nothing" and "anything" in JavaScript but start a class containing ] in PCRE');
    }
    while (this.index < this.source.length && this.source[this.index] !== ']') {
      const char = this.source[this.index];
      if (char === '\\') {
        const next = this.source[this.index + 1];
        if (next === 'x') {
          this.index += 2;
        } else if (/[A-Za-z0-9]/.test(next) && !PORTABLE_CLASS_ESCAPES.has(next)) {
          this.report(this.index, REJECTED_ESCAPES[next] ?? `\\${next} is not a portable escape inside a character class`);
        }
        this.index += 2;
        continue;
      }
      if (char === '[') {
        this.report(this.index, 'unescaped [ inside a character class starts a POSIX class in PCRE; write \\[');
      } else if (char >= 'A' && char <= 'Z') {
        this.report(this.index, `upper-case ${char} never matches, because the text is lowercased first`);
      } else if (char.charCodeAt(0) > 0x7e) {
        this.report(this.index, `non-ASCII character ${JSON.stringify(char)} in a character class`);
      }
      this.index += 1;
    }
    this.index += 1;
    this.atom = { kind: 'class' };
  }

  private openGroup(): void {
    const at = this.index;
    const rest = this.source.slice(at + 1, at + 4);
    if (rest.startsWith('?:')) {
      this.index += 3;
    } else {
      this.report(at, describeGroupProblem(rest));
      // Skip the group's syntax so that its name or flags are not scanned as text.
      const match = /^(\?<?[=!]|\?P?<[^>]*>|\?'[^']*'|\?[>|#]|\?\(|\?[A-Za-z-]*:?|\*[A-Z]*:?)?/.exec(this.source.slice(at + 1));
      this.index += 1 + (match?.[0].length ?? 0);
    }
    this.groups.push({ containsRepeat: false });
    this.atom = undefined;
  }

  private closeGroup(): void {
    const containsRepeat = this.groups.pop()?.containsRepeat ?? false;
    const parent = this.groups[this.groups.length - 1];
    if (parent && containsRepeat) parent.containsRepeat = true;
    this.index += 1;
    this.atom = { kind: 'group', containsRepeat };
  }

  private addBranch(): void {
    this.branches += 1;
    this.index += 1;
    this.atom = undefined;
  }

  private scanBraces(): void {
    const at = this.index;
    const match = /^\{(\d+)(,(\d*))?\}/.exec(this.source.slice(at));
    if (!match) {
      this.report(at, 'unescaped { that does not start a quantifier; write \\{');
      this.index += 1;
      this.atom = { kind: 'char' };
      return;
    }
    const min = Number(match[1]);
    const max = match[3] === undefined || match[3] === '' ? undefined : Number(match[3]);
    if (min > MAX_REPEAT_COUNT || (max ?? 0) > MAX_REPEAT_COUNT) {
      this.report(at, `repeat count ${match[0]} is above ${MAX_REPEAT_COUNT}`);
    }
    this.index += match[0].length - 1;
    const unbounded = match[2] !== undefined && max === undefined;
    this.scanQuantifier('{', unbounded ? undefined : (max ?? min));
  }

  /**
   * Handles the quantifier whose last character is at `index`. `max` is the
   * upper bound of a `{...}` quantifier, undefined for `*`, `+` and `{n,}`.
   */
  private scanQuantifier(char: string, max: number | undefined): void {
    const at = this.index;
    this.index += 1;
    const atom = this.atom;
    if (atom === undefined) {
      this.report(at, `quantifier ${char} has nothing to repeat`);
      return;
    }
    // `?` and `{0,1}` make the atom optional; only the others repeat it.
    const repeats = char === '*' || char === '+' || (char === '{' && (max === undefined || max > 1));
    const atomRepeats = atom.kind === 'group' && atom.containsRepeat;
    if (repeats && atomRepeats) {
      this.report(at, 'a repeated group contains a repeat; WAF rejects nested repeats');
    }
    const unbounded = char === '*' || char === '+' || (char === '{' && max === undefined);
    if (atom.kind === 'dot' && unbounded) this.unboundedWildcards += 1;
    const following = this.source[this.index];
    if (following === '+') {
      this.report(this.index, 'possessive quantifiers are not supported by WAF');
      this.index += 1;
    } else if (following === '?') {
      this.index += 1;
    }
    const group = this.groups[this.groups.length - 1];
    if (group && repeats) group.containsRepeat = true;
    // A second quantifier on the same atom is a syntax error in JavaScript,
    // which checkWafRegexSubset already reported.
    this.atom = undefined;
  }
}

/** Names the group syntax after `(`, given the next three characters. */
function describeGroupProblem(rest: string): string {
  if (rest.startsWith('?=') || rest.startsWith('?!')) return 'lookahead is not supported by WAF';
  if (rest.startsWith('?<=') || rest.startsWith('?<!')) return 'lookbehind is not supported by WAF';
  if (rest.startsWith('?<') || rest.startsWith('?P<') || rest.startsWith("?'")) {
    return 'named capturing groups are not supported by WAF; write (?:...)';
  }
  if (rest.startsWith('?>')) return 'atomic groups are not supported by WAF';
  if (rest.startsWith('?(')) return 'conditional patterns are not supported by WAF';
  if (rest.startsWith('?R') || /^\?[+-]?\d/.test(rest) || rest.startsWith('?&') || rest.startsWith('?P>')) {
    return 'recursion and subroutine calls are not supported by WAF';
  }
  if (rest.startsWith('?C')) return 'callouts are not supported by WAF';
  if (rest.startsWith('?#')) return 'comments are PCRE only';
  if (rest.startsWith('?|')) return 'branch reset groups are PCRE only';
  if (rest.startsWith('?')) return 'inline flags are not portable; the text is lowercased, so no flag is needed';
  if (rest.startsWith('*')) return 'backtracking control verbs are not supported by WAF';
  return 'capturing groups are not supported by WAF; write (?:...)';
}
