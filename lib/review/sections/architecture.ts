import { Block, renderBlocks } from '../blocks';
import { buildDiagramGraph } from '../diagram-graph';
import type { ReviewSection } from '../section';
import { layoutGraph, renderSvg } from '../svg';
import { SECTION_ORDER } from './order';

/** File name of the diagram beside the report. */
export const DIAGRAM_FILE = 'architecture.svg';

/** The request path as a diagram: load balancer, WAF, services, queues, gateway, Bedrock regions, tables and the audit pipeline. */
export const architectureSection: ReviewSection = {
  id: 'architecture',
  title: 'Architecture',
  order: SECTION_ORDER.architecture,
  build: ({ model }) => {
    const graph = buildDiagramGraph(model);
    const svg = renderSvg(layoutGraph(graph), 'Request path derived from the templates');
    const blocks: Block[] = [
      {
        kind: 'paragraph',
        text: 'Derived from the templates: load balancer targets, queue redrive policies, delivery stream destinations, and the IAM grants of each service and function to the queues, functions, tables, delivery streams and Bedrock regions it calls.',
      },
      { kind: 'svg', svg, file: DIAGRAM_FILE, alt: 'Request path derived from the templates' },
      {
        kind: 'table',
        headers: ['From', 'To', 'How'],
        rows: graph.edges.map((e) => [labelOf(graph, e.from), labelOf(graph, e.to), e.label]),
        empty: 'No connections found.',
      },
    ];
    return { findings: [], data: graph, files: { [DIAGRAM_FILE]: svg }, ...renderBlocks(blocks) };
  },
};

function labelOf(graph: ReturnType<typeof buildDiagramGraph>, id: string): string {
  return graph.nodes.find((n) => n.id === id)?.label.join(' ') ?? id;
}
