import { RemovalPolicy, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface AgentNetworkProps {
  /**
   * An existing VPC. Its private subnets must reach ECR, CloudWatch Logs,
   * SQS, Lambda, DynamoDB and S3, through endpoints or NAT.
   *
   * @default - a new VPC
   */
  readonly vpc?: ec2.IVpc;

  /**
   * IPv4 range of a new VPC.
   *
   * @default '10.0.0.0/16'
   */
  readonly cidr?: string;

  /**
   * Zones a new VPC spans.
   *
   * @default 2
   */
  readonly maxAzs?: number;

  /**
   * Explicit zones for a new VPC, needed when the stack has an account so
   * that nothing looks them up. With `maxAzs` the VPC uses the first
   * `maxAzs` of them.
   *
   * @default - the stack's zones
   */
  readonly availabilityZones?: string[];

  /**
   * NAT gateways of a new VPC. With 0 the task subnets are isolated and
   * reach AWS only through the endpoints.
   *
   * @default 0
   */
  readonly natGateways?: number;

  /**
   * Create the VPC endpoints the agent tasks use. Endpoints with private DNS
   * conflict with existing ones for the same service, so the default for an
   * existing VPC is not to create them.
   *
   * @default - true for a new VPC, false for an existing one
   */
  readonly createEndpoints?: boolean;

  /**
   * Retention of the VPC flow logs of a new VPC.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly flowLogRetention?: logs.RetentionDays;

  /**
   * Key that encrypts the flow log group.
   *
   * @default - CloudWatch Logs' own encryption
   */
  readonly encryptionKey?: kms.IKey;
}

/**
 * The network agent tasks run in: private subnets for the tasks, public
 * subnets for the load balancer, endpoints for every AWS service the tasks
 * call, and flow logs.
 */
export class AgentNetwork extends Construct {
  /** Interface endpoint services the agent tasks call. */
  public static readonly INTERFACE_ENDPOINTS: ReadonlyArray<[string, ec2.InterfaceVpcEndpointAwsService]> = [
    ['Lambda', ec2.InterfaceVpcEndpointAwsService.LAMBDA],
    ['Sqs', ec2.InterfaceVpcEndpointAwsService.SQS],
    ['Logs', ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
    ['EcrApi', ec2.InterfaceVpcEndpointAwsService.ECR],
    ['EcrDocker', ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER],
    ['Firehose', ec2.InterfaceVpcEndpointAwsService.KINESIS_FIREHOSE],
  ];

  public readonly vpc: ec2.IVpc;
  /** Subnets for agent tasks and other private resources. */
  public readonly privateSubnets: ec2.SubnetSelection;
  /** Subnets for the internet-facing load balancer. */
  public readonly publicSubnets: ec2.SubnetSelection;

  constructor(scope: Construct, id: string, props: AgentNetworkProps = {}) {
    super(scope, id);

    const natGateways = props.natGateways ?? 0;
    const shapesNewVpc = [props.cidr, props.maxAzs, props.natGateways, props.availabilityZones].some((value) => value !== undefined);
    if (props.vpc && shapesNewVpc) {
      throw new Error('AgentNetwork: vpc cannot be combined with cidr, maxAzs, natGateways or availabilityZones; those shape a new VPC. Remove them or remove vpc.');
    }
    if (!Number.isInteger(natGateways) || natGateways < 0) {
      throw new Error(`AgentNetwork: natGateways must be a whole number of 0 or more (got ${natGateways}).`);
    }

    const privateType = natGateways > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED;
    this.vpc =
      props.vpc ??
      new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(props.cidr ?? '10.0.0.0/16'),
        ...(props.availabilityZones
          ? { availabilityZones: props.availabilityZones.slice(0, props.maxAzs ?? props.availabilityZones.length) }
          : { maxAzs: props.maxAzs ?? 2 }),
        natGateways,
        subnetConfiguration: [
          // No cidrMask: the CDK splits the range evenly between the subnets,
          // so every range from /16 to /24 fits any number of zones.
          { name: 'Public', subnetType: ec2.SubnetType.PUBLIC },
          { name: 'Private', subnetType: privateType },
        ],
        restrictDefaultSecurityGroup: false,
      });
    this.privateSubnets = props.vpc
      ? { subnetType: this.vpc.privateSubnets.length > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED }
      : { subnetType: privateType };
    this.publicSubnets = { subnetType: ec2.SubnetType.PUBLIC };

    if (!props.vpc) {
      const flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
        retention: props.flowLogRetention ?? logs.RetentionDays.ONE_YEAR,
        encryptionKey: props.encryptionKey,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      this.vpc.addFlowLog('FlowLog', {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
        trafficType: ec2.FlowLogTrafficType.ALL,
        maxAggregationInterval: ec2.FlowLogMaxAggregationInterval.ONE_MINUTE,
      });
    }

    if (props.createEndpoints ?? !props.vpc) {
      this.vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
      this.vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3 });
      // One group for all interface endpoints: HTTPS from inside the VPC only.
      const cidr = props.vpc ? this.vpc.vpcCidrBlock : (props.cidr ?? '10.0.0.0/16');
      const endpointGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc: this.vpc,
        description: 'VPC interface endpoints: HTTPS from inside the VPC',
        allowAllOutbound: false,
      });
      endpointGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), 'HTTPS from the VPC');
      if (Token.isUnresolved(cidr)) {
        Validations.of(endpointGroup).acknowledge({
          id: 'AwsSolutions-EC23',
          reason: 'Ingress comes from the CIDR of the existing VPC, which is known only at deploy time.',
        });
      }
      for (const [name, service] of AgentNetwork.INTERFACE_ENDPOINTS) {
        this.vpc.addInterfaceEndpoint(name, {
          service,
          subnets: this.privateSubnets,
          privateDnsEnabled: true,
          securityGroups: [endpointGroup],
          open: false,
        });
      }
    }
  }
}
