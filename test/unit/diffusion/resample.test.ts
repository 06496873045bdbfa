import { describe, expect, it } from 'vitest';
import { resizeLikePil } from '../../../src/diffusion/resample.js';
import type { RgbImage } from '../../../src/diffusion/vae.js';

/** A one-row grey image from values, as RGB with equal channels. */
const row = (values: readonly number[]): RgbImage => ({ width: values.length, height: 1, data: Uint8Array.from(values.flatMap((v) => [v, v, v])) });
const greys = (image: RgbImage): number[] => Array.from({ length: image.width * image.height }, (_, i) => image.data[i * 3]);

describe('resizing like Pillow', () => {
  it('shrinks with the filter widened by the scale (an antialiased bilinear, Resample.c)', () => {
    // 4 → 2: output 0 is centred on 1.0 with support 2, so inputs 0, 1, 2 weigh 0.75, 0.75, 0.25 (÷1.75):
    // 100·3/7 + 200·1/7 = 71.43 → 71; output 1 reads inputs 1, 2, 3 at 1/7, 3/7, 3/7: 100/7 + 600/7 + 765/7 = 209.3 → 209
    expect(greys(resizeLikePil(row([0, 100, 200, 255]), 2, 1, 'bilinear'))).toEqual([71, 209]);
  });

  it('enlarges with plain interpolation and clamps at the edges', () => {
    // 2 → 4: centres 0.25, 0.75, 1.25, 1.75 in input pixels; the first reads input 0 alone (its other tap is outside)
    expect(greys(resizeLikePil(row([0, 200]), 4, 1, 'bilinear'))).toEqual([0, 50, 150, 200]);
  });

  it('keeps a flat image flat, in both filters and both directions', () => {
    const flat: RgbImage = { width: 37, height: 23, data: new Uint8Array(37 * 23 * 3).fill(173) };
    for (const filter of ['bilinear', 'bicubic'] as const) {
      for (const [w, h] of [[384, 384], [5, 3], [37, 100]] as const) {
        const out = resizeLikePil(flat, w, h, filter);
        expect(out.width, filter).toBe(w);
        expect(out.height).toBe(h);
        expect(out.data.every((v) => v === 173), `${filter} ${w}×${h}`).toBe(true);
      }
    }
  });

  it('overshoots and clips with bicubic at a hard edge, as Keys\' kernel does', () => {
    const out = greys(resizeLikePil(row([0, 0, 0, 255, 255, 255]), 12, 1, 'bicubic'));
    expect(out[0]).toBe(0);
    expect(out[11]).toBe(255);
    // monotone through the edge apart from the clipped ringing
    for (let i = 1; i < out.length; i++) expect(out[i]).toBeGreaterThanOrEqual(out[i - 1]);
  });

  it('returns the image itself when the size is unchanged', () => {
    const image = row([1, 2, 3]);
    expect(resizeLikePil(image, 3, 1, 'bilinear')).toBe(image);
    expect(() => resizeLikePil(image, 0, 1, 'bilinear')).toThrow(RangeError);
  });
});
