/**
 * AWS list prices in US dollars that the cost section applies, per region,
 * with the page each figure belongs to and how it was checked.
 *
 * Most AWS pricing pages render their rate tables in the browser, so the
 * stored copies of those pages that the figures were checked against show
 * the page text without the numbers. A figure is therefore marked with how
 * it was read: on the AWS page itself, from a transcription of the AWS page,
 * or only from third-party summaries of it. The report prints that mark
 * next to every price, so a reviewer can see which figures to confirm.
 */

/** Check behind a price: where its figure was read. */
export type PriceCheck =
  /** Read on the AWS page named as the source. */
  | 'aws-page'
  /** Read from a transcription of the AWS page, such as its pricing example. */
  | 'aws-page-transcription'
  /** Found only in third-party summaries that quote the AWS page; not confirmed there. */
  | 'third-party';

/** One price of the table. */
export interface Price {
  readonly usd: number;
  /** Unit the price is for, such as `vCPU-hour`. */
  readonly unit: string;
  /** AWS page the price belongs to. */
  readonly source: string;
  /** Date the figure was checked, as YYYY-MM-DD. */
  readonly readOn: string;
  readonly check: PriceCheck;
  /** Detail of the check beyond the mark, in a sentence. */
  readonly note?: string;
}

/** Keys of the prices in {@link PRICE_TABLE}. */
export type PriceKey =
  | 'fargateLinuxX86VcpuHour'
  | 'fargateLinuxX86GbHour'
  | 'albHour'
  | 'albLcuHour'
  | 'publicIpv4Hour'
  | 'natGatewayHour'
  | 'interfaceEndpointAzHour'
  | 'wafWebAclMonth'
  | 'wafRuleMonth'
  | 'wafMillionRequests'
  | 'kmsKeyMonth'
  | 'alarmMetricMonth'
  | 'customMetricMonth'
  | 'dashboardMonth'
  | 'lambdaProvisionedArmGbSecond'
  | 'lambdaProvisionedX86GbSecond'
  | 'dynamoDbMillionWriteUnits'
  | 'logsIngestionGb'
  | 'guardrailContentThousandUnits'
  | 'guardrailTopicThousandUnits'
  | 'guardrailPiiThousandUnits';

/** Prices of one region. A key left out has no price the report can use there. */
export type RegionPrices = Partial<Readonly<Record<PriceKey, Price>>>;

/** Hours in a month, as the AWS pricing pages and calculator count them. */
export const HOURS_PER_MONTH = 730;

/**
 * Custom dashboards per account that CloudWatch does not charge for, each
 * with up to 50 metrics: the free tier on https://aws.amazon.com/cloudwatch/pricing/ (read 2026-12-04).
 */
export const FREE_DASHBOARDS = 3;

/**
 * Characters in one Bedrock guardrail text unit. A guardrail bills each
 * policy per text unit of the text it evaluates.
 */
// NOTE: read in third-party summaries of https://aws.amazon.com/bedrock/pricing/;
// the stored AWS pages do not show the definition.
export const GUARDRAIL_TEXT_UNIT_CHARS = 1_000;

/**
 * Write request units of one item of up to 1 KB in a DynamoDB transaction:
 * "Transactional write requests require two WCUs to perform one write per
 * second for items up to 1 KB", and on-demand tables bill write request
 * units the same way.
 * Source: https://aws.amazon.com/dynamodb/pricing/provisioned/ (read 2026-12-04)
 */
export const TRANSACTION_WRITE_UNITS_PER_ITEM = 2;

const READ_ON = '2026-12-04';

const FARGATE = 'https://aws.amazon.com/fargate/pricing/';
const ELB = 'https://aws.amazon.com/elasticloadbalancing/pricing/';
const VPC = 'https://aws.amazon.com/vpc/pricing/';
const PRIVATELINK = 'https://aws.amazon.com/privatelink/pricing/';
const WAF = 'https://aws.amazon.com/waf/pricing/';
const KMS = 'https://aws.amazon.com/kms/pricing/';
const CLOUDWATCH = 'https://aws.amazon.com/cloudwatch/pricing/';
const LAMBDA = 'https://aws.amazon.com/lambda/pricing/';
const DYNAMODB = 'https://aws.amazon.com/dynamodb/pricing/on-demand/';
const BEDROCK = 'https://aws.amazon.com/bedrock/pricing/';

