import type * as Dagre from '@dagrejs/dagre';
import { escapeHtml } from './blocks';
import type { DiagramGraph, NodeKind } from './diagram-graph';

// Estimated text metrics of the 12 px sans-serif font the SVG names, so boxes leave a margin.
const CHAR_WIDTH = 7;
const LINE_HEIGHT = 16;
const PADDING = 10;

const FILL: Record<NodeKind, string> = {
  internet: '#eceff1',
  firewall: '#ffebee',
  'load-balancer': '#e3f2fd',
  service: '#e8f5e9',
  queue: '#fff8e1',
  function: '#f3e5f5',
  bedrock: '#e0f7fa',
  table: '#fbe9e7',
  stream: '#f1f8e9',
  bucket: '#efebe9',
};

/** A node or edge label with the position the layout gave it. */
export interface LaidOutGraph {
  readonly width: number;
  readonly height: number;
  readonly nodes: ReadonlyArray<{ id: string; kind: NodeKind; label: readonly string[]; x: number; y: number; width: number; height: number }>;
  readonly edges: ReadonlyArray<{ from: string; to: string; label: string; points: ReadonlyArray<{ x: number; y: number }>; labelX?: number; labelY?: number }>;
}

/** Lays the graph out left to right with dagre. */
export function layoutGraph(graph: DiagramGraph): LaidOutGraph {
  // Loaded here so that only the review command loads the layout library.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dagre = require('@dagrejs/dagre') as typeof Dagre;
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: 'LR', nodesep: 24, ranksep: 90, edgesep: 12, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) {
    const width = Math.max(...node.label.map((line) => line.length)) * CHAR_WIDTH + 2 * PADDING;
    const height = node.label.length * LINE_HEIGHT + 2 * PADDING;
    g.setNode(node.id, { width, height });
  }
  for (const edge of graph.edges) {
    g.setEdge(edge.from, edge.to, { width: edge.label.length * 6, height: 14, labelpos: 'c' });
  }
  dagre.layout(g);

  const size = g.graph();
  return {
    width: Math.ceil(size.width ?? 0),
    height: Math.ceil(size.height ?? 0),
    nodes: graph.nodes.map((node) => {
      const laid = g.node(node.id);
      return { id: node.id, kind: node.kind, label: node.label, x: laid.x, y: laid.y, width: laid.width, height: laid.height };
    }),
    edges: graph.edges.map((edge) => {
      const laid = g.edge(edge.from, edge.to) as { points?: Array<{ x: number; y: number }>; x?: number; y?: number };
      return { from: edge.from, to: edge.to, label: edge.label, points: laid.points ?? [], labelX: laid.x, labelY: laid.y };
    }),
  };
}

function round(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

/** Renders a laid-out graph as a standalone SVG document, every label escaped. */
export function renderSvg(graph: LaidOutGraph, title: string): string {
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${graph.width}" height="${graph.height}" viewBox="0 0 ${graph.width} ${graph.height}" role="img" aria-label="${escapeHtml(title)}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeHtml(title)}</title>`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#546e7a"/></marker></defs>',
  ];
  for (const edge of graph.edges) {
    if (edge.points.length === 0) continue;
    const d = edge.points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${round(p.x)} ${round(p.y)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="#546e7a" stroke-width="1.2" marker-end="url(#arrow)"/>`);
    if (edge.label && edge.labelX !== undefined && edge.labelY !== undefined) {
      parts.push(`<text x="${round(edge.labelX)}" y="${round(edge.labelY + 4)}" text-anchor="middle" fill="#37474f" font-size="10">${escapeHtml(edge.label)}</text>`);
    }
  }
  for (const node of graph.nodes) {
    const left = node.x - node.width / 2;
    const top = node.y - node.height / 2;
    parts.push(
      `<rect x="${round(left)}" y="${round(top)}" width="${round(node.width)}" height="${round(node.height)}" rx="6" fill="${FILL[node.kind]}" stroke="#90a4ae"/>`,
    );
    node.label.forEach((line, i) => {
      const y = top + PADDING + LINE_HEIGHT * (i + 1) - 4;
      const weight = i === 0 ? ' font-weight="bold"' : '';
      parts.push(`<text x="${round(node.x)}" y="${round(y)}" text-anchor="middle"${weight}>${escapeHtml(line)}</text>`);
    });
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
