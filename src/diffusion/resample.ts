// Image resizing as Pillow does it for 8-bit RGB (`Image.resize`, libImaging/Resample.c), so a classifier sees the
// pixels its Hugging Face image processor would have given it: separable filters, horizontal pass first, fixed-point
// weights and an 8-bit image between the passes.

import type { RgbImage } from './vae.js';

/** Pillow's resampling filters by the numbers `preprocessor_config.json` uses for `resample` (PIL.Image.Resampling). */
export const PIL_FILTERS = { 2: 'bilinear', 3: 'bicubic' } as const;
export type ResampleFilter = (typeof PIL_FILTERS)[keyof typeof PIL_FILTERS];

type Filter = { support: number; weight: (x: number) => number };

/** Resample.c: `bilinear_filter` (a triangle of support 1) and `bicubic_filter` (Keys, a = −0.5, support 2). */
const FILTERS: Record<ResampleFilter, Filter> = {
  bilinear: {
    support: 1,
    weight: (x) => {
      const t = Math.abs(x);
      return t < 1 ? 1 - t : 0;
    },
  },
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

/** Resample.c `PRECISION_BITS`: weights are integers scaled by 2^22 for 8-bit images. */
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** For each output pixel: the first input pixel it reads and the integer weights of the pixels from there. */
type Coefficients = { first: Int32Array; weights: Int32Array[] };

/**
 * Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc`: when shrinking, the filter widens by the scale, so
 * every input pixel counts (an antialiased shrink, unlike a plain bilinear lookup).
 */
function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const first = new Int32Array(outSize);
  const weights: Int32Array[] = [];
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    // C's (int) cast truncates toward zero
    const min = Math.max(Math.trunc(center - support + 0.5), 0);
    const max = Math.min(Math.trunc(center + support + 0.5), inSize);
    const raw = new Float64Array(max - min);
    let total = 0;
    for (let x = 0; x < raw.length; x++) {
      raw[x] = filter.weight((x + min - center + 0.5) / filterScale);
      total += raw[x];
    }
    const fixed = new Int32Array(raw.length);
    for (let x = 0; x < raw.length; x++) {
      const w = total === 0 ? 0 : raw[x] / total;
      fixed[x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    first[out] = min;
    weights.push(fixed);
  }
  return { first, weights };
}

const clip8 = (sum: number): number => {
  const value = Math.floor(sum / ONE);
  return value < 0 ? 0 : value > 255 ? 255 : value;
};

function resampleHorizontal(image: RgbImage, width: number, filter: Filter): RgbImage {
  const { first, weights } = coefficients(image.width, width, filter);
  const data = new Uint8Array(width * image.height * 3);
  for (let y = 0; y < image.height; y++) {
    const row = y * image.width * 3;
    for (let x = 0; x < width; x++) {
      const w = weights[x];
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = 0, p = row + first[x] * 3; k < w.length; k++, p += 3) {
        r += image.data[p] * w[k];
        g += image.data[p + 1] * w[k];
        b += image.data[p + 2] * w[k];
      }
      const q = (y * width + x) * 3;
      data[q] = clip8(r);
      data[q + 1] = clip8(g);
      data[q + 2] = clip8(b);
    }
  }
  return { width, height: image.height, data };
}

function resampleVertical(image: RgbImage, height: number, filter: Filter): RgbImage {
  const { first, weights } = coefficients(image.height, height, filter);
  const stride = image.width * 3;
  const data = new Uint8Array(image.width * height * 3);
  for (let y = 0; y < height; y++) {
    const w = weights[y];
    for (let x = 0; x < stride; x++) {
      let sum = HALF;
      for (let k = 0, p = first[y] * stride + x; k < w.length; k++, p += stride) sum += image.data[p] * w[k];
      data[y * stride + x] = clip8(sum);
    }
  }
  return { width: image.width, height, data };
}

/**
 * `image` resized to `width`×`height` the way Pillow's `Image.resize(size, filter)` does it (no `reducing_gap`):
 * each sum fits a double exactly (255 × 2^22 × a few hundred taps < 2^53), so the integer arithmetic is Pillow's.
 */
export function resizeLikePil(image: RgbImage, width: number, height: number, filter: ResampleFilter): RgbImage {
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) throw new RangeError(`cannot resize to ${width}×${height}`);
  const kernel = FILTERS[filter];
  let result = image;
  if (width !== image.width) result = resampleHorizontal(result, width, kernel);
  if (height !== image.height) result = resampleVertical(result, height, kernel);
  return result;
}
