import { Annotations, Duration, RemovalPolicy, SecretValue, Stack, Validations } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as elbv2Actions from 'aws-cdk-lib/aws-elasticloadbalancingv2-actions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { WorkerAuthConfig } from '../lambda/shared/contracts';

/** Callers present a JSON Web Token that each agent task verifies. */
export interface JwtEndpointAuth {
  readonly type: 'jwt';
  readonly issuer: string;
  readonly audience: string[];
  /** HTTPS URL of the issuer's JSON Web Key Set. */
  readonly jwksUri: string;
  /** @default 'sub' */
  readonly userClaim?: string;
}

/** The load balancer signs users in with a Cognito user pool. */
export interface CognitoEndpointAuth {
  readonly type: 'cognito';
  readonly userPool: cognito.IUserPool;
  readonly userPoolClient: cognito.IUserPoolClient;
  readonly userPoolDomain: cognito.IUserPoolDomain;
  /** @default 'sub' */
  readonly userClaim?: string;
}

/** The load balancer signs users in with an OpenID Connect provider. */
export interface OidcEndpointAuth {
  readonly type: 'oidc';
  readonly issuer: string;
  readonly authorizationEndpoint: string;
  readonly tokenEndpoint: string;
  readonly userInfoEndpoint: string;
  readonly clientId: string;
  readonly clientSecret: SecretValue;
  /** @default 'sub' */
  readonly userClaim?: string;
}

/** No authentication: every caller is `anonymous`. For demos only. */
export interface NoEndpointAuth {
  readonly type: 'none';
}

export type EndpointAuth = JwtEndpointAuth | CognitoEndpointAuth | OidcEndpointAuth | NoEndpointAuth;

/**
 * Wraps `next` in the load balancer's authenticate action that `auth`
 * selects. Cognito and OIDC get one; jwt and none return `next` unchanged,
 * because the target verifies the token or accepts every caller.
 */
export function authenticateAction(auth: EndpointAuth, next: elbv2.ListenerAction): elbv2.ListenerAction {
  // API callers get 401 rather than a redirect to a login page.
  const onUnauthenticatedRequest = elbv2.UnauthenticatedAction.DENY;
  if (auth.type === 'cognito') {
    return new elbv2Actions.AuthenticateCognitoAction({
      userPool: auth.userPool,
      userPoolClient: auth.userPoolClient,
      userPoolDomain: auth.userPoolDomain,
      onUnauthenticatedRequest,
      next,
    });
  }
  if (auth.type === 'oidc') {
    return elbv2.ListenerAction.authenticateOidc({
      issuer: auth.issuer,
      authorizationEndpoint: auth.authorizationEndpoint,
      tokenEndpoint: auth.tokenEndpoint,
      userInfoEndpoint: auth.userInfoEndpoint,
      clientId: auth.clientId,
      clientSecret: auth.clientSecret,
      onUnauthenticatedRequest,
      next,
    });
  }
  return next;
}

/**
 * Returns the authentication settings that a target behind the load
 * balancer applies to each request. With cognito or oidc the target checks
 * the load balancer's signed `x-amzn-oidc-data` header and, when
 * `loadBalancerArn` is given, accepts only tokens that it signed.
 */
export function runtimeAuthConfig(auth: EndpointAuth, region: string, loadBalancerArn?: string): WorkerAuthConfig {
  switch (auth.type) {
    case 'jwt':
      return { type: 'jwt', issuer: auth.issuer, audience: auth.audience, jwksUri: auth.jwksUri, userClaim: auth.userClaim ?? 'sub' };
    case 'cognito':
    case 'oidc':
      return { type: 'alb-oidc', region, loadBalancerArn, userClaim: auth.userClaim ?? 'sub' };
    default:
      return { type: 'none' };
  }
}

export interface AgentEndpointProps {
  readonly vpc: ec2.IVpc;
  /** Authentication of callers. */
  readonly auth: EndpointAuth;

