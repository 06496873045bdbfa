import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, EngineError, startWorkerProcess, type Engine } from '../../../src/diffusion/engine.js';
import type { PipelineRequest } from '../../../src/diffusion/pipeline.js';
import { createLogger } from '../../../src/logger.js';
import { encodePng } from '../../../src/render/index.js';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { attr, createGraph, writeModel } from '../../../models/tiny/onnx-writer.js';

/** Starts the engine's real worker process, as the engine would, and keeps it in `workers` for the test to kill. */
function tracked(workers: ChildProcess[]): (script: string) => ChildProcess {
  return (script) => {
    const worker = startWorkerProcess(script);
    workers.push(worker);
    return worker;
  };
}

/** Kills a worker process as a native crash would end it, and waits until it is gone. */
async function kill(worker: ChildProcess): Promise<void> {
  const exited = once(worker, 'exit');
  expect(worker.kill('SIGKILL')).toBe(true);
  await exited;
}

/** A logger whose JSON lines the test can read. */
function captureLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines };
}

const root = mkdtempSync(join(tmpdir(), 'engine-'));
const dir = join(root, 'model');
const small = (overrides: Partial<PipelineRequest> = {}): PipelineRequest => ({
  prompt: 'a lighthouse at dusk',
  steps: 4,
  width: 128,
  height: 128,
  images: [{ seed: 1 }],
  ...overrides,
});

beforeAll(async () => {
  await writeTinyModelFolder(dir);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the engine in its worker process', () => {
  let engine: Engine;
  let workers: ChildProcess[];
  const { logger, lines } = captureLogger();

  beforeAll(async () => {
    workers = [];
    engine = createEngine(
      // one onnxruntime thread, as with CUDA: on a 2-core machine the other core stays free for the main thread
      { modelDir: dir, provider: 'auto', deviceId: 0, cpuThreads: 1 },
      { logger, startWorker: tracked(workers) },
    );
    await engine.start();
  });
  afterAll(async () => {
    await engine.close();
  });

  it('starts on the CPU with a loud warning that says why CUDA is not used', () => {
    expect(engine.info).toMatchObject({ provider: 'cpu', steps: [1, 2, 4, 8] });
    const warning = lines.find((line) => line.level === 40 && String(line.msg).includes('CUDA is not usable'));
    expect(String(warning?.msg)).toMatch(/CUDA provider is not installed|cannot find|no GPU visible/);
  });

  it('returns RGB images with timings and progress events', async () => {
    const events: string[] = [];
    const output = await engine.generate(small({ images: [{ seed: 1 }, { seed: 2 }] }), (event) => events.push(event.stage));
    expect(output.images.map((image) => [image.width, image.height, image.data.length])).toEqual([
      [128, 128, 128 * 128 * 3],
      [128, 128, 128 * 128 * 3],
    ]);
    expect(output.images[0].data).toBeInstanceOf(Uint8Array);
    expect(events).toEqual(['text', 'unet', 'unet', 'unet', 'unet', 'vae']);
    expect(output.timings.unetStepMs).toHaveLength(4);
  });

  it('keeps the main thread responsive during long generations (no timer gap over 50 ms)', async () => {
    let last = performance.now();
    let worstGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 5);
    const started = performance.now();
    const big = small({ width: 1024, height: 1024, steps: 8, images: [0, 1, 2, 3].map((seed) => ({ seed })) });
    await Promise.all([engine.generate(big), engine.generate(big)]);
    const busyMs = performance.now() - started;
    clearInterval(timer);
    expect(busyMs).toBeGreaterThan(300);
    expect(worstGap).toBeLessThan(50);
  });

  it('fails a bad request alone and keeps serving the next one', async () => {
    const bad = engine.generate(small({ steps: 3 }));
    const good = engine.generate(small());
    await expect(bad).rejects.toMatchObject({ code: 'invalid_request', message: 'no UNet for 3 steps is installed; installed: 1, 2, 4, 8' });
    expect((await good).images).toHaveLength(1);
  });

  it('fails the running request cleanly when the worker dies, restarts it and serves the next request', async () => {
    const started = workers.length;
    const running = engine.generate(small({ width: 1024, height: 1024, steps: 8, images: [0, 1, 2, 3].map((seed) => ({ seed })) }));
    const queued = engine.generate(small({ images: [{ seed: 5 }] }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await kill(workers[workers.length - 1]);
    await expect(running).rejects.toMatchObject({ code: 'crashed' });
    const after = await queued;
    expect(after.images).toHaveLength(1);
    expect(workers.length).toBe(started + 1);
    expect(lines.some((line) => line.msg === 'engine worker restarted')).toBe(true);
  });

  it('hands the next request to the worker as soon as a result is back, so encoding one overlaps the next', async () => {
    const events: string[] = [];
    const request = small({ width: 1024, height: 1024 });
    const first = engine.generate(request);
    const second = engine.generate(request, (event) => {
      if (event.stage === 'text') events.push('second started');
    });
    const output = await first;
    events.push('first back');
    await encodePng(output.images[0]);
    events.push('first encoded');
    await second;
    // the second request starts as soon as the first's pixels are out of the worker, before the first is encoded
    expect(events.indexOf('second started')).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('second started')).toBeLessThan(events.indexOf('first encoded'));
  });

  it('makes the same pixels after a restart', async () => {
    const before = (await engine.generate(small({ images: [{ seed: 9 }] }))).images[0].data;
    await kill(workers[workers.length - 1]);
    // asked while the worker restarts: the request waits for it instead of failing
    const after = (await engine.generate(small({ images: [{ seed: 9 }] }))).images[0].data;
    expect(Buffer.compare(Buffer.from(before), Buffer.from(after))).toBe(0);
  });
});

