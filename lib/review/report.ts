import { escapeHtml, escapeMarkdown } from './blocks';
import { describeExplanation, Finding, FindingKind, GATE_KINDS, sortFindings, unexplained } from './findings';
import type { ReviewModel } from './model';
import { reviewSections } from './registry';
import { findSecrets, scrubSecrets } from './secrets';
import type { ReviewOptions, SectionResult } from './section';

/** One built section, with its place in the report. */
export interface BuiltSection extends SectionResult {
  readonly id: string;
  readonly title: string;
}

/** The report before rendering. */
export interface Report {
  readonly assembly: string;
  readonly against?: string;
  readonly stacks: readonly string[];
  readonly sections: readonly BuiltSection[];
  readonly findings: readonly Finding[];
}

/** The rendered report: report.md, report.json, report.html and the files sections add, by file name. */
export type RenderedReport = Readonly<Record<string, string>>;

/** Builds every registered section. */
export async function buildReport(model: ReviewModel, options: ReviewOptions = {}, previous?: ReviewModel): Promise<Report> {
  const sections: BuiltSection[] = [];
  for (const section of reviewSections()) {
    const result = await section.build({ model, previous, options });
    if (result) sections.push({ id: section.id, title: section.title, ...result });
  }
  return {
    assembly: model.directory,
    against: previous?.directory,
    stacks: model.stacks.map((s) => s.name),
    sections,
    findings: sortFindings(sections.flatMap((s) => s.findings)),
  };
}

/** Counts findings by kind, explained and unexplained, in a fixed kind order. */
function countFindings(findings: readonly Finding[]): Array<{ kind: FindingKind; explained: number; unexplained: number }> {
  const kinds = [...new Set(findings.map((f) => f.kind))].sort();
  return kinds.map((kind) => ({
    kind,
    explained: findings.filter((f) => f.kind === kind && f.explanation).length,
    unexplained: findings.filter((f) => f.kind === kind && !f.explanation).length,
  }));
}

function renderMarkdownReport(report: Report): string {
  const counts = countFindings(report.findings);
  const gated = unexplained(report.findings, GATE_KINDS);
  const lines = [
    '# Review report',
    '',
    `Cloud assembly: ${escapeMarkdown(report.assembly)}${report.against ? `, compared with ${escapeMarkdown(report.against)}` : ''}`,
    '',
    `Stacks: ${report.stacks.map(escapeMarkdown).join(', ')}`,
    '',
    '## Summary',
    '',
    '| Kind | Unexplained | Explained |',
    '| --- | --- | --- |',
    ...counts.map((c) => `| ${c.kind} | ${c.unexplained} | ${c.explained} |`),
    '',
    gated.length === 0
      ? 'Every wildcard, cross-region, public, unencrypted and secret finding has a recorded reason.'
      : `Unexplained findings a pipeline can gate on with --fail-on:\n\n${gated.map((f) => `- ${f.kind}: ${escapeMarkdown(`${f.stack}/${f.logicalId}`)} \`${f.subject.replace(/`/g, "'")}\``).join('\n')}`,
    '',
    ...report.sections.flatMap((s) => [`## ${escapeMarkdown(s.title)}`, '', s.markdown]),
  ];
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

/** Content security policy of report.html: nothing loads from anywhere, styles are inline, images only from data: URLs. */
export const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE = `
body { font-family: sans-serif; margin: 2rem; color: #263238; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 13px; }
th, td { border: 1px solid #cfd8dc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eceff1; }
td.bad { background: #ffebee; }
td.ok { color: #1b5e20; }
td.muted, p.muted { color: #78909c; }
code { font-size: 12px; word-break: break-all; }
nav ul { columns: 2; }
figure.diagram { overflow-x: auto; }
`;

function renderHtmlReport(report: Report): string {
  const counts = countFindings(report.findings);
  const gated = unexplained(report.findings, GATE_KINDS);
  const summaryRows = counts.map((c) => `<tr><td>${escapeHtml(c.kind)}</td><td${c.unexplained > 0 && GATE_KINDS.includes(c.kind) ? ' class="bad"' : ''}>${c.unexplained}</td><td>${c.explained}</td></tr>`).join('\n');
  const gatedList = gated.length === 0
    ? '<p>Every wildcard, cross-region, public, unencrypted and secret finding has a recorded reason.</p>'
    : `<p>Unexplained findings a pipeline can gate on with --fail-on:</p><ul>${gated.map((f) => `<li>${escapeHtml(f.kind)}: ${escapeHtml(`${f.stack}/${f.logicalId}`)} <code>${escapeHtml(f.subject)}</code> (${escapeHtml(describeExplanation(f))})</li>`).join('')}</ul>`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>Review report</title>',
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    '<h1>Review report</h1>',
    `<p>Cloud assembly: <code>${escapeHtml(report.assembly)}</code>${report.against ? `, compared with <code>${escapeHtml(report.against)}</code>` : ''}</p>`,
    `<p>Stacks: ${report.stacks.map(escapeHtml).join(', ')}</p>`,
    `<nav><ul>${report.sections.map((s) => `<li><a href="#${escapeHtml(s.id)}">${escapeHtml(s.title)}</a></li>`).join('')}</ul></nav>`,
    '<h2 id="summary">Summary</h2>',
    `<table><thead><tr><th>Kind</th><th>Unexplained</th><th>Explained</th></tr></thead><tbody>${summaryRows}</tbody></table>`,
    gatedList,
    ...report.sections.map((s) => `<section id="${escapeHtml(s.id)}">\n<h2>${escapeHtml(s.title)}</h2>\n${s.html}\n</section>`),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

function renderJsonReport(report: Report): string {
  const json = {
    assembly: report.assembly,
    against: report.against ?? null,
    stacks: report.stacks,
    summary: countFindings(report.findings),
    findings: report.findings.map((f) => ({
      kind: f.kind,
      section: f.section,
      stack: f.stack,
      logicalId: f.logicalId,
      path: f.path,
      subject: f.subject,
      message: f.message,
      explained: f.explanation !== undefined,
      explanation: f.explanation ?? null,
    })),
    sections: Object.fromEntries(report.sections.map((s) => [s.id, { title: s.title, data: s.data }])),
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

/**
 * Renders the report as Markdown, JSON and HTML, and adds the sections'
 * files. Any value found as a secret in an environment variable is scrubbed
 * from every output, wherever it appears.
 */
export function renderReport(report: Report, model: ReviewModel): RenderedReport {
  const secrets = findSecrets(model).map((s) => s.value);
  const files: Record<string, string> = {
    'report.md': renderMarkdownReport(report),
    'report.json': renderJsonReport(report),
    'report.html': renderHtmlReport(report),
  };
  for (const section of report.sections) Object.assign(files, section.files ?? {});
  return Object.fromEntries(Object.entries(files).map(([name, text]) => [name, scrubSecrets(text, secrets)]));
}
