// The web platform end to end over HTTP: the real Fastify server on 127.0.0.1:0 in front of the real service and the
// engine on a tiny model. Submit, events and images; every button; refusals; the A1111 and OpenAI shapes field by
// field; bad input of every kind with the server still up; tokens, cookies, Origin and Host.

import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../models/tiny/generate.js';
import { createEngine, type Engine } from '../../src/diffusion/index.js';
import { createLogger } from '../../src/logger.js';
import { tokenUserId } from '../../src/platforms/web/auth.js';
import { call, readEvents, startWeb, type SseEvent, type WebUnderTest } from './web-harness.js';

const root = mkdtempSync(join(tmpdir(), 'web-e2e-'));
const modelDir = join(root, 'model');
const TOKEN_A = 'a'.repeat(16) + '0123456789abcdef0123';
const TOKEN_B = 'b'.repeat(16) + '0123456789abcdef0123';
let engine: Engine;
let web: WebUnderTest;

const final = (event: SseEvent) => ['done', 'failed', 'refused', 'cancelled'].includes(event.event);

async function pngSize(data: Buffer): Promise<[string | undefined, number | undefined, number | undefined]> {
  const meta = await sharp(data).metadata();
  return [meta.format, meta.width, meta.height];
}

async function bytes(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; disposition: string | null; data: Buffer }> {
  const response = await fetch(url, { headers });
  return { status: response.status, type: response.headers.get('content-type'), disposition: response.headers.get('content-disposition'), data: Buffer.from(await response.arrayBuffer()) };
}

/** Submits and follows the job's events to the end. */
async function imagineAndWait(base: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const submitted = await call(base, 'POST', '/api/imagine', { body, headers });
  expect(submitted.status, submitted.text).toBe(202);
  const stream = await readEvents(`${base}/api/jobs/${submitted.json.job.id}/events`, { headers, until: final });
  return { submitted: submitted.json, stream };
}

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1, 2, 4] });
  engine = createEngine({ modelDir, provider: 'cpu', deviceId: 0 }, { logger: createLogger({ level: 'silent' }) });
  await engine.start();
  web = await startWeb(engine, join(root, 'main'));
});

