import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPipeline, type LogFn, type Pipeline, type PipelineRequest } from '../../../src/diffusion/pipeline.js';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { compareBytes, referenceImage } from './reference.js';

const logs: { level: string; message: string }[] = [];
const log: LogFn = (level, message) => logs.push({ level, message });
const root = mkdtempSync(join(tmpdir(), 'pipeline-'));
const dir = join(root, 'model');
let pipeline: Pipeline;

const request = (overrides: Partial<PipelineRequest> = {}): PipelineRequest => ({
  prompt: 'a lighthouse at dusk',
  steps: 4,
  width: 128,
  height: 96,
  images: [{ seed: 42 }],
  ...overrides,
});

beforeAll(async () => {
  await writeTinyModelFolder(dir);
  pipeline = await loadPipeline({ modelDir: dir, provider: 'cpu', deviceId: 0 }, log);
});
afterAll(async () => {
  await pipeline?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the pipeline on the tiny model folder', () => {
  it('offers the installed step counts with their prediction types', () => {
    expect(pipeline.steps).toEqual([1, 2, 4, 8]);
    expect(pipeline.provider).toBe('cpu');
    expect(pipeline.folder.unets.map((u) => u.prediction)).toEqual(['sample', 'epsilon', 'epsilon', 'epsilon']);
  });

  for (const [steps, prediction] of [[1, 'sample'], [2, 'epsilon'], [4, 'epsilon'], [8, 'epsilon']] as const) {
    it(`agrees with a plain reading of the spec at ${steps} step(s) (${prediction})`, async () => {
      const result = await pipeline.generate(request({ steps }));
      expect(result.prediction).toBe(prediction);
      const [image] = result.images;
      expect([image.width, image.height, image.data.length]).toEqual([128, 96, 128 * 96 * 3]);
      const reference = await referenceImage(dir, { prompt: 'a lighthouse at dusk', seed: 42, steps, width: 128, height: 96, unetFolder: `unet_${steps}step`, prediction });
      const { maxDiff, differing } = compareBytes(image.data, reference);
      expect(maxDiff).toBeLessThanOrEqual(1);
      expect(differing).toBeLessThan(0.01);
    });
  }

  it('would catch a wrong hidden layer, swapped time_ids, the wrong UNet or the wrong prediction type', async () => {
    const [image] = (await pipeline.generate(request())).images;
    const base = { prompt: 'a lighthouse at dusk', seed: 42, steps: 4, width: 128, height: 96, unetFolder: 'unet_4step', prediction: 'epsilon' } as const;
    for (const mistake of [
      { ...base, hiddenLayerOffset: 1 },
      { ...base, swapTimeIds: true },
      { ...base, unetFolder: 'unet_8step' },
      { ...base, prediction: 'sample' as const },
    ]) {
      expect(compareBytes(image.data, await referenceImage(dir, mistake)).maxDiff).toBeGreaterThan(8);
    }
  });

  it('makes identical pixels for the same request and different ones for another seed or prompt', async () => {
    const first = (await pipeline.generate(request())).images[0].data;
    const again = (await pipeline.generate(request())).images[0].data;
    const otherSeed = (await pipeline.generate(request({ images: [{ seed: 43 }] }))).images[0].data;
    const otherPrompt = (await pipeline.generate(request({ prompt: 'a red cat on the sea' }))).images[0].data;
    expect(Buffer.compare(first, again)).toBe(0);
    expect(compareBytes(first, otherSeed).differing).toBeGreaterThan(0.5);
    expect(compareBytes(first, otherPrompt).differing).toBeGreaterThan(0.1);
  });

  it('makes a batch of 4 equal to 4 single runs with seeds seed + i', async () => {
    const batch = await pipeline.generate(request({ images: [0, 1, 2, 3].map((i) => ({ seed: 100 + i })) }));
    expect(batch.images).toHaveLength(4);
    for (let i = 0; i < 4; i++) {
      const single = await pipeline.generate(request({ images: [{ seed: 100 + i }] }));
      expect(Buffer.compare(batch.images[i].data, single.images[0].data)).toBe(0);
    }
  });

  it('mixes in the variation seed by its strength', async () => {
    const plain = (await pipeline.generate(request({ images: [{ seed: 7 }] }))).images[0].data;
    const none = (await pipeline.generate(request({ images: [{ seed: 7, variations: [{ seed: 99, strength: 0 }] }] }))).images[0].data;
    const slight = (await pipeline.generate(request({ images: [{ seed: 7, variations: [{ seed: 99, strength: 0.2 }] }] }))).images[0].data;
    const full = (await pipeline.generate(request({ images: [{ seed: 7, variations: [{ seed: 99, strength: 1 }] }] }))).images[0].data;
    const other = (await pipeline.generate(request({ images: [{ seed: 99 }] }))).images[0].data;
    expect(compareBytes(plain, none).maxDiff).toBeLessThanOrEqual(1);
    expect(compareBytes(full, other).maxDiff).toBeLessThanOrEqual(1);
    const near = compareBytes(plain, slight);
    const far = compareBytes(plain, other);
    expect(near.differing).toBeGreaterThan(0);
    expect(near.differing).toBeLessThan(far.differing);
  });

  it('reports stage timings and whether the prompt was cut to 75 tokens', async () => {
    const short = await pipeline.generate(request());
    expect(short.truncated).toBe(false);
    expect(short.timings.unetStepMs).toHaveLength(4);
    expect(short.timings.hostMs).toBeGreaterThan(0);
    expect(short.timings.hostMs).toBeLessThanOrEqual(short.timings.totalMs);
    const long = await pipeline.generate(request({ prompt: Array.from({ length: 90 }, () => 'cat').join(' ') }));
    expect(long.truncated).toBe(true);
  });

  it('reports progress for the text, every UNet step and the VAE', async () => {
    const events: string[] = [];
    await pipeline.generate(request({ steps: 2 }), (event) => events.push(`${event.stage}:${event.step}/${event.steps}`));
    expect(events).toEqual(['text:0/2', 'unet:1/2', 'unet:2/2', 'vae:2/2']);
  });

  it('refuses requests it cannot serve, with one sentence each', async () => {
    await expect(pipeline.generate(request({ steps: 3 }))).rejects.toThrow('no UNet for 3 steps is installed; installed: 1, 2, 4, 8');
    await expect(pipeline.generate(request({ width: 100 }))).rejects.toThrow('width must be a multiple of 8 of at least 64, got 100');
    await expect(pipeline.generate(request({ images: [] }))).rejects.toThrow('a request makes 1 to 8 images, got 0');
    await expect(pipeline.generate(request({ images: [{ seed: -1 }] }))).rejects.toThrow(/seeds must be integers/);
    await expect(pipeline.generate(request({ images: [{ seed: 1, variations: [{ seed: 2, strength: 2 }] }] }))).rejects.toThrow(/strength must be between 0 and 1/);
  });
});

