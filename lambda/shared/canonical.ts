import { createHash } from 'node:crypto';

/**
 * Serializes `value` as JSON with object keys sorted by code unit, so that
 * equal values give equal text whatever their key order. Members whose value
 * is undefined are left out, as `JSON.stringify` leaves them out.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const members = Object.keys(value)
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Returns the hex SHA-256 of `text` in UTF-8. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Returns the hex SHA-256 of the canonical JSON of `value`. */
export function canonicalSha256(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}
