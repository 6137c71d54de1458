import { Annotations, CfnOutput, Duration, Fn, Lazy, RemovalPolicy, SecretValue, Stack, StackProps } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { AgentEndpoint, EndpointAuth } from '../constructs/agent-endpoint';
import { AgentFeedback } from '../constructs/agent-feedback';
import { AgentFirewall } from '../constructs/agent-firewall';
import { AgentMemory } from '../constructs/agent-memory';
import { AgentNetwork } from '../constructs/agent-network';
import { AgentObservability, ObservedAgent } from '../constructs/agent-observability';
import { AgentService } from '../constructs/agent-service';
import { AgentTool } from '../constructs/agent-tool';
import { ApprovalGate } from '../constructs/approval-gate';
import { AUDIT_TABLE_NAME, AuditLog } from '../constructs/audit-log';
import { ModelGateway } from '../constructs/model-gateway';
import type { ModelGatewayAgent } from '../constructs/model-gateway-props';
import { TokenBudget } from '../constructs/token-budget';
import { AgentConfig, AgentStackConfig, AgentStackConfigInput, AuthConfig, resolveToolEntries, validateConfig } from './config';
import { SUMMARY_MAX_TOKENS, summaryAgentName } from '../lambda/shared/contracts';

export interface AgentStackProps extends Omit<StackProps, 'env'> {
  /**
   * The deployment, as read by `loadConfig` or written in code. It is
   * validated here either way.
   */
  readonly config: AgentStackConfig | AgentStackConfigInput;

  /**
   * Folder that relative tool entry paths are resolved against.
   *
   * @default - the current working folder
   */
  readonly configDir?: string;
}

/**
 * The ready-made agent stack: network, key, memory, gateway, load balancer
 * and one service per agent, all from one config.
 */
export class AgentStack extends Stack {
  public readonly config: AgentStackConfig;
  public readonly key: kms.Key;
  public readonly network: AgentNetwork;
  public readonly memory: AgentMemory;
  public readonly gateway: ModelGateway;
  /** The budget ledger; undefined when the config has no budget section. */
  public readonly budget?: TokenBudget;
  /** The audit log that the gateway and every agent write their decisions to. */
  public readonly audit: AuditLog;
  public readonly endpoint?: AgentEndpoint;
  /** The WAF web ACL of the endpoint; undefined without an endpoint or when firewall.enabled is false. */
  public readonly firewall?: AgentFirewall;
  public readonly agents: Record<string, AgentService> = {};
  /** Dashboards, alarms and the alarm topic of every agent. */
  public readonly observability: AgentObservability;
  /**
   * The `POST /feedback` endpoint; undefined without a load balancer, which
   * only a realtime agent creates.
   */
  public readonly feedback?: AgentFeedback;
  /** Approvals of high-impact tool calls; undefined when no agent has a tool of `high` impact. */
  public readonly approvals?: ApprovalGate;