describe('model folder variants', () => {
  const variants = [
    ['fp16 inputs and outputs', { floatType: 'float16' }],
    ['int32 ids', { idsType: 'int32' }],
    ['a [1] timestep', { timestepShape: 'vector' }],
    ['no external data', { externalData: false }],
  ] as const;
  for (const [name, options] of variants) {
    it(`runs a folder with ${name} and matches the float32 folder closely`, async () => {
      const variantDir = join(root, name.replace(/\W+/g, '-'));
      await writeTinyModelFolder(variantDir, options);
      const variant = await loadPipeline({ modelDir: variantDir, provider: 'cpu', deviceId: 0 }, log);
      try {
        const got = (await variant.generate(request())).images[0].data;
        const expected = (await pipeline.generate(request())).images[0].data;
        const { maxDiff } = compareBytes(got, expected);
        // fp16 I/O rounds the embeddings and latents: close, not identical
        expect(maxDiff).toBeLessThanOrEqual(name.startsWith('fp16') ? 24 : 0);
      } finally {
        await variant.close();
      }
    });
  }

  it('uses a lone unet/ as the 4-step epsilon UNet', async () => {
    const loneDir = join(root, 'lone');
    await writeTinyModelFolder(loneDir, { loneUnet: true });
    const lone = await loadPipeline({ modelDir: loneDir, provider: 'cpu', deviceId: 0, lazyUnets: true }, log);
    try {
      expect(lone.steps).toEqual([4]);
      expect((await lone.generate(request())).prediction).toBe('epsilon');
    } finally {
      await lone.close();
    }
  });

  it("honours a UNet config's prediction_type over the step-count default", async () => {
    const epsilonDir = join(root, 'one-step-epsilon');
    await writeTinyModelFolder(epsilonDir, { steps: [1] });
    writeFileSync(join(epsilonDir, 'unet_1step/config.json'), JSON.stringify({ prediction_type: 'epsilon' }));
    const epsilon = await loadPipeline({ modelDir: epsilonDir, provider: 'cpu', deviceId: 0 }, log);
    try {
      const result = await epsilon.generate(request({ steps: 1 }));
      expect(result.prediction).toBe('epsilon');
      const asSample = (await pipeline.generate(request({ steps: 1 }))).images[0].data;
      expect(compareBytes(result.images[0].data, asSample).maxDiff).toBeGreaterThan(8);
    } finally {
      await epsilon.close();
    }
  });
});
