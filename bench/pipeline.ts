// Benchmark of the engine on the tiny generated model: per-stage times, and the host work per 1024² image and per
// 2×2 grid that happens outside onnxruntime's run (tokenize, noise, scaling and Euler, conversions, pixels, encode).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline, type PipelineResult } from '../src/diffusion/pipeline.js';
import { createEngine } from '../src/diffusion/engine.js';
import { eulerStep, lightningSchedule, scaleModelInput, torchRandn } from '../src/diffusion/index.js';
import { floatsToImages as toImages } from './legacy-pixels.js';
import { createLogger } from '../src/logger.js';
import { composeGrid, encodePng } from '../src/render/index.js';
import { writeTinyModelFolder } from '../models/tiny/generate.js';
import { machineLine, median, medianMs } from './stats.js';

const RUNS = 7;
const fmt = (ms: number): string => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;

async function main(): Promise<void> {
  console.log(`machine: ${await machineLine()}`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-tiny-'));
  try {
    await writeTinyModelFolder(dir);
    const pipeline = await loadPipeline({ modelDir: dir, provider: 'cpu', deviceId: 0 }, () => {});

    for (const batch of [1, 4]) {
      const results: PipelineResult[] = [];
      const request = { prompt: 'a lighthouse at dusk', steps: 4, width: 1024, height: 1024, images: Array.from({ length: batch }, (_, i) => ({ seed: i })) };
      await pipeline.generate(request);
      for (let run = 0; run < RUNS; run++) results.push(await pipeline.generate(request));
      const stage = (pick: (r: PipelineResult) => number): string => fmt(median(results.map(pick)));
      console.log(
        `tiny model, 1024², 4 steps, batch ${batch} (CPU): tokenize ${stage((r) => r.timings.tokenizeMs)}, text ${stage((r) => r.timings.textMs)}, ` +
          `noise ${stage((r) => r.timings.noiseMs)}, UNet/step ${stage((r) => median(r.timings.unetStepMs))}, VAE ${stage((r) => r.timings.vaeMs)}, ` +
          `total ${stage((r) => r.timings.totalMs)}; host work outside run ${stage((r) => r.timings.hostMs)} = ${fmt(median(results.map((r) => r.timings.hostMs)) / batch)} per image`,
      );
    }
    await pipeline.close();

    // the host stages one by one, per 1024² image (latent [1,4,128,128], pixels [1,3,1024,1024])
    const { sigmas } = lightningSchedule(4);
    const latent = torchRandn(1, [1, 4, 128, 128]);
    const noiseMs = await medianMs(() => torchRandn(2, [1, 4, 128, 128]), 15);
    const stepMs = await medianMs(() => eulerStep(latent, scaleModelInput(latent, sigmas[1]), sigmas[1], sigmas[2], 'epsilon'), 15);
    const decoded = new Float32Array(3 * 1024 * 1024).map((_, i) => Math.sin(i * 0.001));
    const pixelsMs = await medianMs(() => toImages(decoded, [1, 3, 1024, 1024]), 9);
    const [image] = toImages(decoded, [1, 3, 1024, 1024]);
    const grid = composeGrid([image, image, image, image]);
    const gridMs = await medianMs(() => composeGrid([image, image, image, image]), 9);
    const pngMs = await medianMs(() => encodePng(image), 5, 1);
    const gridPngMs = await medianMs(() => encodePng(grid), 3, 1);
    const perImage = noiseMs + 4 * stepMs + pixelsMs;
    console.log(
      `host work per 1024² image, 4 steps: noise ${fmt(noiseMs)} + 4 × scale and Euler ${fmt(stepMs)} + pixels ${fmt(pixelsMs)} = ${fmt(perImage)} (goal ≤ 10 ms)`,
    );
    console.log(`per 2×2 grid: 4 images ${fmt(4 * perImage)}, compose ${fmt(gridMs)}; PNG off the critical path (libvips threads): one image ${fmt(pngMs)}, grid ${fmt(gridPngMs)}`);

    // the same request through the worker thread: what the thread boundary adds
    const engine = createEngine({ modelDir: dir, provider: 'cpu', deviceId: 0 }, { logger: createLogger({ level: 'silent' }) });
    await engine.start();
    const request = { prompt: 'a lighthouse at dusk', steps: 4, width: 1024, height: 1024, images: [0, 1, 2, 3].map((seed) => ({ seed })) };
    const walls: number[] = [];
    const insides: number[] = [];
    await engine.generate(request);
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now();
      const output = await engine.generate(request);
      walls.push(performance.now() - started);
      insides.push(output.timings.totalMs);
    }
    await engine.close();
    console.log(`through the worker, 2×2 grid: ${fmt(median(walls))} wall, of which ${fmt(median(walls) - median(insides))} is messaging and the pixel transfer`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
