import { describe, expect, it } from 'vitest';
import { float16ToFloat32, float32ToFloat16 } from '../../../src/diffusion/index.js';

const halfOf = (values: number[]): number[] => [...float32ToFloat16(new Float32Array(values))];
const isHalfNaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

describe('fp16 conversion', () => {
  it('round-trips all 65,536 half values bit for bit (NaN payloads included)', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(all));
    const mismatches = all.filter((h, i) => back[i] !== h);
    expect(mismatches.length).toBe(0);
  });

  it('decodes known values, subnormals and specials', () => {
    const decoded = [...float16ToFloat32(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x3555]))];
    expect(decoded).toEqual([1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -0, Infinity, -Infinity, 0.333251953125]);
    expect(Object.is(decoded[6], -0)).toBe(true);
    expect(Number.isNaN(float16ToFloat32(new Uint16Array([0x7e00]))[0])).toBe(true);
  });

  it('rounds ties to even', () => {
    // halfway between 1 and 1 + 2^-10 goes down to 1 (even); halfway between 1 + 2^-10 and 1 + 2^-9 goes up
    expect(halfOf([1 + 2 ** -11, 1 + 3 * 2 ** -11])).toEqual([0x3c00, 0x3c02]);
    // just above a tie rounds up
    expect(halfOf([1 + 2 ** -11 + 2 ** -20])).toEqual([0x3c01]);
    // subnormal ties: 2^-25 is half of the smallest subnormal → 0; 3·2^-25 → 2·2^-24 (even)
    expect(halfOf([2 ** -25, 3 * 2 ** -25, -(2 ** -25)])).toEqual([0x0000, 0x0002, 0x8000]);
  });

  it('overflows to infinity past the largest half and keeps NaN a NaN', () => {
    expect(halfOf([65504, 65519.99, 65520, 1e10, -1e10, Infinity])).toEqual([0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00, 0x7c00]);
    const [nan] = halfOf([Number.NaN]);
    expect(isHalfNaN(nan)).toBe(true);
  });

  it('carries a rounded-up subnormal into the smallest normal', () => {
    expect(halfOf([2 ** -14 - 2 ** -26])).toEqual([0x0400]);
  });

  it('agrees with a nearest-value search for 200,000 float32 values across the whole half range', () => {
    // an independent rule: the nearest finite half by value, ties to the even bit pattern
    const finite = [...float16ToFloat32(new Uint16Array(0x7c00).map((_, i) => i))]; // 0 … 65504, increasing
    let state = 12345;
    const next = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32;
    };
    const values = new Float32Array(200_000).map(() => Math.fround((next() < 0.5 ? -1 : 1) * 65504 * next() ** 6));
    const got = float32ToFloat16(values);
    let wrong = 0;
    values.forEach((value, i) => {
      const magnitude = Math.abs(value);
      let lo = 0;
      let hi = finite.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (finite[mid] <= magnitude) lo = mid;
        else hi = mid;
      }
      const below = magnitude - finite[lo];
      const above = finite[hi] - magnitude;
      const nearest = below < above ? lo : above < below ? hi : lo % 2 === 0 ? lo : hi;
      const expected = (value < 0 || Object.is(value, -0) ? 0x8000 : 0) | nearest;
      if (got[i] !== expected) wrong++;
    });
    expect(wrong).toBe(0);
  });

  it('reads a Float32Array view at an offset', () => {
    const backing = new Float32Array([9, 1, 2]);
    expect([...float32ToFloat16(backing.subarray(1))]).toEqual([0x3c00, 0x4000]);
  });
});
