// Seeded Gaussian noise, bit-exact with CPU torch.randn(float32) (spec/lightning.md §5), and slerp for variations.
//
// Reference values it reproduces (torch 1.13.1 on x86-64 AVX2, the same AVX2 kernel in torch 2.x):
//   torch.randn([1,4,128,128], generator=torch.Generator().manual_seed(0))[0,0,0,0] == -1.1258398294448853
//   torch.randn(3, generator=torch.Generator().manual_seed(0)) == [1.5409960746765137, -0.293428897857666, -2.1787893772125244]

import { fma32, fround } from './float32.js';
import type { NoiseSpec } from './pipeline.js';

const STATE_SIZE = 624;
const SHIFT_SIZE = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/**
 * MT19937 exactly as torch's CPU generator runs it (`MT19937RNGEngine.h`): seeded with the low 32 bits of the seed.
 * Reference: seed 0 gives 2357136044, 2546248239, 3071714933, 3626093760 (the same as C++ std::mt19937(0)).
 */
export class Mt19937 {
  private readonly state = new Uint32Array(STATE_SIZE);
  private index = STATE_SIZE;

  constructor(seed: number | bigint) {
    const state = this.state;
    state[0] = lowSeedBits(seed);
    for (let j = 1; j < STATE_SIZE; j++) {
      const previous = state[j - 1];
      state[j] = Math.imul(1812433253, previous ^ (previous >>> 30)) + j;
    }
  }

  /** The next 32-bit output, tempered. */
  nextUint32(): number {
    if (this.index >= STATE_SIZE) this.twist();
    return temper(this.state[this.index++]);
  }

  /** Fills `out` with the next outputs, as `nextUint32` would one by one (faster for many). */
  fill(out: Uint32Array): Uint32Array {
    const state = this.state;
    let written = 0;
    while (written < out.length) {
      if (this.index >= STATE_SIZE) this.twist();
      const end = Math.min(STATE_SIZE, this.index + out.length - written);
      for (let i = this.index; i < end; i++) out[written++] = temper(state[i]);
      this.index = end;
    }
    return out;
  }

  private twist(): void {
    const state = this.state;
    for (let k = 0; k < STATE_SIZE; k++) {
      const y = (state[k] & UPPER_MASK) | (state[(k + 1) % STATE_SIZE] & LOWER_MASK);
      state[k] = state[(k + SHIFT_SIZE) % STATE_SIZE] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }
}

function temper(value: number): number {
  let y = value;
  y ^= y >>> 11;
  y ^= (y << 7) & 0x9d2c5680;
  y ^= (y << 15) & 0xefc60000;
  y ^= y >>> 18;
  return y >>> 0;
}

/** torch's `manual_seed` keeps only the low 32 bits (negative seeds wrap as uint64 first). */
function lowSeedBits(seed: number | bigint): number {
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
    throw new RangeError(`seed must be an integer no larger than 2^53-1, got ${seed}`);
  }
  return Number(BigInt.asUintN(32, BigInt(seed)));
}

const TWO_PI_F = fround(2 * Math.PI);
const FLOAT_UNIFORM_SCALE = 2 ** -24;

// cephes logf constants (avx_mathfun.h log256_ps), rounded to float32 as the kernel stores them
const MIN_NORM_POS = 2 ** -126;
const SQRTHF = fround(0.707106781186547524);
const LOG_P0 = fround(7.0376836292e-2);
const LOG_P1 = fround(-1.151461031e-1);
const LOG_P2 = fround(1.1676998740e-1);
const LOG_P3 = fround(-1.2420140846e-1);
const LOG_P4 = fround(1.4249322787e-1);
const LOG_P5 = fround(-1.6668057665e-1);
const LOG_P6 = fround(2.0000714765e-1);
const LOG_P7 = fround(-2.4999993993e-1);
const LOG_P8 = fround(3.3333331174e-1);
const LOG_Q1 = fround(-2.12194440e-4);
const LOG_Q2 = fround(0.693359375);