  constructor(scope: Construct, id: string, props: AgentStackProps) {
    // Validate before any construct exists, so a bad config creates nothing.
    const config = resolveToolEntries(validateConfig(props.config), props.configDir ?? process.cwd());
    super(scope, id, {
      ...props,
      stackName: props.stackName ?? config.stackName,
      env: { region: config.region, account: config.account },
      description: props.description ?? `AI agents ${config.agents.map((a) => a.name).join(', ')} (cdk-agent-stack)`,
    });
    this.config = config;
    const logRetention = retentionDays(config.logRetentionDays);

    // Create the stack key, which CloudWatch Logs may use for this account's log groups.
    this.key = new kms.Key(this, 'Key', {
      description: `${config.stackName}: encrypts agent memory, queues, logs, function environments, gateway state and the guardrail`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchLogs',
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:*` },
        },
      }),
    );

    // Create the network, memory and gateway every agent shares.
    this.network = new AgentNetwork(this, 'Network', {
      cidr: config.network.vpcCidr,
      maxAzs: config.network.maxAzs,
      availabilityZones: config.availabilityZones,
      natGateways: config.network.natGateways,
      flowLogRetention: retentionDays(config.network.flowLogRetentionDays),
      encryptionKey: this.key,
    });
    this.memory = new AgentMemory(this, 'Memory', { encryptionKey: this.key });
    if (config.budget) {
      this.budget = new TokenBudget(this, 'Budget', {
        encryptionKey: this.key,
        lease: Duration.seconds(config.budget.leaseSeconds),
        failOpen: config.budget.failOpen,
        allowAnonymous: config.budget.allowAnonymous,
        stack: config.budget.stack,
        agents: Object.fromEntries(config.agents.filter((a) => a.budget).map((a) => [a.name, a.budget!])),
        prices: config.budget.prices,
        regionalPremiumPercent: config.budget.regionalPremiumPercent,
        logRetention,
      });
      new CfnOutput(this, 'LedgerTableName', {
        value: this.budget.table.tableName,
        description: 'Budget ledger table; pass it to the operator command: npm run admin -- --table <name>',
      });
    }
    this.audit = new AuditLog(this, 'Audit', {
      encryptionKey: this.key,
      retentionMode: config.audit.retentionMode,
      retentionDays: config.audit.retentionDays,
      fullText: config.audit.fullText,
      infrequentAccessAfterDays: config.audit.infrequentAccessAfterDays,
      instantRetrievalAfterDays: config.audit.instantRetrievalAfterDays,
      expireAfterDays: config.audit.expireAfterDays,
      logRetention,
    });
    new CfnOutput(this, 'AuditStreamName', {
      value: this.audit.deliveryStream.ref,
      description: 'Firehose stream of the audit log; pass it to the operator command so that approval decisions are recorded: --audit-stream <name>',
    });
    new CfnOutput(this, 'AuditBucketName', { value: this.audit.bucket.bucketName, description: 'Bucket of the audit records, with Object Lock' });
    new CfnOutput(this, 'AuditDatabaseName', {
      value: this.audit.databaseName,
      description: `Glue database of the audit table ${AUDIT_TABLE_NAME}; query it in the Athena workgroup AuditWorkGroupName`,
    });
    new CfnOutput(this, 'AuditWorkGroupName', { value: this.audit.workGroupName, description: 'Athena workgroup for audit queries, with encrypted results' });
    this.gateway = new ModelGateway(this, 'Gateway', {
      agents: config.agents.map((agent): ModelGatewayAgent => ({
        name: agent.name,
        route: config.routes[agent.route],
        maxTokensPerCall: agent.limits.maxTokensPerCall,
        checkToolResults: agent.checkToolResults,
        trustedTools: agent.tools.filter((tool) => !tool.untrustedOutput).map((tool) => tool.name),
        promptCache: agent.promptCache,
        expectedCallsPer5Minutes: agent.expectedCallsPer5Minutes,
        responseCache: agent.responseCache && {
          ttl: Duration.seconds(agent.responseCache.ttlSeconds),
          scope: agent.responseCache.scope,
          cacheToolTurns: agent.responseCache.cacheToolTurns,
        },
      })).concat(
        // The summaries of an agent with history compression come from an
        // entry of their own, because a gateway entry has one route. They
        // count against the agent's own suspension, budgets and rate limits.
        config.agents.flatMap((agent): ModelGatewayAgent[] =>
          agent.history
            ? [
                {
                  name: summaryAgentName(agent.name),
                  route: config.routes[agent.history.summaryRoute],
                  maxTokensPerCall: SUMMARY_MAX_TOKENS,
                  budgetAgent: agent.name,
                  // Each summary call sends other turns, so a cache write would rarely be read.
                  promptCache: 'off',
                },
              ]
            : [],
        ),
      ),
      encryptionKey: this.key,
      memorySize: config.gateway.memoryMiB,
      timeout: Duration.seconds(config.gateway.timeoutSeconds),
      logRetention,
      vpc: config.gateway.inVpc ? this.network.vpc : undefined,
      client: config.gateway.client,
      breaker: config.gateway.breaker,
      guardrail:
        'existing' in config.guardrail
          ? {
              guardrailId: config.guardrail.existing.id,
              guardrailVersion: config.guardrail.existing.version,
              guardrailRegion: config.guardrail.existing.region,
            }
          : config.guardrail,
      provisionedConcurrency: config.gateway.provisionedConcurrency,
      budget: this.budget,
      auditLog: this.audit,
    });
    if (this.gateway.responseCacheTable) {
      new CfnOutput(this, 'ResponseCacheTableName', {
        value: this.gateway.responseCacheTable.tableName,
        description: 'Response cache table; pass it to the operator command: npm run admin -- cache purge --cache-table <name>',
      });
    }

    // Create the load balancer when any agent is realtime.
    const realtime = config.agents.filter((a) => a.mode === 'realtime');
    if (realtime.length > 0 && config.endpoint) {
      const longestTimeout = Math.max(...realtime.map((a) => a.limits.taskTimeoutSeconds));
      this.endpoint = new AgentEndpoint(this, 'Endpoint', {
        vpc: this.network.vpc,
        auth: this.endpointAuth(config.endpoint.auth),
        certificateArn: config.endpoint.certificateArn,
        idleTimeout: Duration.seconds(config.endpoint.idleTimeoutSeconds ?? Math.min(longestTimeout + 5, 4_000)),
      });
      new CfnOutput(this, 'EndpointUrl', {
        value: `${config.endpoint.certificateArn ? 'https' : 'http'}://${this.endpoint.loadBalancer.loadBalancerDnsName}`,
        description: 'Base URL of the realtime agents: POST <url>/agents/<name>/invoke',
      });
    }

