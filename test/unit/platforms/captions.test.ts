import { describe, expect, it } from 'vitest';
import type { Job } from '../../../src/core/jobs.js';
import { imageRecipe, MAX_SEED, type GenerationRequest, type NoiseStep } from '../../../src/core/request.js';
import type { ResultDelivery } from '../../../src/core/service.js';
import { cancelledCaption, failureCaption, plainPrompt, promptText, resultCaption, seedText, statusCaption } from '../../../src/platforms/captions.js';
import { DISCORD_MARKUP, MAX_CONTENT_LENGTH } from '../../../src/platforms/discord/messages.js';
import { SLACK_MARKUP } from '../../../src/platforms/slack/blocks.js';
import { discordBoldPrompt, readSlack } from '../../support/markup.js';

const request = (overrides: Partial<GenerationRequest> = {}): GenerationRequest => ({ prompt: 'a red cat', steps: 2, seed: 42, aspect: '1:1', count: 4, ...overrides });

function job(overrides: Partial<Job> = {}): Job {
  return {
    id: 'aaaaaaaaaaaa',
    kind: 'imagine',
    platform: 'discord',
    guildId: '1',
    channelId: '2',
    userId: '200000000000000001',
    request: request(),
    parentId: null,
    parentIndex: null,
    status: 'done',
    createdAt: 0,
    startedAt: 0,
    finishedAt: 0,
    timings: null,
    reply: {},
    resultMessageId: null,
    worker: null,
    nsfwChannel: false,
    safety: null,
    error: null,
    ...overrides,
  };
}

const result = (overrides: Partial<ResultDelivery> = {}): ResultDelivery => ({
  file: { data: Buffer.alloc(0), format: 'png', contentType: 'image/png', extension: 'png', width: 2048, height: 2048 },
  fileName: 'x.png',
  seeds: [42, 43, 44, 45],
  width: 1024,
  height: 1024,
  elapsedMs: 1234,
  truncated: false,
  fromCache: false,
  ...overrides,
});

/** A variation request as the service builds it from image `index` of `parent`. */
function variationOf(parent: GenerationRequest, index: number, seed: number, strength = 0.25): GenerationRequest {
  const recipe = imageRecipe(parent, index);
  return { ...parent, seed, variation: { parentSeed: recipe.seed, parentSteps: recipe.variations ?? [], strength } };
}

/** An upscale request as the service builds it: image `index` alone. */
const upscaleOf = (parent: GenerationRequest, index: number): GenerationRequest => ({ ...parent, count: 1, seed: parent.seed + index });

/** Reads a seed text back into each image's recipe, as a member would to remake the images. */
function recipesFrom(text: string): { seed: number; variations: NoiseStep[] }[] {
  const plain = /^seeds? (\d+)(?:–(\d+))?$/.exec(text);
  if (plain) {
    const [first, last] = [Number(plain[1]), Number(plain[2] ?? plain[1])];
    return Array.from({ length: last - first + 1 }, (_, i) => ({ seed: first + i, variations: [] }));
  }
  const varied = /^variations? of seed (\d+) \((.*)\)$/.exec(text);
  if (!varied) throw new Error(`not a seed text: ${text}`);
  const steps = varied[2].split(', then ').map((step) => {
    const match = /^\+ seeds? (\d+)(?:–(\d+))? at ([\d.]+)$/.exec(step);
    if (!match) throw new Error(`not a step: ${step}`);
    return { first: Number(match[1]), last: Number(match[2] ?? match[1]), strength: Number(match[3]) };
  });
  const count = steps[steps.length - 1].last - steps[steps.length - 1].first + 1;
  return Array.from({ length: count }, (_, i) => ({
    seed: Number(varied[1]),
    variations: steps.map((step, s) => ({ seed: s === steps.length - 1 ? step.first + i : step.first, strength: step.strength })),
  }));
}

describe('seed captions', () => {
  it('give the seed of each image of a grid, and of one image alone', () => {
    expect(seedText(request())).toBe('seeds 42–45');
    expect(seedText(request({ count: 1, seed: 7 }))).toBe('seed 7');
    expect(seedText(upscaleOf(request(), 2))).toBe('seed 44');
  });

  it('give what remakes a variation: the seed it started from and each slerp toward another seed', () => {
    const grid = request();
    const varied = variationOf(grid, 1, 9001);
    expect(seedText(varied)).toBe('variations of seed 43 (+ seeds 9001–9004 at 0.25)');
    expect(seedText(upscaleOf(varied, 2))).toBe('variation of seed 43 (+ seed 9003 at 0.25)');
    const again = variationOf(varied, 3, 500, 0.5);
    expect(seedText(again)).toBe('variations of seed 43 (+ seed 9004 at 0.25, then + seeds 500–503 at 0.5)');
    expect(seedText(upscaleOf(again, 0))).toBe('variation of seed 43 (+ seed 9004 at 0.25, then + seed 500 at 0.5)');
  });

  it('read back into exactly the noise recipes the engine is given', () => {
    const grid = request({ seed: 1000, count: 3 });
    const v1 = variationOf(grid, 2, 77);
    const v2 = variationOf(v1, 0, 123_456, 0.1);
    for (const r of [grid, upscaleOf(grid, 1), v1, upscaleOf(v1, 1), v2, upscaleOf(v2, 2)]) {
      const expected = Array.from({ length: r.count }, (_, i) => imageRecipe(r, i)).map((recipe) => ({ seed: recipe.seed, variations: recipe.variations ?? [] }));
      expect(recipesFrom(seedText(r))).toEqual(expected);
    }
  });

  it('shorten a long history of variations to its first and last steps', () => {
    let r = request({ count: 2 });
    for (let i = 0; i < 8; i++) r = variationOf(r, 0, 100 * (i + 1));
    expect(seedText(r)).toBe('variations of seed 42 (+ seed 100 at 0.25, then + seed 200 at 0.25, then … 4 more, then + seed 700 at 0.25, then + seeds 800–801 at 0.25)');
  });
});

