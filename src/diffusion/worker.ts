// The engine's worker thread: a thin message loop around the pipeline, so onnxruntime's blocking run never stalls
// the bot's main thread.

import { parentPort, type MessagePort } from 'node:worker_threads';
import { ModelFolderError } from './model-folder.js';
import { loadPipeline, type Pipeline } from './pipeline.js';
import type { FailureKind, FromWorker, SerializedError, ToWorker } from './protocol.js';

function requirePort(): MessagePort {
  if (!parentPort) throw new Error('worker.ts runs as a worker thread started by the engine (engine.ts)');
  return parentPort;
}
const port = requirePort();

const send = (message: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

function serialize(error: unknown): SerializedError {
  const err = error instanceof Error ? error : new Error(String(error));
  const kind: FailureKind = err instanceof ModelFolderError ? 'model' : err instanceof RangeError || err instanceof TypeError ? 'invalid_request' : 'internal';
  return { kind, name: err.name, message: err.message, stack: err.stack, problems: err instanceof ModelFolderError ? err.problems : undefined };
}

let pipeline: Pipeline | undefined;
// messages are handled one at a time, in order: a generate never overlaps another, and close waits for them
let chain: Promise<void> = Promise.resolve();

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'start':
      try {
        pipeline = await loadPipeline(message.options, (level, text, details) => send({ type: 'log', level, message: text, details }));
        send({ type: 'ready', provider: pipeline.provider, steps: [...pipeline.steps], modelDir: pipeline.folder.root });
      } catch (error) {
        send({ type: 'start-failed', error: serialize(error) });
      }
      return;
    case 'generate': {
      if (!pipeline) {
        send({ type: 'failed', id: message.id, error: serialize(new Error('the engine has not started')) });
        return;
      }
      try {
        const result = await pipeline.generate(message.request, (event) => send({ type: 'progress', id: message.id, event }));
        const images = result.images.map(({ width, height, data }) => ({ width, height, data }));
        send(
          { type: 'result', id: message.id, images, timings: result.timings, truncated: result.truncated, prediction: result.prediction },
          images.map((image) => image.data.buffer as ArrayBuffer),
        );
      } catch (error) {
        send({ type: 'failed', id: message.id, error: serialize(error) });
      }
      return;
    }
    case 'close':
      await pipeline?.close();
      pipeline = undefined;
      send({ type: 'closed' });
      port.close();
      return;
  }
}

port.on('message', (message: ToWorker) => {
  chain = chain.then(() => handle(message));
});
