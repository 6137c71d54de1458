import { z } from 'zod';
import { RESPONSE_CACHE_TTL_RANGE } from '../constructs/gateway-settings';

/**
 * Schema of an agent's `responseCache` section: the exact-match response
 * cache of the agent's model calls. Without the section no response is cached.
 */
export const responseCacheSchema = z
  .strictObject({
    /** Seconds a stored response is served, from 1 second to 365 days. */
    ttlSeconds: z.number().int().min(RESPONSE_CACHE_TTL_RANGE.min).max(RESPONSE_CACHE_TTL_RANGE.max),
    /**
     * `user`: a response is served only to the user whose request stored it.
     * `agent`: every user of the agent shares the responses, which suits
     * only prompts that carry no user's data.
     */
    scope: z.enum(['user', 'agent']).default('user'),
    /** Cache requests whose conversation contains a tool call or a tool result. */
    cacheToolTurns: z.boolean().default(false),
  })
  .superRefine((cache, context) => {
    if (cache.scope === 'agent' && cache.cacheToolTurns) {
      context.addIssue({
        code: 'custom',
        path: ['cacheToolTurns'],
        input: cache.cacheToolTurns,
        message:
          "cannot be true with scope agent, because tool results carry one user's data and every user of the agent " +
          'would receive the cached response; use scope user or set cacheToolTurns to false',
      });
    }
  });

export type ResponseCacheConfig = z.output<typeof responseCacheSchema>;
