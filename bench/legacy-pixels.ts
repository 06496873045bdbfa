// The float → 8-bit conversion the host did before the VAE decoder graph made the bytes itself (src/diffusion/vae.ts):
// kept as the "before" of the benchmark ratio, and as the reference the pixel-for-pixel test compares the graph with.

import { fround } from '../src/diffusion/float32.js';
import type { RgbImage } from '../src/diffusion/vae.js';

/**
 * NCHW floats in [−1, 1] → HWC bytes: `round_half_even(clamp(x/2 + 0.5, 0, 1) × 255)` in float32, as numpy does it.
 * A Uint8ClampedArray store clamps and rounds halves to even by itself (ECMAScript ToUint8Clamp), so the float32
 * chain is all that is left to compute. NaN throws, as it did.
 */
export function floatsToImages(values: Float32Array, dims: readonly number[], label = 'vae_decoder'): RgbImage[] {
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
    if (nan) throw new Error(`${label}: produced NaN pixels`);
    images.push({ width, height, data: new Uint8Array(data.buffer) });
  }
  return images;
}
