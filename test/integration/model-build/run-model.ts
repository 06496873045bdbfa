// What the builder's tests share: deterministic UNet feeds, running a model whatever its float I/O types, differences.

import * as ort from 'onnxruntime-node';
import { float16ToFloat32, float32ToFloat16 } from '../../../src/diffusion/fp16.js';

export const SESSION: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 2 };

/** UNet feeds of batch 2 with h×w latents, deterministic from `seed`, in float32. */
export function unetFeeds(h = 16, w = 16, seed = 7): Record<string, ort.Tensor> {
  let x = seed;
  const noise = (n: number) => Float32Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
  const [height, width] = [h * 8, w * 8];
  return {
    sample: new ort.Tensor('float32', noise(2 * 4 * h * w), [2, 4, h, w]),
    timestep: new ort.Tensor('float32', Float32Array.from([749]), []),
    encoder_hidden_states: new ort.Tensor('float32', noise(2 * 77 * 2048), [2, 77, 2048]),
    text_embeds: new ort.Tensor('float32', noise(2 * 1280), [2, 1280]),
    time_ids: new ort.Tensor('float32', Float32Array.from([height, width, 0, 0, height, width, 768, 1344, 0, 0, 768, 1344]), [2, 6]),
  };
}

/** Runs `model` on float32 feeds, each converted to the dtype the model declares; returns `output` as float32. */
export async function runAsFloat32(model: string, feeds: Record<string, ort.Tensor>, output: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, SESSION);
  const typed: Record<string, ort.Tensor> = {};
  for (const meta of session.inputMetadata) {
    const feed = feeds[meta.name];
    typed[meta.name] = meta.isTensor && meta.type === 'float16' ? new ort.Tensor('float16', float32ToFloat16(feed.data as Float32Array), feed.dims) : feed;
  }
  const result = (await session.run(typed))[output];
  await session.release();
  return result.type === 'float16' ? float16ToFloat32(result.data as Uint16Array) : (result.data as Float32Array);
}

export const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
export const rms = (a: Float32Array): number => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