const US_EAST_1: RegionPrices = {
  fargateLinuxX86VcpuHour: {
    usd: 0.04048,
    unit: 'vCPU-hour',
    source: FARGATE,
    readOn: READ_ON,
    check: 'aws-page-transcription',
    note: "The ECS pricing page's US East (N. Virginia) Linux/X86 example gives $0.000011244 per vCPU-second, which is $0.04048 per hour.",
  },
  fargateLinuxX86GbHour: { usd: 0.004445, unit: 'GB-hour', source: FARGATE, readOn: READ_ON, check: 'third-party' },
  albHour: {
    usd: 0.0225,
    unit: 'load balancer-hour',
    source: ELB,
    readOn: READ_ON,
    check: 'aws-page-transcription',
    note: "The page's us-east-1 pricing example states it.",
  },
  albLcuHour: {
    usd: 0.008,
    unit: 'LCU-hour',
    source: ELB,
    readOn: READ_ON,
    check: 'aws-page-transcription',
    note: "The page's us-east-1 pricing example states it.",
  },
  publicIpv4Hour: {
    usd: 0.005,
    unit: 'public IPv4 address-hour',
    source: VPC,
    readOn: READ_ON,
    check: 'third-party',
    note: 'Charged since 2024-02-01 for every public IPv4 address, in use or not, load balancer and NAT gateway addresses included.',
  },
  natGatewayHour: {
    usd: 0.045,
    unit: 'NAT gateway-hour',
    source: VPC,
    readOn: READ_ON,
    check: 'aws-page-transcription',
    note: "The page's example states $0.045 per hour for US East (Ohio); the same us-east-1 figure comes from third-party summaries.",
  },
  interfaceEndpointAzHour: { usd: 0.01, unit: 'endpoint AZ-hour', source: PRIVATELINK, readOn: READ_ON, check: 'third-party' },
  wafWebAclMonth: { usd: 5, unit: 'web ACL-month', source: WAF, readOn: READ_ON, check: 'third-party' },
  wafRuleMonth: {
    usd: 1,
    unit: 'rule-month',
    source: WAF,
    readOn: READ_ON,
    check: 'third-party',
    note: 'A rule group, custom or managed, counts as one rule, as the AWS WAF cost guide at https://aws.github.io/aws-security-services-best-practices/guides/waf/waf-cost/docs/ states.',
  },
  wafMillionRequests: { usd: 0.6, unit: 'million requests', source: WAF, readOn: READ_ON, check: 'third-party' },
  kmsKeyMonth: { usd: 1, unit: 'key-month', source: KMS, readOn: READ_ON, check: 'third-party' },
  alarmMetricMonth: {
    usd: 0.1,
    unit: 'standard-resolution alarm metric-month',
    source: CLOUDWATCH,
    readOn: READ_ON,
    check: 'third-party',
    note: 'An anomaly detection alarm is billed as 3 alarm metrics per metric it evaluates (the metric and the two band bounds); that count was not confirmed on the AWS page.',
  },
  customMetricMonth: {
    usd: 0.3,
    unit: 'metric-month, first 10,000 metrics',
    source: CLOUDWATCH,
    readOn: READ_ON,
    check: 'third-party',
    note: 'Prorated by the hours in which the metric is published.',
  },
  dashboardMonth: {
    usd: 3,
    unit: 'dashboard-month',
    source: CLOUDWATCH,
    readOn: READ_ON,
    check: 'third-party',
    note: 'The AWS page shows the free tier of 3 custom dashboards of up to 50 metrics each; the $3 rate is from third-party summaries.',
  },
  lambdaProvisionedArmGbSecond: {
    usd: 0.0000033334,
    unit: 'GB-second of provisioned concurrency, Arm',
    source: LAMBDA,
    readOn: READ_ON,
    check: 'third-party',
  },
  lambdaProvisionedX86GbSecond: {
    usd: 0.0000041667,
    unit: 'GB-second of provisioned concurrency, x86',
    source: LAMBDA,
    readOn: READ_ON,
    check: 'third-party',
  },
  dynamoDbMillionWriteUnits: {
    usd: 0.625,
    unit: 'million on-demand write request units',
    source: DYNAMODB,
    readOn: READ_ON,
    check: 'third-party',
    note: 'The rate after the on-demand price cut of November 2024.',
  },
  logsIngestionGb: { usd: 0.5, unit: 'GB of standard log ingestion', source: CLOUDWATCH, readOn: READ_ON, check: 'third-party' },
  guardrailContentThousandUnits: {
    usd: 0.15,
    unit: '1,000 text units, content filters',
    source: BEDROCK,
    readOn: READ_ON,
    check: 'third-party',
    note: 'The rate after the guardrail price cut of December 2024.',
  },
  guardrailTopicThousandUnits: {
    usd: 0.15,
    unit: '1,000 text units, denied topics',
    source: BEDROCK,
    readOn: READ_ON,
    check: 'third-party',
    note: 'The rate after the guardrail price cut of December 2024.',
  },
  guardrailPiiThousandUnits: {
    usd: 0.1,
    unit: '1,000 text units, sensitive information filters (PII entities; regular expressions and word filters are free)',
    source: BEDROCK,
    readOn: READ_ON,
    check: 'third-party',
  },
};

/** The price table: prices per region, with the date the table was checked. */
export const PRICE_TABLE = {
  /** Date every figure was last checked, as YYYY-MM-DD. */
  readOn: READ_ON,
  /** Origin of the figures, in one sentence for the report. */
  source: 'AWS pricing pages for each service, linked per price; see the Checked column for how each figure was read.',
  regions: { 'us-east-1': US_EAST_1 } as Readonly<Record<string, RegionPrices>>,
};

/** Returns the prices of a region, or undefined for a region the table does not list. */
export function pricesFor(region: string | undefined): RegionPrices | undefined {
  if (region === undefined) return undefined;
  return Object.hasOwn(PRICE_TABLE.regions, region) ? PRICE_TABLE.regions[region] : undefined;
}

/** Describes how a price was checked, for the report. */
export function describeCheck(price: Price): string {
  switch (price.check) {
    case 'aws-page':
      return 'read on the AWS page';
    case 'aws-page-transcription':
      return 'read from a transcription of the AWS page';
    case 'third-party':
      return 'not verified on the AWS page: third-party summaries only';
  }
}
