// The playground page in a real browser: Debian's Chromium, headless, driven by playwright-core, against the real
// web platform and the tiny model. Type a prompt, press Imagine, see the position, the progress and the grid; click
// U2 and V1 and see their results; reload and see the history. A screenshot lands in test-results/.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { createEngine, type Engine } from '../../src/diffusion/index.js';
import { createLogger } from '../../src/logger.js';
import { call, startWeb, type WebUnderTest } from './web-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = new URL('../../test-results/', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'web-browser-'));
const modelDir = join(root, 'model');
let engine: Engine;
let web: WebUnderTest;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await writeTinyModelFolder(modelDir, { steps: [1, 2, 4] });
  engine = createEngine({ modelDir, provider: 'cpu', deviceId: 0 }, { logger: createLogger({ level: 'silent' }) });
  await engine.start();
  web = await startWeb(engine, join(root, 'data'), { defaults: { steps: 1, count: 4 } });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await engine?.close();
  rmSync(root, { recursive: true, force: true });
});

const naturalWidth = (image: unknown): number => (image as { naturalWidth: number }).naturalWidth;

/** The cards on the page, newest first: their headline and state. */
async function cards(page: Page): Promise<{ prompt: string; label: string; state: string | undefined }[]> {
  return page.$$eval('#results .card', (nodes) =>
    nodes.map((node) => ({
      prompt: node.querySelector('.prompt')?.textContent ?? '',
      label: node.querySelector('.label')?.textContent ?? '',
      state: (node as unknown as { dataset: Record<string, string | undefined> }).dataset.state,
    })),
  );
}

describe.skipIf(!existsSync(CHROMIUM))(`the playground page in Chromium (skipped without ${CHROMIUM}: apt-get install chromium)`, () => {
  it('makes a grid, shows its position and progress, runs U2 and V1, and keeps the history over a reload', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    await page.goto(web.url);
    // the form is built from the command definition
    await expect.poll(() => page.$$eval('#options select, #options input', (inputs) => inputs.map((input) => (input as unknown as { name: string }).name))).toEqual(['steps', 'seed', 'aspect', 'count']);
    expect(await page.$eval('#option-steps', (select) => [...(select as unknown as { options: Iterable<{ value: string }> }).options].map((option) => option.value))).toEqual(['1', '2', '4']);

    // a 4-step grid asked for just before keeps the GPU busy, so this one waits its turn
    const ahead = await call(web.url, 'POST', '/api/imagine', { body: { prompt: 'a grid asked for first', steps: 4, count: 4 } });
    expect(ahead.status).toBe(202);
    await page.fill('#prompt', 'a lighthouse at dusk, oil painting');
    await page.fill('#option-seed', '1234');
    await page.click('#go');
    const newest = page.locator('#results .card').first();
    await expect.poll(() => newest.locator('.prompt').textContent()).toBe('a lighthouse at dusk, oil painting');
    // the newest card moves down as buttons add cards above it, so it is found by its job from here on
    const card = page.locator(`#results .card[data-job="${await newest.getAttribute('data-job')}"]`);
    await expect.poll(() => card.locator('.status').textContent(), { timeout: 10_000 }).toMatch(/^Queued — position 1$/);
    await expect.poll(() => card.locator('.status').textContent(), { timeout: 30_000 }).toMatch(/^Generating…/);
    await card.locator('img.grid').waitFor({ state: 'visible', timeout: 30_000 });
    await expect.poll(() => card.locator('img.grid').evaluate(naturalWidth), { timeout: 10_000 }).toBe(2048 + 8);
    expect(await card.locator('.details').textContent()).toMatch(/^seeds 1234–1237 · 1 step · 1024×1024 · \d+\.\d s$/);
    expect(await card.locator('.buttons button').allTextContents()).toEqual(['U1', 'U2', 'U3', 'U4', 'Re-roll', 'V1', 'V2', 'V3', 'V4']);
    expect(await card.locator('.downloads a').allTextContents()).toEqual(['PNG 1 (seed 1234)', 'PNG 2 (seed 1235)', 'PNG 3 (seed 1236)', 'PNG 4 (seed 1237)']);
    await page.screenshot({ path: join(SCREENSHOTS, 'web-playground-grid.png'), fullPage: false });

    // U2: image 2 alone, at full size
    await card.locator('.buttons button', { hasText: 'U2' }).click();
    const upscaled = page.locator('#results .card').first();
    await expect.poll(() => upscaled.locator('.label').textContent()).toBe('Image 2 at full size');
    await expect.poll(() => upscaled.getAttribute('data-state'), { timeout: 30_000 }).toBe('done');
    await expect.poll(() => upscaled.locator('img.grid').evaluate(naturalWidth), { timeout: 10_000 }).toBe(1024);
    expect(await upscaled.locator('.details').textContent()).toMatch(/^seed 1235 · 1 step · 1024×1024 · /);

    // V1 on the grid: four variations of image 1
    await card.locator('.buttons button', { hasText: 'V1' }).click();
    const varied = page.locator('#results .card').first();
    await expect.poll(() => varied.locator('.label').textContent()).toBe('Variations of image 1');
    await expect.poll(() => varied.getAttribute('data-state'), { timeout: 30_000 }).toBe('done');
    expect(await varied.locator('.details').textContent()).toMatch(/^variations of seed 1234 \(\+ seeds \d+–\d+ at 0\.25\) · 1 step · /);

    // a download is the PNG of one image
    const [download] = await Promise.all([page.waitForEvent('download'), card.locator('.downloads a').nth(2).click()]);
    expect(download.suggestedFilename()).toMatch(/^lightning-[a-z0-9]{12}-3\.png$/);

    await page.screenshot({ path: join(SCREENSHOTS, 'web-playground.png'), fullPage: true });

    // the history comes from the job store
    await page.reload();
    await expect.poll(() => cards(page), { timeout: 10_000 }).toEqual([
      { prompt: 'a lighthouse at dusk, oil painting', label: 'Variations of image 1', state: 'done' },
      { prompt: 'a lighthouse at dusk, oil painting', label: 'Image 2 at full size', state: 'done' },
      { prompt: 'a lighthouse at dusk, oil painting', label: '', state: 'done' },
      { prompt: 'a grid asked for first', label: '', state: 'done' },
    ]);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('shows a refusal as the one sentence, next to the form', async () => {
    const page = await browser.newPage();
    await page.goto(web.url);
    await page.waitForSelector('#option-steps');
    await page.fill('#prompt', 'a forbidden thing');
    await page.click('#go');
    await expect.poll(() => page.locator('#imagine .refusal').textContent()).toBe('That prompt uses a word this server blocks; please rephrase it.');
    await page.close();
  });
});