afterAll(async () => {
  await web?.close();
  await engine?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the web API', () => {
  it('describes /imagine from the same command definition the chat platforms use', async () => {
    const { status, json } = await call(web.url, 'GET', '/api/command');
    expect(status).toBe(200);
    expect(json.name).toBe('imagine');
    expect(json.options.map((option: { name: string }) => option.name)).toEqual(['prompt', 'steps', 'seed', 'aspect', 'count']);
    expect(json.options[0]).toMatchObject({ kind: 'string', required: true, minLength: 1, maxLength: 1000, default: null });
    expect(json.options[1]).toMatchObject({ kind: 'integer', choices: [{ name: '1', value: 1 }, { name: '2', value: 2 }, { name: '4', value: 4 }], default: 2 });
    expect(json.options[2]).toMatchObject({ kind: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER, default: null });
    expect(json.options[3].choices).toHaveLength(9);
    expect(json.options[4]).toMatchObject({ min: 1, max: 4, default: 2 });
  });

  it('submits, streams the position and the run, and serves the grid and each image as PNG', async () => {
    const { submitted, stream } = await imagineAndWait(web.url, { prompt: 'a lighthouse at dusk', seed: 42, count: 2, steps: 1 });
    expect(submitted.job).toMatchObject({ kind: 'imagine', status: 'queued', prompt: 'a lighthouse at dusk', seed: 42, seeds: [42, 43], steps: 1, count: 2, aspect: '1:1', width: 1024, height: 1024, result: null });
    expect(stream).toMatchObject({ status: 200, ended: true });
    expect(stream.contentType).toBe('text/event-stream; charset=utf-8');
    const types = stream.events.map((event) => event.event);
    expect(types).toContain('running');
    expect(types.at(-1)).toBe('done');
    const running = stream.events.find((event) => event.event === 'running')!;
    expect(running.data.message).toMatch(/^Generating…/);
    // the engine's steps come through as they happen, in the words every platform shows
    const unet = stream.events.find((event) => (event.data.progress as { stage?: string } | undefined)?.stage === 'unet');
    expect(unet?.data).toEqual({ state: 'running', progress: { stage: 'unet', step: 1, steps: 1 }, message: 'Generating… step 1 of 1' });
    const done = stream.events.at(-1)!.data.job as Record<string, any>;
    const id = submitted.job.id as string;
    expect(done).toMatchObject({ id, status: 'done', result: { grid: `/api/jobs/${id}/grid`, images: [`/api/jobs/${id}/images/0.png`, `/api/jobs/${id}/images/1.png`], seeds: [42, 43], width: 1024, height: 1024, truncated: false, fromCache: false } });
    expect(done.result.details).toMatch(/^seeds 42–43 · 1 step · 1024×1024 · \d+\.\d s$/);

    const grid = await bytes(`${web.url}${done.result.grid}`);
    expect([grid.status, grid.type]).toEqual([200, 'image/png']);
    expect(await pngSize(grid.data)).toEqual(['png', 2048 + 8, 1024]);
    const second = await bytes(`${web.url}${done.result.images[1]}`);
    expect([second.status, second.type, second.disposition]).toEqual([200, 'image/png', `attachment; filename="lightning-${id}-2.png"`]);
    expect(await pngSize(second.data)).toEqual(['png', 1024, 1024]);
    // the image is the grid's right half, pixel for pixel, whether it came from the cache or was cut out of the grid
    const right = await sharp(grid.data).extract({ left: 1024 + 8, top: 0, width: 1024, height: 1024 }).raw().toBuffer();
    expect((await sharp(second.data).raw().toBuffer()).equals(right)).toBe(true);

    const job = await call(web.url, 'GET', `/api/jobs/${id}`);
    expect(job.json.job).toMatchObject({ id, status: 'done', result: { seeds: [42, 43] } });
    expect(web.store.get(id)).toMatchObject({ platform: 'web', userId: '127.0.0.1', guildId: 'web', channelId: 'web', status: 'done', resultMessageId: `lightning-${id}.png` });
  });

  it('replays only what a reconnecting stream missed, and the current state to one from before a restart', async () => {
    const { submitted, stream } = await imagineAndWait(web.url, { prompt: 'a quiet harbour', count: 1, steps: 1 });
    const url = `${web.url}/api/jobs/${submitted.job.id}/events`;
    const firstId = stream.events[0].id;
    const after = await readEvents(url, { headers: { 'Last-Event-ID': firstId }, until: final });
    expect(after.events.map((event) => event.id)).toEqual(stream.events.slice(1).map((event) => event.id));
    const stale = await readEvents(url, { headers: { 'Last-Event-ID': 'deadbeef.3' }, until: final });
    expect(stale.events.map((event) => event.event)).toEqual(['done']);
    expect(stale.events[0].id).toBe(stream.events.at(-1)!.id);
  });

  it('runs every button as Discord does: re-roll, U1–U4 from the cache, V1–V4, and Cancel', async () => {
    const { submitted } = await imagineAndWait(web.url, { prompt: 'a red fox in snow', seed: 100, count: 4, steps: 1 });
    const parent = submitted.job.id as string;
    // the cache is written just after the delivery
    await new Promise((resolve) => setTimeout(resolve, 500));

    const reroll = await call(web.url, 'POST', `/api/jobs/${parent}/reroll`);
    expect(reroll.status).toBe(202);
    expect(reroll.json.job).toMatchObject({ kind: 'reroll', label: 'Re-roll', parentId: parent, prompt: 'a red fox in snow', count: 4, steps: 1 });
    expect(reroll.json.job.seed).not.toBe(100);

    const upscale = await call(web.url, 'POST', `/api/jobs/${parent}/upscale`, { body: { index: 2 } });
    expect(upscale.status).toBe(202);
    expect(upscale.json.job).toMatchObject({ kind: 'upscale', label: 'Image 3 at full size', parentId: parent, parentIndex: 2, count: 1, seed: 102 });
    const upscaled = await readEvents(`${web.url}/api/jobs/${upscale.json.job.id}/events`, { until: final });
    expect(upscaled.events.at(-1)).toMatchObject({ event: 'done', data: { job: { result: { fromCache: true, seeds: [102] } } } });
    const single = await bytes(`${web.url}/api/jobs/${upscale.json.job.id}/images/0.png`);
    const third = await bytes(`${web.url}/api/jobs/${parent}/images/2`);
    expect(single.data.equals(third.data)).toBe(true);

    const vary = await call(web.url, 'POST', `/api/jobs/${parent}/vary`, { body: { index: 0 } });
    expect(vary.status).toBe(202);
    expect(vary.json.job).toMatchObject({ kind: 'vary', label: 'Variations of image 1', parentId: parent, parentIndex: 0, count: 4 });
    expect(vary.json.job.seedText).toMatch(/^variations of seed 100 \(\+ seeds \d+–\d+ at 0\.25\)$/);
    const varied = await readEvents(`${web.url}/api/jobs/${vary.json.job.id}/events`, { until: final });
    expect(varied.events.at(-1)!.event).toBe('done');
    await readEvents(`${web.url}/api/jobs/${reroll.json.job.id}/events`, { until: final });

    // a job waits behind a running one; its owner cancels it
    const running = await call(web.url, 'POST', '/api/imagine', { body: { prompt: 'a long one', count: 4, steps: 4 } });
    const waiting = await call(web.url, 'POST', '/api/imagine', { body: { prompt: 'a waiting one', count: 1, steps: 1 } });
    expect(waiting.json.position).toBe(1);
    const listening = readEvents(`${web.url}/api/jobs/${waiting.json.job.id}/events`, { until: final });
    const cancel = await call(web.url, 'POST', `/api/jobs/${waiting.json.job.id}/cancel`);
    expect(cancel.status).toBe(200);
    expect(cancel.json.job).toMatchObject({ id: waiting.json.job.id, status: 'cancelled' });
    expect((await listening).events.at(-1)).toMatchObject({ event: 'cancelled', data: { message: 'Cancelled.' } });
    await readEvents(`${web.url}/api/jobs/${running.json.job.id}/events`, { until: final });
    const again = await call(web.url, 'POST', `/api/jobs/${running.json.job.id}/cancel`);
    expect([again.status, again.json]).toEqual([409, { error: { code: 'not_cancellable', message: 'That image is already being made or is done, so it cannot be cancelled.' } }]);

    const outOfRange = await call(web.url, 'POST', `/api/jobs/${upscale.json.job.id}/vary`, { body: { index: 1 } });
    expect([outOfRange.status, outOfRange.json.error]).toEqual([400, { code: 'invalid_field', message: 'The field "index" must be an image number from 0 to 0.', field: 'index' }]);
  });

  it('answers refusals with the same sentences as the chat platforms', async () => {
    const refusal = async (body: unknown) => {
      const answer = await call(web.url, 'POST', '/api/imagine', { body });
      return [answer.status, answer.json.error?.code, answer.json.error?.message];
    };
    expect(await refusal({ prompt: 'a FORBIDDEN cat' })).toEqual([400, 'blocked_word', 'That prompt uses a word this server blocks; please rephrase it.']);
    expect(await refusal({ prompt: '   ' })).toEqual([400, 'prompt_empty', 'Describe the image you want after /imagine.']);
    expect(await refusal({ prompt: 'x'.repeat(1001) })).toEqual([400, 'prompt_too_long', 'Keep the prompt under 1000 characters.']);
    expect(await refusal({ prompt: 'a cat', steps: 8 })).toEqual([400, 'steps_unavailable', '8-step images are not available here; choose 1, 2 or 4 steps.']);
    expect(await refusal({ prompt: 'a cat', count: 9 })).toEqual([400, 'invalid_option', 'Count must be a whole number from 1 to 4.']);
    expect(await refusal({ prompt: 'a cat', aspect: '5:4' })).toEqual([400, 'invalid_option', 'Aspect must be one of 1:1, 4:3, 3:4, 3:2, 2:3, 16:9, 9:16, 21:9, 9:21.']);

    const limited = await startWeb(engine, join(root, 'limited'), { limits: { userBurst: 1 } });
    try {
      expect((await call(limited.url, 'POST', '/api/imagine', { body: { prompt: 'one', count: 1, steps: 1 } })).status).toBe(202);
      const second = await call(limited.url, 'POST', '/api/imagine', { body: { prompt: 'two', count: 1, steps: 1 } });
      expect(second.status).toBe(429);
      expect(second.json.error.code).toBe('rate_limited');
      expect(second.json.error.message).toMatch(/^You can imagine again in \d+ s\.$/);
      expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
      // the A1111 and OpenAI endpoints go through the same limits
      const a1111 = await call(limited.url, 'POST', '/sdapi/v1/txt2img', { body: { prompt: 'three' } });
      expect([a1111.status, a1111.json.error]).toEqual([429, 'rate_limited']);
      const openai = await call(limited.url, 'POST', '/v1/images/generations', { body: { prompt: 'four' } });
      expect([openai.status, openai.json.error.type, openai.json.error.code]).toEqual([429, 'rate_limit_error', 'rate_limited']);
    } finally {
      await limited.close();
    }
  });

  it('keeps a history of the member’s jobs, newest first, in pages', async () => {
    const { json } = await call(web.url, 'GET', '/api/history?limit=2');
    expect(json.jobs).toHaveLength(2);
    expect(json.jobs[0].createdAt).toBeGreaterThanOrEqual(json.jobs[1].createdAt);
    expect(json.next).toBe(json.jobs[1].createdAt);
    const older = await call(web.url, 'GET', `/api/history?limit=50&before=${json.next}`);
    expect(older.json.jobs.every((job: { createdAt: number }) => job.createdAt < json.next)).toBe(true);
    const all = [...json.jobs, ...older.json.jobs];
    expect(all.find((job) => job.prompt === 'a lighthouse at dusk')).toMatchObject({ status: 'done', result: { seeds: [42, 43] } });
    expect((await call(web.url, 'GET', '/api/history?limit=0')).json.error).toEqual({ code: 'invalid_field', message: 'The field "limit" must be a whole number from 1 to 50.', field: 'limit' });
  });
});

