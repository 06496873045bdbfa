// The engine's worker process: a thin message loop around the pipeline, so onnxruntime's blocking run never stalls
// the bot, and a native crash of onnxruntime (or CUDA) ends this process, not the bot.
import { ModelFolderError } from './model-folder.js';
import { loadPipeline, type Pipeline } from './pipeline.js';
import type { FailureKind, FromWorker, SerializedError, ToWorker } from './protocol.js';

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
// messages are handled one at a time, in order: a generate never overlaps another, and close waits for them
let chain: Promise<void> = Promise.resolve();

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'start':
      try {
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
      try {
        const result = await pipeline.generate(message.request, (event) => send({ type: 'progress', id: message.id, event }));
        const images = result.images.map(({ width, height, data }) => ({ width, height, data }));
        await send({ type: 'result', id: message.id, images, timings: result.timings, truncated: result.truncated, prediction: result.prediction, safety: result.safety });
      } catch (error) {
        send({ type: 'failed', id: message.id, error: serialize(error) });
      }
      return;
    }
    case 'close':
      await pipeline?.close();
      pipeline = undefined;
      await send({ type: 'closed' });
      process.exit(0);
  }
}

process.on('message', (message: ToWorker) => {
  chain = chain.then(() => handle(message));
});
// the bot is gone (even killed with -9): nobody will read the results
process.on('disconnect', () => process.exit(0));
// Ctrl-C (or a closing terminal's SIGHUP) signals the whole process group: the bot decides when the engine stops (a `close` message
// after the running image), so the worker ignores the signals the bot handles
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('SIGHUP', () => {});
