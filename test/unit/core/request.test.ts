import { describe, expect, it } from 'vitest';
import { ASPECT_SIZES, ASPECTS, isAspect, isSeed, MAX_SEED, randomSeed } from '../../../src/core/request.js';

describe('aspect buckets', () => {
  it('has the nine SDXL sizes, each side a multiple of 64 and about one megapixel', () => {
    expect(ASPECTS).toEqual(['1:1', '4:3', '3:4', '3:2', '2:3', '16:9', '9:16', '21:9', '9:21']);
    for (const aspect of ASPECTS) {
      const { width, height } = ASPECT_SIZES[aspect];
      expect(width % 64).toBe(0);
      expect(height % 64).toBe(0);
      expect(width * height).toBeGreaterThan(0.9e6);
      expect(width * height).toBeLessThan(1.1e6);
      const [w, h] = aspect.split(':').map(Number);
      expect(Math.abs(width / height - w / h) / (w / h)).toBeLessThan(0.08);
    }
    expect(ASPECT_SIZES['16:9']).toEqual({ width: 1344, height: 768 });
  });

  it('recognises only its own names', () => {
    expect(isAspect('16:9')).toBe(true);
    expect(isAspect('16:10')).toBe(false);
    expect(isAspect('toString')).toBe(false);
  });
});

describe('seeds', () => {
  it('accepts integers from 0 to 2^53 − 1', () => {
    expect([0, 42, MAX_SEED].every(isSeed)).toBe(true);
    expect([-1, 1.5, MAX_SEED + 1, Number.NaN].some(isSeed)).toBe(false);
  });

  it('draws random seeds below 2^32 (torch keeps 32 bits)', () => {
    const seeds = Array.from({ length: 200 }, randomSeed);
    expect(seeds.every((seed) => isSeed(seed) && seed < 2 ** 32)).toBe(true);
    expect(new Set(seeds).size).toBeGreaterThan(190);
  });
});
