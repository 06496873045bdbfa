import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Mt19937, slerpNoise, torchRandn } from '../../../src/diffusion/index.js';

const bits = (value: number): string => {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  return `0x${view.getUint32(0).toString(16).padStart(8, '0')}`;
};

describe('Mt19937', () => {
  it('matches std::mt19937 for seeds 0 and 42 (spec §5.2)', () => {
    const zero = new Mt19937(0);
    expect([zero.nextUint32(), zero.nextUint32(), zero.nextUint32(), zero.nextUint32()]).toEqual([
      2357136044, 2546248239, 3071714933, 3626093760,
    ]);
    const fortyTwo = new Mt19937(42);
    expect([fortyTwo.nextUint32(), fortyTwo.nextUint32(), fortyTwo.nextUint32(), fortyTwo.nextUint32()]).toEqual([
      1608637542, 3421126067, 4083286876, 787846414,
    ]);
  });

  it('keeps only the low 32 bits of the seed, as torch does', () => {
    const wrapped = new Mt19937(2 ** 32 + 5);
    const plain = new Mt19937(5);
    expect(wrapped.nextUint32()).toBe(plain.nextUint32());
    expect(new Mt19937(-1n).nextUint32()).toBe(new Mt19937(0xffffffff).nextUint32());
  });
});

describe('torchRandn against the spec §5.3 test vectors', () => {
  const cases: { seed: number; shape: number[]; expected: Record<number, string> }[] = [
    {
      seed: 0,
      shape: [1, 4, 128, 128],
      expected: { 0: '0xbf901b85', 1: '0xbf93808a', 7: '0xc0075fc1', 8: '0x3ea50138', 15: '0xbe7d367c', 16: '0xbfad23c2', 65535: '0xbfba9953' },
    },
    { seed: 42, shape: [1, 4, 128, 128], expected: { 0: '0x3ff6a529', 65535: '0x3fcf8d24' } },
    { seed: 0, shape: [1, 4, 125, 125], expected: { 62483: '0x3e9c99d3', 62484: '0x4001efa4', 62499: '0x3f91c5d2' } },
    { seed: 0, shape: [1, 4, 64, 64], expected: { 16383: '0xbf8a02b8' } },
  ];
  for (const { seed, shape, expected } of cases) {
    it(`seed ${seed}, [${shape.join(',')}]`, () => {
      const noise = torchRandn(seed, shape);
      const got = Object.fromEntries(Object.keys(expected).map((index) => [index, bits(noise[Number(index)])]));
      expect(got).toEqual(expected);
    });
  }

  it('seed 42 values given as decimals', () => {
    const noise = torchRandn(42, [1, 4, 128, 128]);
    expect([noise[1], noise[7], noise[8]]).toEqual([1.4872840642929077, -1.6046669483184814, -0.7521352767944336]);
  });

  it('takes the double-precision scalar path below 16 values', () => {
    expect([...torchRandn(0, [3])]).toEqual([1.5409960746765137, -0.293428897857666, -2.1787893772125244]);
  });
});

describe('torchRandn against whole tensors recorded from torch (test/reference/torch_randn.py)', () => {
  const reference = JSON.parse(readFileSync(new URL('../../reference/torch-randn.json', import.meta.url), 'utf8')) as {
    tool: string;
    cases: { seed: number; shape: number[]; sha256: string; first: number[]; last: number[] }[];
  };
  for (const { seed, shape, sha256, first, last } of reference.cases) {
    it(`seed ${seed}, [${shape.join(',')}] equals ${reference.tool} bit for bit`, () => {
      const noise = torchRandn(BigInt(seed), shape);
      expect([...noise.subarray(0, 4)]).toEqual(first.slice(0, noise.length));
      expect([...noise.subarray(Math.max(0, noise.length - 4))]).toEqual(last);
      expect(createHash('sha256').update(new Uint8Array(noise.buffer)).digest('hex')).toBe(sha256);
    });
  }
});

describe('torchRandn contract', () => {
  it('is deterministic per seed and differs between seeds', () => {
    expect(torchRandn(7, [1, 4, 16, 16])).toEqual(torchRandn(7, [1, 4, 16, 16]));
    expect(torchRandn(7, [1, 4, 16, 16])).not.toEqual(torchRandn(8, [1, 4, 16, 16]));
  });

  it('accepts a bigint seed equal to the number seed', () => {
    expect(torchRandn(123n, [64])).toEqual(torchRandn(123, [64]));
  });

  it('looks like a standard normal over a 1024² latent', () => {
    const noise = torchRandn(1, [1, 4, 128, 128]);
    const mean = noise.reduce((sum, v) => sum + v, 0) / noise.length;
    const variance = noise.reduce((sum, v) => sum + (v - mean) ** 2, 0) / noise.length;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
  });

  it('rejects seeds that are not safe integers and malformed shapes', () => {
    expect(() => torchRandn(1.5, [4])).toThrow(/seed must be an integer/);
    expect(() => torchRandn(2 ** 60, [4])).toThrow(/seed must be an integer/);
    expect(() => torchRandn(1, [2, -1])).toThrow(/shape must hold non-negative integers/);
  });

  it('returns an empty tensor for a zero-sized shape', () => {
    expect(torchRandn(1, [0, 4])).toHaveLength(0);
  });
});

describe('slerpNoise', () => {
  const a = torchRandn(1, [1, 4, 32, 32]);
  const b = torchRandn(2, [1, 4, 32, 32]);
  const norm = (x: Float32Array): number => Math.sqrt(x.reduce((sum, v) => sum + v * v, 0));

  it('returns the ends at t = 0 and t = 1', () => {
    const start = slerpNoise(a, b, 0);
    const end = slerpNoise(a, b, 1);
    start.forEach((v, i) => expect(v).toBeCloseTo(a[i], 5));
    end.forEach((v, i) => expect(v).toBeCloseTo(b[i], 5));
  });

  it('keeps the norm of nearly orthogonal noise (unlike a linear mix)', () => {
    const middle = slerpNoise(a, b, 0.5);
    expect(norm(middle) / norm(a)).toBeGreaterThan(0.97);
    expect(norm(middle) / norm(a)).toBeLessThan(1.03);
    const linear = a.map((v, i) => 0.5 * v + 0.5 * b[i]);
    expect(norm(linear) / norm(a)).toBeLessThan(0.8);
  });

  it('moves further from a as t grows', () => {
    const distance = (x: Float32Array): number => norm(x.map((v, i) => v - a[i]));
    expect(distance(slerpNoise(a, b, 0.1))).toBeLessThan(distance(slerpNoise(a, b, 0.3)));
  });

  it('falls back to a linear mix for parallel inputs', () => {
    const twice = a.map((v) => 2 * v);
    const mixed = slerpNoise(a, twice, 0.5);
    mixed.forEach((v, i) => expect(v).toBeCloseTo(1.5 * a[i], 5));
  });

  it('rejects mismatched lengths and strengths outside 0…1', () => {
    expect(() => slerpNoise(a, b.subarray(1), 0.5)).toThrow(/one length/);
    expect(() => slerpNoise(a, b, 1.5)).toThrow(/between 0 and 1/);
    expect(() => slerpNoise(a, b, Number.NaN)).toThrow(/between 0 and 1/);
  });
});
