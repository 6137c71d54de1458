/**
 * The example Athena queries of the README's audit log section: their shape,
 * the columns they name and the kinds and decisions they compare with. No
 * Athena engine runs here, so the checks are on the SQL text.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AUDIT_PARTITION_COLUMN, AUDIT_TABLE_NAME, auditTableColumns } from '../constructs/audit-log';
import { AUDIT_DECISIONS, AUDIT_KINDS } from '../lambda/shared/audit-record';

const README = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');

// Keywords and functions the example queries use; any other word must be a column or an alias.
const SQL_WORDS = new Set([
  'select', 'from', 'where', 'and', 'or', 'not', 'in', 'between', 'is', 'null', 'as',
  'group', 'order', 'by', 'asc', 'desc', 'count', 'distinct', 'limit', 'sum', 'min', 'max',
]);

/** Returns the ```sql blocks of the README's "Audit log" section. */
function exampleQueries(): string[] {
  const start = README.indexOf('\n## Audit log\n');
  const end = README.indexOf('\n## ', start + 1);
  const section = README.slice(start, end);
  return [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((match) => match[1]);
}

/** Returns the query without its string literals, and the literals in order. */
function splitLiterals(sql: string): { code: string; literals: string[] } {
  const literals: string[] = [];
  const code = sql.replace(/'((?:[^']|'')*)'/g, (_, text: string) => {
    literals.push(text);
    return ' ? ';
  });
  return { code, literals };
}

/** Returns the identifiers a query names: quoted ones and bare words that are not SQL words. */
function identifiersOf(code: string): string[] {
  const quoted = [...code.matchAll(/"([^"]+)"/g)].map((match) => match[1]);
  const bare = [...code.replace(/"[^"]+"/g, ' ').matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)]
    .map((match) => match[0])
    .filter((word) => !SQL_WORDS.has(word.toLowerCase()));
  return [...quoted, ...bare];
}

/** Returns the aliases a query defines with AS. */
function aliasesOf(code: string): string[] {
  return [...code.matchAll(/\bAS\s+([A-Za-z_][A-Za-z0-9_]*)/gi)].map((match) => match[1]);
}

/** Returns the literals compared with `column` by = or IN (...). */
function literalsComparedWith(sql: string, column: string): string[] {
  const equal = [...sql.matchAll(new RegExp(`\\b${column}\\s*=\\s*'([^']*)'`, 'gi'))].map((match) => match[1]);
  const lists = [...sql.matchAll(new RegExp(`\\b${column}\\s+IN\\s*\\(([^)]*)\\)`, 'gi'))].flatMap((match) =>
    [...match[1].matchAll(/'([^']*)'/g)].map((item) => item[1]),
  );
  return [...equal, ...lists];
}

const queries = exampleQueries();
const columns = new Set([...auditTableColumns().map((column) => column.name), AUDIT_PARTITION_COLUMN]);

describe('README audit queries', () => {
  test('there are three', () => {
    expect(queries).toHaveLength(3);
  });

  test.each(queries.map((sql, index) => [index + 1, sql]))('query %i reads the audit table', (_index, sql) => {
    const { code } = splitLiterals(sql);

    expect(code).toMatch(new RegExp(`\\bFROM\\s+${AUDIT_TABLE_NAME}\\b`));
    expect(code.trim().endsWith(';')).toBe(true);
    expect(code.split('(').length).toBe(code.split(')').length);
  });

  test.each(queries.map((sql, index) => [index + 1, sql]))('query %i names only columns', (_index, sql) => {
    const { code } = splitLiterals(sql);
    const known = new Set([...columns, ...aliasesOf(code), AUDIT_TABLE_NAME]);

    const unknown = identifiersOf(code).filter((identifier) => !known.has(identifier));

    expect(unknown).toEqual([]);
  });

  test.each(queries.map((sql, index) => [index + 1, sql]))('query %i filters by day', (_index, sql) => {
    const days = [...sql.matchAll(/'(\d{4}\/\d{2}\/\d{2})'/g)].map((match) => match[1]);

    expect(sql).toMatch(/\bday\s+(>=|BETWEEN)/);
    expect(days.length).toBeGreaterThan(0);
  });

  test('compared kinds exist', () => {
    const kinds = queries.flatMap((sql) => literalsComparedWith(sql, 'kind'));

    expect(kinds.filter((kind) => !(AUDIT_KINDS as readonly string[]).includes(kind))).toEqual([]);
  });

  test('compared decisions exist', () => {
    const decisions = queries.flatMap((sql) => literalsComparedWith(sql, 'decision'));

    expect(decisions.length).toBeGreaterThan(0);
    expect(decisions.filter((decision) => !(AUDIT_DECISIONS as readonly string[]).includes(decision))).toEqual([]);
  });
});

describe('query checks', () => {
  // The checks above pass when nothing is wrong; these show that they catch what they look for.
  test('unknown column is found', () => {
    const { code } = splitLiterals("SELECT user_id FROM audit_records WHERE userid = 'x';");

    expect(identifiersOf(code).filter((identifier) => !columns.has(identifier) && identifier !== AUDIT_TABLE_NAME)).toEqual(['user_id']);
  });

  test('camelCase field is not a column', () => {
    expect(columns.has('requestId')).toBe(false);
    expect(columns.has('requestid')).toBe(true);
  });

  test('literals are not identifiers', () => {
    const { code, literals } = splitLiterals("SELECT kind FROM audit_records WHERE reason = 'it''s over budget';");

    expect(literals).toEqual(["it''s over budget"]);
    expect(identifiersOf(code)).toEqual(['kind', 'audit_records', 'reason']);
  });

  test('decision list is read', () => {
    expect(literalsComparedWith("WHERE decision IN ('rejected', 'refused')", 'decision')).toEqual(['rejected', 'refused']);
  });
});
