// A timed stand-in for the engine worker (src/diffusion/worker.ts), for `npm run bench:load`: the same messages, no model.
//
// Timing model (an H100 estimate; every number is a flag, passed by bench/load.ts):
//   text encoders   --text-ms per request (5), once for the batch;
//   UNet            --ms-per-step per image per step (25), a batch of n images takes n times as long (compute-bound);
//   VAE decode      --vae-ms per image (30);
//   pixels          a real copy of width × height × 3 bytes per image, timed as host work.
// `--wait sleep` (default) waits on timers, so the process is idle as a worker blocked on the GPU would be; `--wait spin`
// busy-waits, for a worker that spins on the CUDA stream (it then takes a CPU core from the bot while it runs).
// `--pixels photo` (default) copies windows of a smooth, dithered texture, so PNG and WebP take about as long as on real
// images; `--pixels flat` fills each image with one colour, which sharp encodes almost for free.
// Like the real worker it handles one message at a time and sends pixels as the engine asked (a shared-memory file
// written off its thread, or the bytes inside the message, finished before it reads the next request).
// Each generation appends "startMs endMs images steps" to `--busy-log` (epoch ms from performance.timeOrigin, which
// agrees with the bot process's to about half a millisecond), so the bench can tell when this process was busy.

import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { valueNoise } from './texture.js';
import type { PipelineRequest, StageTimings } from '../src/diffusion/pipeline.js';
import { packPixels } from '../src/diffusion/pixel-transfer.js';
import type { FromWorker, PixelTransferMode, SerializedError, ToWorker, WorkerImage } from '../src/diffusion/protocol.js';

if (!process.send) throw new Error('standin-worker.js runs as a child process started by bench/load.js, with an IPC channel');

export type WaitMode = 'sleep' | 'spin';
export type PixelMode = 'photo' | 'flat';
const WAIT_MODES = ['sleep', 'spin'] as const satisfies readonly WaitMode[];
const PIXEL_MODES = ['photo', 'flat'] as const satisfies readonly PixelMode[];

/** The step counts this stand-in reports as installed, as the real model folder of four UNets would. */
const INSTALLED_STEPS = [1, 2, 4, 8] as const;
/** The largest SDXL bucket side (ASPECT_SIZES in src/core/request.ts): one texture serves every size. */
const TEXTURE_SIDE = 1536;
/** Image i of a batch starts this many texture rows lower, so neighbouring grid cells never repeat within zlib's window. */
const IMAGE_ROW_SHIFT = 64;
const MAX_BATCH = 4;
const RGB = 3;

type Settings = { msPerStep: number; vaeMs: number; textMs: number; wait: WaitMode; pixels: PixelMode; busyLog: string };

function readSettings(argv: readonly string[]): Settings {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'ms-per-step': { type: 'string' },
      'vae-ms': { type: 'string' },
      'text-ms': { type: 'string' },
      wait: { type: 'string' },
      pixels: { type: 'string' },
      'busy-log': { type: 'string' },
    },
  });
  const ms = (name: string, value: string | undefined): number => {
    if (value === undefined || !/^\d+(\.\d+)?$/.test(value)) throw new Error(`standin-worker: --${name} expects milliseconds such as 25; found ${value}`);
    return Number(value);
  };
  const oneOf = <T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T => {
    if (!allowed.includes(value as T)) throw new Error(`standin-worker: --${name} expects ${allowed.join(' or ')}; found ${value}`);
    return value as T;
  };
  if (!values['busy-log']) throw new Error('standin-worker: --busy-log expects a file path');
  return {
    msPerStep: ms('ms-per-step', values['ms-per-step']),
    vaeMs: ms('vae-ms', values['vae-ms']),
    textMs: ms('text-ms', values['text-ms']),
    wait: oneOf('wait', values.wait, WAIT_MODES),
    pixels: oneOf('pixels', values.pixels, PIXEL_MODES),
    busyLog: values['busy-log'],
  };
}

const settings = readSettings(process.argv.slice(2));
let pixelFolder = '';
let pixelTransfer: PixelTransferMode = 'shared-file';
const epochMs = (at: number): number => performance.timeOrigin + at;

const send = (message: FromWorker): Promise<void> =>
  new Promise((resolve) => {
    process.send!(message, undefined, undefined, () => resolve());
  });

/**
 * A photo-like HWC RGB texture, `side` wide and `side + (MAX_BATCH - 1) × IMAGE_ROW_SHIFT` tall: three octaves of value
 * noise per channel (cells of 192, 48 and 12 px) plus ±3 of dither, about what real SDXL output costs zlib and libwebp.
 */
function photoTexture(side: number): Uint8Array {
  const width = side;
  const height = side + (MAX_BATCH - 1) * IMAGE_ROW_SHIFT;
  const pixels = new Uint8Array(width * height * RGB);
  let state = 0x9e3779b9;
  const random = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
  const octaves = [
    { cell: 192, amplitude: 80 },
    { cell: 48, amplitude: 30 },
    { cell: 12, amplitude: 10 },
  ];
  const field = new Float32Array(width * height);
  for (let channel = 0; channel < RGB; channel++) {
    field.fill(128);
    for (const { cell, amplitude } of octaves) {
      const noise = valueNoise(width, height, cell, random);
      for (let p = 0; p < field.length; p++) field[p] += noise[p] * amplitude;
    }
    for (let p = 0; p < width * height; p++) pixels[p * RGB + channel] = field[p] + (random() * 7 - 3);
  }
  return pixels;
}

