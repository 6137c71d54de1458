import { Annotations, Aws, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  GATEWAY_ENV,
  GatewayAgentConfig,
  GatewayRuntimeConfig,
  ModelTarget,
  RESPONSE_CACHE_TABLE_KEY,
  ResponseCacheSettings,
} from '../lambda/shared/contracts';
import { bundledAssetPath, latestNodeRuntime } from './assets';
import { GatewayGuardrail } from './gateway-guardrail';
import { ExistingGuardrail, GatewayGuardrailSettings, GUARDRAIL_ID, GUARDRAIL_VERSION } from './gateway-guardrail-settings';
import {
  BREAKER_SETTING_RANGES,
  breakerSettingsIssues,
  CLIENT_SETTING_RANGES,
  clientSettingsIssues,
  formatSettingsPath,
  rangeIssues,
  resolveBreakerSettings,
  resolveClientSettings,
  RESPONSE_CACHE_TTL_RANGE,
  SettingsIssue,
} from './gateway-settings';
import { recordGrantReason } from './grant-reasons';
import { applyGuardrailStatement, bedrockTargetPolicy, crossRegionGrantReason } from './model-gateway-iam';
import { ModelGatewayAgent, ModelGatewayProps } from './model-gateway-props';

export { parseModelId } from './model-gateway-iam';
export * from './model-gateway-props';

// Lambda caps the environment of one function at 4 KB in total.
// Source: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
const MAX_ENVIRONMENT_BYTES = 4_096;
// Bytes kept free for the other variables the function and its runtime set.
const ENVIRONMENT_RESERVE_BYTES = 512;
// Maximum lengths of the deploy-time values in the environment: a DynamoDB
// table name, a guardrail id and a guardrail version number.
const MAX_TABLE_NAME_CHARS = 255;
const MAX_GUARDRAIL_ID_CHARS = 64;
const MAX_GUARDRAIL_VERSION_CHARS = 8;
// Upper bound for a region name such as `ap-southeast-5`, counted when the region is a token.
const MAX_REGION_CHARS = 32;

/** Name of the alias that carries provisioned concurrency. */
const ALIAS_NAME = 'live';

/**
 * The only principal allowed to call Bedrock: a Lambda function through
 * which every model call passes. It runs outside the VPC by default, keeps
 * circuit-breaker state in a DynamoDB table shared by all its instances,
 * and applies a Bedrock guardrail to every call.
 */
