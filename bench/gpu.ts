// `npm run bench:gpu`, for a GPU owner with the real model folder: warm-up, then repeated runs per installed step
// count at batch 1 and 4, printing per-stage medians and images per second. Settings come from .env / environment.

import { loadConfig, loadDotEnv } from '../src/config.js';
import { loadPipeline, type PipelineResult } from '../src/diffusion/pipeline.js';
import { composeGrid, encodePng } from '../src/render/index.js';
import { machineLine, median } from './stats.js';

const fmt = (ms: number): string => `${Math.round(ms)} ms`;

async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig({ EXECUTION_PROVIDER: 'cuda', ...process.env });
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const allowCpu = process.argv.includes('--allow-cpu');
  console.log(`machine: ${await machineLine()}`);
  let pipeline: Awaited<ReturnType<typeof loadPipeline>>;
  try {
    pipeline = await loadPipeline(
      { modelDir: config.modelDir, provider: allowCpu ? (config.provider === 'cuda' ? 'auto' : config.provider) : 'cuda', deviceId: config.cudaDeviceId, cpuThreads: config.cpuThreads },
      (level, message) => (level === 'info' ? undefined : console.warn(`${level}: ${message}`)),
    );
  } catch (error) {
    // one plain sentence, not a stack trace: the usual reason is a missing or mismatched CUDA library
    const reason = (error as Error).message.replace(/^EXECUTION_PROVIDER=cuda, but /, '').replace(/\.$/, '');
    const cuda = /CUDA is not usable/.test((error as Error).message);
    console.error(
      cuda
        ? `CUDA did not load, so nothing was measured: ${reason.replace(/^CUDA is not usable: /, '')}. \`npm run doctor\` lists what is missing; \`npm run bench:gpu -- --allow-cpu\` measures the CPU instead.`
        : `The models did not load, so nothing was measured: ${(error as Error).message}`,
    );
    process.exitCode = 1;
    return;
  }
  console.log(`provider really used: ${pipeline.provider}${pipeline.provider === 'cpu' ? ' (CUDA did not load; see the warning above)' : ''}, model ${config.modelDir}, step counts ${pipeline.steps.join(', ')}, ${runs} runs after one warm-up`);
  console.log('steps batch | text    | UNet per step | VAE     | PNG     | total   | images/s');
  for (const steps of pipeline.steps) {
    for (const batch of [1, 4]) {
      const request = { prompt: 'a lighthouse at dusk, golden hour, 35mm photo', steps, width: 1024, height: 1024, images: Array.from({ length: batch }, (_, i) => ({ seed: 1000 + i })) };
      await pipeline.generate(request); // warm-up: cuDNN's exhaustive search runs on the first use of each shape
      const results: PipelineResult[] = [];
      const encodes: number[] = [];
      for (let run = 0; run < runs; run++) {
        const result = await pipeline.generate(request);
        results.push(result);
        const started = performance.now();
        await encodePng(result.images.length === 1 ? result.images[0] : composeGrid(result.images));
        encodes.push(performance.now() - started);
      }
      const total = median(results.map((r) => r.timings.totalMs));
      console.log(
        `${String(steps).padStart(5)} ${String(batch).padStart(5)} | ${fmt(median(results.map((r) => r.timings.textMs))).padEnd(7)} | ` +
          `${fmt(median(results.flatMap((r) => r.timings.unetStepMs))).padEnd(13)} | ${fmt(median(results.map((r) => r.timings.vaeMs))).padEnd(7)} | ` +
          `${fmt(median(encodes)).padEnd(7)} | ${fmt(total).padEnd(7)} | ${((batch * 1000) / total).toFixed(2)}`,
      );
    }
  }
  await pipeline.close();
}

await main();