    // Put the firewall in front of the load balancer unless the config turns it off.
    if (this.endpoint && config.firewall.enabled !== false) {
      this.firewall = new AgentFirewall(this, 'Firewall', {
        loadBalancer: this.endpoint.loadBalancer,
        rateLimit: config.firewall.rateLimit,
        managedRuleGroups: config.firewall.managedRuleGroups,
        coreRuleSetCountRules: config.firewall.coreRuleSetCountRules,
        injectionAction: config.firewall.injectionAction,
        oversizeBody: config.firewall.oversizeBody,
        logRetention,
        encryptionKey: this.key,
      });
    }
    if (!this.endpoint && config.firewall.enabled === true) {
      Annotations.of(this).addWarningV2(
        'cdk-agent-stack:unusedFirewall',
        'The config sets firewall.enabled, but the stack has no realtime endpoint to protect, so no web ACL is created; remove it or add a realtime agent and endpoint.',
      );
    }

    if (realtime.length === 0 && config.endpoint) {
      Annotations.of(this).addWarningV2(
        'cdk-agent-stack:unusedEndpoint',
        'The config sets endpoint, but no agent is realtime, so no load balancer is created; remove endpoint or add a realtime agent.',
      );
    }

    // Let high-impact tool calls wait for a person's decision when any agent has such a tool.
    if (config.agents.some((agent) => agent.tools.some((tool) => tool.impact === 'high'))) {
      this.approvals = this.createApprovalGate(config, logRetention);
    }

