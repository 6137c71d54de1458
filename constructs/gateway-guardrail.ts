import * as crypto from 'crypto';
import { Names, Stack } from 'aws-cdk-lib';
import * as bedrock from 'aws-cdk-lib/aws-bedrock';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import {
  GatewayGuardrailSettings,
  GUARDRAIL_CONTENT_CATEGORIES,
  GuardrailContentCategory,
  ResolvedGuardrailSettings,
  resolveGuardrailSettings,
} from './gateway-guardrail-settings';
import { guardrailSettingsIssues } from './gateway-guardrail-checks';
import { formatSettingsPath } from './gateway-settings';

export interface GatewayGuardrailProps {
  /**
   * Filters and messages of the guardrail.
   *
   * @default - HIGH content filters on prompts and responses, and HIGH
   * prompt-attack filtering on prompts
   */
  readonly settings?: GatewayGuardrailSettings;

  /**
   * Key that encrypts the guardrail. Principals that apply the guardrail
   * need `kms:Decrypt` on it.
   *
   * @default - an AWS owned key
   */
  readonly encryptionKey?: kms.IKey;
}

/**
 * A Bedrock guardrail (`AWS::Bedrock::Guardrail`) and a published version
 * of it (`AWS::Bedrock::GuardrailVersion`). The gateway applies the version,
 * never the draft, so an edit takes effect only through a deployment.
 */
export class GatewayGuardrail extends Construct {
  public readonly guardrail: bedrock.CfnGuardrail;
  public readonly version: bedrock.CfnGuardrailVersion;
  /** The guardrail id, such as `abc123def456`. */
  public readonly guardrailId: string;
  /** The published version number the gateway applies. */
  public readonly guardrailVersion: string;
  /** The guardrail ARN, which `bedrock:ApplyGuardrail` is granted on. */
  public readonly guardrailArn: string;

  constructor(scope: Construct, id: string, props: GatewayGuardrailProps = {}) {
    super(scope, id);

    // Resolve the defaults and reject what Bedrock would reject at deploy time.
    const settings = resolveGuardrailSettings(props.settings);
    const issues = guardrailSettingsIssues(settings);
    if (issues.length > 0) {
      const lines = issues.map((i) => `${formatSettingsPath('settings', i.path)} ${i.message}${i.value === undefined ? '' : ` (got ${JSON.stringify(i.value)})`}`);
      throw new Error(`GatewayGuardrail: ${lines.join('; ')}.`);
    }

    // Create the guardrail.
    this.guardrail = new bedrock.CfnGuardrail(this, 'Resource', {
      name: Names.uniqueResourceName(this, { maxLength: 50, separator: '-' }),
      description: `Filters the prompts and responses of the ModelGateway in ${Stack.of(this).stackName}`,
      kmsKeyArn: props.encryptionKey?.keyArn,
      ...guardrailPolicies(settings),
      blockedInputMessaging: settings.blockedInputMessage,
      blockedOutputsMessaging: settings.blockedOutputMessage,
    });

    // Publish a version. Its description carries a hash of the settings:
    // the description can only be set at creation, so a change of settings
    // replaces the version resource, which publishes a new version.
    const hash = crypto.createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 16);
    this.version = new bedrock.CfnGuardrailVersion(this, 'Version', {
      guardrailIdentifier: this.guardrail.attrGuardrailId,
      description: `Settings ${hash}`,
    });

    this.guardrailId = this.guardrail.attrGuardrailId;
    this.guardrailVersion = this.version.attrVersion;
    this.guardrailArn = this.guardrail.attrGuardrailArn;
  }
}

/** Maps resolved settings to the policy properties of `AWS::Bedrock::Guardrail`. */
function guardrailPolicies(settings: ResolvedGuardrailSettings): Partial<bedrock.CfnGuardrailProps> {
  const categories = Object.keys(GUARDRAIL_CONTENT_CATEGORIES) as GuardrailContentCategory[];
  const contentFilters: bedrock.CfnGuardrail.ContentFilterConfigProperty[] = [
    ...categories.map((category) => ({
      type: GUARDRAIL_CONTENT_CATEGORIES[category],
      inputStrength: settings.contentFilters[category].inputStrength,
      outputStrength: settings.contentFilters[category].outputStrength,
    })),
    {
      type: 'PROMPT_ATTACK',
      inputStrength: settings.promptAttack.inputStrength,
      outputStrength: settings.promptAttack.outputStrength,
    },
  ];
  const words = settings.words.map((text) => ({ text }));
  const managedWords = settings.managedWordLists.map((type) => ({ type }));
  return {
    contentPolicyConfig: { filtersConfig: contentFilters },
    topicPolicyConfig:
      settings.deniedTopics.length > 0
        ? {
            topicsConfig: settings.deniedTopics.map((topic) => ({
              name: topic.name,
              definition: topic.definition,
              examples: topic.examples.length > 0 ? topic.examples : undefined,
              type: 'DENY',
            })),
          }
        : undefined,
    wordPolicyConfig:
      words.length + managedWords.length > 0
        ? {
            wordsConfig: words.length > 0 ? words : undefined,
            managedWordListsConfig: managedWords.length > 0 ? managedWords : undefined,
          }
        : undefined,
    sensitiveInformationPolicyConfig:
      settings.piiEntities.length > 0
        ? {
            piiEntitiesConfig: settings.piiEntities.map((entity) => ({
              type: entity.type,
              action: entity.action,
              inputAction: entity.action,
              outputAction: entity.action,
              inputEnabled: entity.appliesTo.includes('input'),
              outputEnabled: entity.appliesTo.includes('output'),
            })),
          }
        : undefined,
  };
}