// cephes sinf/cosf constants (avx_mathfun.h sincos256_ps)
const FOUR_OVER_PI = fround(1.27323954473516);
const DP1 = fround(-0.78515625);
const DP2 = fround(-2.4187564849853515625e-4);
const DP3 = fround(-3.77489497744594108e-8);
const COS_P0 = fround(2.443315711809948e-5);
const COS_P1 = fround(-1.388731625493765e-3);
const COS_P2 = fround(4.166664568298827e-2);
const SIN_P0 = fround(-1.9515295891e-4);
const SIN_P1 = fround(8.3321608736e-3);
const SIN_P2 = fround(-1.6666654611e-1);

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** Natural log of x in (0, 1] as `log256_ps` computes it, with GCC's fused multiply-adds (spec §5.3 LOG). */
function logKernel(input: number): number {
  scratch[0] = input < MIN_NORM_POS ? MIN_NORM_POS : input;
  const bits = scratchBits[0];
  let e = fround((bits >>> 23) - 127 + 1);
  scratchBits[0] = (bits & 0x807fffff) | 0x3f000000;
  const m = scratch[0];
  let x = fround(m - 1);
  if (m < SQRTHF) {
    e = fround(e - 1);
    x = fround(x + m);
  }
  const z = fround(x * x);
  let y = fma32(LOG_P0, x, LOG_P1);
  y = fma32(y, x, LOG_P2);
  y = fma32(y, x, LOG_P3);
  y = fma32(y, x, LOG_P4);
  y = fma32(y, x, LOG_P5);
  y = fma32(y, x, LOG_P6);
  y = fma32(y, x, LOG_P7);
  y = fma32(y, x, LOG_P8);
  y = fround(y * x);
  y = fma32(y, z, fround(e * LOG_Q1));
  y = fround(y - fround(0.5 * z));
  return fma32(e, LOG_Q2, fround(x + y));
}

/**
 * Box–Muller for one block of 16 uniforms as `normal_fill_16_AVX2` does it (spec §5.3), written into
 * `out[offset … offset+15]` from `uniforms[from … from+15]`.
 */
function normalBlock(uniforms: Float32Array, from: number, out: Float32Array, offset: number): void {
  for (let lane = 0; lane < 8; lane++) {
    const u1 = fround(1 - uniforms[from + lane]);
    const u2 = uniforms[from + 8 + lane];
    const radius = fround(Math.sqrt(fround(-2 * logKernel(u1))));
    const theta = fround(TWO_PI_F * u2);

    // sincos256_ps: reduce by multiples of pi/4, then the cephes polynomials
    let j = Math.trunc(fround(theta * FOUR_OVER_PI));
    j = (j + 1) & ~1;
    const y = j;
    const swapSin = (j & 4) !== 0;
    const usePolyOrder = (j & 2) === 0;
    const negCos = (~(j - 2) & 4) !== 0;
    let x = fma32(y, DP1, theta);
    x = fma32(y, DP2, x);
    x = fma32(y, DP3, x);
    const z = fround(x * x);

    let yc = fma32(COS_P0, z, COS_P1);
    yc = fma32(yc, z, COS_P2);
    yc = fround(yc * z);
    yc = fma32(yc, z, -fround(0.5 * z));
    yc = fround(yc + 1);

    let ys = fma32(SIN_P0, z, SIN_P1);
    ys = fma32(ys, z, SIN_P2);
    ys = fround(ys * z);
    ys = fma32(ys, x, x);

    // the kernel selects with masks and adds, so a -0 comes out as +0: keep that
    let sin = (usePolyOrder ? 0 : yc) + (usePolyOrder ? ys : 0);
    let cos = (usePolyOrder ? yc : yc - yc) + (usePolyOrder ? ys - ys : ys);
    if (swapSin) sin = -sin;
    if (negCos) cos = -cos;

    out[offset + lane] = fround(radius * cos);
    out[offset + 8 + lane] = fround(radius * sin);
  }
}

/** Scalar path for fewer than 16 values: `normal_distribution<double>` with its cached second sample (spec §5.2c). */
function scalarNormals(rng: Mt19937, count: number, out: Float32Array): void {
  let cached: number | undefined;
  for (let i = 0; i < count; i++) {
    if (cached !== undefined) {
      out[i] = cached;
      cached = undefined;
      continue;
    }
    const u1 = doubleUniform(rng);
    const u2 = doubleUniform(rng);
    const radius = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    cached = radius * Math.sin(theta);
    out[i] = radius * Math.cos(theta);
  }
}

