// SDXL-Lightning's scheduler: diffusers' EulerDiscreteScheduler with "trailing" spacing, float32 as on torch 2.x
// (spec/lightning.md §3; diffusers schedulers/scheduling_euler_discrete.py). A schedule is a value, not a stateful object.

import { fma32, fround, roundHalfToEven } from './float32.js';

/** What the model's UNet predicts: noise (`epsilon`, the 2/4/8-step checkpoints) or the clean latent (`sample`, 1 step). */
export type PredictionType = 'epsilon' | 'sample';

export const PREDICTION_TYPES = ['epsilon', 'sample'] as const satisfies readonly PredictionType[];

/** SDXL base `scheduler_config.json`: scaled_linear betas over 1000 training steps. */
const TRAIN_TIMESTEPS = 1000;
const BETA_START = 0.00085;
const BETA_END = 0.012;

export type LightningSchedule = {
  /** The UNet's timestep for each step, e.g. 999, 749, 499, 249 for 4 steps (float32 values). */
  timesteps: Float32Array;
  /** sigma for each step and a final 0: `steps + 1` values. Step i goes from `sigmas[i]` to `sigmas[i + 1]`. */
  sigmas: Float32Array;
  /** Multiplier of unit Gaussian noise for the first latent: the largest sigma for trailing spacing. */
  initNoiseSigma: number;
};

/**
 * sigma(t) for t = 0…999 as torch 2.x computes it (spec §3.5b): the float32 linspace of sqrt(beta) as a scalar loop
 * with one fused multiply-add per element, squared in float32; `alphas_cumprod` accumulated in double and rounded per
 * element; `sqrt((1 − ᾱ)/ᾱ)` in float32.
 */
export function trainingSigmas(): Float32Array {
  const start = fround(Math.sqrt(BETA_START));
  const end = fround(Math.sqrt(BETA_END));
  const last = TRAIN_TIMESTEPS - 1;
  const step = fround(fround(end - start) / last);
  const halfway = TRAIN_TIMESTEPS / 2;
  const sigmas = new Float32Array(TRAIN_TIMESTEPS);
  let cumulative = 1;
  for (let i = 0; i < TRAIN_TIMESTEPS; i++) {
    const root = i < halfway ? fma32(step, i, start) : fma32(-step, last - i, end);
    const beta = fround(root * root);
    const alpha = fround(1 - beta);
    cumulative *= alpha;
    const alphaCumprod = fround(cumulative);
    sigmas[i] = Math.sqrt(fround(fround(1 - alphaCumprod) / alphaCumprod));
  }
  return sigmas;
}

/**
 * Trailing timesteps as diffusers builds them: `round(arange(1000, 0, −1000/n)) − 1` with numpy's arange (start plus
 * i times the first difference) and numpy's round (halves to even). For some n above 50 numpy's length rounding
 * yields one element too many (a timestep of −1); only the first n are kept, so every n gets n steps.
 */
function trailingTimesteps(steps: number): number[] {
  const ratio = TRAIN_TIMESTEPS / steps;
  const delta = TRAIN_TIMESTEPS - ratio - TRAIN_TIMESTEPS;
  return Array.from({ length: steps }, (_, i) => roundHalfToEven(TRAIN_TIMESTEPS + i * delta) - 1);
}

/**
 * The Lightning schedule for `steps` inference steps (1…1000; the checkpoints exist for 1, 2, 4 and 8).
 * Exact to the bit for torch 2.x (spec §3.5b). Example: `lightningSchedule(4).timesteps` is 999, 749, 499, 249.
 */
export function lightningSchedule(steps: number): LightningSchedule {
  if (!Number.isInteger(steps) || steps < 1 || steps > TRAIN_TIMESTEPS) {
    throw new RangeError(`steps must be an integer from 1 to ${TRAIN_TIMESTEPS}, got ${steps}`);
  }
  const trainSigmas = trainingSigmas();
  const timesteps = trailingTimesteps(steps);
  const sigmas = new Float32Array(timesteps.length + 1);
  timesteps.forEach((t, i) => {
    sigmas[i] = trainSigmas[t];
  });
  return {
    timesteps: Float32Array.from(timesteps),
    sigmas,
    initNoiseSigma: sigmas.reduce((max, sigma) => Math.max(max, sigma), 0),
  };
}

/** The UNet input for a step: `sample / sqrt(sigma² + 1)` in float32, divided as diffusers divides. */
export function scaleModelInput(sample: Float32Array, sigma: number): Float32Array {
  const divisor = fround(Math.sqrt(fround(fround(sigma * sigma) + 1)));
  const out = new Float32Array(sample.length);
  for (let i = 0; i < sample.length; i++) out[i] = sample[i] / divisor;
  return out;
}

/**
 * One Euler step from `sigma` to `sigmaNext` (no churn), float32 in diffusers' operation order (spec §3.4):
 * `x0 = x − σ·out` (epsilon) or `x0 = out` (sample); `d = (x − x0)/σ`; `x + d·(σNext − σ)`.
 */
export function eulerStep(
  sample: Float32Array,
  modelOutput: Float32Array,
  sigma: number,
  sigmaNext: number,
  prediction: PredictionType,
): Float32Array {
  if (sample.length !== modelOutput.length) {
    throw new RangeError(`eulerStep needs a model output as long as the sample: ${modelOutput.length} vs ${sample.length}`);
  }
  const sigmaF = fround(sigma);
  const dt = fround(fround(sigmaNext) - sigmaF);
  const out = new Float32Array(sample.length);
  for (let i = 0; i < sample.length; i++) {
    const x = sample[i];
    const predictedOriginal = prediction === 'sample' ? modelOutput[i] : fround(x - fround(sigmaF * modelOutput[i]));
    const derivative = fround(fround(x - predictedOriginal) / sigmaF);
    out[i] = x + fround(derivative * dt);
  }
  return out;
}