describe('the A1111-compatible API', () => {
  it('answers txt2img with base64 PNGs, the parameters, and info carrying the real seeds and what was ignored', async () => {
    const body = { prompt: 'a castle on a hill', negative_prompt: 'blurry', steps: 3, width: 1216, height: 832, cfg_scale: 7, seed: 7, batch_size: 2, n_iter: 1, sampler_name: 'DPM++ 2M', restore_faces: false };
    const { status, json } = await call(web.url, 'POST', '/sdapi/v1/txt2img', { body });
    expect(status).toBe(200);
    expect(Object.keys(json).sort()).toEqual(['images', 'info', 'parameters']);
    expect(json.images).toHaveLength(2);
    for (const image of json.images) expect(await pngSize(Buffer.from(image, 'base64'))).toEqual(['png', 1216, 832]);
    expect(json.parameters).toMatchObject({ ...body });
    expect(typeof json.info).toBe('string');
    const info = JSON.parse(json.info);
    expect(info).toMatchObject({
      prompt: 'a castle on a hill',
      all_prompts: ['a castle on a hill', 'a castle on a hill'],
      negative_prompt: '',
      seed: 7,
      all_seeds: [7, 8],
      subseed: -1,
      all_subseeds: [-1, -1],
      width: 1216,
      height: 832,
      sampler_name: 'Euler',
      cfg_scale: 1,
      // 3 is as near 2 as 4; the tie goes to the faster
      steps: 2,
      batch_size: 2,
      index_of_first_image: 0,
      ignored_fields: ['cfg_scale', 'negative_prompt', 'sampler_name'],
    });
    expect(info.job_timestamp).toMatch(/^\d{14}$/);
    expect(info.extra_generation_params.Ignored).toBe('cfg_scale, negative_prompt, sampler_name ignored: SDXL-Lightning runs without classifier-free guidance, with its own Euler sampler');
    expect(info.infotexts).toEqual([
      'a castle on a hill\nSteps: 2, Sampler: Euler, Schedule type: trailing, CFG scale: 1, Seed: 7, Size: 1216x832, Model: sdxl-lightning, Ignored: cfg_scale negative_prompt sampler_name',
      'a castle on a hill\nSteps: 2, Sampler: Euler, Schedule type: trailing, CFG scale: 1, Seed: 8, Size: 1216x832, Model: sdxl-lightning, Ignored: cfg_scale negative_prompt sampler_name',
    ]);
  });

  it('takes seed −1 as random, maps sizes to the nearest bucket, and can leave the images out', async () => {
    const { status, json } = await call(web.url, 'POST', '/sdapi/v1/txt2img', { body: { prompt: 'a tall tower', seed: -1, width: 512, height: 1024, steps: 1, send_images: false } });
    expect(status).toBe(200);
    expect(json.images).toEqual([]);
    const info = JSON.parse(json.info);
    // 1:2 is nearest 9:16 by ratio
    expect([info.width, info.height, info.steps, info.ignored_fields]).toEqual([768, 1344, 1, []]);
    expect(Number.isSafeInteger(info.seed) && info.seed >= 0).toBe(true);
    expect(info.all_seeds).toEqual([info.seed]);
  });

  it('reports progress of the member’s job, and lists the model and the sampler', async () => {
    const idle = await call(web.url, 'GET', '/sdapi/v1/progress?skip_current_image=true');
    expect(idle.json).toEqual({
      progress: 0,
      eta_relative: 0,
      state: { skipped: false, interrupted: false, stopping_generation: false, job: '', job_count: 0, job_timestamp: '0', job_no: 0, sampling_step: 0, sampling_steps: 0 },
      current_image: null,
      textinfo: null,
    });
    const generating = call(web.url, 'POST', '/sdapi/v1/txt2img', { body: { prompt: 'progress please', steps: 4, batch_size: 4 } });
    let seen: Record<string, any> | undefined;
    for (let tries = 0; tries < 400 && !seen; tries++) {
      const progress = await call(web.url, 'GET', '/sdapi/v1/progress');
      if (progress.json.state.job && progress.json.progress > 0) seen = progress.json;
      else await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(seen, 'a progress answer while the job ran').toBeDefined();
    expect(seen!.progress).toBeGreaterThan(0);
    expect(seen!.progress).toBeLessThan(1);
    expect(seen!.state).toMatchObject({ job_count: 1, sampling_steps: 4 });
    expect(seen!.eta_relative).toBeGreaterThanOrEqual(0);
    expect(seen!.textinfo).toMatch(/^Generating…/);
    expect((await generating).status).toBe(200);

    expect((await call(web.url, 'GET', '/sdapi/v1/sd-models')).json).toEqual([
      { title: 'sdxl-lightning [Lightning 1/2/4 steps]', model_name: 'sdxl-lightning', hash: null, sha256: null, filename: 'sdxl-lightning', config: null },
    ]);
    expect((await call(web.url, 'GET', '/sdapi/v1/samplers')).json).toEqual([{ name: 'Euler', aliases: ['k_euler', 'euler'], options: { scheduler: 'trailing' } }]);
  });

  it('answers bad fields as A1111 clients read errors', async () => {
    const tooMany = await call(web.url, 'POST', '/sdapi/v1/txt2img', { body: { prompt: 'x', batch_size: 3, n_iter: 2 } });
    expect([tooMany.status, tooMany.json]).toEqual([400, { error: 'invalid_field', detail: 'The field "batch_size" must be such that batch_size × n_iter is at most 4.' }]);
    const wrongType = await call(web.url, 'POST', '/sdapi/v1/txt2img', { body: { prompt: 'x', steps: 'many' } });
    expect([wrongType.status, wrongType.json]).toEqual([400, { error: 'invalid_field', detail: 'The field "steps" must be a whole number.' }]);
  });
});

describe('the OpenAI-compatible API', () => {
  it('answers b64_json with each image and the prompt', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { status, json } = await call(web.url, 'POST', '/v1/images/generations', { body: { model: 'dall-e-3', prompt: 'a paper boat', n: 2, size: '1792x1024', response_format: 'b64_json', quality: 'hd' } });
    expect(status).toBe(200);
    expect(Object.keys(json).sort()).toEqual(['created', 'data', 'output_format', 'size']);
    expect(json.created).toBeGreaterThanOrEqual(before);
    expect(json.created).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    expect([json.size, json.output_format]).toEqual(['1344x768', 'png']);
    expect(json.data).toHaveLength(2);
    for (const item of json.data) {
      expect(Object.keys(item).sort()).toEqual(['b64_json', 'revised_prompt']);
      expect(item.revised_prompt).toBe('a paper boat');
      expect(await pngSize(Buffer.from(item.b64_json, 'base64'))).toEqual(['png', 1344, 768]);
    }
  });

  it('answers url with links to this server’s images', async () => {
    const { status, json } = await call(web.url, 'POST', '/v1/images/generations', { body: { prompt: 'a paper plane' } });
    expect(status).toBe(200);
    expect(json.data).toHaveLength(1);
    expect(Object.keys(json.data[0]).sort()).toEqual(['revised_prompt', 'url']);
    expect(json.data[0].url).toMatch(new RegExp(`^${web.url}/api/jobs/[a-z0-9]{12}/images/0\\.png$`));
    const image = await bytes(json.data[0].url);
    expect(await pngSize(image.data)).toEqual(['png', 1024, 1024]);
  });

  it('answers bad fields in OpenAI’s error shape', async () => {
    const cases: [unknown, number, string | null, string][] = [
      [{ prompt: 'x', n: 5 }, 400, 'n', 'The field "n" must be a whole number from 1 to 4 here.'],
      [{ prompt: 'x', size: 'big' }, 400, 'size', 'The field "size" must be "auto" or a size such as "1024x1024".'],
      [{ prompt: 'x', response_format: 'png' }, 400, 'response_format', 'The field "response_format" must be one of "url", "b64_json".'],
      [{ n: 1 }, 400, 'prompt', 'The field "prompt" is required.'],
      [{ prompt: '' }, 400, 'prompt', 'Describe the image you want after /imagine.'],
    ];
    for (const [body, status, param, message] of cases) {
      const answer = await call(web.url, 'POST', '/v1/images/generations', { body });
      expect([answer.status, answer.json.error.param, answer.json.error.message, answer.json.error.type]).toEqual([status, param, message, 'invalid_request_error']);
    }
  });
});

