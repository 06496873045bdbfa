// An independent, plain reading of spec/lightning.md §0 for the tests: onnxruntime sessions driven directly, the
// math in double precision, the schedule from the spec's table. The pipeline must agree with it to ±1 per byte.

import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ClipTokenizer, torchRandn } from '../../../src/diffusion/index.js';

/** spec §3.5b, torch 2.x. */
export const SPEC_SCHEDULES: Record<number, { timesteps: number[]; sigmas: number[] }> = {
  1: { timesteps: [999], sigmas: [14.614646911621094, 0] },
  2: { timesteps: [999, 499], sigmas: [14.614646911621094, 1.6128870248794556, 0] },
  4: { timesteps: [999, 749, 499, 249], sigmas: [14.614646911621094, 4.081730842590332, 1.6128870248794556, 0.6932054162025452, 0] },
  8: {
    timesteps: [999, 874, 749, 624, 499, 374, 249, 124],
    sigmas: [14.614646911621094, 7.297353744506836, 4.081730842590332, 2.4925317764282227, 1.6128870248794556, 1.0689518451690674, 0.6932054162025452, 0.39774635434150696, 0],
  },
};

export type ReferenceOptions = {
  prompt: string;
  seed: number;
  steps: number;
  width: number;
  height: number;
  unetFolder: string;
  prediction: 'epsilon' | 'sample';
  /** Deliberate mistakes, to show the comparison would catch them. */
  hiddenLayerOffset?: number;
  swapTimeIds?: boolean;
};

const session = (path: string): Promise<ort.InferenceSession> => ort.InferenceSession.create(path, { executionProviders: ['cpu'] });
const ids = (values: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, values.length]);

/** HWC RGB bytes of one image made the plain way from a tiny float32, int64-ids, scalar-timestep folder. */
export async function referenceImage(dir: string, options: ReferenceOptions): Promise<Uint8Array> {
  const { prompt, seed, steps, width, height } = options;
  const tokenizer = ClipTokenizer.fromFiles(join(dir, 'tokenizer/vocab.json'), join(dir, 'tokenizer/merges.txt'));
  const tokenizer2 = ClipTokenizer.fromFiles(join(dir, 'tokenizer_2/vocab.json'), join(dir, 'tokenizer_2/merges.txt'));
  const [te1, te2, unet, vae] = await Promise.all([
    session(join(dir, 'text_encoder/model.onnx')),
    session(join(dir, 'text_encoder_2/model.onnx')),
    session(join(dir, options.unetFolder, 'model.onnx')),
    session(join(dir, 'vae_decoder/model.onnx')),
  ]);
  const offset = options.hiddenLayerOffset ?? 0;
  const out1 = await te1.run({ input_ids: ids(tokenizer.encode(prompt)) });
  const out2 = await te2.run({ input_ids: ids(tokenizer2.encode(prompt)) });
  const h1 = out1[`hidden_states.${11 + offset}`];
  const h2 = out2[`hidden_states.${31 + offset}`];
  const [, sequence, w1] = h1.dims;
  const w2 = h2.dims[2];
  const embeds = new Float32Array(sequence * (w1 + w2));
  for (let s = 0; s < sequence; s++) {
    embeds.set((h1.data as Float32Array).subarray(s * w1, (s + 1) * w1), s * (w1 + w2));
    embeds.set((h2.data as Float32Array).subarray(s * w2, (s + 1) * w2), s * (w1 + w2) + w1);
  }
  const timeIds = options.swapTimeIds ? [width, height, 0, 0, width, height] : [height, width, 0, 0, height, width];
  const { timesteps, sigmas } = SPEC_SCHEDULES[steps];
  const h = height / 8;
  const w = width / 8;
  let x = Float64Array.from(torchRandn(seed, [1, 4, h, w]), (v) => v * sigmas[0]);
  for (let i = 0; i < steps; i++) {
    const sigma = sigmas[i];
    const result = await unet.run({
      sample: new ort.Tensor('float32', Float32Array.from(x, (v) => v / Math.sqrt(sigma * sigma + 1)), [1, 4, h, w]),
      timestep: new ort.Tensor('float32', new Float32Array([timesteps[i]]), []),
      encoder_hidden_states: new ort.Tensor('float32', embeds, [1, sequence, w1 + w2]),
      text_embeds: new ort.Tensor('float32', out2.text_embeds.data as Float32Array, [1, 1280]),
      time_ids: new ort.Tensor('float32', new Float32Array(timeIds), [1, 6]),
    });
    const eps = result.out_sample.data as Float32Array;
    x = x.map((value, k) => {
      const x0 = options.prediction === 'sample' ? eps[k] : value - sigma * eps[k];
      return value + ((value - x0) / sigma) * (sigmas[i + 1] - sigma);
    });
  }
  const decoded = await vae.run({ latent_sample: new ort.Tensor('float32', Float32Array.from(x, (v) => v / 0.13025), [1, 4, h, w]) });
  const image = decoded.sample.data as Float32Array;
  const plane = width * height;
  const pixels = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) pixels[p * 3 + c] = Math.round(Math.min(1, Math.max(0, image[c * plane + p] / 2 + 0.5)) * 255);
  }
  await Promise.all([te1, te2, unet, vae].map((s) => s.release()));
  return pixels;
}

/** Largest per-byte difference and the share of bytes that differ at all. */
export function compareBytes(a: Uint8Array, b: Uint8Array): { maxDiff: number; differing: number } {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let maxDiff = 0;
  let differing = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    if (diff > 0) differing++;
    if (diff > maxDiff) maxDiff = diff;
  }
  return { maxDiff, differing: differing / a.length };
}
