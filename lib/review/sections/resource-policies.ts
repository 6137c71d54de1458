import { Block, code, renderBlocks, toned } from '../blocks';
import { asList, CfnValue, flatten, isLiteral, referencedId } from '../cfn';
import { acknowledgedFinding } from '../explain';
import { describeExplanation, Finding, sortFindings } from '../findings';
import { describeCondition, describePrincipals, parseStatements, Statement } from '../iam';
import type { ResourceModel, ReviewModel, StackModel } from '../model';
import type { ReviewSection, SectionResult } from '../section';
import { SECTION_ORDER } from './order';

// Condition keys that limit a statement with a `*` principal to known callers.
const RESTRICTING_CONDITION_KEYS = [
  'aws:sourcearn',
  'aws:sourceaccount',
  'aws:sourceowner',
  'aws:principalorgid',
  'aws:principalaccount',
  'aws:principalarn',
  'aws:sourcevpc',
  'aws:sourcevpce',
  'aws:sourceip',
  'kms:calleraccount',
  'kms:viaservice',
];

/** Resource types with a policy document, the property that contains it and the property that names its target. */
const POLICY_TYPES: Record<string, { document: string; target?: string }> = {
  'AWS::KMS::Key': { document: 'KeyPolicy' },
  'AWS::S3::BucketPolicy': { document: 'PolicyDocument', target: 'Bucket' },
  'AWS::SQS::QueuePolicy': { document: 'PolicyDocument', target: 'Queues' },
  'AWS::SNS::TopicPolicy': { document: 'PolicyDocument', target: 'Topics' },
  'AWS::ApiGateway::RestApi': { document: 'Policy' },
  'AWS::Logs::ResourcePolicy': { document: 'PolicyDocument' },
  'AWS::SecretsManager::ResourcePolicy': { document: 'ResourcePolicy', target: 'SecretId' },
};

/** Resource policies and key policies, Lambda permissions and function URLs, and how each API authenticates. */
export const resourcePoliciesSection: ReviewSection = {
  id: 'resource-policies',
  title: 'Resource policies and APIs',
  order: SECTION_ORDER.resourcePolicies,
  build: ({ model }) => buildResourcePolicies(model),
};

interface PolicyEntry {
  readonly stack: StackModel;
  readonly resource: ResourceModel;
  readonly target: string;
  readonly statements: Statement[];
}