    // Create one service per agent, with its tools.
    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.network.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENHANCED,
    });
    for (const agent of config.agents) {
      const tools = agent.tools.map(
        (tool) =>
          new AgentTool(this, `${agent.name}-tool-${tool.name}`, {
            toolName: tool.name,
            description: tool.description,
            inputSchema: tool.inputSchema,
            impact: tool.impact,
            ...('entry' in tool.handler
              ? {
                  entry: tool.handler.entry,
                  timeout: Duration.seconds(tool.timeoutSeconds),
                  memorySize: tool.memoryMiB,
                  maxConcurrency: tool.maxConcurrency,
                  policyStatements: tool.policyStatements.map((s) => new iam.PolicyStatement({ actions: s.actions, resources: s.resources })),
                  wildcardReason: wildcardReasonOf(tool.policyStatements),
                  encryptionKey: this.key,
                  logRetention,
                }
              : { functionArn: tool.handler.functionArn }),
          }),
      );
      const service = new AgentService(this, `agent-${agent.name}`, {
        agentName: agent.name,
        mode: agent.mode,
        cluster,
        systemPrompt: agent.systemPrompt,
        gateway: this.gateway,
        memory: this.memory,
        tools,
        endpoint: agent.mode === 'realtime' ? this.endpoint : undefined,
        cpu: agent.limits.cpu,
        memoryLimitMiB: agent.limits.memoryMiB,
        taskTimeout: Duration.seconds(agent.limits.taskTimeoutSeconds),
        maxIterations: agent.limits.maxIterations,
        maxTokensPerTask: agent.limits.maxTokensPerTask,
        maxTokensPerCall: agent.limits.maxTokensPerCall,
        confidence: agent.confidence,
        history: agent.history && {
          maxInputTokens: agent.history.maxInputTokens,
          maxToolResultChars: agent.history.maxToolResultChars,
        },
        maxBodyBytes: this.maxBodyBytes(agent),
        minTasks: agent.scaling.minTasks,
        maxTasks: agent.scaling.maxTasks,
        requestsPerTarget: agent.mode === 'realtime' ? agent.scaling.requestsPerTarget : undefined,
        backlogPerTask: agent.mode === 'background' ? agent.scaling.backlogPerTask : undefined,
        warmWindows: agent.scaling.warmWindows.map((w) => ({ schedule: appscaling.Schedule.expression(w.schedule), minTasks: w.minTasks })),
        maxReceiveCount: agent.mode === 'background' ? agent.queue.maxReceiveCount : undefined,
        queueRetention: agent.mode === 'background' ? Duration.days(agent.queue.retentionDays) : undefined,
        concurrency: agent.queue.concurrency,
        approvalGate: this.approvals,
        auditLog: this.audit,
        memoryTtl: Duration.days(config.memory.ttlDays),
        encryptionKey: this.key,
        vpcSubnets: this.network.privateSubnets,
        logRetention,
      });
      this.agents[agent.name] = service;
      if (service.queue) {
        new CfnOutput(this, `${agent.name}QueueUrl`, { value: service.queue.queueUrl, description: `Task queue of background agent ${agent.name}` });
      }
    }

    // Let users rate responses of every agent, realtime or background, on the load balancer.
    if (this.endpoint) {
      this.feedback = new AgentFeedback(this, 'Feedback', {
        listener: this.endpoint.listener,
        auth: this.endpoint.auth,
        agentNames: config.agents.map((agent) => agent.name),
        encryptionKey: this.key,
        logRetention,
      });
    }

    // Watch every agent, the gateway and the load balancer, and send the
    // token anomaly and budget use alarms to the kill switch.
    const { alarmTopicArn, alarmEmails, ...thresholds } = config.observability;
    this.observability = new AgentObservability(this, 'Observability', {
      agents: config.agents.map((agent) => this.observedAgent(agent)),
      gatewayFunction: this.gateway.function,
      loadBalancer: this.endpoint?.loadBalancer,
      alarmTopic: alarmTopicArn === undefined ? undefined : sns.Topic.fromTopicArn(this, 'AlarmTopic', alarmTopicArn),
      encryptionKey: this.key,
      alarmEmails,
      killSwitch: this.budget?.killSwitch,
      feedbackFunction: this.feedback?.function,
      thresholds,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.observability.alarmTopic.topicArn,
      description: 'Topic that every alarm notifies. Subscribe your on-call channel to it.',
    });
    new CfnOutput(this, 'OverviewDashboardName', {
      value: this.observability.overviewDashboard.dashboardName,
      description: 'CloudWatch dashboard of all agents. Each agent has a dashboard of its own too.',
    });
  }

  /**
   * Returns the zones listed in the config, so that the CDK never looks them
   * up. Without a list or an account, returns `network.maxAzs` zones that
   * CloudFormation picks at deploy time.
   */
  override get availabilityZones(): string[] {
    if (this.config?.availabilityZones) return this.config.availabilityZones;
    // Without an account the CDK offers only two zones, so network.maxAzs
    // above 2 takes the zones from CloudFormation at deploy time. The
    // region must then have that many zones, or the deployment fails.
    if (this.config && this.config.account === undefined) {
      return Array.from({ length: this.config.network.maxAzs }, (_, i) => Fn.select(i, Fn.getAzs()));
    }
    return super.availabilityZones;
  }

  /**
   * Creates the ApprovalGate with the stack key. Requests are announced on
   * the alarm topic, unless the config lists notification emails, which get
   * a topic of their own so that approvers receive no alarms.
   */
  private createApprovalGate(config: AgentStackConfig, logRetention: logs.RetentionDays): ApprovalGate {
    const { expiryMinutes, approverRoleArns, notificationEmails } = config.approvals;
    // AgentObservability creates the alarm topic after the services, which
    // need the gate first, so the topic's ARN is resolved at synthesis.
    const alarmTopic =
      notificationEmails.length > 0
        ? undefined
        : sns.Topic.fromTopicArn(this, 'ApprovalTopic', Lazy.string({ produce: () => this.observability.alarmTopic.topicArn }));
    const gate = new ApprovalGate(this, 'Approvals', {
      encryptionKey: this.key,
      topic: alarmTopic,
      notificationEmails,
      expiry: Duration.minutes(expiryMinutes),
      approvers: approverRoleArns.map((arn) => new iam.ArnPrincipal(arn)),
      logRetention,
      auditLog: this.audit,
    });
    new CfnOutput(this, 'ApprovalUrl', {
      value: gate.functionUrl.url,
      description: 'IAM-authenticated decision API: GET approvals?agent=NAME, POST approvals/ID/approve or approvals/ID/deny',
    });
    new CfnOutput(this, 'ApprovalsTableName', {
      value: gate.table.tableName,
      description: 'Approvals table; pass it to the operator command: npm run admin -- approvals list --approvals-table <name>',
    });
    return gate;
  }

  /** Describes one configured agent and its service for AgentObservability. */
  private observedAgent(agent: AgentConfig): ObservedAgent {
    const service = this.agents[agent.name];
    return {
      name: agent.name,
      mode: agent.mode,
      maxIterations: agent.limits.maxIterations,
      taskTimeout: Duration.seconds(agent.limits.taskTimeoutSeconds),
      queue: service.queue,
      deadLetterQueue: service.deadLetterQueue,
      targetGroup: service.targetGroup,
      service: service.service,
      tools: agent.tools.map((tool) => tool.name),
      regions: [...new Set(this.config.routes[agent.route].map((target) => target.region))],
      // The kill switch publishes BudgetUsePercent for every window with a
      // limit, and an operator may set one at runtime, so both windows get
      // an alarm whenever the ledger exists.
      budgetWindows: this.budget ? ['day', 'month'] : [],
    };
  }

  /**
   * Returns the agent's body size limit. firewall.maxBodyBytes caps it for
   * realtime agents, whose bodies come through the load balancer.
   */
  private maxBodyBytes(agent: AgentConfig): number {
    const cap = this.config.firewall.maxBodyBytes;
    if (agent.mode !== 'realtime' || cap === undefined) return agent.limits.maxBodyBytes;
    return Math.min(agent.limits.maxBodyBytes, cap);
  }

  private endpointAuth(auth: AuthConfig): EndpointAuth {
    switch (auth.type) {
      case 'jwt':
        return auth;
      case 'cognito': {
        const userPool = cognito.UserPool.fromUserPoolArn(this, 'UserPool', auth.userPoolArn);
        return {
          type: 'cognito',
          userPool,
          userPoolClient: cognito.UserPoolClient.fromUserPoolClientId(this, 'UserPoolClient', auth.userPoolClientId),
          userPoolDomain: cognito.UserPoolDomain.fromDomainName(this, 'UserPoolDomain', auth.userPoolDomain),
          userClaim: auth.userClaim,
        };
      }
      case 'oidc':
        return {
          ...auth,
          clientSecret: SecretValue.secretsManager(auth.clientSecretArn),
        };
      default:
        return { type: 'none' };
    }
  }
}

/** Maps a number of days to the nearest CloudWatch Logs retention at or above it. */
function retentionDays(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays)
    .filter((v): v is logs.RetentionDays => typeof v === 'number' && v > 0)
    .sort((a, b) => a - b);
  return allowed.find((v) => v >= days) ?? logs.RetentionDays.TEN_YEARS;
}

/** Joins the reasons of the statements that use a wildcard, or returns undefined when none does. */
function wildcardReasonOf(statements: ReadonlyArray<{ actions: string[]; resources: string[]; reason?: string }>): string | undefined {
  const reasons = statements
    .filter((statement) => [...statement.actions, ...statement.resources].some((value) => value.includes('*')))
    .map((statement) => statement.reason)
    .filter((reason): reason is string => reason !== undefined);
  return reasons.length === 0 ? undefined : reasons.join('; ');
}