describe('bad input', () => {
  it('answers each with 400 (or 404, 413, 415) and one sentence, and stays up', async () => {
    const cases: [string, string, { body?: unknown; headers?: Record<string, string> }, number, string][] = [
      ['POST', '/api/imagine', { body: '{"prompt": "a cat",' }, 400, 'The body is not valid JSON.'],
      ['POST', '/api/imagine', { body: '' }, 400, 'The body is empty; send a JSON object.'],
      ['POST', '/api/imagine', { body: `{"prompt": "${'x'.repeat(2 ** 20)}"}` }, 413, 'The body is larger than 64 KiB, the most this server reads.'],
      ['POST', '/api/imagine', { body: '[1, 2]' }, 400, 'The body must be a JSON object.'],
      ['POST', '/api/imagine', { body: 'prompt=a cat', headers: { 'content-type': 'text/plain' } }, 415, 'Send the body as JSON (Content-Type: application/json).'],
      ['POST', '/api/imagine', { body: { prompt: 'a cat', steps: '4' } }, 400, 'The field "steps" must be a whole number.'],
      ['POST', '/api/imagine', { body: { prompt: 'a cat', seed: 1.5 } }, 400, 'The field "seed" must be a whole number.'],
      ['POST', '/api/imagine', { body: { prompt: 42 } }, 400, 'The field "prompt" must be text (a JSON string).'],
      ['POST', '/api/imagine', { body: { prompt: 'a cat', style: 'anime' } }, 400, 'The field "style" is not known here; leave it out.'],
      ['POST', '/api/imagine', { body: { steps: 2 } }, 400, 'The field "prompt" is required.'],
      ['POST', '/api/imagine', { body: '{"prompt": "a cat", "__proto__": {"admin": true}}' }, 400, 'The body is not valid JSON.'],
      ['GET', '/api/jobs/aaaaaaaaaaaa', {}, 404, 'I no longer know that image; start a new one with /imagine.'],
      ['GET', '/api/jobs/..%2F..%2Fetc%2Fpasswd/grid', {}, 404, 'I no longer know that image; start a new one with /imagine.'],
      ['POST', '/api/jobs/aaaaaaaaaaaa/upscale', { body: { index: 'one' } }, 400, 'The field "index" must be a whole number.'],
      ['POST', '/api/jobs/aaaaaaaaaaaa/reroll', {}, 404, 'I no longer know that image; start a new one with /imagine.'],
      ['GET', '/api/nothing-here', {}, 404, 'There is nothing at GET /api/nothing-here.'],
    ];
    for (const [method, path, options, status, message] of cases) {
      const answer = await call(web.url, method, path, options);
      expect([path, answer.status, answer.json.error?.message], answer.text.slice(0, 300)).toEqual([path, status, message]);
    }
    const someJob = (await call(web.url, 'GET', '/api/history?limit=1')).json.jobs[0].id as string;
    const badImage = await call(web.url, 'GET', `/api/jobs/${someJob}/images/7.png`);
    expect(badImage.status).toBe(400);
    expect(badImage.json.error.message).toMatch(/^The field "image" must be an image number from 0 to \d, optionally ending in \.png\.$/);
    expect((await call(web.url, 'GET', '/api/command')).status).toBe(200);
  });
});