function buildResourcePolicies(model: ReviewModel): SectionResult {
  const policies: PolicyEntry[] = model.stacks.flatMap((stack) =>
    stack.ofType(...Object.keys(POLICY_TYPES)).flatMap((resource) => {
      const spec = POLICY_TYPES[resource.type];
      const document = parseDocument(resource.properties[spec.document]);
      if (document === undefined) return [];
      const target = spec.target ? asList(resource.properties[spec.target] as CfnValue[]).map(flatten).join(', ') : resource.logicalId;
      return [{ stack, resource, target, statements: parseStatements(document) }];
    }),
  );
  const permissions = model.stacks.flatMap((stack) => stack.ofType('AWS::Lambda::Permission').map((resource) => ({ stack, resource })));
  const urls = model.stacks.flatMap((stack) => stack.ofType('AWS::Lambda::Url').map((resource) => ({ stack, resource })));
  const apis = model.stacks.flatMap((stack) => apiRoutes(stack));

  const findings: Finding[] = [];
  const finding = (stack: StackModel, resource: ResourceModel, subject: string, message: string) =>
    findings.push({
      kind: 'public',
      section: 'resource-policies',
      stack: stack.name,
      logicalId: resource.logicalId,
      path: resource.path,
      subject,
      message,
      explanation: acknowledgedFinding(model, [resource.path], 'public'),
    });
  for (const policy of policies) {
    for (const statement of policy.statements.filter(isPublicStatement)) {
      finding(policy.stack, policy.resource, `${statement.actions.join(', ')} on ${policy.target}`, 'Any principal is allowed, with no condition that limits the caller.');
    }
  }
  for (const { stack, resource } of permissions) {
    const p = resource.properties;
    // The permissions of a function URL are reported with the URL itself.
    if (p.FunctionUrlAuthType !== undefined || p.InvokedViaFunctionUrl !== undefined) continue;
    const open = flatten(p.Principal) === '*' && p.SourceArn === undefined && p.SourceAccount === undefined && p.PrincipalOrgID === undefined;
    if (open) {
      finding(stack, resource, `${flatten(p.Action)} on ${flatten(p.FunctionName)}`, 'Anyone may invoke the function.');
    }
  }
  for (const { stack, resource } of urls) {
    if (resource.properties.AuthType === 'NONE') {
      finding(stack, resource, `function URL of ${flatten(resource.properties.TargetFunctionArn)}`, 'The function URL accepts unauthenticated requests.');
    }
  }
  for (const api of apis.filter((a) => a.authorization === 'NONE' && a.resource.type !== 'AWS::Lambda::Url')) {
    finding(api.stack, api.resource, `${api.method} ${api.route}`, 'The API route accepts unauthenticated requests.');
  }

  const sortedFindings = sortFindings(findings);
  const approvalApis = apis.filter((a) => /approval/i.test(a.resource.path));
  const blocks: Block[] = [
    { kind: 'heading', text: 'Findings' },
    {
      kind: 'table',
      headers: ['Resource', 'Grant', 'Reason'],
      rows: sortedFindings.map((f) => [`${f.stack}/${f.logicalId}`, code(f.subject), toned(describeExplanation(f), f.explanation ? 'ok' : 'bad')]),
      empty: 'No resource policy, permission or API is open to anyone.',
    },
    { kind: 'heading', text: 'Approval API' },
    {
      kind: 'paragraph',
      text:
        approvalApis.length === 0
          ? 'No approval API in this assembly: no API route, function URL or load balancer rule under a construct path that contains "Approval".'
          : approvalApis.map((a) => `${a.method} ${a.route} authenticates with ${a.authorization}${a.detail ? ` (${a.detail})` : ''}`).join('. ') + '.',
    },
    { kind: 'heading', text: 'API routes' },
    {
      kind: 'table',
      headers: ['Stack', 'Resource', 'Route', 'Authentication'],
      rows: apis.map((a) => [a.stack.name, a.resource.logicalId, code(`${a.method} ${a.route}`), toned(`${a.authorization}${a.detail ? ` (${a.detail})` : ''}`, a.authorization === 'NONE' ? 'bad' : undefined)]),
      empty: 'No API Gateway routes or function URLs.',
    },
    { kind: 'heading', text: 'Lambda permissions and function URLs' },
    {
      kind: 'table',
      headers: ['Stack', 'Resource', 'Function', 'Principal', 'Action', 'Condition'],
      rows: [
        ...permissions.map(({ stack, resource }) => {
          const p = resource.properties;
          const limits = [p.SourceArn && `source ${flatten(p.SourceArn)}`, p.SourceAccount && `account ${flatten(p.SourceAccount)}`, p.FunctionUrlAuthType && `URL auth ${flatten(p.FunctionUrlAuthType)}`]
            .filter(Boolean)
            .join('; ');
          return [stack.name, resource.logicalId, code(flatten(p.FunctionName)), code(flatten(p.Principal)), code(flatten(p.Action)), limits];
        }),
        ...urls.map(({ stack, resource }) => [
          stack.name,
          resource.logicalId,
          code(flatten(resource.properties.TargetFunctionArn)),
          'function URL',
          `auth ${flatten(resource.properties.AuthType)}`,
          '',
        ]),
      ],
      empty: 'No Lambda permissions or function URLs.',
    },
    { kind: 'heading', text: 'Resource and key policies' },
    {
      kind: 'table',
      headers: ['Stack', 'Policy', 'Applies to', 'Effect', 'Principal', 'Actions', 'Condition'],
      rows: policies.flatMap((p) =>
        p.statements.map((s) => [
          p.stack.name,
          `${p.resource.logicalId} (${p.resource.type})`,
          code(p.target),
          s.effect,
          code(describePrincipals(s)),
          code(s.actions.join(', ')),
          describeCondition(s.condition),
        ]),
      ),
      empty: 'No resource policies.',
    },
  ];

  return {
    findings: sortedFindings,
    data: {
      approvalApi: approvalApis.map(apiData),
      apis: apis.map(apiData),
      permissions: permissions.map(({ stack, resource }) => ({
        stack: stack.name,
        logicalId: resource.logicalId,
        function: flatten(resource.properties.FunctionName),
        principal: flatten(resource.properties.Principal),
        action: flatten(resource.properties.Action),
        sourceArn: resource.properties.SourceArn === undefined ? null : flatten(resource.properties.SourceArn),
      })),
      functionUrls: urls.map(({ stack, resource }) => ({ stack: stack.name, logicalId: resource.logicalId, authType: flatten(resource.properties.AuthType) })),
      policies: policies.map((p) => ({
        stack: p.stack.name,
        logicalId: p.resource.logicalId,
        type: p.resource.type,
        target: p.target,
        statements: p.statements.map((s) => ({ effect: s.effect, principals: s.principals, actions: s.actions, resources: s.resources, condition: s.condition ?? null })),
      })),
    },
    ...renderBlocks(blocks),
  };
}

