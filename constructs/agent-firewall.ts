import { Annotations, ArnFormat, Duration, Names, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import {
  INJECTION_PATTERNS,
  InjectionPattern,
  WAF_MAX_PATTERNS_PER_SET,
  compileInjectionPatterns,
} from '../lambda/shared/injection-patterns';
import {
  CORE_RULE_SET,
  CUSTOM_RESPONSE_BODIES,
  DEFAULT_RATE_LIMIT,
  IP_REPUTATION_LIST,
  InjectionRuleAction,
  KNOWN_BAD_INPUTS_RULE_SET,
  MAX_RATE_LIMIT,
  MIN_RATE_LIMIT,
  ManagedRuleGroup,
  OversizeBodyBehavior,
  SIZE_RESTRICTIONS_BODY_RULE,
  chunk,
  injectionRule,
  managedGroupRule,
  rateLimitRule,
  visibility,
} from './firewall-rules';

export { DEFAULT_RATE_LIMIT, MAX_RATE_LIMIT, MIN_RATE_LIMIT } from './firewall-rules';
export type { InjectionRuleAction, ManagedRuleGroup, OversizeBodyBehavior } from './firewall-rules';

export interface AgentFirewallProps {
  /**
   * Load balancer of the realtime agents, associated with the web ACL.
   *
   * @default - none; call `associate` to protect a load balancer
   */
  readonly loadBalancer?: elbv2.IApplicationLoadBalancer;

  /**
   * Managed rule groups evaluated after the default three (core rule set,
   * known bad inputs, IP reputation), in the order given.
   *
   * @default []
   */
  readonly managedRuleGroups?: ManagedRuleGroup[];

  /**
   * Rules of the core rule set that count matching requests instead of
   * blocking them, in addition to `SizeRestrictions_BODY` when `oversizeBody`
   * is `inspect-first-8kb`. Add `CrossSiteScripting_BODY` when users paste
   * HTML or JavaScript into their messages.
   *
   * @default []
   */
  readonly coreRuleSetCountRules?: string[];

  /**
   * Requests one IP address may send in any 5-minute window. WAF responds
   * with 429 to the rest, and accepts limits from 10 to 2,000,000,000.
   *
   * @default 1000
   */
  readonly rateLimit?: number;

  /**
   * Prompt-injection patterns matched against the body. Each must be in the
   * WAF regex subset that `checkWafRegexSubset` checks.
   *
   * @default INJECTION_PATTERNS from lambda/shared/injection-patterns.ts
   */
  readonly injectionPatterns?: readonly InjectionPattern[];

  /**
   * Action of the prompt-injection rules.
   *
   * @default 'block'
   */
  readonly injectionAction?: InjectionRuleAction;

  /**
   * Treatment of bodies larger than the 8 KB WAF inspects.
   *
   * @default 'inspect-first-8kb'
   */
  readonly oversizeBody?: OversizeBodyBehavior;

  /**
   * Request headers kept out of the WAF logs, in addition to
   * `authorization` and `cookie`, which are always redacted.
   *
   * @default []
   */
  readonly redactedHeaders?: string[];

  /**
   * Log every request. Otherwise only blocked and counted requests are logged.
   *
   * @default false
   */
  readonly logAllRequests?: boolean;

  /**
   * Store samples of matching requests for the WAF console. Samples show the
   * request headers, including `authorization`, which the logs redact.
   *
   * @default false
   */
  readonly sampledRequests?: boolean;

  /**
   * Retention of the WAF log group.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Key that encrypts the WAF log group. Its key policy must let CloudWatch
   * Logs use it, as the AgentStack key's policy does.
   *
   * @default - CloudWatch Logs' own encryption
   */
  readonly encryptionKey?: kms.IKey;
}

/**
 * Regex pattern sets one account may have per Region by default. The
 * firewall warns when its patterns need more sets than that.
 * https://docs.aws.amazon.com/waf/latest/developerguide/limits.html
 */
const REGEX_PATTERN_SETS_PER_REGION = 10;

/** Destination names WAF accepts for logs start with this prefix. */
export const WAF_LOG_PREFIX = 'aws-waf-logs-';

/** Headers whose values never reach the WAF logs. */
const ALWAYS_REDACTED_HEADERS = ['authorization', 'cookie'];

/**
 * Rule priorities, lowest first. The IP reputation list comes first because
 * it is cheap and stops known bad sources before they count against the
 * rate limit. The rate limit comes next, so that a flood is cut off before
 * the body rules inspect it. The managed groups follow, then any extra
 * groups, and the prompt-injection rules come last.
 */
const PRIORITY = {
  ipReputation: 0,
  rateLimit: 1,
  coreRuleSet: 2,
  knownBadInputs: 3,
  extraManagedGroups: 10,
  injection: 100,
} as const;

/**
 * A WAFv2 web ACL in front of the realtime agents' load balancer: AWS managed
 * rule groups, a rate limit per client IP, and regex pattern sets of known
 * prompt-injection phrasings matched against the request body. On a load
 * balancer WAF inspects only the first 8 KB of a body, so by default the
 * body rules let longer bodies continue and the gateway's runtime guard
 * checks the whole text with the same patterns.
 */
export class AgentFirewall extends Construct {
  /** Name of the rate-based rule, also its metric name. */
  public static readonly RATE_LIMIT_RULE = 'RateLimitPerIp';
  /** Prefix of the prompt-injection rules, one per pattern set: `PromptInjection1`, `PromptInjection2`, ... */
  public static readonly INJECTION_RULE_PREFIX = 'PromptInjection';

  public readonly webAcl: wafv2.CfnWebACL;
  /** Name of the web ACL, also the `WebACL` dimension of its metrics. */
  public readonly webAclName: string;
  /** Regex pattern sets of the injection patterns, at most 10 patterns each. */
  public readonly patternSets: wafv2.CfnRegexPatternSet[];
  public readonly logGroup: logs.LogGroup;
  public readonly loggingConfiguration: wafv2.CfnLoggingConfiguration;
  /** Names of the rules in priority order, which are also their metric names. */
  public readonly ruleNames: readonly string[];
  private associations = 0;

  constructor(scope: Construct, id: string, props: AgentFirewallProps = {}) {
    super(scope, id);

    // Validate.
    const rateLimit = props.rateLimit ?? DEFAULT_RATE_LIMIT;
    if (!Number.isInteger(rateLimit) || rateLimit < MIN_RATE_LIMIT || rateLimit > MAX_RATE_LIMIT) {
      throw new Error(
        `AgentFirewall: rateLimit ${rateLimit} is invalid; WAF accepts a whole number of requests per 5 minutes from ${MIN_RATE_LIMIT} to ${MAX_RATE_LIMIT}.`,
      );
    }
    const patterns = props.injectionPatterns ?? INJECTION_PATTERNS;
    if (patterns.length === 0) {
      throw new Error('AgentFirewall: injectionPatterns is empty; omit it to use INJECTION_PATTERNS, or set injectionAction to count.');
    }
    try {
      compileInjectionPatterns(patterns);
    } catch (error) {
      throw new Error(`AgentFirewall: ${(error as Error).message}`);
    }
    const extraGroups = props.managedRuleGroups ?? [];
    validateManagedGroups(extraGroups);
    const oversizeBody = props.oversizeBody ?? 'inspect-first-8kb';
    const sampledRequests = props.sampledRequests ?? false;
    this.webAclName = Names.uniqueResourceName(this, { maxLength: 128, separator: '-' });

    // Create the regex pattern sets, as many as the per-set quota needs.
    const patternChunks = chunk(patterns, WAF_MAX_PATTERNS_PER_SET);
    this.patternSets = patternChunks.map(
      (group, index) =>
        new wafv2.CfnRegexPatternSet(this, `InjectionPatterns${index + 1}`, {
          scope: 'REGIONAL',
          description: `Prompt-injection patterns, set ${index + 1} of ${patternChunks.length}`,
          regularExpressionList: group.map((pattern) => pattern.source),
        }),
    );
    if (this.patternSets.length > REGEX_PATTERN_SETS_PER_REGION) {
      Annotations.of(this).addWarningV2(
        'cdk-agent-stack:regexPatternSetQuota',
        `The firewall needs ${this.patternSets.length} regex pattern sets, above the default quota of ${REGEX_PATTERN_SETS_PER_REGION} per account and Region; ` +
          'request a quota increase or use fewer injection patterns.',
      );
    }

    // Create the web ACL with its rules in priority order.
    const rules = this.buildRules({
      rateLimit,
      extraGroups,
      oversizeBody,
      sampledRequests,
      action: props.injectionAction ?? 'block',
      coreRuleSetCountRules: props.coreRuleSetCountRules ?? [],
    });
    this.ruleNames = rules.map((rule) => rule.name);
    this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      name: this.webAclName,
      scope: 'REGIONAL',
      description: 'Agent endpoint firewall: managed rules, rate limit per IP, prompt-injection patterns',
      defaultAction: { allow: {} },
      customResponseBodies: CUSTOM_RESPONSE_BODIES,
      rules,
      visibilityConfig: visibility(this.webAclName, sampledRequests),
    });

    // Log blocked and counted requests, with credentials redacted.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `${WAF_LOG_PREFIX}${Names.uniqueResourceName(this, { maxLength: 100, separator: '-' })}`,
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const redactedHeaders = [...new Set([...ALWAYS_REDACTED_HEADERS, ...(props.redactedHeaders ?? []).map((h) => h.toLowerCase())])];
    // WAF takes the log group ARN without the `:*` suffix of logGroupArn, and
    // adds the log group to the account's resource policy for log delivery.
    // https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html
    this.loggingConfiguration = new wafv2.CfnLoggingConfiguration(this, 'Logging', {
      resourceArn: this.webAcl.attrArn,
      logDestinationConfigs: [
        Stack.of(this).formatArn({
          service: 'logs',
          resource: 'log-group',
          resourceName: this.logGroup.logGroupName,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      ],
      redactedFields: redactedHeaders.map((name) => ({ singleHeader: { Name: name } })),
      loggingFilter: props.logAllRequests ? undefined : BLOCKED_AND_COUNTED_ONLY,
    });

    // Associate the load balancer.
    if (props.loadBalancer) this.associate(props.loadBalancer);
  }

  /** Associates the web ACL with a load balancer; WAF then inspects every request it receives. */
  associate(loadBalancer: elbv2.IApplicationLoadBalancer): wafv2.CfnWebACLAssociation {
    this.associations += 1;
    return new wafv2.CfnWebACLAssociation(this, `Association${this.associations}`, {
      resourceArn: loadBalancer.loadBalancerArn,
      webAclArn: this.webAcl.attrArn,
    });
  }

  /**
   * Requests WAF blocked, for one rule or, without `ruleName`, for the whole
   * web ACL. Rule names are in `ruleNames`.
   */
  metricBlockedRequests(ruleName?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('BlockedRequests', ruleName, props);
  }

  /** Requests that matched a rule whose action is Count, such as `SizeRestrictions_BODY`. */
  metricCountedRequests(ruleName?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('CountedRequests', ruleName, props);
  }

  /** Requests WAF allowed. */
  metricAllowedRequests(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric('AllowedRequests', undefined, props);
  }

  /**
   * Returns a WAF metric in namespace `AWS/WAFV2`. A regional web ACL
   * publishes it with the dimensions Region, Rule and WebACL, where Rule is a
   * rule's metric name or `ALL` for the whole web ACL.
   * https://docs.aws.amazon.com/waf/latest/developerguide/waf-metrics.html
   */
  private metric(metricName: string, ruleName: string | undefined, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    if (ruleName !== undefined && !this.ruleNames.includes(ruleName)) {
      throw new Error(`AgentFirewall: no rule named ${ruleName}; use one of ${this.ruleNames.join(', ')}.`);
    }
    return new cloudwatch.Metric({
      namespace: 'AWS/WAFV2',
      metricName,
      dimensionsMap: { Region: Stack.of(this).region, Rule: ruleName ?? 'ALL', WebACL: this.webAclName },
      statistic: 'Sum',
      period: Duration.minutes(5),
      ...props,
    });
  }

  private buildRules(options: {
    readonly rateLimit: number;
    readonly extraGroups: readonly ManagedRuleGroup[];
    readonly oversizeBody: OversizeBodyBehavior;
    readonly sampledRequests: boolean;
    readonly action: InjectionRuleAction;
    readonly coreRuleSetCountRules: readonly string[];
  }): wafv2.CfnWebACL.RuleProperty[] {
    const { sampledRequests } = options;
    const coreCountRules = [
      ...(options.oversizeBody === 'inspect-first-8kb' ? [SIZE_RESTRICTIONS_BODY_RULE] : []),
      ...options.coreRuleSetCountRules.filter((rule) => rule !== SIZE_RESTRICTIONS_BODY_RULE),
    ];
    return [
      managedGroupRule({ name: IP_REPUTATION_LIST }, PRIORITY.ipReputation, sampledRequests),
      rateLimitRule(AgentFirewall.RATE_LIMIT_RULE, options.rateLimit, PRIORITY.rateLimit, sampledRequests),
      managedGroupRule({ name: CORE_RULE_SET, countRules: coreCountRules }, PRIORITY.coreRuleSet, sampledRequests),
      managedGroupRule({ name: KNOWN_BAD_INPUTS_RULE_SET }, PRIORITY.knownBadInputs, sampledRequests),
      ...options.extraGroups.map((group, index) => managedGroupRule(group, PRIORITY.extraManagedGroups + index, sampledRequests)),
      ...this.patternSets.map((set, index) =>
        injectionRule({
          name: `${AgentFirewall.INJECTION_RULE_PREFIX}${index + 1}`,
          patternSetArn: set.attrArn,
          priority: PRIORITY.injection + index,
          action: options.action,
          oversizeBody: options.oversizeBody,
          sampledRequests,
        }),
      ),
    ];
  }
}

/** Logging filter that keeps blocked and counted requests and drops the rest. */
const BLOCKED_AND_COUNTED_ONLY = {
  DefaultBehavior: 'DROP',
  Filters: [
    {
      Behavior: 'KEEP',
      Requirement: 'MEETS_ANY',
      Conditions: [
        { ActionCondition: { Action: 'BLOCK' } },
        { ActionCondition: { Action: 'COUNT' } },
        { ActionCondition: { Action: 'EXCLUDED_AS_COUNT' } },
      ],
    },
  ],
};

/** Throws when an extra managed group is unnamed, repeats a default group or repeats another. */
function validateManagedGroups(groups: readonly ManagedRuleGroup[]): void {
  const seen = new Set([IP_REPUTATION_LIST, CORE_RULE_SET, KNOWN_BAD_INPUTS_RULE_SET].map((name) => `AWS/${name}`));
  groups.forEach((group, index) => {
    if (!/^[\w-]{1,128}$/.test(group.name)) {
      throw new Error(
        `AgentFirewall: managedRuleGroups[${index}].name ${JSON.stringify(group.name)} is invalid; use the rule group name, such as AWSManagedRulesSQLiRuleSet.`,
      );
    }
    const key = `${group.vendorName ?? 'AWS'}/${group.name}`;
    if (seen.has(key)) {
      throw new Error(
        `AgentFirewall: managedRuleGroups[${index}] repeats ${key}, which the firewall already evaluates; remove it.`,
      );
    }
    seen.add(key);
  });
}
