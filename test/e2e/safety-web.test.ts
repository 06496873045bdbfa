// The image safety check on the web end to end over HTTP: the real server and service, the engine on a tiny model
// whose classifier flags every image. The page cannot blur, so a flagged image is hidden behind a placeholder tile,
// in the grid and in its per-image download, with a note.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { createEngine, type Engine } from '../../src/diffusion/index.js';
import { createLogger } from '../../src/logger.js';
import { PLACEHOLDER_BACKGROUND } from '../../src/render/placeholder.js';
import { call, readEvents, startWeb, type WebUnderTest } from './web-harness.js';

const root = mkdtempSync(join(tmpdir(), 'safety-web-'));
const modelDir = join(root, 'model');
let engine: Engine;
let web: WebUnderTest;

const corner = async (data: Buffer): Promise<number[]> => Array.from((await sharp(data).raw().toBuffer()).subarray(0, 3));
const fetchBytes = async (url: string): Promise<Buffer> => Buffer.from(await (await fetch(url)).arrayBuffer());

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1], safety: { score: 0.9 } });
  engine = createEngine({ modelDir, provider: 'cpu', deviceId: 0, safety: { threshold: 0.5 } }, { logger: createLogger({ level: 'silent' }) });
  await engine.start();
  web = await startWeb(engine, join(root, 'data'), { defaults: { steps: 1 }, safety: { enabled: true, mode: 'spoiler', dmAllowed: false } });
});

afterAll(async () => {
  await web?.close();
  await engine?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('flagged images on the web', () => {
  it('are hidden in the grid and in the single-image download, with a note, and recorded', async () => {
    const submitted = await call(web.url, 'POST', '/api/imagine', { body: { prompt: 'a lighthouse at dusk', count: 2 } });
    expect(submitted.status, submitted.text).toBe(202);
    const id = submitted.json.job.id as string;
    const stream = await readEvents(`${web.url}/api/jobs/${id}/events`, { until: (event) => event.event === 'done' || event.event === 'failed' });
    expect(stream.events.at(-1)?.event).toBe('done');
    const { json } = await call(web.url, 'GET', `/api/jobs/${id}`);
    expect(json.job.result.note).toBe("2 images were hidden by this server's safety setting.");
    expect(await corner(await fetchBytes(`${web.url}/api/jobs/${id}/grid`))).toEqual([...PLACEHOLDER_BACKGROUND]);
    const single = await fetchBytes(`${web.url}/api/jobs/${id}/images/1.png`);
    expect(await sharp(single).metadata()).toMatchObject({ width: 1024, height: 1024 });
    expect(await corner(single)).toEqual([...PLACEHOLDER_BACKGROUND]);
    expect(web.store.get(id)?.safety?.map((d) => [d.action, d.reason])).toEqual([
      ['hide', 'cannot_blur'],
      ['hide', 'cannot_blur'],
    ]);
  });
});
