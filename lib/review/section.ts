import type { Finding } from './findings';
import type { ReviewModel } from './model';

/** Options of a report run, passed to every section. */
export interface ReviewOptions {
  /**
   * The cfn-lint command to run, or false to skip it. A command that is not
   * on the PATH is reported as not run.
   *
   * @default 'cfn-lint'
   */
  readonly cfnLint?: string | false;
}

/** Output of one section. */
export interface SectionResult {
  readonly findings: readonly Finding[];
  /** Data for report.json; plain JSON with deterministic key and item order. */
  readonly data: unknown;
  /** The section's body in Markdown, without its title. */
  readonly markdown: string;
  /** The section's body as an HTML fragment, without its title; every template value is escaped. */
  readonly html: string;
  /** Files to write beside the report, by file name, such as the diagram's SVG that report.md links to. */
  readonly files?: Readonly<Record<string, string>>;
}

/** Input of a section: the assembly under review and, with `--against`, the previous one. */
export interface ReviewInput {
  readonly model: ReviewModel;
  /** The assembly given with `--against`. */
  readonly previous?: ReviewModel;
  readonly options: ReviewOptions;
}

/** One section of the report. Sections are listed in the registry and rendered by `order`. */
export interface ReviewSection {
  /** Stable id, used as the anchor and as the key in report.json. */
  readonly id: string;
  readonly title: string;
  /** Position in the report; lower comes first. */
  readonly order: number;
  /** Returns undefined to leave the section out, such as the changes section without `--against`. */
  build(input: ReviewInput): SectionResult | undefined | Promise<SectionResult | undefined>;
}
