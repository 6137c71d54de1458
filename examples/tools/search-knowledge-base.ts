/**
 * Example tool `search_knowledge_base`: returns the passages that best match
 * a query, with their source ids. It ranks an in-file corpus by how many of
 * the query's terms each passage contains. A real tool would query a search
 * index or a Bedrock knowledge base.
 */

export interface SearchInput {
  readonly query: string;
  /** Maximum number of passages to return. @default 5 */
  readonly limit?: number;
}

export interface Passage {
  readonly sourceId: string;
  readonly title: string;
  readonly text: string;
}

export interface SearchResult {
  readonly query: string;
  readonly passages: Array<Passage & { readonly score: number }>;
}

const CORPUS: readonly Passage[] = [
  {
    sourceId: 'kb-returns-001',
    title: 'Return policy',
    text: 'Items can be returned within 30 days of delivery for a full refund. Opened software and gift cards cannot be returned.',
  },
  {
    sourceId: 'kb-shipping-002',
    title: 'Shipping times',
    text: 'Standard shipping takes 3 to 5 business days within the US. Express shipping takes 1 to 2 business days and costs 15 USD.',
  },
  {
    sourceId: 'kb-warranty-003',
    title: 'Hardware warranty',
    text: 'Keyboards, mice and headphones carry a two-year warranty against manufacturing defects. Damage from liquids is not covered.',
  },
  {
    sourceId: 'kb-refunds-004',
    title: 'Refund processing',
    text: 'Refunds go back to the original payment method within 5 to 10 business days after the returned item arrives at the warehouse.',
  },
  {
    sourceId: 'kb-accounts-005',
    title: 'Account security',
    text: 'Customers can reset their password from the sign-in page. Support staff never ask for a password by email or phone.',
  },
];

const DEFAULT_LIMIT = 5;
const STOP_WORDS = new Set([
  'a',
  'an',
  'and',
  'are',
  'by',
  'can',
  'do',
  'for',
  'how',
  'i',
  'in',
  'is',
  'my',
  'of',
  'on',
  'the',
  'to',
  'what',
  'when',
  'with',
]);

/** Splits text into lower-case terms without stop words. */
function terms(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((term) => term.length > 1 && !STOP_WORDS.has(term));
}

/** Ranks the corpus by the share of query terms each passage contains. */
export function search(query: string, limit = DEFAULT_LIMIT): SearchResult {
  const queryTerms = [...new Set(terms(query))];
  const passages = CORPUS.map((passage) => {
    const passageTerms = new Set(terms(`${passage.title} ${passage.text}`));
    const hits = queryTerms.filter((term) => passageTerms.has(term)).length;
    const score =
      queryTerms.length === 0 ? 0 : Math.round((hits / queryTerms.length) * 1000) / 1000;
    return { ...passage, score };
  })
    .filter((passage) => passage.score > 0)
    .sort((a, b) => b.score - a.score || a.sourceId.localeCompare(b.sourceId))
    .slice(0, limit);
  return { query, passages };
}

/** Lambda handler. */
export async function handler(event: SearchInput): Promise<SearchResult> {
  if (!event || typeof event.query !== 'string' || event.query.trim().length < 2) {
    throw new Error(
      'Invalid input: expected {"query": "<at least 2 characters>", "limit"?: 1-20}.',
    );
  }
  const limit = event.limit ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > 20) {
    throw new Error(`Invalid limit ${String(event.limit)}: expected an integer from 1 to 20.`);
  }
  return search(event.query, limit);
}