function parseDocument(value: unknown): unknown {
  if (value === undefined) return undefined;
  if (isLiteral(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  return value;
}

/** Returns whether an Allow statement names `*` as principal without a condition that limits the caller. */
export function isPublicStatement(statement: Statement): boolean {
  if (statement.effect !== 'Allow') return false;
  if (!statement.principals.some((p) => p.value === '*' && (p.type === 'AWS' || p.type === '*'))) return false;
  const keys = Object.values(statement.condition ?? {}).flatMap((clauses) => Object.keys(clauses as object).map((k) => k.toLowerCase()));
  return !keys.some((key) => RESTRICTING_CONDITION_KEYS.includes(key));
}

/** One API route or method and how callers authenticate to it. */
interface ApiRoute {
  readonly stack: StackModel;
  readonly resource: ResourceModel;
  readonly method: string;
  readonly route: string;
  /** `NONE`, `AWS_IAM`, `JWT`, `COGNITO_USER_POOLS`, `CUSTOM`, or an authenticate action of a load balancer rule. */
  readonly authorization: string;
  readonly detail?: string;
}

function apiRoutes(stack: StackModel): ApiRoute[] {
  const routes: ApiRoute[] = [];
  for (const method of stack.ofType('AWS::ApiGateway::Method')) {
    const p = method.properties;
    const authorizer = stack.resource(referencedId(p.AuthorizerId));
    routes.push({
      stack,
      resource: method,
      method: flatten(p.HttpMethod),
      route: restApiPath(stack, p.ResourceId),
      authorization: flatten(p.AuthorizationType ?? 'NONE'),
      detail: [authorizer && `authorizer ${authorizer.logicalId} (${flatten(authorizer.properties.Type)})`, p.ApiKeyRequired === true && 'API key required']
        .filter(Boolean)
        .join('; ') || undefined,
    });
  }
  for (const route of stack.ofType('AWS::ApiGatewayV2::Route')) {
    const p = route.properties;
    const authorizer = stack.resource(referencedId(p.AuthorizerId));
    const jwt = authorizer?.properties.JwtConfiguration as { Issuer?: CfnValue; Audience?: CfnValue[] } | undefined;
    const [method, ...rest] = flatten(p.RouteKey).split(' ');
    routes.push({
      stack,
      resource: route,
      method,
      route: rest.join(' ') || method,
      authorization: flatten(p.AuthorizationType ?? 'NONE'),
      detail: jwt ? `issuer ${flatten(jwt.Issuer)}, audience ${asList(jwt.Audience).map(flatten).join(', ')}` : authorizer && `authorizer ${authorizer.logicalId}`,
    });
  }
  for (const url of stack.ofType('AWS::Lambda::Url')) {
    routes.push({ stack, resource: url, method: 'ANY', route: `function URL of ${flatten(url.properties.TargetFunctionArn)}`, authorization: flatten(url.properties.AuthType) });
  }
  for (const rule of stack.ofType('AWS::ElasticLoadBalancingV2::ListenerRule')) {
    const actions = asList(rule.properties.Actions as Array<{ Type?: string; AuthenticateOidcConfig?: { Issuer?: CfnValue } }>);
    const auth = actions.find((a) => a.Type === 'authenticate-oidc' || a.Type === 'authenticate-cognito');
    const paths = asList(rule.properties.Conditions as Array<{ Field?: string; PathPatternConfig?: { Values?: CfnValue[] }; Values?: CfnValue[] }>)
      .filter((c) => c.Field === 'path-pattern')
      .flatMap((c) => asList(c.PathPatternConfig?.Values ?? c.Values).map(flatten));
    routes.push({
      stack,
      resource: rule,
      method: 'ANY',
      route: paths.join(', ') || '(load balancer rule)',
      authorization: auth?.Type ?? 'load balancer: none (the target must check callers)',
      detail: auth?.AuthenticateOidcConfig?.Issuer ? `issuer ${flatten(auth.AuthenticateOidcConfig.Issuer)}` : undefined,
    });
  }
  return routes;
}

/** Writes the path of an API Gateway resource, such as `/approvals/{id}`, from its PathPart chain. */
function restApiPath(stack: StackModel, resourceId: CfnValue): string {
  const parts: string[] = [];
  let current = stack.resource(referencedId(resourceId));
  for (let depth = 0; current?.type === 'AWS::ApiGateway::Resource' && depth < 32; depth += 1) {
    parts.unshift(flatten(current.properties.PathPart));
    current = stack.resource(referencedId(current.properties.ParentId));
  }
  return `/${parts.join('/')}`;
}

function apiData(api: ApiRoute): unknown {
  return { stack: api.stack.name, logicalId: api.resource.logicalId, method: api.method, route: api.route, authorization: api.authorization, detail: api.detail ?? null };
}
