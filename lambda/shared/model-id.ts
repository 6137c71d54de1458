/** Geography prefixes of Bedrock cross-region inference profile ids. */
const PROFILE_PREFIXES = ['us', 'us-gov', 'eu', 'apac', 'ca', 'jp', 'au', 'global'];

/**
 * Splits an inference profile id into its prefix and the model id it
 * serves. A plain model id comes back as the foundation model id. The
 * constructs and the gateway share it, so both map a target to its model
 * the same way.
 */
export function parseModelId(modelId: string): { profilePrefix?: string; foundationModelId: string } {
  const dot = modelId.indexOf('.');
  const prefix = dot > 0 ? modelId.slice(0, dot) : '';
  if (PROFILE_PREFIXES.includes(prefix)) {
    return { profilePrefix: prefix, foundationModelId: modelId.slice(dot + 1) };
  }
  return { foundationModelId: modelId };
}
