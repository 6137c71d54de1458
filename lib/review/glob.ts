/**
 * IAM-style patterns, where `*` matches any run of characters and `?` any one
 * character. IAM compares action names without regard to letter case and
 * resource ARNs with it.
 * Source: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
 */

/** Returns whether `pattern` matches all of `text`. */
export function globMatches(pattern: string, text: string, caseSensitive = false): boolean {
  const p = caseSensitive ? pattern : pattern.toLowerCase();
  const t = caseSensitive ? text : text.toLowerCase();
  // Classic two-pointer match with backtracking to the last `*`.
  let pi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (pi < p.length && p[pi] === '*') {
      star = pi;
      mark = ti;
      pi += 1;
    } else if (pi < p.length && (p[pi] === '?' || p[pi] === t[ti])) {
      pi += 1;
      ti += 1;
    } else if (star >= 0) {
      pi = star + 1;
      mark += 1;
      ti = mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi += 1;
  return pi === p.length;
}

/**
 * Returns whether some text matches both patterns, such as `bedrock:*` and
 * `bedrock:Invoke*`, or `*Model` and `bedrock:Invoke*`.
 */
export function globsOverlap(a: string, b: string, caseSensitive = false): boolean {
  const x = caseSensitive ? a : a.toLowerCase();
  const y = caseSensitive ? b : b.toLowerCase();
  const memo = new Map<number, boolean>();
  const visit = (i: number, j: number): boolean => {
    const key = i * (y.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === x.length && j === y.length) {
      result = true;
    } else if (i < x.length && x[i] === '*') {
      // The star matches nothing, or absorbs the next symbol of the other pattern.
      result = visit(i + 1, j) || (j < y.length && visit(i, j + 1));
    } else if (j < y.length && y[j] === '*') {
      result = visit(i, j + 1) || (i < x.length && visit(i + 1, j));
    } else if (i < x.length && j < y.length) {
      result = (x[i] === y[j] || x[i] === '?' || y[j] === '?') && visit(i + 1, j + 1);
    } else {
      result = false;
    }
    memo.set(key, result);
    return result;
  };
  return visit(0, 0);
}
