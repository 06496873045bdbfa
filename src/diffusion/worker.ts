// The engine's worker process: a thin message loop around the pipeline, so onnxruntime's blocking run never stalls
// the bot, and a native crash of onnxruntime (or CUDA) ends this process, not the bot.
import { performance } from 'node:perf_hooks';
import { ModelFolderError } from './model-folder.js';
import { createNoiseMaker, type NoiseMaker } from './noise-thread.js';
import { packPixels } from './pixel-transfer.js';
import { loadPipeline, type Pipeline, type PipelineResult } from './pipeline.js';
import type { FailureKind, FromWorker, PixelTransferMode, SerializedError, ToWorker } from './protocol.js';

if (!process.send) throw new Error('worker.js runs as a child process started by the engine (engine.ts), with an IPC channel');

const send = (message: FromWorker): Promise<void> =>
  new Promise((resolve) => {
    process.send!(message, undefined, undefined, () => resolve());
  });

function serialize(error: unknown): SerializedError {
  const err = error instanceof Error ? error : new Error(String(error));
  const kind: FailureKind = err instanceof ModelFolderError ? 'model' : err instanceof RangeError || err instanceof TypeError ? 'invalid_request' : 'internal';
  return { kind, name: err.name, message: err.message, stack: err.stack, problems: err instanceof ModelFolderError ? err.problems : undefined };
}

let pipeline: Pipeline | undefined;
let noiseMaker: NoiseMaker | undefined;
/** Each posted request's noise, started on the noise thread when the request arrives, before its turn comes. */
const noiseFor = new Map<number, Promise<Float32Array>>();
let pixelFolder = '';
let pixelTransfer: PixelTransferMode = 'shared-file';
let warnedFallback = false;
// messages are handled one at a time, in order: a generate never overlaps another, and close waits for them. The
// engine posts at most one request ahead of the running one; it waits here, so the next run starts the moment this
// one is done, without a round trip to the bot.
let chain: Promise<void> = Promise.resolve();
/** Results whose pixels are still being written; close waits for them. */
const deliveries = new Set<Promise<void>>();

/** Sends a result; with a pixel file, the write runs on libuv's thread pool while the next request starts here. */
function deliver(id: number, result: PipelineResult): Promise<void> {
  const readyAt = performance.timeOrigin + performance.now();
  const delivery = (async () => {
    const pixels = await packPixels(pixelTransfer, pixelFolder, id, result.images, (error) => {
      if (warnedFallback) return;
      warnedFallback = true;
      void send({ type: 'log', level: 'warn', message: 'could not write a pixel file; sending pixels inside IPC messages instead', details: { folder: pixelFolder, error: error.message } });
    });
    const shapes = result.images.map(({ width, height }) => ({ width, height }));
    await send({ type: 'result', id, shapes, pixels, readyAt, timings: result.timings, truncated: result.truncated, prediction: result.prediction, safety: result.safety });
  })().catch((error: unknown) => send({ type: 'failed', id, error: serialize(error) }));
  deliveries.add(delivery);
  void delivery.finally(() => deliveries.delete(delivery));
  return delivery;
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'start':
      pixelFolder = message.pixelFolder;
      pixelTransfer = message.pixelTransfer;
      try {
        noiseMaker ??= createNoiseMaker();
        pipeline = await loadPipeline(message.options, (level, text, details) => send({ type: 'log', level, message: text, details }));
        await send({ type: 'ready', provider: pipeline.provider, steps: [...pipeline.steps], modelDir: pipeline.folder.root });
      } catch (error) {
        send({ type: 'start-failed', error: serialize(error) });
      }
      return;
    case 'generate': {
      if (!pipeline) {
        send({ type: 'failed', id: message.id, error: serialize(new Error('the engine has not started')) });
        return;
      }
      const noise = noiseFor.get(message.id);
      noiseFor.delete(message.id);
      try {
        const result = await pipeline.generate(message.request, (event) => send({ type: 'progress', id: message.id, event }), noise);
        const delivery = deliver(message.id, result);
        // bytes inside the message go out through this thread's event loop: finish before the next run blocks it
        if (pixelTransfer === 'message') await delivery;
      } catch (error) {
        send({ type: 'failed', id: message.id, error: serialize(error) });
      }
      return;
    }
    case 'close':
      await Promise.allSettled([...deliveries]);
      await pipeline?.close();
      await noiseMaker?.close();
      pipeline = undefined;
      await send({ type: 'closed' });
      process.exit(0);
  }
}

process.on('message', (message: ToWorker) => {
  // the noise of a request committed ahead is made now, on its thread, while this thread runs the current one
  if (message.type === 'generate' && noiseMaker) noiseFor.set(message.id, noiseMaker.make(message.request));
  chain = chain.then(() => handle(message));
});
// the bot is gone (even killed with -9): nobody will read the results
process.on('disconnect', () => process.exit(0));
// Ctrl-C (or a closing terminal's SIGHUP) signals the whole process group: the bot decides when the engine stops (a `close` message
// after the running image), so the worker ignores the signals the bot handles
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('SIGHUP', () => {});
