import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fround } from '../../../src/diffusion/float32.js';
import { float16ToFloat32, float32ToFloat16 } from '../../../src/diffusion/fp16.js';
import { torchRandn } from '../../../src/diffusion/noise.js';
import { OnnxModel } from '../../../src/diffusion/session.js';
import { decodeLatents, VAE_SCALING_FACTOR, vaeDecoderWithPixels, type VaeDecoder } from '../../../src/diffusion/vae.js';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { createGraph, writeModel, type ElementType } from '../../../models/tiny/onnx-writer.js';
import { floatsToImages } from '../../../bench/legacy-pixels.js';

const root = mkdtempSync(join(tmpdir(), 'vae-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const cpu = { provider: 'cpu', deviceId: 0, cpuThreads: 1 } as const;

/** The decoder as the pipeline loads it: the file's graph with the pixel nodes appended, from bytes. */
async function edited(path: string): Promise<VaeDecoder & { release(): Promise<void> }> {
  const graph = await vaeDecoderWithPixels(path, 'vae_decoder/model.onnx');
  const model = await OnnxModel.load(path, 'vae_decoder/model.onnx', cpu, () => {}, graph);
  return { model, pixels: graph.pixels, finiteCheck: graph.finiteCheck, release: () => model.release() };
}

/** What the host made before: the file run as it is, its float `sample` converted in JS (bench/legacy-pixels.ts). */
async function legacy(path: string, latents: Float32Array, dims: number[]): Promise<Uint8Array[]> {
  const model = await OnnxModel.load(path, 'vae_decoder/model.onnx', cpu);
  const scale = fround(VAE_SCALING_FACTOR);
  const { sample } = await model.run({ latent_sample: { values: latents.map((v) => v / scale), dims } }, ['sample']);
  await model.release();
  return floatsToImages(sample.values, sample.dims).map((image) => image.data);
}

/** A decoder whose `sample` is its input's first three channels, so a test chooses every float the nodes see. */
async function passThrough(path: string, type: ElementType, opset = 17, externalDataFile?: string): Promise<void> {
  const g = createGraph('vae_decoder');
  g.input('latent_sample', type, ['batch_size', 4, 'latent_height', 'latent_width']);
  const starts = g.initializer('starts', 'int64', [1], BigInt64Array.from([0n]));
  const ends = g.initializer('ends', 'int64', [1], BigInt64Array.from([3n]));
  const axes = g.initializer('axes', 'int64', [1], BigInt64Array.from([1n]));
  // a large, unused initializer, so an external data file really exists when asked for
  g.initializer('padding', 'float32', [512], new Float32Array(512));
  g.node('Slice', ['latent_sample', starts, ends, axes], ['sample']);
  g.output('sample', type, ['batch_size', 3, 'latent_height', 'latent_width']);
  await writeModel(path, g, { opset, ...(externalDataFile ? { externalDataFile, externalDataThreshold: 1024 } : {}) });
}

describe('pixels made by the VAE decoder graph', () => {
  for (const floatType of ['float32', 'float16'] as const) {
    describe(`on the tiny ${floatType} model`, () => {
      const dir = join(root, floatType);
      beforeAll(() => writeTinyModelFolder(dir, { steps: [1], floatType }));

      it("equals the host's old float → byte conversion pixel for pixel, and leaves the file unchanged", async () => {
        const path = join(dir, 'vae_decoder', 'model.onnx');
        const before = readFileSync(path);
        const dims = [2, 4, 24, 32];
        // wide latents, so the decoder's tanh reaches both ends of the range as well as the middle
        const latents = torchRandn(7, dims).map((v) => v * 0.6);
        const vae = await edited(path);
        const images = await decodeLatents(vae, latents, dims);
        await vae.release();
        const expected = await legacy(path, latents, dims);
        expect(images.map((image) => [image.width, image.height])).toEqual([[256, 192], [256, 192]]);
        images.forEach((image, i) => expect(Buffer.compare(image.data, expected[i])).toBe(0));
        const values = new Set(images.flatMap((image) => [...image.data]));
        expect(values.has(0) && values.has(255)).toBe(true);
        expect(readFileSync(path).equals(before)).toBe(true);
      });
    });
  }

  it('clamps, and rounds exact halves to even as numpy does, for float32 and float16 samples', async () => {
    for (const type of ['float32', 'float16'] as const) {
      const path = join(root, `ramp-${type}`, 'model.onnx');
      await passThrough(path, type);
      const dims = [1, 4, 256, 256];
      // a dense ramp over [−1.25, 1.25] of the decoder's input (latents are divided by 0.13025 before it)
      const latents = Float32Array.from({ length: 4 * 256 * 256 }, (_, i) => ((i / (3 * 256 * 256)) * 2.5 - 1.25) * VAE_SCALING_FACTOR);
      const vae = await edited(path);
      const [image] = await decodeLatents(vae, latents, dims);
      await vae.release();
      const [expected] = await legacy(path, latents, dims);
      expect(Buffer.compare(image.data, expected)).toBe(0);
      // the ramp really holds ties (k + 0.5 exactly after the float32 chain) and values beyond both ends
      const scale = fround(VAE_SCALING_FACTOR);
      const divided = latents.map((v) => v / scale);
      // a float16 model sees its input rounded to half precision, as OnnxModel feeds it
      const samples = type === 'float16' ? float16ToFloat32(float32ToFloat16(divided)) : divided;
      const chain = [...samples.subarray(0, 3 * 256 * 256)].map((x) => fround(fround(fround(x * 0.5) + 0.5) * 255));
      const ties = chain.filter((v) => v > 0 && v < 255 && v % 1 === 0.5);
      expect(ties.length).toBeGreaterThan(0);
      expect(chain.some((v) => v < 0) && chain.some((v) => v > 255)).toBe(true);
    }
  });

  it('refuses a decoder that overflowed (NaN or infinity) instead of making a black image', async () => {
    const path = join(root, 'overflow', 'model.onnx');
    await passThrough(path, 'float32');
    const vae = await edited(path);
    const latents = new Float32Array(4 * 8 * 8);
    latents[5] = Number.NaN;
    await expect(decodeLatents(vae, latents, [1, 4, 8, 8])).rejects.toThrow(
      'vae_decoder/model.onnx: produced NaN or infinite pixels; an fp16 VAE decoder must be the fp16-fix one',
    );
    latents[5] = Number.POSITIVE_INFINITY;
    await expect(decodeLatents(vae, latents, [1, 4, 8, 8])).rejects.toThrow(/produced NaN or infinite pixels/);
    await vae.release();
  });

  it('reads the external data file a decoder names, since a session made from bytes has no folder', async () => {
    const path = join(root, 'external', 'model.onnx');
    await passThrough(path, 'float32', 17, 'model.onnx_data');
    expect(readFileSync(join(root, 'external', 'model.onnx_data')).length).toBeGreaterThanOrEqual(2048);
    const graph = await vaeDecoderWithPixels(path, 'vae_decoder/model.onnx');
    expect(graph.externalData.map((file) => file.path)).toEqual(['model.onnx_data']);
    const vae = await edited(path);
    const [image] = await decodeLatents(vae, new Float32Array(4 * 8 * 8), [1, 4, 8, 8]);
    await vae.release();
    expect([...new Set(image.data)]).toEqual([128]);
  });

  it('says why a decoder cannot take the pixel nodes', async () => {
    const old = join(root, 'opset10', 'model.onnx');
    await passThrough(old, 'float32', 10);
    await expect(vaeDecoderWithPixels(old, 'vae_decoder/model.onnx')).rejects.toThrow(
      'vae_decoder/model.onnx: uses opset 10; the pipeline needs opset 11 or later (export it again with a newer exporter)',
    );
    const renamed = join(root, 'renamed', 'model.onnx');
    const g = createGraph('vae_decoder');
    g.input('latent_sample', 'float32', null);
    g.node('Identity', ['latent_sample'], ['image']);
    g.output('image', 'float32', null);
    await writeModel(renamed, g);
    await expect(vaeDecoderWithPixels(renamed, 'vae_decoder/model.onnx')).rejects.toThrow('vae_decoder/model.onnx: expected an output named "sample", found "image"');
  });
});
