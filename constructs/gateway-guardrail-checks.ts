import {
  GUARDRAIL_LIMITS,
  GUARDRAIL_TOPIC_NAME,
  ResolvedGuardrailSettings,
} from './gateway-guardrail-settings';
import type { SettingsIssue } from './gateway-settings';

/** Returns the indexes of values seen before in the list. */
function repeatedIndexes<T>(values: T[]): number[] {
  return values.flatMap((value, i) => (values.indexOf(value) < i ? [i] : []));
}

/**
 * Checks resolved guardrail settings: a prompt-attack output strength other
 * than NONE, which Bedrock rejects at deploy time, a guardrail that filters
 * nothing, repeated topics, PII types or words, a PII entity that applies
 * nowhere, and the counts and lengths the Bedrock API allows.
 */
export function guardrailSettingsIssues(settings: ResolvedGuardrailSettings): SettingsIssue[] {
  const issues: SettingsIssue[] = [];

  // The CloudFormation schema accepts any strength here, but Bedrock
  // evaluates prompt attacks in prompts only, and CreateGuardrail fails the
  // deployment with "The outputStrength for PROMPT_ATTACK filter must be NONE".
  // Source: https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-prompt-attack.html
  if (settings.promptAttack.outputStrength !== 'NONE') {
    issues.push({
      path: ['promptAttack', 'outputStrength'],
      message: 'must be NONE, because Bedrock applies the prompt-attack filter to prompts only; remove it or set "NONE"',
      value: settings.promptAttack.outputStrength,
    });
  }

  const strengths = [
    ...Object.values(settings.contentFilters).flatMap((s) => [s.inputStrength, s.outputStrength]),
    settings.promptAttack.inputStrength,
  ];
  const hasFilter =
    strengths.some((s) => s !== 'NONE') ||
    settings.deniedTopics.length + settings.words.length + settings.managedWordLists.length + settings.piiEntities.length > 0;
  if (!hasFilter) {
    issues.push({
      path: [],
      message:
        'has no filter: every strength is NONE and no topic, word or PII entity is listed, so the guardrail would ' +
        'let everything through; raise a strength, list a filter, or name an existing guardrail',
    });
  }

  for (const i of repeatedIndexes(settings.deniedTopics.map((t) => t.name))) {
    issues.push({ path: ['deniedTopics', i, 'name'], message: 'names a topic already listed; give each topic a distinct name', value: settings.deniedTopics[i].name });
  }
  for (const i of repeatedIndexes(settings.piiEntities.map((e) => e.type))) {
    issues.push({ path: ['piiEntities', i, 'type'], message: 'repeats a PII type already listed; keep one entry per type', value: settings.piiEntities[i].type });
  }
  for (const i of repeatedIndexes(settings.words)) {
    issues.push({ path: ['words', i], message: 'repeats a word already listed; remove the duplicate', value: settings.words[i] });
  }
  for (const i of repeatedIndexes(settings.managedWordLists)) {
    issues.push({ path: ['managedWordLists', i], message: 'repeats a managed word list already listed; remove the duplicate', value: settings.managedWordLists[i] });
  }
  settings.piiEntities.forEach((entity, i) => {
    if (entity.appliesTo.length === 0) {
      issues.push({ path: ['piiEntities', i, 'appliesTo'], message: 'is empty; list "input", "output" or both, or remove the entity', value: [] });
    }
  });
  return [...issues, ...lengthIssues(settings)];
}

/** Checks counts and lengths against the limits of the Bedrock guardrail API. */
function lengthIssues(settings: ResolvedGuardrailSettings): SettingsIssue[] {
  const issues: SettingsIssue[] = [];
  const limits = GUARDRAIL_LIMITS;
  const checkText = (path: Array<string | number>, text: string, max: number) => {
    if (text.length === 0 || text.length > max) issues.push({ path, message: `must be 1 to ${max} characters long`, value: text });
  };
  checkText(['blockedInputMessage'], settings.blockedInputMessage, limits.messageChars);
  checkText(['blockedOutputMessage'], settings.blockedOutputMessage, limits.messageChars);

  if (settings.deniedTopics.length > limits.topics) {
    issues.push({ path: ['deniedTopics'], message: `lists ${settings.deniedTopics.length} topics; Bedrock allows at most ${limits.topics}` });
  }
  settings.deniedTopics.forEach((topic, t) => {
    checkText(['deniedTopics', t, 'name'], topic.name, limits.topicNameChars);
    if (!GUARDRAIL_TOPIC_NAME.test(topic.name)) {
      issues.push({ path: ['deniedTopics', t, 'name'], message: 'may contain only letters, digits, spaces and -_!?.', value: topic.name });
    }
    checkText(['deniedTopics', t, 'definition'], topic.definition, limits.topicDefinitionChars);
    if (topic.examples.length > limits.topicExamples) {
      issues.push({ path: ['deniedTopics', t, 'examples'], message: `lists ${topic.examples.length} examples; Bedrock allows at most ${limits.topicExamples}` });
    }
    topic.examples.forEach((example, e) => checkText(['deniedTopics', t, 'examples', e], example, limits.topicExampleChars));
  });

  if (settings.words.length > limits.words) {
    issues.push({ path: ['words'], message: `lists ${settings.words.length} words; Bedrock allows at most ${limits.words}` });
  }
  settings.words.forEach((word, w) => checkText(['words', w], word, limits.wordChars));
  return issues;
}
