// Step 8 of spec §0: latents → VAE decoder → 8-bit RGB, the way diffusers' VaeImageProcessor rounds.

import { fround } from './float32.js';
import type { OnnxModel } from './session.js';

/** SDXL VAE `scaling_factor` (not SD-1.5's 0.18215; spec §4). */
export const VAE_SCALING_FACTOR = 0.13025;

/** An image as HWC RGB bytes. */
export type RgbImage = { width: number; height: number; data: Uint8Array };

/** Decodes latents [batch, 4, h, w] into `batch` images of 8h × 8w. */
export async function decodeLatents(vae: OnnxModel, latents: Float32Array, dims: readonly number[]): Promise<RgbImage[]> {
  const scale = fround(VAE_SCALING_FACTOR);
  const scaled = new Float32Array(latents.length);
  for (let i = 0; i < latents.length; i++) scaled[i] = latents[i] / scale;
  const { sample } = await vae.run({ latent_sample: { values: scaled, dims } }, ['sample']);
  return toImages(sample.values, sample.dims, vae.label);
}

/**
 * NCHW floats in [−1, 1] → HWC bytes: `round_half_even(clamp(x/2 + 0.5, 0, 1) × 255)` in float32, as numpy does it.
 * A Uint8ClampedArray store clamps and rounds halves to even by itself (ECMAScript ToUint8Clamp), so the float32
 * chain is all that is left to compute. NaN means the VAE overflowed (an fp16 VAE that is not the fp16-fix one):
 * that is an error, never a black image.
 */
export function toImages(values: Float32Array, dims: readonly number[], label = 'vae_decoder'): RgbImage[] {
  const [batch, channels, height, width] = dims;
  if (dims.length !== 4 || channels !== 3) throw new Error(`${label}: expected an output of [batch, 3, height, width], got [${dims.join(', ')}]`);
  const plane = height * width;
  const images: RgbImage[] = [];
  for (let b = 0; b < batch; b++) {
    const data = new Uint8ClampedArray(plane * 3);
    const red = b * 3 * plane;
    const green = red + plane;
    const blue = green + plane;
    let nan = false;
    for (let p = 0, q = 0; p < plane; p++, q += 3) {
      const r = values[red + p];
      const g = values[green + p];
      const bl = values[blue + p];
      data[q] = fround(fround(fround(r * 0.5) + 0.5) * 255);
      data[q + 1] = fround(fround(fround(g * 0.5) + 0.5) * 255);
      data[q + 2] = fround(fround(fround(bl * 0.5) + 0.5) * 255);
      if (r !== r || g !== g || bl !== bl) nan = true;
    }
    if (nan) {
      throw new Error(
        `${label}: produced NaN pixels; an fp16 VAE decoder must be the fp16-fix one (madebyollin/sdxl-vae-fp16-fix), or use an fp32 VAE (see models/README.md)`,
      );
    }
    images.push({ width, height, data: new Uint8Array(data.buffer) });
  }
  return images;
}