/** A 53-bit double uniform from two draws, the first one high (`random64`). */
function doubleUniform(rng: Mt19937): number {
  const high = rng.nextUint32();
  const low = rng.nextUint32();
  return ((high & 0x1fffff) * 2 ** 32 + low) * 2 ** -53;
}

/**
 * Standard normal noise, bit-exact with `torch.randn(shape, generator=torch.Generator().manual_seed(seed))` in
 * float32 on x86-64 (the AVX2 kernel). Only the low 32 bits of the seed matter, as in torch.
 * @param shape dimensions, e.g. `[1, 4, 128, 128]`; the result is that many values in row-major order.
 */
export function torchRandn(seed: number | bigint, shape: readonly number[]): Float32Array {
  const count = shape.reduce((total, size) => {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`shape must hold non-negative integers, got [${shape.join(', ')}]`);
    return total * size;
  }, 1);
  const rng = new Mt19937(seed);
  const out = new Float32Array(count);
  if (count < 16) {
    scalarNormals(rng, count, out);
    return out;
  }
  const hasTail = count % 16 !== 0;
  const draws = rng.fill(new Uint32Array(hasTail ? count + 16 : count));
  const uniforms = new Float32Array(draws.length);
  for (let i = 0; i < draws.length; i++) uniforms[i] = (draws[i] & 0xffffff) * FLOAT_UNIFORM_SCALE;
  for (let block = 0; block + 16 <= count; block += 16) normalBlock(uniforms, block, out, block);
  // torch recomputes the last 16 values from 16 fresh uniforms, overwriting part of the last full block
  if (hasTail) normalBlock(uniforms, count, out, count - 16);
  return out;
}

/**
 * Spherical interpolation between two noise tensors of the same length: `t = 0` gives `a`, `t = 1` gives `b`.
 * Nearly parallel inputs fall back to linear interpolation. Used for variations (design.md, Seeds).
 */
export function slerpNoise(a: Float32Array, b: Float32Array, t: number): Float32Array {
  if (a.length !== b.length) throw new RangeError(`slerpNoise needs tensors of one length, got ${a.length} and ${b.length}`);
  if (!(t >= 0 && t <= 1)) throw new RangeError(`slerpNoise strength must be between 0 and 1, got ${t}`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  const out = new Float32Array(a.length);
  const cosine = normA > 0 && normB > 0 ? dot / Math.sqrt(normA * normB) : 1;
  let weightA: number;
  let weightB: number;
  if (Math.abs(cosine) > 0.9995) {
    weightA = 1 - t;
    weightB = t;
  } else {
    const omega = Math.acos(cosine);
    const sinOmega = Math.sin(omega);
    weightA = Math.sin((1 - t) * omega) / sinOmega;
    weightB = Math.sin(t * omega) / sinOmega;
  }
  for (let i = 0; i < a.length; i++) out[i] = weightA * a[i] + weightB * b[i];
  return out;
}

/**
 * The unit noise of every image of a request, one after another ([batch, 4, height/8, width/8]). Pure and about
 * 4.5 ms per 1024² image on one core, so the worker runs it on a thread (noise-thread.ts) while the GPU works.
 */
export function requestNoise(request: { images: readonly NoiseSpec[]; width: number; height: number }): Float32Array {
  const shape = [1, 4, request.height / 8, request.width / 8];
  const imageSize = 4 * (request.height / 8) * (request.width / 8);
  const noise = new Float32Array(request.images.length * imageSize);
  request.images.forEach((spec, b) => noise.set(imageNoise(spec, shape), b * imageSize));
  return noise;
}

/** One image's unit noise: its seed's `torch.randn`, slerped toward each variation seed's noise in turn. */
function imageNoise(spec: NoiseSpec, shape: readonly number[]): Float32Array {
  let noise = torchRandn(spec.seed, shape);
  for (const { seed, strength } of spec.variations ?? []) noise = slerpNoise(noise, torchRandn(seed, shape), strength);
  return noise;
}