describe('access', () => {
  it('on loopback without tokens answers only to loopback Host names, and refuses cross-site requests', async () => {
    const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(web.url);
      const request = httpRequest({ host: url.hostname, port: url.port, path: '/api/command', headers: { host: `attacker.example:${url.port}` } }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, body }));
      });
      request.on('error', reject);
      request.end();
    });
    expect([rebound.status, JSON.parse(rebound.body).error.code]).toEqual([403, 'wrong_host']);
    const crossSite = await call(web.url, 'POST', '/api/imagine', { body: { prompt: 'a cat' }, headers: { origin: 'https://attacker.example' } });
    expect([crossSite.status, crossSite.json.error.message]).toEqual([403, 'Cross-site requests are refused; use the page this server serves.']);
    const embedded = await call(web.url, 'GET', '/api/history', { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(embedded.status).toBe(403);
    const sameSite = await call(web.url, 'GET', '/api/command', { headers: { origin: web.url } });
    expect(sameSite.status).toBe(200);
  });

  it('with tokens: Bearer or the login cookie; each token is one member who sees only their own jobs', async () => {
    const guarded = await startWeb(engine, join(root, 'tokens'), { tokens: [TOKEN_A, TOKEN_B] });
    try {
      const a = { authorization: `Bearer ${TOKEN_A}` };
      const b = { authorization: `Bearer ${TOKEN_B}` };
      const none = await call(guarded.url, 'POST', '/api/imagine', { body: { prompt: 'a cat' } });
      expect([none.status, none.headers.get('www-authenticate'), none.json.error.message]).toEqual([401, 'Bearer', 'Send the access token (Authorization: Bearer <WEB_TOKEN>), or log in at /login.']);
      expect((await call(guarded.url, 'GET', '/api/history', { headers: { authorization: `Bearer ${TOKEN_A}x` } })).status).toBe(401);
      const a1111 = await call(guarded.url, 'GET', '/sdapi/v1/progress');
      expect([a1111.status, a1111.json.error]).toEqual([401, 'unauthorized']);
      const openai = await call(guarded.url, 'POST', '/v1/images/generations', { body: { prompt: 'x' } });
      expect([openai.status, openai.json.error.type]).toEqual([401, 'authentication_error']);
      const page = await call(guarded.url, 'GET', '/');
      expect([page.status, page.headers.get('location')]).toEqual([303, '/login']);

      const { submitted, stream } = await imagineAndWait(guarded.url, { prompt: 'alice’s cat', count: 1, steps: 1 }, a);
      expect(stream.events.at(-1)!.event).toBe('done');
      const id = submitted.job.id as string;
      expect(guarded.store.get(id)!.userId).toBe(tokenUserId(TOKEN_A));
      // the other token's member knows nothing of it
      for (const [method, path] of [['GET', `/api/jobs/${id}`], ['GET', `/api/jobs/${id}/grid`], ['GET', `/api/jobs/${id}/images/0.png`], ['POST', `/api/jobs/${id}/reroll`], ['POST', `/api/jobs/${id}/cancel`]] as const) {
        expect((await call(guarded.url, method, path, { headers: b })).status, `${method} ${path}`).toBe(404);
      }
      expect((await readEvents(`${guarded.url}/api/jobs/${id}/events`, { headers: b })).status).toBe(404);
      expect((await call(guarded.url, 'GET', '/api/history', { headers: b })).json.jobs).toEqual([]);
      expect((await call(guarded.url, 'GET', '/api/history', { headers: a })).json.jobs.map((job: { id: string }) => job.id)).toEqual([id]);

      // the login form: a wrong token is one sentence; the right one sets an HttpOnly cookie that stands for it
      const wrong = await call(guarded.url, 'POST', '/login', { body: 'token=nope', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(wrong.status).toBe(401);
      expect(wrong.text).toContain('That is not an access token of this server; check WEB_TOKEN in its settings.');
      const login = await call(guarded.url, 'POST', '/login', { body: `token=${TOKEN_A}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect([login.status, login.headers.get('location')]).toEqual([303, '/']);
      const cookie = login.headers.get('set-cookie')!;
      expect(cookie).toMatch(/^lightning_session=[0-9a-f]{64}; Max-Age=2592000; Path=\/; HttpOnly; SameSite=Strict$/);
      expect(cookie).not.toContain(TOKEN_A);
      const session = { cookie: cookie.split(';')[0] };
      expect((await call(guarded.url, 'GET', '/', { headers: session })).status).toBe(200);
      expect((await call(guarded.url, 'GET', '/api/history', { headers: session })).json.jobs.map((job: { id: string }) => job.id)).toEqual([id]);
      expect((await call(guarded.url, 'GET', '/api/history', { headers: { cookie: 'lightning_session=0000' } })).status).toBe(401);
    } finally {
      await guarded.close();
    }
  });

  it('serves the page with a policy that runs only its own files', async () => {
    const page = await call(web.url, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.text).toContain('<script type="module" src="/app.js"></script>');
    expect(page.text).not.toMatch(/https?:\/\//);
    const script = await call(web.url, 'GET', '/app.js');
    expect([script.status, script.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
    expect(script.text).not.toMatch(/https?:\/\//);
  });
});