  /**
   * ARN of an ACM certificate for an HTTPS listener.
   *
   * @default - an HTTP listener on port 80 and a synth warning
   */
  readonly certificateArn?: string;

  /**
   * Subnets of the load balancer.
   *
   * @default - the VPC's public subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Idle timeout of the load balancer. A buffered response sends no bytes
   * until it is complete, so the timeout must cover the longest task timeout
   * of the agents routed here. `addAgent` rejects an agent it would cut off.
   *
   * @default - 60 seconds, raised to the longest task timeout of the routed agents plus 5 seconds
   */
  readonly idleTimeout?: Duration;

  /**
   * Bucket for the load balancer's access logs. It must use SSE-S3, because
   * load balancer logs cannot be written under a KMS key.
   *
   * @default - a new bucket that keeps logs for 365 days
   */
  readonly accessLogBucket?: s3.IBucket;
}

/** Options for routing one realtime agent. */
export interface AgentRouteOptions {
  readonly agentName: string;
  readonly service: ecs.FargateService;
  readonly containerName: string;
  readonly containerPort: number;
  /** Time a stopping task keeps serving its open requests. */
  readonly deregistrationDelay: Duration;
  /** Maximum time one request to the agent may take. */
  readonly taskTimeout: Duration;
}

const DEFAULT_IDLE_TIMEOUT_SECONDS = 60;
const IDLE_TIMEOUT_MARGIN_SECONDS = 5;
// The ELBv2 API accepts 1 to 4000 seconds for the load balancer attribute
// idle_timeout.timeout_seconds (LoadBalancerAttribute in its API reference).
const MAX_IDLE_TIMEOUT_SECONDS = 4_000;

/**
 * The internet-facing load balancer of the realtime agents. Each agent is
 * routed by path, `/agents/<name>/...`, and the path reaches it unchanged.
 */
export class AgentEndpoint extends Construct {
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  public readonly listener: elbv2.ApplicationListener;
  /** Authentication of callers, for other routes on the listener that must authenticate the same way. */
  public readonly auth: EndpointAuth;
  private readonly explicitIdleTimeout?: Duration;
  private idleTimeoutSeconds: number;
  private nextPriority = 10;

