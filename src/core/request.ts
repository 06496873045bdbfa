// What a member asks for: the generation request, seeds and the SDXL aspect buckets.

import { randomInt } from 'node:crypto';

/** A seed a member can read and reuse: an integer from 0 to 2^53 − 1 (image i of a grid uses seed + i). */
export type Seed = number;
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

/**
 * The SDXL ~1 MP training buckets (SDXL paper, arXiv 2307.01952), width × height. Lightning is trained for these;
 * every side is a multiple of 64, so latents stay divisible by 8.
 */
export const ASPECT_SIZES = {
  '1:1': { width: 1024, height: 1024 },
  '4:3': { width: 1152, height: 896 },
  '3:4': { width: 896, height: 1152 },
  '3:2': { width: 1216, height: 832 },
  '2:3': { width: 832, height: 1216 },
  '16:9': { width: 1344, height: 768 },
  '9:16': { width: 768, height: 1344 },
  '21:9': { width: 1536, height: 640 },
  '9:21': { width: 640, height: 1536 },
} as const satisfies Record<string, { width: number; height: number }>;

export type Aspect = keyof typeof ASPECT_SIZES;
export const ASPECTS = Object.keys(ASPECT_SIZES) as Aspect[];

export function isAspect(value: string): value is Aspect {
  return Object.hasOwn(ASPECT_SIZES, value);
}

/**
 * A random seed for a request that gave none: 0 … 2^32 − 1, since torch's generator (and so diffusers and ComfyUI)
 * keeps only the low 32 bits; larger seeds a member types still work and wrap the same way there.
 */
export function randomSeed(): Seed {
  return randomInt(0, 2 ** 32);
}

/** Whether `value` is a seed a member may give. */
export function isSeed(value: number): value is Seed {
  return Number.isSafeInteger(value) && value >= 0;
}

export type Platform = 'discord' | 'slack' | 'web';
export const PLATFORMS = ['discord', 'slack', 'web'] as const satisfies readonly Platform[];

/** Most images in one request: a 2×2 grid. */
export const MAX_IMAGES = 4;

/** One slerp toward another seed's noise: a step in a variation's history. */
export type NoiseStep = { seed: Seed; strength: number };

/**
 * One validated request for images. Image i of the request uses seed + i. A variation (V1–V4) starts instead from
 * its parent image's noise — `parentSeed`'s noise, slerped through `parentSteps` when the parent was itself a
 * variation — slerped toward the noise of seed + i by `strength`.
 */
export type GenerationRequest = {
  prompt: string;
  steps: number;
  seed: Seed;
  aspect: Aspect;
  count: number;
  variation?: { parentSeed: Seed; parentSteps: readonly NoiseStep[]; strength: number };
};

/** How the engine makes image i's starting noise: `torchRandn(seed)`, then each slerp in order. */
export type ImageNoise = { seed: Seed; variations?: readonly NoiseStep[] };

/** The per-image noise recipes of a request, for the engine. */
export function imageNoise(request: GenerationRequest): ImageNoise[] {
  return Array.from({ length: request.count }, (_, i) => imageRecipe(request, i));
}

/** Image i's noise recipe; a variation of it starts from exactly this (see `GenerationRequest`). */
export function imageRecipe(request: GenerationRequest, index: number): ImageNoise {
  if (!request.variation) return { seed: request.seed + index };
  const { parentSeed, parentSteps, strength } = request.variation;
  return { seed: parentSeed, variations: [...parentSteps, { seed: request.seed + index, strength }] };
}
