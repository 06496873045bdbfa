import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  encodeForUpload,
  encodePng,
  IMAGE_FORMATS,
  OverBudgetError,
  type EncodedImage,
  type RgbImage,
} from '../../../src/render/index.js';

/** xorshift32: a deterministic byte stream for test images (seed 1 starts 270369, 67634689, 2647435461). */
function bytes(length: number, seed: number): Uint8Array {
  let state = seed >>> 0 || 1;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state >>> 24;
  }
  return out;
}

function noiseImage(width: number, height: number, seed = 1): RgbImage {
  return { width, height, data: bytes(width * height * 3, seed) };
}

async function decode(data: Buffer): Promise<{ format: string | undefined; width: number; height: number; pixels: Buffer; channels: number }> {
  const { format } = await sharp(data).metadata();
  const { data: pixels, info } = await sharp(data).raw().toBuffer({ resolveWithObject: true });
  return { format, width: info.width, height: info.height, channels: info.channels, pixels };
}

async function expectDecodesAsStated(result: EncodedImage): Promise<void> {
  const decoded = await decode(result.data);
  expect(decoded.format).toBe(result.format);
  expect([decoded.width, decoded.height]).toEqual([result.width, result.height]);
  expect([result.contentType, result.extension]).toEqual([IMAGE_FORMATS[result.format].contentType, IMAGE_FORMATS[result.format].extension]);
}

describe('encodePng', () => {
  it('round-trips the exact RGB bytes', async () => {
    const image = noiseImage(97, 61);
    const decoded = await decode(await encodePng(image));
    expect([decoded.format, decoded.width, decoded.height, decoded.channels]).toEqual(['png', 97, 61, 3]);
    expect(new Uint8Array(decoded.pixels)).toEqual(image.data);
  });

  it('reads a view into a larger buffer from its own offset', async () => {
    const backing = bytes(16 * 8 * 3 + 5, 7);
    const image: RgbImage = { width: 16, height: 8, data: backing.subarray(5) };
    const decoded = await decode(await encodePng(image));
    expect(new Uint8Array(decoded.pixels)).toEqual(image.data);
  });

  it('refuses malformed pixels', async () => {
    await expect(encodePng({ width: 4, height: 4, data: new Uint8Array(47) })).rejects.toThrow('a 4×4 RGB image needs 48 bytes, got 47');
  });
});

describe('encodeForUpload', () => {
  const noisy = noiseImage(128, 128, 3); // ~49 KB raw, incompressible: its PNG is larger than its WebP by far

  it('returns lossless PNG when it fits', async () => {
    const result = await encodeForUpload(noisy, 10 * 1024 * 1024);
    expect(result).toMatchObject({ format: 'png', contentType: 'image/png', extension: 'png', width: 128, height: 128 });
    expect(result.quality).toBeUndefined();
    await expectDecodesAsStated(result);
    expect(new Uint8Array((await decode(result.data)).pixels)).toEqual(noisy.data);
  });

  it('falls back to WebP under a budget the PNG is over', async () => {
    const png = await encodePng(noisy);
    const maxBytes = Math.floor(png.length * 0.6);
    const result = await encodeForUpload(noisy, maxBytes);
    expect(result).toMatchObject({ format: 'webp', quality: 90, width: 128, height: 128 });
    expect(result.data.length).toBeLessThanOrEqual(maxBytes);
    await expectDecodesAsStated(result);
  });

  it('walks the lossy ladder in order, JPEG included', async () => {
    const steps = [
      { format: 'webp', quality: 90 },
      { format: 'jpeg', quality: 50 },
    ] as const;
    const webp = await encodeForUpload(noisy, 1e9, { lossless: false, lossySteps: steps });
    expect(webp).toMatchObject({ format: 'webp', quality: 90 });
    const jpeg = await encodeForUpload(noisy, webp.data.length - 1, { lossless: false, lossySteps: steps });
    expect(jpeg).toMatchObject({ format: 'jpeg', quality: 50, contentType: 'image/jpeg', extension: 'jpg', width: 128, height: 128 });
    expect(jpeg.data.length).toBeLessThan(webp.data.length);
    await expectDecodesAsStated(jpeg);
  });

  it('downscales, keeping the aspect, when no quality fits', async () => {
    const wide = noiseImage(256, 128, 5);
    const maxBytes = 3000;
    const result = await encodeForUpload(wide, maxBytes, { minSide: 8 });
    expect(result.data.length).toBeLessThanOrEqual(maxBytes);
    expect(result.width).toBeLessThan(256);
    expect(Math.abs(result.width / result.height - 2)).toBeLessThan(0.05);
    await expectDecodesAsStated(result);
  });

  it('never returns more than the budget', async () => {
    const image = noiseImage(96, 64, 9);
    for (const maxBytes of [40_000, 12_000, 6000, 2500]) {
      const result = await encodeForUpload(image, maxBytes, { minSide: 4 });
      expect(result.data.length).toBeLessThanOrEqual(maxBytes);
      await expectDecodesAsStated(result);
    }
  });

  it('throws a clear error when even the smallest attempt is over the budget', async () => {
    const error = await encodeForUpload(noiseImage(64, 64), 50).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OverBudgetError);
    expect((error as OverBudgetError).maxBytes).toBe(50);
    expect((error as OverBudgetError).smallestBytes).toBeGreaterThan(50);
    expect((error as Error).message).toMatch(
      /^cannot encode a 64×64 image within 50 bytes: the smallest attempt \(jpeg quality 40 at 64×64\) took \d+ bytes$/,
    );
  });

  it('stops downscaling at minSide', async () => {
    const error = await encodeForUpload(noiseImage(256, 128), 200, { minSide: 32 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OverBudgetError);
    expect((error as Error).message).toMatch(/at 64×32\)/);
  });

  it('refuses a budget that is not a positive integer and an empty ladder', async () => {
    await expect(encodeForUpload(noisy, 0)).rejects.toThrow('maxBytes must be a positive integer, got 0');
    await expect(encodeForUpload(noisy, Number.NaN)).rejects.toThrow(RangeError);
    await expect(encodeForUpload(noisy, 1000, { lossySteps: [] })).rejects.toThrow('lossySteps must hold at least one step');
    await expect(encodeForUpload(noisy, 1000, { lossySteps: [{ format: 'webp', quality: 0 }] })).rejects.toThrow(RangeError);
  });
});
