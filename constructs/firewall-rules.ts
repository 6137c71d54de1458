import * as wafv2 from 'aws-cdk-lib/aws-wafv2';

/** An AWS managed (or Marketplace) rule group added to the firewall. */
export interface ManagedRuleGroup {
  /** Name of the rule group, such as `AWSManagedRulesSQLiRuleSet`. */
  readonly name: string;

  /**
   * Vendor of the rule group.
   *
   * @default 'AWS'
   */
  readonly vendorName?: string;

  /**
   * Version of the rule group, such as `Version_1.2`.
   *
   * @default - the vendor's default version, which the vendor updates
   */
  readonly version?: string;

  /**
   * Rules of the group that count matching requests instead of taking their
   * own action, for rules that block legitimate traffic of the agents.
   *
   * @default []
   */
  readonly countRules?: string[];
}

/**
 * Treatment of request bodies larger than the 8 KB that WAF inspects on an
 * Application Load Balancer.
 *
 * - `inspect-first-8kb`: body rules inspect the first 8 KB and let the rest
 *   continue (oversize handling CONTINUE), and the core rule set's
 *   `SizeRestrictions_BODY` rule counts instead of blocking. The gateway's
 *   runtime guard checks the whole text.
 * - `block`: the prompt-injection rules treat a body above 8 KB as a match,
 *   and `SizeRestrictions_BODY` blocks. Use it when no agent takes messages
 *   that long.
 */
export type OversizeBodyBehavior = 'inspect-first-8kb' | 'block';

/** Action of the prompt-injection rules. `count` only records matches, for tuning before blocking. */
export type InjectionRuleAction = 'block' | 'count';

/**
 * WAF's range of the rate-based rule limit, in requests per evaluation
 * window, and the firewall's default. An IP address that sends more than
 * about 3 requests a second for 5 minutes is a script rather than a person;
 * raise the limit when many users share one address behind a NAT.
 * https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based-high-level-settings.html
 */
export const MIN_RATE_LIMIT = 10;
export const MAX_RATE_LIMIT = 2_000_000_000;
export const DEFAULT_RATE_LIMIT = 1_000;

/** Name of the core rule set's rule that blocks bodies over 8 KB. */
export const SIZE_RESTRICTIONS_BODY_RULE = 'SizeRestrictions_BODY';

/**
 * The managed rule groups every firewall has: the core rule set (common web
 * exploits), known bad inputs (Log4j, Java deserialization and similar) and
 * the Amazon IP reputation list. They cost 700, 200 and 25 WCUs.
 * https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html
 * https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-ip-rep.html
 */
export const CORE_RULE_SET = 'AWSManagedRulesCommonRuleSet';
export const KNOWN_BAD_INPUTS_RULE_SET = 'AWSManagedRulesKnownBadInputsRuleSet';
export const IP_REPUTATION_LIST = 'AWSManagedRulesAmazonIpReputationList';

/** Names of the custom response bodies in the web ACL. */
export const RATE_LIMITED_BODY_KEY = 'rate-limited';
export const INJECTION_BLOCKED_BODY_KEY = 'injection-blocked';

/**
 * JSON bodies of the firewall's own block responses, shaped like the
 * worker's error responses so that clients parse one format. A request the
 * injection rule blocks gets the same error name, layer and status (400) as
 * one the gateway's pattern check blocks, with `policy` naming the firewall.
 */
export const CUSTOM_RESPONSE_BODIES: Record<string, wafv2.CfnWebACL.CustomResponseBodyProperty> = {
  [RATE_LIMITED_BODY_KEY]: {
    contentType: 'APPLICATION_JSON',
    content: JSON.stringify({
      error: {
        name: 'RateLimitedError',
        message: 'Too many requests from this IP address in the last 5 minutes; wait and retry.',
      },
    }),
  },
  [INJECTION_BLOCKED_BODY_KEY]: {
    contentType: 'APPLICATION_JSON',
    content: JSON.stringify({
      error: {
        name: 'GuardrailBlockedError',
        layer: 'pattern',
        policy: 'firewall',
        message: 'The request matches a known prompt-injection pattern and was blocked; rephrase the message.',
      },
    }),
  },
};

