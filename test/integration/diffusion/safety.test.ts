import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFolderError } from '../../../src/diffusion/model-folder.js';
import { loadSafetyClassifier, preprocessImages, readSafetyConfig, findSafetyClassifier, softmax, type SafetyClassifier } from '../../../src/diffusion/safety.js';
import type { RgbImage } from '../../../src/diffusion/vae.js';
import { writeTinySafetyClassifier, type TinySafetyOptions } from '../../../models/tiny/safety-classifier.js';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { loadPipeline } from '../../../src/diffusion/pipeline.js';

const root = mkdtempSync(join(tmpdir(), 'safety-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const session = { provider: 'cpu' as const, deviceId: 0, cpuThreads: 1 };
const solid = (width: number, height: number, value: number): RgbImage => ({ width, height, data: new Uint8Array(width * height * 3).fill(value) });

let count = 0;
async function classifier(options: TinySafetyOptions, threshold = 0.5): Promise<{ dir: string; classifier: SafetyClassifier }> {
  const dir = join(root, `model-${count++}`);
  await writeTinySafetyClassifier(dir, options);
  return { dir, classifier: await loadSafetyClassifier({ modelDir: dir, threshold, session }) };
}

describe('the image safety classifier', () => {
  it('scores every image with the probability of "nsfw" and flags it at the threshold', async () => {
    const { classifier: flagged } = await classifier({ score: 0.9 });
    const verdicts = await flagged.classify([solid(1024, 1024, 10), solid(64, 96, 200)]);
    expect(verdicts).toHaveLength(2);
    for (const verdict of verdicts) {
      expect(verdict.flagged).toBe(true);
      expect(verdict.score).toBeCloseTo(0.9, 5);
    }
    await flagged.close();

    const { classifier: safe } = await classifier({ score: 0.2 });
    expect((await safe.classify([solid(128, 128, 0)]))[0]).toEqual({ flagged: false, score: expect.closeTo(0.2, 5) });
    expect(await safe.classify([])).toEqual([]);
    await safe.close();

    // exactly at the threshold counts as flagged (a logit of 0 against 0 is exactly 0.5)
    const { classifier: edge } = await classifier({ score: 0.5 }, 0.5);
    expect((await edge.classify([solid(8, 8, 0)]))[0].flagged).toBe(true);
    await edge.close();
  });

  it('feeds pixels rescaled and normalised as preprocessor_config.json says, per image', async () => {
    // nsfw logit = 4 × mean(pixel_values): white normalises to +1 (score σ(4) = 0.982), black to −1 (σ(−4) = 0.018)
    const { classifier: byMean } = await classifier({ fromMean: { scale: 4, offset: 0 } });
    const [white, black, grey] = await byMean.classify([solid(128, 128, 255), solid(1024, 576, 0), solid(100, 100, 128)]);
    expect(white.score).toBeCloseTo(1 / (1 + Math.exp(-4)), 5);
    expect(white.flagged).toBe(true);
    expect(black.score).toBeCloseTo(1 / (1 + Math.exp(4)), 5);
    expect(black.flagged).toBe(false);
    // 128/255 → 0.50196; (0.50196 − 0.5)/0.5 = 0.00392; × 4 → σ(0.01569)
    expect(grey.score).toBeCloseTo(1 / (1 + Math.exp(-4 * (128 / 255 - 0.5) / 0.5)), 5);
    await byMean.close();
  });

  it('builds NCHW float32 at the input size, channel planes apart', () => {
    const image: RgbImage = { width: 2, height: 1, data: Uint8Array.of(255, 0, 51, 255, 0, 51) };
    const { values, dims } = preprocessImages([image], { width: 2, height: 1, filter: 'bilinear', rescale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(dims).toEqual([1, 3, 1, 2]);
    expect(Array.from(values).map((v) => Number(v.toFixed(4)))).toEqual([1, 1, -1, -1, -0.6, -0.6]);
  });

  it('names what is wrong with the folder and how to fix it', async () => {
    await expect(loadSafetyClassifier({ modelDir: join(root, 'nothing-here'), threshold: 0.5, session })).rejects.toThrow(/safety_classifier\/: missing[\s\S]*SAFETY=off/);
    const dir = join(root, 'broken');
    await writeTinySafetyClassifier(dir, { score: 0.5 });
    writeFileSync(join(dir, 'safety_classifier', 'config.json'), JSON.stringify({ id2label: { 0: 'normal', 1: 'explicit' } }));
    writeFileSync(join(dir, 'safety_classifier', 'preprocessor_config.json'), JSON.stringify({ size: { shortest_edge: 224 }, resample: 0, image_mean: [0.5], image_std: [0.5, 0.5, 0.5] }));
    let error: unknown;
    try {
      readSafetyConfig(findSafetyClassifier(dir)!, dir);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ModelFolderError);
    expect((error as ModelFolderError).problems).toEqual([
      'safety_classifier/config.json: expected "id2label" to number its labels from 0 and include "nsfw", found {"0":"normal","1":"explicit"}',
      'safety_classifier/preprocessor_config.json: expected "size" to be {"height": …, "width": …} in pixels, found {"shortest_edge":224}',
      'safety_classifier/preprocessor_config.json: "resample" must be 2 (bilinear) or 3 (bicubic), found 0',
      'safety_classifier/preprocessor_config.json: "image_mean" must be three numbers (R, G, B), found [0.5]',
      expect.stringContaining('npm run models:fetch'),
    ]);
  });

  it('turns logits into probabilities without overflow', () => {
    const [a, b] = softmax([1000, 1000 + Math.log(3)]);
    expect(a).toBeCloseTo(0.25, 12);
    expect(b).toBeCloseTo(0.75, 12);
  });
});

describe('the pipeline with SAFETY=on', () => {
  it('scores every image it made before handing them back, and loads no classifier when the check is off', async () => {
    const dir = join(root, 'pipeline');
    await writeTinyModelFolder(dir, { steps: [2], safety: { score: 0.8 } });
    const request = { prompt: 'a lighthouse', steps: 2, width: 64, height: 64, images: [{ seed: 1 }, { seed: 2 }] };
    const checked = await loadPipeline({ modelDir: dir, provider: 'cpu', deviceId: 0, cpuThreads: 1, safety: { threshold: 0.5 } }, () => {});
    const result = await checked.generate(request);
    expect(result.safety).toEqual([
      { flagged: true, score: expect.closeTo(0.8, 5) },
      { flagged: true, score: expect.closeTo(0.8, 5) },
    ]);
    expect(result.timings.safetyMs).toBeGreaterThan(0);
    await checked.close();

    const unchecked = await loadPipeline({ modelDir: dir, provider: 'cpu', deviceId: 0, cpuThreads: 1 }, () => {});
    const plain = await unchecked.generate(request);
    expect(plain.safety).toBeUndefined();
    expect(plain.timings.safetyMs).toBeUndefined();
    await unchecked.close();
  });

  it('refuses to start with SAFETY=on and no classifier, naming it with the rest of the folder', async () => {
    const dir = join(root, 'pipeline-bare');
    await writeTinyModelFolder(dir, { steps: [2], safety: false });
    await expect(loadPipeline({ modelDir: dir, provider: 'cpu', deviceId: 0, cpuThreads: 1, safety: { threshold: 0.5 } }, () => {})).rejects.toThrow(
      /safety_classifier\/: missing \(SAFETY=on checks every image with it\)/,
    );
  });
});
