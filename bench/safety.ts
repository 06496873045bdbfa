// Benchmark of the image safety check's host work: Pillow-exact resizing and normalising 1024² images to the
// classifier's 384² input, one image and a 2×2 grid's four, in one run (the model's own run is measured by bench:gpu
// on a real classifier; here it is the tiny one, whose cost is nothing).
// Run: npx tsc -b tsconfig.build.json && node dist/bench/safety.js   (prints medians; not a test)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resizeLikePil } from '../src/diffusion/resample.js';
import { loadSafetyClassifier, preprocessImages } from '../src/diffusion/safety.js';
import type { RgbImage } from '../src/diffusion/vae.js';
import { writeTinySafetyClassifier } from '../models/tiny/safety-classifier.js';
import { machineLine, medianMs } from './stats.js';

const RUNS = 9;
const preprocess = { width: 384, height: 384, filter: 'bilinear' as const, rescale: 1 / 255, mean: [0.5, 0.5, 0.5] as const, std: [0.5, 0.5, 0.5] as const };

function image(seed: number): RgbImage {
  const data = new Uint8Array(1024 * 1024 * 3);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    data[i] = state & 0xff;
  }
  return { width: 1024, height: 1024, data };
}

const images = [1, 2, 3, 4].map(image);
console.log(await machineLine());
const resizeOne = await medianMs(() => resizeLikePil(images[0], 384, 384, 'bilinear'), RUNS);
const resizeBicubic = await medianMs(() => resizeLikePil(images[0], 384, 384, 'bicubic'), RUNS);
const one = await medianMs(() => preprocessImages([images[0]], preprocess), RUNS);
const four = await medianMs(() => preprocessImages(images, preprocess), RUNS);
const root = mkdtempSync(join(tmpdir(), 'bench-safety-'));
await writeTinySafetyClassifier(root, { score: 0.1 });
const classifier = await loadSafetyClassifier({ modelDir: root, threshold: 0.5, session: { provider: 'cpu', deviceId: 0 } });
const classifyFour = await medianMs(() => classifier.classify(images), RUNS);
await classifier.close();
rmSync(root, { recursive: true, force: true });

console.log(`resize 1024² → 384², bilinear (Pillow arithmetic): ${resizeOne.toFixed(1)} ms median of ${RUNS}`);
console.log(`resize 1024² → 384², bicubic:                      ${resizeBicubic.toFixed(1)} ms (${(resizeBicubic / resizeOne).toFixed(2)}× bilinear)`);
console.log(`preprocess 1 image (resize + normalise, NCHW):     ${one.toFixed(1)} ms`);
console.log(`preprocess 4 images:                               ${four.toFixed(1)} ms (${(four / one).toFixed(2)}× one image)`);
console.log(`classify 4 images with the tiny classifier:        ${classifyFour.toFixed(1)} ms (${(classifyFour / four).toFixed(2)}× their preprocessing)`);