/**
 * Text transformations of the body rules, in the order WAF applies them.
 * The body is JSON, so JS_DECODE turns `\n` and `\"` back into the characters
 * the user typed, then LOWERCASE and COMPRESS_WHITE_SPACE normalise the text
 * as `normalizeForInspection` in lambda/shared/injection-patterns.ts does.
 * https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-transformation.html
 */
export const BODY_TEXT_TRANSFORMATIONS: wafv2.CfnWebACL.TextTransformationProperty[] = [
  { priority: 0, type: 'JS_DECODE' },
  { priority: 1, type: 'LOWERCASE' },
  { priority: 2, type: 'COMPRESS_WHITE_SPACE' },
];

/** Returns the visibility settings of a rule or web ACL whose metric is `metricName`. */
export function visibility(metricName: string, sampledRequests: boolean): wafv2.CfnWebACL.VisibilityConfigProperty {
  return { cloudWatchMetricsEnabled: true, metricName, sampledRequestsEnabled: sampledRequests };
}

/** Builds a rule that evaluates a managed rule group, with `countRules` overridden to Count. */
export function managedGroupRule(
  group: ManagedRuleGroup,
  priority: number,
  sampledRequests: boolean,
): wafv2.CfnWebACL.RuleProperty {
  const vendorName = group.vendorName ?? 'AWS';
  const countRules = group.countRules ?? [];
  return {
    name: `${vendorName}-${group.name}`,
    priority,
    overrideAction: { none: {} },
    statement: {
      managedRuleGroupStatement: {
        vendorName,
        name: group.name,
        version: group.version,
        ruleActionOverrides:
          countRules.length > 0 ? countRules.map((rule) => ({ name: rule, actionToUse: { count: {} } })) : undefined,
      },
    },
    visibilityConfig: visibility(`${vendorName}-${group.name}`, sampledRequests),
  };
}

/** Builds the rate-based rule that responds with 429 to an IP above `limit` requests in 5 minutes. */
export function rateLimitRule(
  name: string,
  limit: number,
  priority: number,
  sampledRequests: boolean,
): wafv2.CfnWebACL.RuleProperty {
  return {
    name,
    priority,
    action: { block: { customResponse: { responseCode: 429, customResponseBodyKey: RATE_LIMITED_BODY_KEY } } },
    statement: {
      rateBasedStatement: { limit, evaluationWindowSec: 300, aggregateKeyType: 'IP' },
    },
    visibilityConfig: visibility(name, sampledRequests),
  };
}

/**
 * Builds a rule that matches the body against one regex pattern set, after
 * the body text transformations.
 */
export function injectionRule(options: {
  readonly name: string;
  readonly patternSetArn: string;
  readonly priority: number;
  readonly action: InjectionRuleAction;
  readonly oversizeBody: OversizeBodyBehavior;
  readonly sampledRequests: boolean;
}): wafv2.CfnWebACL.RuleProperty {
  return {
    name: options.name,
    priority: options.priority,
    action:
      options.action === 'block'
        ? { block: { customResponse: { responseCode: 400, customResponseBodyKey: INJECTION_BLOCKED_BODY_KEY } } }
        : { count: {} },
    statement: {
      regexPatternSetReferenceStatement: {
        arn: options.patternSetArn,
        fieldToMatch: { body: { oversizeHandling: options.oversizeBody === 'block' ? 'MATCH' : 'CONTINUE' } },
        textTransformations: BODY_TEXT_TRANSFORMATIONS,
      },
    },
    visibilityConfig: visibility(options.name, options.sampledRequests),
  };
}

/** Splits `items` into chunks of at most `size`, keeping their order. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) {
    chunks.push(items.slice(start, start + size));
  }
  return chunks;
}