export class ModelGateway extends Construct {
  /** Partition key of the state table: one item per breaker. */
  public static readonly STATE_PARTITION_KEY = 'pk';
  /** TTL attribute of the state table, in epoch seconds. */
  public static readonly STATE_TTL_ATTRIBUTE = 'expiresAt';
  /** Actions the gateway calls on its state table. */
  public static readonly STATE_TABLE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];
  /** Actions the gateway calls on the response cache table: it reads and stores one response at a time. */
  public static readonly RESPONSE_CACHE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem'];
  /**
   * Actions the operator command's `cache purge` calls on the response
   * cache table: Query on an agent's partition and BatchWriteItem with its
   * deletes, plus DeleteItem for removing one item by hand.
   */
  public static readonly RESPONSE_CACHE_PURGE_ACTIONS = ['dynamodb:Query', 'dynamodb:BatchWriteItem', 'dynamodb:DeleteItem'];

  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;
  /** Circuit-breaker state shared by all gateway instances. */
  public readonly stateTable: dynamodb.Table;
  /** Cached responses of the agents with a response cache; undefined when no agent has one. */
  public readonly responseCacheTable?: dynamodb.Table;
  /** The guardrail the gateway created; undefined for an existing guardrail. */
  public readonly guardrail?: GatewayGuardrail;
  /** Id of the guardrail the gateway applies. */
  public readonly guardrailId: string;
  /** Version of the guardrail the gateway applies. */
  public readonly guardrailVersion: string;
  /** ARN of the guardrail the gateway applies. */
  public readonly guardrailArn: string;
  /** Region of the guardrail the gateway applies. */
  public readonly guardrailRegion: string;
  /** The alias with provisioned concurrency; undefined when provisionedConcurrency is 0. */
  public readonly alias?: lambda.Alias;
  /** The function or alias that callers invoke: the alias when there is one. */
  public readonly invokeTarget: lambda.IFunction;

  constructor(scope: Construct, id: string, props: ModelGatewayProps) {
    super(scope, id);

    // Resolve defaults.
    const timeout = props.timeout ?? Duration.minutes(2);
    const client = resolveClientSettings(timeout.toMilliseconds(), props.client);
    const breaker = resolveBreakerSettings(props.breaker);
    const provisionedConcurrency = props.provisionedConcurrency ?? 0;

    // Validate.
    validateProps(props, client, breaker, timeout, provisionedConcurrency);

    // Create the log group and a role that can write only to it.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'ModelGateway: calls Bedrock for every agent of the stack',
    });
    this.logGroup.grantWrite(this.role);

    // Create the state table for circuit breakers.
    this.stateTable = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: ModelGateway.STATE_PARTITION_KEY, type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: ModelGateway.STATE_TTL_ATTRIBUTE,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: props.encryptionKey ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.AWS_MANAGED,
      encryptionKey: props.encryptionKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Create the response cache table when any agent caches responses.
    if (props.agents.some((agent) => agent.responseCache !== undefined)) {
      this.responseCacheTable = createResponseCacheTable(this, props);
      this.responseCacheTable.encryptionKey?.grant(this.role, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
      this.responseCacheTable.grant(this.role, ...ModelGateway.RESPONSE_CACHE_ACTIONS);
    }

    // Create the guardrail, or adopt an existing one.
    const guardrailProp = props.guardrail;
    if (guardrailProp !== undefined && isExistingGuardrail(guardrailProp)) {
      this.guardrailId = guardrailProp.guardrailId;
      this.guardrailVersion = guardrailProp.guardrailVersion;
      this.guardrailRegion = guardrailProp.guardrailRegion ?? Stack.of(this).region;
      this.guardrailArn = Stack.of(this).formatArn({ service: 'bedrock', region: this.guardrailRegion, resource: 'guardrail', resourceName: guardrailProp.guardrailId });
      if (guardrailProp.guardrailVersion === 'DRAFT') {
        Annotations.of(this).addWarningV2(
          'cdk-agent-stack:guardrailDraft',
          `The gateway applies the DRAFT of guardrail ${guardrailProp.guardrailId}, which changes with every edit; publish a version and name it instead.`,
        );
      }
    } else {
      this.guardrail = new GatewayGuardrail(this, 'Guardrail', { settings: guardrailProp, encryptionKey: props.encryptionKey });
      this.guardrailId = this.guardrail.guardrailId;
      this.guardrailVersion = this.guardrail.guardrailVersion;
      this.guardrailArn = this.guardrail.guardrailArn;
      this.guardrailRegion = Stack.of(this).region;
    }

    // Grant Bedrock on exactly the configured targets and the guardrail.
    this.grantBedrock(props.agents.flatMap((a) => a.route));
    this.grantStateAccess(this.role);
    if (this.guardrail) props.encryptionKey?.grantDecrypt(this.role);

    // Let the gateway reserve and settle in the budget ledger, and write audit records.
    props.budget?.grantLedger(this.role);
    props.auditLog?.grantWrite(this.role);

    // Write the runtime configuration, which must fit Lambda's 4 KB environment.
    const runtimeConfig: GatewayRuntimeConfig = {
      agents: Object.fromEntries(props.agents.map((a) => [a.name, gatewayAgentConfig(a)])),
      client,
      breaker,
      stateTable: this.stateTable.tableName,
      guardrail: { id: this.guardrailId, version: this.guardrailVersion, region: this.guardrailRegion },
      budget: props.budget?.gatewayConfig(props.agents.flatMap((a) => a.route.map((t) => ({ modelId: t.modelId, agent: a.name })))),
      responseCacheTable: this.responseCacheTable?.tableName,
    };
    checkEnvironmentSize(runtimeConfig);

    // Create the function from the pre-bundled handler.
    this.function = new lambda.Function(this, 'Function', {
      runtime: latestNodeRuntime(),
      architecture: lambda.Architecture.ARM_64,
      code: lambda.Code.fromAsset(bundledAssetPath('gateway')),
      handler: 'index.handler',
      role: this.role,
      memorySize: props.memorySize ?? 1_024,
      timeout,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // The audit variables take at most about 110 bytes (a stream name has
      // at most 64 characters), within the space checkEnvironmentSize keeps free.
      environment: {
        [GATEWAY_ENV.config]: Stack.of(this).toJsonString(runtimeConfig),
        NODE_OPTIONS: '--enable-source-maps',
        ...props.auditLog?.environment(),
      },
      environmentEncryption: props.encryptionKey,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? (props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }) : undefined,
      description: 'ModelGateway: validates each model call and sends it to Bedrock',
    });
    if (props.vpc) {
      Validations.of(this.role).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
        reason: 'A function in a VPC needs the network interface actions of this AWS managed policy, and they cannot be scoped to resources.',
      });
    }

    // Keep instances initialized behind an alias when asked to.
    if (provisionedConcurrency > 0) {
      this.alias = new lambda.Alias(this, 'Alias', {
        aliasName: ALIAS_NAME,
        version: this.function.currentVersion,
        provisionedConcurrentExecutions: provisionedConcurrency,
      });
    }
    this.invokeTarget = this.alias ?? this.function;
  }

  /**
   * Grants `lambda:InvokeFunction` on what callers invoke (the alias when
   * there is one, and otherwise the function), the only model access agent
   * tasks get.
   */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    // Only this ARN: the CDK's own grant adds `<arn>:*`, every version and
    // alias, which the worker never calls.
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['lambda:InvokeFunction'],
      resourceArns: [this.invokeTarget.functionArn],
    });
  }

  /**
   * Grants the state-table actions the gateway calls
   * ({@link ModelGateway.STATE_TABLE_ACTIONS}), and `kms:Decrypt`,
   * `kms:Encrypt` and `kms:GenerateDataKey` on the table's customer key when
   * it has one.
   */
  grantStateAccess(grantee: iam.IGrantable): iam.Grant {
    this.stateTable.encryptionKey?.grant(grantee, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    return this.stateTable.grant(grantee, ...ModelGateway.STATE_TABLE_ACTIONS);
  }

  /**
   * Grants what the operator command's `cache purge` needs on the response
   * cache table ({@link ModelGateway.RESPONSE_CACHE_PURGE_ACTIONS}), and
   * `kms:Decrypt` on the table's customer key when it has one, because a
   * Query returns the items' keys. Raises when no agent has a response cache.
   */
  grantResponseCachePurge(grantee: iam.IGrantable): iam.Grant {
    const table = this.responseCacheTable;
    if (table === undefined) {
      throw new Error(
        'ModelGateway: grantResponseCachePurge needs a response cache table, which the gateway creates only ' +
          'when an agent sets responseCache; set it on an agent or remove the grant.',
      );
    }
    table.encryptionKey?.grant(grantee, 'kms:Decrypt');
    return table.grant(grantee, ...ModelGateway.RESPONSE_CACHE_PURGE_ACTIONS);
  }

  private grantBedrock(targets: ModelTarget[]): void {
    const policy = bedrockTargetPolicy(targets, Aws.PARTITION, Stack.of(this).account);
    for (const statement of policy.statements) this.role.addToPrincipalPolicy(statement);
    this.role.addToPrincipalPolicy(applyGuardrailStatement(this.guardrailArn));
    const crossRegion = crossRegionGrantReason(targets, Stack.of(this).region);
    if (crossRegion) recordGrantReason(this.role, crossRegion);
    if (!Token.isUnresolved(this.guardrailRegion) && this.guardrailRegion !== Stack.of(this).region) {
      recordGrantReason(this.role, {
        kind: 'cross-region',
        actions: ['bedrock:ApplyGuardrail'],
        reason: `The config names an existing guardrail in ${this.guardrailRegion}, which the gateway applies to calls in every region.`,
      });
    }
    for (const model of policy.modelsInEveryRegion) {
      Validations.of(this.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${model}]`,
        reason: `A cross-region inference profile serves ${model} from destination regions Bedrock chooses; the grant names the one model and requires a call through the configured profile.`,
      });
    }
  }
}

/**
 * Returns an agent's runtime settings. `trustedTools` is left out when
 * empty, and `promptCache` when it is the runtime's default `auto`, to save
 * environment space.
 */
function gatewayAgentConfig(agent: ModelGatewayAgent): GatewayAgentConfig {
  const config: GatewayAgentConfig = {
    route: agent.route,
    maxTokensPerCall: agent.maxTokensPerCall,
    ...(agent.promptCache === undefined || agent.promptCache === 'auto' ? {} : { promptCache: agent.promptCache }),
    ...(agent.expectedCallsPer5Minutes === undefined ? {} : { expectedCallsPer5Minutes: agent.expectedCallsPer5Minutes }),
    ...(agent.budgetAgent === undefined ? {} : { budgetAgent: agent.budgetAgent }),
  };
  const cached = agent.responseCache === undefined ? config : { ...config, responseCache: responseCacheSettings(agent) };
  if (agent.checkToolResults === false) {
    return cached;
  }
  const trustedTools = agent.trustedTools ?? [];
  return { ...cached, toolResultChecks: trustedTools.length === 0 ? {} : { trustedTools } };
}

/** Returns an agent's response cache settings with their defaults applied. */
function responseCacheSettings(agent: ModelGatewayAgent): ResponseCacheSettings {
  const cache = agent.responseCache!;
  return {
    ttlSeconds: cache.ttl.toSeconds(),
    scope: cache.scope ?? 'user',
    cacheToolTurns: cache.cacheToolTurns ?? false,
  };
}

/**
 * Creates the response cache table: one partition per agent, the TTL on
 * `expiresAt`, and the gateway's key.
 */
function createResponseCacheTable(scope: Construct, props: ModelGatewayProps): dynamodb.Table {
  const table = new dynamodb.Table(scope, 'ResponseCache', {
    partitionKey: { name: RESPONSE_CACHE_TABLE_KEY.partitionKey, type: dynamodb.AttributeType.STRING },
    sortKey: { name: RESPONSE_CACHE_TABLE_KEY.sortKey, type: dynamodb.AttributeType.STRING },
    timeToLiveAttribute: RESPONSE_CACHE_TABLE_KEY.timeToLive,
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    encryption: props.encryptionKey ? dynamodb.TableEncryption.CUSTOMER_MANAGED : dynamodb.TableEncryption.AWS_MANAGED,
    encryptionKey: props.encryptionKey,
    // Every item is a copy that expires with its TTL, so deleting the stack deletes the cache.
    removalPolicy: RemovalPolicy.DESTROY,
  });
  Validations.of(table).acknowledge({
    id: 'AwsSolutions-DDB3',
    reason:
      'The table holds only copies of model responses that expire with their TTL, so losing it costs model calls and no data, ' +
      'and point-in-time recovery would keep purged responses restorable for 35 days.',
  });
  return table;
}

/** Lists the problems of each agent's response cache settings. */
function responseCacheProblems(agents: readonly ModelGatewayAgent[]): string[] {
  const problems: string[] = [];
  for (const agent of agents) {
    const cache = agent.responseCache;
    if (cache === undefined) continue;
    const ttlSeconds = Token.isUnresolved(cache.ttl) ? undefined : cache.ttl.toSeconds({ integral: false });
    const { min, max } = RESPONSE_CACHE_TTL_RANGE;
    if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds < min || ttlSeconds > max)) {
      problems.push(`agent ${agent.name}: responseCache.ttl must be whole seconds from ${min} to ${max} (got ${ttlSeconds} s)`);
    }
    if (cache.scope !== undefined && cache.scope !== 'user' && cache.scope !== 'agent') {
      problems.push(`agent ${agent.name}: responseCache.scope must be 'user' or 'agent' (got ${JSON.stringify(cache.scope)})`);
    }
    if (cache.scope === 'agent' && cache.cacheToolTurns === true) {
      problems.push(
        `agent ${agent.name}: responseCache.cacheToolTurns cannot be true with scope 'agent', because tool results carry ` +
          "one user's data and every user of the agent would receive it; use scope 'user' or leave cacheToolTurns false",
      );
    }
  }
  return problems;
}

function isExistingGuardrail(guardrail: GatewayGuardrailSettings | ExistingGuardrail): guardrail is ExistingGuardrail {
  return 'guardrailId' in guardrail || 'guardrailVersion' in guardrail;
}

/** Raises one error that lists every invalid prop. */
function validateProps(
  props: ModelGatewayProps,
  client: ReturnType<typeof resolveClientSettings>,
  breaker: ReturnType<typeof resolveBreakerSettings>,
  timeout: Duration,
  provisionedConcurrency: number,
): void {
  if (props.agents.length === 0) {
    throw new Error('ModelGateway: agents is empty; give at least one agent with a route.');
  }
  for (const agent of props.agents) {
    if (agent.route.length === 0) {
      throw new Error(`ModelGateway: agent ${agent.name} has an empty route; give at least one { region, modelId } target.`);
    }
  }
  if (props.vpcSubnets && !props.vpc) {
    throw new Error('ModelGateway: vpcSubnets needs vpc; set vpc or remove vpcSubnets.');
  }

  const problems: string[] = [];
  const describe = (prefix: string, issues: SettingsIssue[]) =>
    issues.forEach((i) => problems.push(`${formatSettingsPath(prefix, i.path)} ${i.message}${i.value === undefined ? '' : ` (got ${JSON.stringify(i.value)})`}`));
  const clientRanges = rangeIssues(client, CLIENT_SETTING_RANGES);
  describe('client', clientRanges.length > 0 ? clientRanges : clientSettingsIssues(client, timeout.toMilliseconds(), 'timeout'));
  const breakerRanges = rangeIssues(breaker, BREAKER_SETTING_RANGES);
  describe('breaker', breakerRanges.length > 0 ? breakerRanges : breakerSettingsIssues(breaker));
  if (!Number.isInteger(provisionedConcurrency) || provisionedConcurrency < 0) {
    problems.push(`provisionedConcurrency must be a whole number of 0 or more (got ${provisionedConcurrency})`);
  }
  problems.push(...responseCacheProblems(props.agents));
  for (const agent of props.agents) {
    if (agent.promptCache !== undefined && !['auto', 'off', 'always'].includes(agent.promptCache)) {
      problems.push(`agent ${agent.name}: promptCache must be 'auto', 'off' or 'always' (got ${JSON.stringify(agent.promptCache)})`);
    }
    const expected = agent.expectedCallsPer5Minutes;
    if (expected !== undefined && (!Number.isInteger(expected) || expected < 0)) {
      problems.push(`agent ${agent.name}: expectedCallsPer5Minutes must be a whole number of 0 or more (got ${expected})`);
    }
  }
  const guardrail = props.guardrail;
  if (guardrail !== undefined && isExistingGuardrail(guardrail)) {
    const existingKeys = ['guardrailId', 'guardrailVersion', 'guardrailRegion'];
    const settingKeys = Object.keys(guardrail).filter((key) => !existingKeys.includes(key));
    if (settingKeys.length > 0) {
      problems.push(`guardrail names an existing guardrail, which cannot be combined with ${settingKeys.join(', ')}; give either guardrailId, guardrailVersion and optionally guardrailRegion, or guardrail settings`);
    }
    if (!Token.isUnresolved(guardrail.guardrailId) && !GUARDRAIL_ID.test(guardrail.guardrailId ?? '')) {
      problems.push(`guardrail.guardrailId must be 1 to 64 lower-case letters and digits (got ${JSON.stringify(guardrail.guardrailId)})`);
    }
    if (!Token.isUnresolved(guardrail.guardrailVersion) && !GUARDRAIL_VERSION.test(guardrail.guardrailVersion ?? '')) {
      problems.push(`guardrail.guardrailVersion must be a version number such as "1", or DRAFT (got ${JSON.stringify(guardrail.guardrailVersion)})`);
    }
  }
  const budget = props.budget;
  if (budget !== undefined) {
    const leaseSeconds = budget.lease.toSeconds();
    if (leaseSeconds <= timeout.toSeconds()) {
      problems.push(
        `budget has a lease of ${leaseSeconds} s, which must be longer than the timeout of ${timeout.toSeconds()} s, ` +
          'or a reservation could be reclaimed while its call still runs; raise the lease of the TokenBudget or lower timeout',
      );
    }
    const names = props.agents.map((a) => a.name);
    for (const name of Object.keys(budget.agents)) {
      if (!names.includes(name)) {
        problems.push(`budget has limits for agent ${JSON.stringify(name)}, which the gateway does not serve; expected one of ${names.join(', ')}`);
      }
    }
  }
  if (problems.length > 0) throw new Error(`ModelGateway: ${problems.join('; ')}.`);
}

/**
 * Raises an error when the runtime configuration could exceed the space
 * this construct allows in the function environment. Deploy-time values
 * are counted at their longest.
 */
function checkEnvironmentSize(runtimeConfig: GatewayRuntimeConfig): void {
  const longest = (value: string, chars: number) => (Token.isUnresolved(value) ? 'x'.repeat(chars) : value);
  const sized: GatewayRuntimeConfig = {
    ...runtimeConfig,
    stateTable: longest(runtimeConfig.stateTable ?? '', MAX_TABLE_NAME_CHARS),
    guardrail: runtimeConfig.guardrail && {
      id: longest(runtimeConfig.guardrail.id, MAX_GUARDRAIL_ID_CHARS),
      version: longest(runtimeConfig.guardrail.version, MAX_GUARDRAIL_VERSION_CHARS),
      region: longest(runtimeConfig.guardrail.region, MAX_REGION_CHARS),
    },
    budget: runtimeConfig.budget && { ...runtimeConfig.budget, table: longest(runtimeConfig.budget.table, MAX_TABLE_NAME_CHARS) },
    responseCacheTable: runtimeConfig.responseCacheTable && longest(runtimeConfig.responseCacheTable, MAX_TABLE_NAME_CHARS),
  };
  const environmentBytes = Buffer.byteLength(GATEWAY_ENV.config) + Buffer.byteLength(JSON.stringify(sized));
  const allowed = MAX_ENVIRONMENT_BYTES - ENVIRONMENT_RESERVE_BYTES;
  if (environmentBytes > allowed) {
    throw new Error(
      `ModelGateway: the gateway configuration takes up to ${environmentBytes} bytes of the function environment, ` +
        `above the ${allowed} this construct allows within Lambda's 4 KB limit; share routes between agents or shorten them` +
        (runtimeConfig.budget ? ', or set fewer budget limits.' : '.'),
    );
  }
}