  constructor(scope: Construct, id: string, props: AgentEndpointProps) {
    super(scope, id);

    // Validate.
    this.auth = props.auth;
    this.explicitIdleTimeout = props.idleTimeout;
    this.idleTimeoutSeconds = (props.idleTimeout ?? Duration.seconds(DEFAULT_IDLE_TIMEOUT_SECONDS)).toSeconds();
    const https = props.certificateArn !== undefined;
    if ((props.auth.type === 'cognito' || props.auth.type === 'oidc') && !https) {
      throw new Error(`AgentEndpoint: auth type ${props.auth.type} needs certificateArn, because the load balancer authenticates only on HTTPS listeners.`);
    }

    // Create the load balancer and its access log bucket.
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets ?? { subnetType: ec2.SubnetType.PUBLIC },
      internetFacing: true,
      idleTimeout: Duration.seconds(this.idleTimeoutSeconds),
      dropInvalidHeaderFields: true,
    });
    const accessLogBucket = props.accessLogBucket ?? this.createAccessLogBucket();
    this.loadBalancer.logAccessLogs(accessLogBucket, 'alb');

    // Create the listener, which returns 404 for unknown paths.
    this.listener = this.loadBalancer.addListener('Listener', {
      port: https ? 443 : 80,
      protocol: https ? elbv2.ApplicationProtocol.HTTPS : elbv2.ApplicationProtocol.HTTP,
      certificates: https ? [elbv2.ListenerCertificate.fromArn(props.certificateArn!)] : undefined,
      sslPolicy: https ? elbv2.SslPolicy.RECOMMENDED_TLS : undefined,
      open: true,
      defaultAction: elbv2.ListenerAction.fixedResponse(404, {
        contentType: 'application/json',
        messageBody: '{"error":{"name":"NotFound","message":"No agent is routed at this path; use /agents/<name>/invoke."}}',
      }),
    });

    // Warn about settings that are legal but unsafe in production.
    if (!https) {
      Annotations.of(this).addWarningV2('cdk-agent-stack:httpListener', 'The agent endpoint listens on plain HTTP because no certificateArn is set; tokens and prompts cross the internet unencrypted. Set certificateArn for production.');
    }
    if (props.auth.type === 'none') {
      Annotations.of(this).addWarningV2('cdk-agent-stack:noAuth', 'The agent endpoint has auth type none: anyone who finds the URL can spend the budget as the anonymous user. Use jwt, cognito or oidc outside demos.');
    }
    for (const group of this.loadBalancer.connections.securityGroups) {
      Validations.of(group).acknowledge({
        id: 'AwsSolutions-EC23',
        reason: 'The agent endpoint is internet-facing by design; callers are authenticated per request and only the listener port is open.',
      });
    }
  }

  /** Routes `/agents/<name>/*` to a realtime agent service, behind the configured authentication. */
  addAgent(options: AgentRouteOptions): elbv2.ApplicationTargetGroup {
    this.fitIdleTimeout(options.agentName, options.taskTimeout);
    const targetGroup = new elbv2.ApplicationTargetGroup(this, `${options.agentName}Targets`, {
      vpc: this.loadBalancer.vpc,
      targetType: elbv2.TargetType.IP,
      protocol: elbv2.ApplicationProtocol.HTTP,
      port: options.containerPort,
      deregistrationDelay: options.deregistrationDelay,
      healthCheck: {
        path: `/agents/${options.agentName}/health`,
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
      targets: [options.service.loadBalancerTarget({ containerName: options.containerName, containerPort: options.containerPort })],
    });
    this.listener.addAction(`${options.agentName}Route`, {
      priority: this.nextPriority,
      conditions: [elbv2.ListenerCondition.pathPatterns([`/agents/${options.agentName}/*`])],
      action: authenticateAction(this.auth, elbv2.ListenerAction.forward([targetGroup])),
    });
    this.nextPriority += 10;
    options.service.connections.allowFrom(this.loadBalancer, ec2.Port.tcp(options.containerPort), 'Load balancer to agent tasks');
    return targetGroup;
  }

  /** Authentication settings the agent workers apply to each request. */
  workerAuth(): WorkerAuthConfig {
    return runtimeAuthConfig(this.auth, Stack.of(this).region, this.loadBalancer.loadBalancerArn);
  }

  /** Raises the default idle timeout to cover the agent, or rejects an explicit one that is too short. */
  private fitIdleTimeout(agentName: string, taskTimeout: Duration): void {
    const needed = taskTimeout.toSeconds() + IDLE_TIMEOUT_MARGIN_SECONDS;
    if (needed <= this.idleTimeoutSeconds) return;
    if (this.explicitIdleTimeout) {
      throw new Error(
        `AgentEndpoint: idleTimeout of ${this.idleTimeoutSeconds} s would cut off responses of agent ${agentName}, ` +
          `whose taskTimeout is ${taskTimeout.toSeconds()} s; set idleTimeout to at least ${needed} s or lower the agent's taskTimeout.`,
      );
    }
    if (needed > MAX_IDLE_TIMEOUT_SECONDS) {
      throw new Error(
        `AgentEndpoint: agent ${agentName} has a taskTimeout of ${taskTimeout.toSeconds()} s, above what the load balancer's ` +
          `maximum idle timeout of ${MAX_IDLE_TIMEOUT_SECONDS} s can hold open; lower taskTimeout or use a background agent.`,
      );
    }
    this.idleTimeoutSeconds = needed;
    this.loadBalancer.setAttribute('idle_timeout.timeout_seconds', String(needed));
  }

  private createAccessLogBucket(): s3.Bucket {
    const bucket = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This bucket holds the load balancer access logs; logging access to it would need yet another log bucket.',
    });
    return bucket;
  }
}
