import { describe, expect, it } from 'vitest';
import { eulerStep, lightningSchedule, scaleModelInput, trainingSigmas } from '../../../src/diffusion/index.js';

const bits = (value: number): string => {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  return `0x${view.getUint32(0).toString(16).padStart(8, '0')}`;
};

// spec/lightning.md §3.5b: the torch 2.x values, as float32 bits
const TORCH2_TABLE: Record<number, { timesteps: number[]; sigmas: string[] }> = {
  1: { timesteps: [999], sigmas: ['0x4169d598', '0x00000000'] },
  2: { timesteps: [999, 499], sigmas: ['0x4169d598', '0x3fce7315', '0x00000000'] },
  4: { timesteps: [999, 749, 499, 249], sigmas: ['0x4169d598', '0x40829d8a', '0x3fce7315', '0x3f3175e9', '0x00000000'] },
  8: {
    timesteps: [999, 874, 749, 624, 499, 374, 249, 124],
    sigmas: ['0x4169d598', '0x40e983ec', '0x40829d8a', '0x401f85a4', '0x3fce7315', '0x3f88d36a', '0x3f3175e9', '0x3ecba569', '0x00000000'],
  },
};

describe('lightningSchedule', () => {
  for (const [steps, expected] of Object.entries(TORCH2_TABLE)) {
    it(`matches torch 2.x bit for bit at ${steps} step(s)`, () => {
      const schedule = lightningSchedule(Number(steps));
      expect([...schedule.timesteps]).toEqual(expected.timesteps);
      expect([...schedule.sigmas].map(bits)).toEqual(expected.sigmas);
      expect(bits(schedule.initNoiseSigma)).toBe('0x4169d598');
      expect(schedule.initNoiseSigma).toBe(14.614646911621094);
    });
  }

  it('gives the decimal sigmas the spec prints for 8 steps', () => {
    expect([...lightningSchedule(8).sigmas]).toEqual([
      14.614646911621094, 7.297353744506836, 4.081730842590332, 2.4925317764282227, 1.6128870248794556,
      1.0689518451690674, 0.6932054162025452, 0.39774635434150696, 0,
    ]);
  });

  it("uses diffusers' float rounding for 3 steps (999, 666, 332; integer-ratio ports get 998)", () => {
    const schedule = lightningSchedule(3);
    expect([...schedule.timesteps]).toEqual([999, 666, 332]);
    expect(schedule.sigmas[1]).toBeCloseTo(2.9183083, 5);
    expect(schedule.sigmas[2]).toBeCloseTo(0.9292147, 5);
  });

  it('gives n decreasing timesteps from 999 and n + 1 sigmas ending at 0 for every n from 1 to 1000', () => {
    const sigmaTable = trainingSigmas();
    const wrong: number[] = [];
    for (let steps = 1; steps <= 1000; steps++) {
      const { timesteps, sigmas, initNoiseSigma } = lightningSchedule(steps);
      const ok =
        timesteps.length === steps &&
        sigmas.length === steps + 1 &&
        timesteps[0] === 999 &&
        timesteps[steps - 1] >= 0 &&
        sigmas[steps] === 0 &&
        initNoiseSigma === sigmaTable[999] &&
        timesteps.every((t, i) => (i === 0 || t < timesteps[i - 1]) && sigmas[i] === sigmaTable[t]);
      if (!ok) wrong.push(steps);
    }
    expect(wrong).toEqual([]);
  });

  it('has the training sigmas of the spec at both ends (§3.1)', () => {
    const sigmas = trainingSigmas();
    expect(sigmas).toHaveLength(1000);
    expect(sigmas[0]).toBeCloseTo(0.0291675329, 8);
    expect(sigmas[999]).toBe(14.614646911621094);
    for (let t = 1; t < 1000; t++) expect(sigmas[t]).toBeGreaterThan(sigmas[t - 1]);
  });

  it('rejects step counts that are not integers from 1 to 1000', () => {
    for (const bad of [0, -1, 1.5, 1001, Number.NaN]) expect(() => lightningSchedule(bad)).toThrow(/steps must be an integer from 1 to 1000/);
  });
});

describe('scaleModelInput', () => {
  it('divides by the float32 sqrt(sigma² + 1) of spec §3.6', () => {
    const { sigmas } = lightningSchedule(8);
    const divisors = [4.2024431228637695, 1.897736668586731, 1.2167718410491943, 1.0761979818344116];
    [2, 4, 6, 7].forEach((step, k) => {
      const scaled = scaleModelInput(new Float32Array([divisors[k], 1, -3]), sigmas[step]);
      expect(scaled[0]).toBe(1);
      expect(scaled[1]).toBe(Math.fround(1 / divisors[k]));
      expect(scaled[2]).toBe(Math.fround(-3 / divisors[k]));
    });
  });

  it('divides rather than multiplying by a reciprocal, as diffusers does', () => {
    // 14.648818 is the torch 2.x divisor for sigma 0x4169d598; x·(1/d) and x/d differ in the last bit for this x
    const sigma = lightningSchedule(1).sigmas[0];
    const divisor = Math.fround(Math.sqrt(Math.fround(Math.fround(sigma * sigma) + 1)));
    let x = 1;
    for (let tries = 0; tries < 10_000 && Math.fround(x / divisor) === Math.fround(x * Math.fround(1 / divisor)); tries++) {
      x = Math.fround(x + 0.001);
    }
    expect(Math.fround(x / divisor)).not.toBe(Math.fround(x * Math.fround(1 / divisor)));
    expect(scaleModelInput(new Float32Array([x]), sigma)[0]).toBe(Math.fround(x / divisor));
  });

  it('leaves the input untouched', () => {
    const input = new Float32Array([1, 2]);
    scaleModelInput(input, 3);
    expect([...input]).toEqual([1, 2]);
  });
});

describe('eulerStep', () => {
  const sample = new Float32Array([1.5, -2.25, 0.1, 7]);
  const output = new Float32Array([0.3, -0.7, 1.9, 0.05]);

  it('follows diffusers: x0 = x − σ·out, d = (x − x0)/σ, x + d·(σnext − σ) in float32', () => {
    const [sigma, sigmaNext] = [14.614646911621094, 4.081730842590332];
    const next = eulerStep(sample, output, sigma, sigmaNext, 'epsilon');
    sample.forEach((x, i) => {
      const x0 = Math.fround(x - Math.fround(sigma * output[i]));
      const d = Math.fround(Math.fround(x - x0) / sigma);
      expect(next[i]).toBe(Math.fround(x + Math.fround(d * Math.fround(sigmaNext - sigma))));
    });
  });

  it('ends on the predicted clean latent when sigmaNext is 0', () => {
    const sigma = 0.6932054162025452;
    const next = eulerStep(sample, output, sigma, 0, 'epsilon');
    sample.forEach((x, i) => expect(next[i]).toBeCloseTo(x - sigma * output[i], 5));
  });

  it('takes the model output as the clean latent for "sample" prediction (the 1-step x0 checkpoint)', () => {
    const next = eulerStep(sample, output, 14.614646911621094, 0, 'sample');
    output.forEach((v, i) => expect(next[i]).toBeCloseTo(v, 5));
    expect(next).not.toEqual(eulerStep(sample, output, 14.614646911621094, 0, 'epsilon'));
  });

  it('rejects a model output of another length', () => {
    expect(() => eulerStep(sample, output.subarray(1), 1, 0, 'epsilon')).toThrow(/as long as the sample/);
  });
});
