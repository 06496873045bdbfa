// Benchmark of render: grid composition, PNG encoding and the upload byte budget on photo-like and noise images.
// Run: npx tsc -p tsconfig.build.json && node dist/bench/render.js   (prints medians; not a test)

import os from 'node:os';
import sharp from 'sharp';
import { valueNoise } from './texture.js';
import { composeGrid, encodeForUpload, encodePng, type EncodedImage, type RgbImage } from '../src/render/index.js';

const RUNS = 5;
const MIB = 1024 * 1024;
const BUDGETS = [10 * MIB, 4 * MIB];

/** xorshift32 as floats in [0, 1): seeded, so every run encodes the same pixels. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}


/**
 * Photo-like: colour gradients, cloudy texture at three scales, a little per-pixel grain, and translucent discs for
 * hard edges. Its 1024² PNG is about 1.5 MB, near what SDXL's 1024² outputs take.
 */
function photoImage(width: number, height: number, seed: number): RgbImage {
  const next = random(seed);
  const phases = [next(), next(), next()].map((p) => p * 2 * Math.PI);
  const coarse = valueNoise(width, height, 96, next);
  const medium = valueNoise(width, height, 12, next);
  const fine = valueNoise(width, height, 3, next);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const texture = 40 * coarse[p] + 14 * medium[p] + 7 * fine[p];
      for (let c = 0; c < 3; c++) {
        const gradient = 128 + 70 * Math.sin(phases[c] + (2.5 * (c + 1) * x) / width + (1.7 * y) / height);
        const value = gradient + texture * (1 - 0.2 * c) + (next() - 0.5) * 6;
        data[p * 3 + c] = Math.min(255, Math.max(0, Math.round(value)));
      }
    }
  }
  for (let disc = 0; disc < 12; disc++) {
    const [cx, cy, radius] = [next() * width, next() * height, 20 + (next() * width) / 6];
    const colour = [next() * 255, next() * 255, next() * 255];
    for (let y = Math.max(0, Math.floor(cy - radius)); y < Math.min(height, cy + radius); y++) {
      for (let x = Math.max(0, Math.floor(cx - radius)); x < Math.min(width, cx + radius); x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 > radius ** 2) continue;
        for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = (data[(y * width + x) * 3 + c] + colour[c]) >> 1;
      }
    }
  }
  return { width, height, data };
}

/** Uniform random bytes: nothing to compress, the worst case for every format. */
function noiseImage(width: number, height: number, seed: number): RgbImage {
  const next = random(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(next() * 256)) };
}

/** Median wall time of RUNS runs after one warm-up, and the last run's result. */
async function measure<T>(run: () => T | Promise<T>): Promise<{ ms: number; result: T }> {
  let result = await run();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    result = await run();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], result };
}

const ms = (value: number): string => `${value.toFixed(1).padStart(7)} ms`;
const size = (bytes: number): string => `${(bytes / MIB).toFixed(2).padStart(6)} MiB (${bytes} B)`;
const describe = (e: EncodedImage): string => `${e.format}${e.quality === undefined ? '' : ` q${e.quality}`} ${e.width}×${e.height}`;

/** sharp's own compositing, for comparison with composeGrid's row copies (same 2×2 layout, 8 px gutters). */
async function sharpComposite(images: RgbImage[]): Promise<Buffer> {
  const side = images[0].width;
  const gutter = 8;
  const total = 2 * side + gutter;
  return sharp({ create: { width: total, height: total, channels: 3, background: { r: 32, g: 32, b: 32 } } })
    .composite(
      images.map((image, i) => ({
        input: Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength),
        raw: { width: image.width, height: image.height, channels: 3 as const },
        left: (i % 2) * (side + gutter),
        top: Math.floor(i / 2) * (side + gutter),
      })),
    )
    .removeAlpha()
    .raw()
    .toBuffer();
}

async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(`machine: ${os.cpus().length} × ${cpu}, ${os.arch()}, node ${process.version}`);
  console.log(`sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, sharp concurrency ${sharp.concurrency()}`);
  console.log(`medians of ${RUNS} runs after a warm-up\n`);

  const photos = [1, 2, 3, 4].map((seed) => photoImage(1024, 1024, seed));
  const noises = [1, 2, 3, 4].map((seed) => noiseImage(1024, 1024, seed + 100));

  const compose = await measure(() => composeGrid(photos));
  const composite = await measure(() => sharpComposite(photos));
  console.log('compose 2×2 of 1024² (8 px gutters)');
  console.log(`  composeGrid (row copies, main thread)  ${ms(compose.ms)}`);
  console.log(`  sharp composite → raw (comparison)    ${ms(composite.ms)}\n`);

  const cases = [
    { name: 'photo-like 2×2 grid', image: compose.result },
    { name: 'photo-like single', image: photos[0] },
    { name: 'noise 2×2 grid', image: composeGrid(noises) },
    { name: 'noise single', image: noises[0] },
  ];

  console.log('encodePng (zlib 6, adaptive filtering)');
  for (const { name, image } of cases) {
    const { ms: time, result } = await measure(() => encodePng(image));
    console.log(`  ${name.padEnd(20)} ${image.width}×${image.height}  ${ms(time)}  ${size(result.length)}`);
  }

  for (const budget of BUDGETS) {
    console.log(`\nencodeForUpload, budget ${budget / MIB} MiB`);
    for (const { name, image } of cases) {
      const { ms: time, result } = await measure(() => encodeForUpload(image, budget));
      console.log(`  ${name.padEnd(20)} ${ms(time)}  ${size(result.data.length)}  ${describe(result)}`);
    }
  }
}

await main();
