/**
 * Content blocks that a section builds once and renders as Markdown and as
 * HTML. Every text is escaped for its output here, so sections never write
 * markup themselves, except the diagram's SVG, which the diagram module
 * builds from escaped text.
 */

/** Emphasis of a table cell: `bad` for an unexplained finding, `ok` for an explained one. */
export type CellTone = 'bad' | 'ok' | 'muted';

/** A table cell: text, or text with code formatting and a tone. */
export type Cell = string | { readonly text: string; readonly code?: boolean; readonly tone?: CellTone };

export type Block =
  | { readonly kind: 'paragraph'; readonly text: string }
  | { readonly kind: 'heading'; readonly text: string }
  | { readonly kind: 'list'; readonly items: readonly string[] }
  | { readonly kind: 'table'; readonly headers: readonly string[]; readonly rows: readonly (readonly Cell[])[]; readonly empty: string }
  | { readonly kind: 'code'; readonly text: string }
  /** An SVG document; Markdown links to `file`, HTML embeds it inline. */
  | { readonly kind: 'svg'; readonly svg: string; readonly file: string; readonly alt: string };

/** Returns a code cell, such as for an ARN or an action. */
export function code(text: string, tone?: CellTone): Cell {
  return { text, code: true, tone };
}

/** Returns a cell with a tone. */
export function toned(text: string, tone: CellTone | undefined): Cell {
  return { text, tone };
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Escapes text for Markdown, so that template values cannot add markup or break a table. */
export function escapeMarkdown(text: string): string {
  return text.replace(/([\\`*_[\]<>|#])/g, '\\$1').replace(/\r?\n/g, '<br>');
}

function markdownCode(text: string): string {
  const flat = text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
  // A code span is fenced by more backticks than any run inside it.
  const longestRun = Math.max(0, ...(flat.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longestRun + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`;
}

function cellText(cell: Cell): { text: string; code: boolean; tone?: CellTone } {
  return typeof cell === 'string' ? { text: cell, code: false } : { text: cell.text, code: cell.code ?? false, tone: cell.tone };
}

function markdownCell(cell: Cell): string {
  const { text, code: isCode, tone } = cellText(cell);
  if (text === '') return '';
  const body = isCode ? markdownCode(text) : escapeMarkdown(text);
  return tone === 'bad' ? `**${body}**` : body;
}

function htmlCell(cell: Cell): string {
  const { text, code: isCode, tone } = cellText(cell);
  const body = isCode ? `<code>${escapeHtml(text)}</code>` : escapeHtml(text);
  return tone ? `<td class="${tone}">${body}</td>` : `<td>${body}</td>`;
}

/** Renders blocks as Markdown. */
export function renderMarkdown(blocks: readonly Block[]): string {
  const parts = blocks.map((block) => {
    switch (block.kind) {
      case 'paragraph':
        return escapeMarkdown(block.text);
      case 'heading':
        return `### ${escapeMarkdown(block.text)}`;
      case 'list':
        return block.items.map((item) => `- ${escapeMarkdown(item)}`).join('\n');
      case 'code': {
        const longestRun = Math.max(2, ...(block.text.match(/`+/g) ?? []).map((run) => run.length));
        const fence = '`'.repeat(longestRun + 1);
        return `${fence}\n${block.text}\n${fence}`;
      }
      case 'svg':
        return `![${escapeMarkdown(block.alt)}](${block.file})`;
      case 'table':
        if (block.rows.length === 0) return `_${escapeMarkdown(block.empty)}_`;
        return [
          `| ${block.headers.map(escapeMarkdown).join(' | ')} |`,
          `| ${block.headers.map(() => '---').join(' | ')} |`,
          ...block.rows.map((row) => `| ${row.map(markdownCell).join(' | ')} |`),
        ].join('\n');
    }
  });
  return `${parts.join('\n\n')}\n`;
}

/** Renders blocks as an HTML fragment. */
export function renderHtml(blocks: readonly Block[]): string {
  return blocks
    .map((block) => {
      switch (block.kind) {
        case 'paragraph':
          return `<p>${escapeHtml(block.text)}</p>`;
        case 'heading':
          return `<h3>${escapeHtml(block.text)}</h3>`;
        case 'list':
          return `<ul>${block.items.map((item) => `<li>${escapeHtml(item)}</li>`).join('')}</ul>`;
        case 'code':
          return `<pre><code>${escapeHtml(block.text)}</code></pre>`;
        case 'svg':
          return `<figure class="diagram">${block.svg}<figcaption>${escapeHtml(block.alt)}</figcaption></figure>`;
        case 'table':
          if (block.rows.length === 0) return `<p class="muted">${escapeHtml(block.empty)}</p>`;
          return [
            '<table>',
            `<thead><tr>${block.headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>`,
            `<tbody>${block.rows.map((row) => `<tr>${row.map(htmlCell).join('')}</tr>`).join('\n')}</tbody>`,
            '</table>',
          ].join('\n');
      }
    })
    .join('\n');
}

/** Renders blocks in both formats, for a section's result. */
export function renderBlocks(blocks: readonly Block[]): { markdown: string; html: string } {
  return { markdown: renderMarkdown(blocks), html: renderHtml(blocks) };
}
