import { compareText } from './assembly';
import { costSection } from './cost/section';
import type { ReviewSection } from './section';
import { architectureSection } from './sections/architecture';
import { changesSection } from './sections/changes';
import { checksSection } from './sections/checks';
import { dataProtectionSection } from './sections/data-protection';
import { iamSection } from './sections/iam';
import { networkSection } from './sections/network';
import { resourcePoliciesSection } from './sections/resource-policies';

export { SECTION_ORDER } from './sections/order';

/**
 * The sections of the report. A new section implements `ReviewSection`, takes
 * its `order` from `SECTION_ORDER` and is added here.
 */
const SECTIONS: ReviewSection[] = [
  architectureSection,
  iamSection,
  resourcePoliciesSection,
  networkSection,
  dataProtectionSection,
  checksSection,
  costSection,
  changesSection,
];

/** Returns the registered sections in report order. */
export function reviewSections(): ReviewSection[] {
  return [...SECTIONS].sort((a, b) => a.order - b.order || compareText(a.id, b.id));
}

/** Adds a section to the report, such as one that a package built on this one provides. */
export function registerSection(section: ReviewSection): void {
  if (SECTIONS.some((s) => s.id === section.id)) {
    throw new Error(`A review section with id "${section.id}" is already registered; give the new section another id.`);
  }
  SECTIONS.push(section);
}
