// Benchmark of the engine on the tiny generated model: per-stage times; the host work per 1024² image outside
// onnxruntime's run, stage by stage, with the old float → byte loop beside the graph-made pixels; and what the pixels
// cost to cross from the worker process, the old way (bytes inside the IPC message) beside the new (a tmpfs file).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { serialize } from 'node:v8';
import { loadPipeline, type PipelineResult } from '../src/diffusion/pipeline.js';
import { createEngine, type EngineOptions, type GenerationOutput } from '../src/diffusion/engine.js';
import { eulerStep, lightningSchedule, scaleModelInput, torchRandn } from '../src/diffusion/index.js';
import { fround } from '../src/diffusion/float32.js';
import { VAE_SCALING_FACTOR } from '../src/diffusion/vae.js';
import { createLogger } from '../src/logger.js';
import { composeGrid, encodePng } from '../src/render/index.js';
import { writeTinyModelFolder } from '../models/tiny/generate.js';
import { floatsToImages } from './legacy-pixels.js';
import { machineLine, median, medianMs } from './stats.js';

const RUNS = 7;
const fmt = (ms: number): string => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  console.log(`machine: ${await machineLine()}`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-tiny-'));
  try {
    await writeTinyModelFolder(dir);
    // in the worker process, as the bot runs it (the noise is made on the worker's second thread)
    const worker = createEngine({ modelDir: dir, provider: 'cpu', deviceId: 0 }, { logger: createLogger({ level: 'silent' }) });
    await worker.start();
    for (const batch of [1, 4]) {
      const results: GenerationOutput[] = [];
      const request = { prompt: 'a lighthouse at dusk', steps: 4, width: 1024, height: 1024, images: Array.from({ length: batch }, (_, i) => ({ seed: i })) };
      await worker.generate(request);
      // all at once, as a busy bot posts them: each request's noise is made while the one before it runs
      results.push(...(await Promise.all(Array.from({ length: RUNS }, () => worker.generate(request)))));
      const stage = (pick: (r: GenerationOutput) => number): string => fmt(median(results.map(pick)));
      console.log(
        `tiny model in the worker, 1024², 4 steps, batch ${batch} (CPU): tokenize ${stage((r) => r.timings.tokenizeMs)}, text ${stage((r) => r.timings.textMs)}, ` +
          `noise (waited for) ${stage((r) => r.timings.noiseMs)}, UNet/step ${stage((r) => median(r.timings.unetStepMs))}, VAE with pixel nodes ${stage((r) => r.timings.vaeMs)}, ` +
          `total ${stage((r) => r.timings.totalMs)}; host work outside run ${stage((r) => r.timings.hostMs)} = ${fmt(median(results.map((r) => r.timings.hostMs)) / batch)} per image`,
      );
    }
    await worker.close();
    // the same in one thread, noise made inline, as before
    const pipeline = await loadPipeline({ modelDir: dir, provider: 'cpu', deviceId: 0 }, () => {});
    const inline: PipelineResult[] = [];
    const single = { prompt: 'a lighthouse at dusk', steps: 4, width: 1024, height: 1024, images: [{ seed: 0 }] };
    await pipeline.generate(single);
    for (let run = 0; run < RUNS; run++) inline.push(await pipeline.generate(single));
    await pipeline.close();
    console.log(
      `the same, batch 1, noise made inline on the pipeline's thread (before): noise ${fmt(median(inline.map((r) => r.timings.noiseMs)))}, host work outside run ${fmt(median(inline.map((r) => r.timings.hostMs)))}`,
    );

    // the host stages one by one, per 1024² image (latent [1,4,128,128], pixels [1,3,1024,1024])
    const { sigmas } = lightningSchedule(4);
    const latent = torchRandn(1, [1, 4, 128, 128]);
    const scale = fround(VAE_SCALING_FACTOR);
    const noiseMs = await medianMs(() => torchRandn(2, [1, 4, 128, 128]), 15);
    const stepMs = await medianMs(() => eulerStep(latent, scaleModelInput(latent, sigmas[1]), sigmas[1], sigmas[2], 'epsilon'), 15);
    const vaeInputMs = await medianMs(() => latent.map((v) => v / scale), 15);
    const decoded = new Float32Array(3 * 1024 * 1024).map((_, i) => Math.sin(i * 0.001));
    const floatLoopMs = await medianMs(() => floatsToImages(decoded, [1, 3, 1024, 1024]), 9);
    const [image] = floatsToImages(decoded, [1, 3, 1024, 1024]);
    const grid = composeGrid([image, image, image, image]);
    const gridMs = await medianMs(() => composeGrid([image, image, image, image]), 9);
    const pngMs = await medianMs(() => encodePng(image), 5, 1);
    const gridPngMs = await medianMs(() => encodePng(grid), 3, 1);
    const critical = 4 * stepMs + vaeInputMs;
    const before = noiseMs + critical + floatLoopMs;
    console.log(
      `host work per 1024² image on the worker's critical path, 4 steps: 4 × scale and Euler ${fmt(stepMs)} + VAE input ${fmt(vaeInputMs)} = ${fmt(critical)} (goal ≤ 5 ms); ` +
        `noise ${fmt(noiseMs)} is made on the worker's noise thread while the request before runs, and the pixels by the VAE graph; ` +
        `before, noise and the float → byte loop (${fmt(floatLoopMs)}) were on it too: ${fmt(before)}, ${(before / critical).toFixed(1)}× as much`,
    );
    console.log(`per 2×2 grid on the bot's thread: compose ${fmt(gridMs)}; PNG off the critical path (libvips threads): one image ${fmt(pngMs)}, grid ${fmt(gridPngMs)}`);

    // the same 2×2 grid through the worker process: what crossing the process boundary adds, the old way and the new
    const request = { prompt: 'a lighthouse at dusk', steps: 4, width: 1024, height: 1024, images: [0, 1, 2, 3].map((seed) => ({ seed })) };
    const ways: { name: string; options: Partial<EngineOptions> }[] = [
      { name: 'before: pixels inside the IPC message', options: { pixelTransfer: 'message', commitAhead: false } },
      { name: 'after: pixels through a tmpfs file', options: { pixelTransfer: 'shared-file' } },
    ];
    const figures: { transferMs: number; loopMs: number; messageBytes: number; pixelBytes: number }[] = [];
    for (const way of ways) {
      const engine = createEngine({ modelDir: dir, provider: 'cpu', deviceId: 0, ...way.options }, { logger: createLogger({ level: 'silent' }) });
      await engine.start();
      const transfers: number[] = [];
      const loops: number[] = [];
      let last: GenerationOutput | undefined;
      await engine.generate(request);
      for (let run = 0; run < RUNS; run++) {
        const before = performance.eventLoopUtilization();
        const output = await engine.generate(request);
        // the bot thread's own time while the request ran: messages, and the pixel transfer's share of it
        loops.push(performance.eventLoopUtilization(before).active);
        transfers.push(output.transfer?.ms ?? Number.NaN);
        last = output;
      }
      await engine.close();
      const pixelBytes = last!.images.reduce((sum, img) => sum + img.data.byteLength, 0);
      // the result message as 'advanced' serialization writes it (v8's format), with or without the bytes in it
      const inline = way.options.pixelTransfer === 'message';
      const messageBytes = serialize({
        type: 'result',
        id: 1,
        shapes: last!.images.map(({ width, height }) => ({ width, height })),
        pixels: inline ? { inline: last!.images.map((img) => img.data) } : { ref: { file: '/dev/shm/lightning-engine-12345-abcdef/1.rgb', bytes: pixelBytes } },
        readyAt: Date.now(),
        timings: last!.timings,
        truncated: false,
        prediction: 'epsilon',
      }).length;
      figures.push({ transferMs: median(transfers), loopMs: median(loops), messageBytes, pixelBytes });
      console.log(
        `through the worker, 2×2 grid of 1024², ${way.name}: IPC message ${messageBytes < 2 ** 20 ? `${messageBytes} B` : mib(messageBytes)}, pixel bytes ${mib(pixelBytes)}; ` +
          `worker has the pixels → bot has them ${fmt(median(transfers))}; bot thread busy during the request ${fmt(median(loops))}`,
      );
    }
    const [old, now] = figures;
    console.log(
      `ratio in this run: IPC bytes per job ${(old.messageBytes / now.messageBytes).toFixed(0)}× fewer, transfer time ${(old.transferMs / now.transferMs).toFixed(2)}× as fast, ` +
        `bot thread ${(old.loopMs / now.loopMs).toFixed(2)}× less busy`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