let texture: Uint8Array | undefined;

/** Image `index` of a batch: a window of the texture, or one flat colour. A real allocation and copy either way. */
function makeImage(width: number, height: number, seed: number, index: number): WorkerImage {
  const data = new Uint8Array(width * height * RGB);
  if (settings.pixels === 'flat' || !texture) {
    data.fill((seed * 37 + index * 61) & 0xff);
    return { width, height, data };
  }
  const rowBytes = width * RGB;
  const textureRowBytes = TEXTURE_SIDE * RGB;
  const firstRow = index * IMAGE_ROW_SHIFT; // index < MAX_BATCH, checked in generate
  for (let y = 0; y < height; y++) {
    const from = (firstRow + y) * textureRowBytes;
    data.set(texture.subarray(from, from + rowBytes), y * rowBytes);
  }
  return { width, height, data };
}

/** Waits until `deadline` (performance.now() ms); deadlines, not durations, so timer lateness does not add up. */
async function waitUntil(deadline: number): Promise<void> {
  if (settings.wait === 'spin') {
    while (performance.now() < deadline);
    await yieldToLoop(); // lets progress messages go out, as they would while onnxruntime runs
    return;
  }
  const left = deadline - performance.now();
  if (left > 0) await sleep(left);
}

function invalid(message: string): SerializedError {
  return { kind: 'invalid_request', name: 'RangeError', message };
}

async function generate(id: number, request: PipelineRequest): Promise<void> {
  const count = request.images.length;
  if (!(INSTALLED_STEPS as readonly number[]).includes(request.steps)) {
    await send({ type: 'failed', id, error: invalid(`no UNet for ${request.steps} steps; installed: ${INSTALLED_STEPS.join(', ')}`) });
    return;
  }
  if (count < 1 || count > MAX_BATCH || request.width > TEXTURE_SIDE || request.height > TEXTURE_SIDE) {
    await send({ type: 'failed', id, error: invalid(`expected 1–${MAX_BATCH} images of at most ${TEXTURE_SIDE}²; found ${count} of ${request.width}×${request.height}`) });
    return;
  }
  const started = performance.now();
  void send({ type: 'progress', id, event: { stage: 'text', step: 0, steps: request.steps } });
  let deadline = started + settings.textMs;
  await waitUntil(deadline);
  const textMs = performance.now() - started;

  const unetStepMs: number[] = [];
  for (let step = 1; step <= request.steps; step++) {
    const stepStarted = performance.now();
    deadline += settings.msPerStep * count;
    await waitUntil(deadline);
    unetStepMs.push(performance.now() - stepStarted);
    void send({ type: 'progress', id, event: { stage: 'unet', step, steps: request.steps } });
  }

  const vaeStarted = performance.now();
  deadline += settings.vaeMs * count;
  await waitUntil(deadline);
  const vaeMs = performance.now() - vaeStarted;
  void send({ type: 'progress', id, event: { stage: 'vae', step: request.steps, steps: request.steps } });

  const hostStarted = performance.now();
  const images = request.images.map((noise, index) => makeImage(request.width, request.height, noise.seed, index));
  const finished = performance.now();
  const timings: StageTimings = {
    tokenizeMs: 0,
    textMs,
    noiseMs: 0,
    unetStepMs,
    vaeMs,
    totalMs: finished - started,
    hostMs: finished - hostStarted,
  };
  appendFileSync(settings.busyLog, `${epochMs(started)} ${epochMs(finished)} ${count} ${request.steps}\n`);
  const delivery = (async () => {
    const pixels = await packPixels(pixelTransfer, pixelFolder, id, images, () => {});
    const shapes = images.map(({ width, height }) => ({ width, height }));
    await send({ type: 'result', id, shapes, pixels, readyAt: epochMs(finished), timings, truncated: false, prediction: 'epsilon' });
  })();
  deliveries = Promise.all([deliveries, delivery]).then(() => undefined);
  if (pixelTransfer === 'message') await delivery;
}

/** Results still being written; close waits for them. */
let deliveries: Promise<void> = Promise.resolve();


async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'start':
      pixelFolder = message.pixelFolder;
      pixelTransfer = message.pixelTransfer;
      if (settings.pixels === 'photo') texture = photoTexture(TEXTURE_SIDE);
      await send({ type: 'ready', provider: 'cuda', steps: [...INSTALLED_STEPS], modelDir: '(stand-in)' });
      return;
    case 'generate':
      try {
        await generate(message.id, message.request);
      } catch (error) {
        const err = error instanceof Error ? error : new Error(String(error));
        await send({ type: 'failed', id: message.id, error: { kind: 'internal', name: err.name, message: err.message, stack: err.stack } });
      }
      return;
    case 'close':
      await deliveries;
      await send({ type: 'closed' });
      process.exit(0);
  }
}

// one message at a time, in order, as the real worker handles them
let chain: Promise<void> = Promise.resolve();
process.on('message', (message: ToWorker) => {
  chain = chain.then(() => handle(message));
});
process.on('disconnect', () => process.exit(0));
// Ctrl-C signals the whole process group; the bench closes this worker itself once it has stopped the load
process.on('SIGINT', () => {});