describe('a worker that keeps dying', () => {
  it('is restarted three times within a minute, then the engine says it is out of service', async () => {
    const workers: ChildProcess[] = [];
    const { logger } = captureLogger();
    const engine = createEngine(
      { modelDir: dir, provider: 'cpu', deviceId: 0, lazyUnets: true },
      { logger, startWorker: tracked(workers) },
    );
    await engine.start();
    try {
      for (let death = 1; death <= 3; death++) {
        await kill(workers[workers.length - 1]);
        expect((await engine.generate(small())).images).toHaveLength(1);
      }
      expect(workers).toHaveLength(4);
      await kill(workers[workers.length - 1]);
      await expect(engine.generate(small())).rejects.toMatchObject({ code: 'crashed', message: expect.stringContaining('died 4 times within a minute') });
    } finally {
      await engine.close();
    }
  });
});

describe('engine start-up errors', () => {
  const start = async (modelDir: string, provider: 'auto' | 'cuda' | 'cpu' = 'cpu'): Promise<EngineError> => {
    const engine = createEngine({ modelDir, provider, deviceId: 0 }, { logger: captureLogger().logger });
    try {
      await engine.start();
      throw new Error('start() should have failed');
    } catch (error) {
      expect(error).toBeInstanceOf(EngineError);
      return error as EngineError;
    } finally {
      await engine.close();
    }
  };

  it('names a missing folder and says how to get one', async () => {
    const error = await start(join(root, 'nowhere'));
    expect(error.code).toBe('model');
    expect(error.message).toContain('nowhere is not usable');
    expect(error.message).toContain('the folder does not exist');
    expect(error.message).toContain('npm run models:fetch');
  });

  it('lists every missing file by name', async () => {
    const partial = join(root, 'partial');
    await writeTinyModelFolder(partial, { steps: [4] });
    rmSync(join(partial, 'text_encoder_2'), { recursive: true });
    rmSync(join(partial, 'tokenizer', 'merges.txt'));
    const error = await start(partial);
    expect(error.problems).toEqual(['tokenizer/merges.txt: missing', 'text_encoder_2/model.onnx: missing']);
  });

  it('says which input a model lacks and what it has instead', async () => {
    const renamed = join(root, 'renamed');
    await writeTinyModelFolder(renamed, { steps: [4] });
    const graph = createGraph('text_encoder');
    graph.input('ids', 'int64', ['batch_size', 'sequence_length']);
    graph.input('mask', 'int64', ['batch_size', 'sequence_length']);
    graph.node('Cast', ['ids'], ['as_float'], { to: attr.int(1) });
    graph.node('Unsqueeze', ['as_float', 'axis'], ['hidden_states.0']);
    graph.initializer('axis', 'int64', [1], BigInt64Array.from([2n]));
    graph.output('hidden_states.0', 'float32', ['batch_size', 'sequence_length', 1]);
    await writeModel(join(renamed, 'text_encoder', 'model.onnx'), graph);
    const error = await start(renamed);
    expect(error.problems).toContain('text_encoder/model.onnx: expected an input named "input_ids", found "ids", "mask"');
    expect(error.problems.some((p) => p.startsWith('text_encoder/model.onnx: expected outputs hidden_states.0'))).toBe(true);
  });

  it('refuses a file that is not an ONNX model, naming it', async () => {
    const corrupt = join(root, 'corrupt');
    await writeTinyModelFolder(corrupt, { steps: [4] });
    writeFileSync(join(corrupt, 'vae_decoder', 'model.onnx'), 'not a model');
    const error = await start(corrupt);
    expect(error.message).toMatch(/vae_decoder\/model\.onnx: onnxruntime cannot load it/);
  });

  it('fails with EXECUTION_PROVIDER=cuda when CUDA cannot load, saying what is missing and how to install it', async () => {
    const error = await start(dir, 'cuda');
    expect(error.message).toContain('EXECUTION_PROVIDER=cuda, but CUDA is not usable');
    expect(error.message).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12');
  });
});