describe('captions', () => {
  it('say the prompt, what made the job, the seeds, steps, size and time', () => {
    expect(resultCaption(job(), result(), DISCORD_MARKUP, false)).toMatchInlineSnapshot(`
      "**a red cat**
      seeds 42–45 · 2 steps · 1024×1024 · 1.2 s"
    `);
    const varied = job({ kind: 'vary', parentIndex: 0, request: variationOf(request({ aspect: '16:9', steps: 1 }), 0, 9001) });
    expect(resultCaption(varied, result({ width: 1344, height: 768, elapsedMs: 12_345 }), SLACK_MARKUP, true)).toMatchInlineSnapshot(`
      "*a red cat* — Variations of image 1 — <@200000000000000001>
      variations of seed 42 (+ seeds 9001–9004 at 0.25) · 1 step · 16:9 1344×768 · 12 s"
    `);
    const upscaled = job({ kind: 'upscale', parentIndex: 2, request: upscaleOf(request(), 2) });
    expect(resultCaption(upscaled, result({ fromCache: true, truncated: true }), DISCORD_MARKUP, true)).toMatchInlineSnapshot(`
      "**a red cat** — Image 3 at full size — <@200000000000000001>
      seed 44 · 2 steps · 1024×1024 · from the cache
      The prompt was cut to its first 75 tokens, as the model reads no more."
    `);
  });

  it('share their words between status, failure and cancel messages', () => {
    const reroll = job({ kind: 'reroll' });
    expect(statusCaption(reroll, { state: 'queued', position: 3 }, SLACK_MARKUP)).toBe('*a red cat* — Re-roll\nQueued — position 3');
    expect(statusCaption(reroll, { state: 'running' }, DISCORD_MARKUP)).toBe('**a red cat** — Re-roll\nGenerating…');
    expect(failureCaption(reroll, { code: 'generation_failed' }, DISCORD_MARKUP, true)).toBe(
      '**a red cat** — Re-roll — <@200000000000000001>\nGeneration failed, try again; the admin has the details.',
    );
    expect(cancelledCaption(reroll, SLACK_MARKUP)).toBe('*a red cat* — Re-roll\nCancelled.');
    expect(cancelledCaption(undefined, DISCORD_MARKUP)).toBe('Cancelled.');
  });

  it('escape the prompt in every one of them', () => {
    const hostile = job({ request: request({ prompt: '[free nitro](https://evil.example) @everyone <!channel> **x**' }) });
    const texts = {
      discord: [resultCaption(hostile, result(), DISCORD_MARKUP, true), statusCaption(hostile, { state: 'running' }, DISCORD_MARKUP), failureCaption(hostile, { code: 'queue_full' }, DISCORD_MARKUP, false), cancelledCaption(hostile, DISCORD_MARKUP)],
      slack: [resultCaption(hostile, result(), SLACK_MARKUP, true), statusCaption(hostile, { state: 'queued', position: 1 }, SLACK_MARKUP), failureCaption(hostile, { code: 'queue_full' }, SLACK_MARKUP, false), cancelledCaption(hostile, SLACK_MARKUP)],
    };
    for (const text of texts.discord) expect(discordBoldPrompt(text)).toEqual({ shown: hostile.request.prompt, active: [] });
    expect(readSlack(texts.slack[0]).tags).toEqual(['<@200000000000000001>']);
    for (const text of texts.slack) expect(readSlack(text).shown).toContain(hostile.request.prompt);
    for (const text of texts.slack.slice(1)) expect(readSlack(text).tags).toEqual([]);
  });

  it('fit the platform limits with the longest prompt, all of it needing escapes, and the longest seed history', () => {
    let varied = request({ seed: MAX_SEED - 3, aspect: '21:9' });
    for (let i = 0; i < 9; i++) varied = variationOf(varied, 3, MAX_SEED - 3, 0.123);
    const worst = job({ kind: 'vary', parentIndex: 3, userId: '9'.repeat(20), request: { ...varied, prompt: '[&<>*'.repeat(200) } });
    const delivery = result({ width: 1536, height: 640, elapsedMs: 123_456_789, truncated: true });
    const discord = resultCaption(worst, delivery, DISCORD_MARKUP, true);
    expect(discord.length).toBeLessThanOrEqual(MAX_CONTENT_LENGTH);
    expect(discordBoldPrompt(discord).active).toEqual([]);
    expect(discordBoldPrompt(discord).shown.endsWith('…')).toBe(true);
    // a Slack section's text holds 3000 characters
    expect(resultCaption(worst, delivery, SLACK_MARKUP, true).length).toBeLessThanOrEqual(3000);
  });

  it('cut a prompt between whole characters, never inside an escape or an emoji', () => {
    const markup = { ...DISCORD_MARKUP, maxPromptLength: 10 };
    expect(promptText('***********', markup)).toBe('\\*\\*\\*\\*…');
    expect(promptText('ab👩‍💻👩‍💻👩‍💻', { ...markup, maxPromptLength: 8 })).toBe('ab👩‍💻…');
    expect(promptText('https://evil.example', markup)).toBe('https\\://…');
    expect(promptText('short', markup)).toBe('short');
    expect(plainPrompt('x'.repeat(300), 250)).toBe(`${'x'.repeat(249)}…`);
    expect(plainPrompt('a\u0000b', 250)).toBe('a␀b');
  });
});
