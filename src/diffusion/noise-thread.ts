// A worker thread inside the engine's worker process that makes each request's starting noise while the process's
// own thread is blocked in onnxruntime's run of the request before it.

import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { requestNoise } from './noise.js';
import type { PipelineRequest } from './pipeline.js';

type NoiseJob = { id: number; request: Pick<PipelineRequest, 'images' | 'width' | 'height'> };
type NoiseReply = { id: number; noise: Float32Array } | { id: number; error: string };

/** The worker process's handle on the thread. `make` may be called for a request before the previous one has run. */
export type NoiseMaker = { make(request: NoiseJob['request']): Promise<Float32Array>; close(): Promise<void> };

export function createNoiseMaker(): NoiseMaker {
  const thread = new Worker(new URL(import.meta.url));
  // the process exits when its parent goes; an idle thread must not keep it alive
  thread.unref();
  const waiting = new Map<number, { resolve: (noise: Float32Array) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  thread.on('message', (reply: NoiseReply) => {
    const waiter = waiting.get(reply.id);
    waiting.delete(reply.id);
    if ('noise' in reply) waiter?.resolve(reply.noise);
    else waiter?.reject(new RangeError(reply.error));
  });
  thread.on('error', (error) => {
    for (const waiter of waiting.values()) waiter.reject(error);
    waiting.clear();
  });
  return {
    make(request) {
      const id = nextId++;
      const made = new Promise<Float32Array>((resolve, reject) => waiting.set(id, { resolve, reject }));
      // a request the pipeline refuses before its noise never awaits this; the refusal is the pipeline's to report
      made.catch(() => undefined);
      thread.postMessage({ id, request: { images: request.images, width: request.width, height: request.height } } satisfies NoiseJob);
      return made;
    },
    close: async () => {
      await thread.terminate();
    },
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', ({ id, request }: NoiseJob) => {
    try {
      const noise = requestNoise(request);
      port.postMessage({ id, noise } satisfies NoiseReply, [noise.buffer as ArrayBuffer]);
    } catch (error) {
      port.postMessage({ id, error: (error as Error).message } satisfies NoiseReply);
    }
  });
}
