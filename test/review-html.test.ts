/**
 * Opens report.html in headless Chromium from the system's packages,
 * driven by playwright-core, which downloads no browser of its own. With
 * CI=true a missing browser fails the test; elsewhere the test is skipped
 * with a message. .ci/run installs the Debian package `chromium`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { removeTempDirs, reviewOf, ROOT, synthesizeAgentStack, tempDir } from './support/review';

/** Folder for the screenshots the test takes; ignored by git. */
const SCREENSHOT_DIR = path.join(ROOT, 'test-output', 'review-html');

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/chromium-headless-shell', '/usr/bin/google-chrome'];
const executable = CANDIDATES.find((candidate): candidate is string => candidate !== undefined && candidate !== '' && fs.existsSync(candidate));
const inCi = process.env.CI === 'true';
const MISSING = `No Chromium found at ${CANDIDATES.filter(Boolean).join(', ')}; install the Debian package "chromium" (.ci/run does) or set CHROMIUM_PATH.`;

if (!executable && !inCi) {
  console.warn(`Skipping the report's browser test: ${MISSING}`);
}

afterAll(removeTempDirs);

/** Opens a file and returns the console errors, page errors and failed requests it caused. */
async function openFile(page: Page, file: string): Promise<string[]> {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  return errors;
}

(executable || inCi ? describe : describe.skip)('report in headless chromium', () => {
  let browser: Browser;
  let reportFile = '';

  beforeAll(async () => {
    if (!executable) throw new Error(`${MISSING} With CI=true the test fails rather than skip.`);
    const { files } = await reviewOf(synthesizeAgentStack());
    const out = tempDir('html');
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(out, name), text);
    reportFile = path.join(out, 'report.html');
    // Root in a container has no user namespace for Chromium's sandbox.
    browser = await chromium.launch({ executablePath: executable, headless: true, args: ['--no-sandbox'] });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
  });

  test('renders without console errors', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = await openFile(page, reportFile);

    expect(errors).toEqual([]);
    expect(await page.locator('h2#summary').textContent()).toBe('Summary');
    expect(await page.locator('section#cost h2').textContent()).toBe('Cost');
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'report.png'), fullPage: true });
    await page.close();
  }, 60_000);

  test('diagram is visible', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await openFile(page, reportFile);
    const diagram = page.locator('figure.diagram svg');
    const box = await diagram.boundingBox();

    expect(await diagram.isVisible()).toBe(true);
    expect(box?.width).toBeGreaterThan(0);
    expect(box?.height).toBeGreaterThan(0);
    await page.close();
  }, 60_000);

  test('csp violation is caught', async () => {
    // The same policy as the report, with an inline script it forbids, shows
    // that a violation reaches the listener the other tests check.
    const html = fs.readFileSync(reportFile, 'utf8').replace('</body>', '<script>document.title = "ran";</script></body>');
    const file = path.join(tempDir('csp'), 'violating.html');
    fs.writeFileSync(file, html);
    const page = await browser.newPage();
    const errors = await openFile(page, file);

    expect(errors.some((e) => e.includes('Content Security Policy'))).toBe(true);
    expect(await page.title()).toBe('Review report');
    await page.close();
  }, 60_000);
});
