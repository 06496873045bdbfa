import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

/** Resolves once the engine says it is ready again (after a restart). */
async function ready(engine: Engine): Promise<void> {
  while (engine.availability(4).state !== 'ready') await new Promise<void>((resolve) => {
    const stop = engine.onChange(() => {
      stop();
      resolve();
    });
  });
}

/** Pixel files left in this process's engine folders. */
function pixelFiles(): string[] {
  const shm = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return readdirSync(shm)
    .filter((name) => name.startsWith(`lightning-engine-${process.pid}-`))
    .flatMap((name) => readdirSync(join(shm, name)));
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
      { modelDir: dir, provider: 'auto', deviceId: 0, cpuThreads: 1, restartDelayMs: 50 },
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

  it('returns RGB images through a shared-memory file, with timings and progress events', async () => {
    const events: string[] = [];
    const output = await engine.generate(small({ images: [{ seed: 1 }, { seed: 2 }] }), (event) => events.push(`${event.stage}:${event.step}/${event.steps}`));
    expect(output.images.map((image) => [image.width, image.height, image.data.length])).toEqual([
      [128, 128, 128 * 128 * 3],
      [128, 128, 128 * 128 * 3],
    ]);
    expect(output.images[0].data).toBeInstanceOf(Uint8Array);
    expect(events).toEqual(['text:0/4', 'unet:1/4', 'unet:2/4', 'unet:3/4', 'unet:4/4', 'vae:4/4']);
    expect(output.timings.unetStepMs).toHaveLength(4);
    expect(output.transfer).toMatchObject({ mode: 'shared-file', bytes: 2 * 128 * 128 * 3 });
    expect(output.transfer!.ms).toBeGreaterThan(0);
    // the engine reads each file once and deletes it
    expect(pixelFiles()).toEqual([]);
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
    await Promise.all([engine.generate(big), engine.generate(big), engine.generate(big)]);
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

  it('holds one request in the worker while another runs: canTake until two are posted, and the second starts before the first is back', async () => {
    expect(engine.canTake(4)).toBe(true);
    const order: string[] = [];
    const request = small({ width: 1024, height: 1024 });
    const first = engine.generate(request).then((output) => {
      order.push('first back');
      return output;
    });
    expect(engine.canTake(4)).toBe(true);
    const second = engine.generate(request, (event) => {
      if (event.stage === 'text') order.push('second started');
    });
    expect(engine.canTake(4)).toBe(false);
    expect(engine.canTake(3)).toBe(false);
    await encodePng((await first).images[0]);
    order.push('first encoded');
    await second;
    expect(order.indexOf('second started')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('second started')).toBeLessThan(order.indexOf('first back'));
    expect(engine.canTake(4)).toBe(true);
  });

  it('sends each posted request its own progress, first event first', async () => {
    const seen: Record<string, string[]> = { a: [], b: [] };
    await Promise.all(
      (['a', 'b'] as const).map((name, i) => engine.generate(small({ steps: 2 + 2 * i }), (event) => seen[name].push(`${event.stage}:${event.step}`))),
    );
    expect(seen.a).toEqual(['text:0', 'unet:1', 'unet:2', 'vae:2']);
    expect(seen.b).toEqual(['text:0', 'unet:1', 'unet:2', 'unet:3', 'unet:4', 'vae:4']);
  });

  it('rejects both posted requests with crashed when the worker dies, says it is restarting, then runs the next request', async () => {
    const started = workers.length;
    const changes: string[] = [];
    const stop = engine.onChange(() => changes.push(engine.availability(4).state));
    const running = engine.generate(small({ width: 1024, height: 1024, steps: 8, images: [0, 1, 2, 3].map((seed) => ({ seed })) }));
    const ahead = engine.generate(small({ images: [{ seed: 5 }] }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await kill(workers[workers.length - 1]);
    await expect(running).rejects.toMatchObject({ code: 'crashed' });
    await expect(ahead).rejects.toMatchObject({ code: 'crashed' });
    expect(engine.availability(4)).toMatchObject({ state: 'unavailable', reason: 'restarting', detail: expect.stringContaining('signal SIGKILL') });
    expect(engine.canTake(4)).toBe(false);
    // asked while the worker restarts: nothing is posted, the caller keeps the job and asks again on a change
    await expect(engine.generate(small())).rejects.toMatchObject({ code: 'unavailable' });
    await ready(engine);
    stop();
    expect(changes).toContain('unavailable');
    expect(changes[changes.length - 1]).toBe('ready');
    expect((await engine.generate(small({ images: [{ seed: 5 }] }))).images).toHaveLength(1);
    expect(workers.length).toBe(started + 1);
    expect(lines.some((line) => line.msg === 'engine worker restarted')).toBe(true);
  });

  it('makes the same pixels after a restart, and the same through an IPC message', async () => {
    const before = (await engine.generate(small({ images: [{ seed: 9 }] }))).images[0].data;
    await kill(workers[workers.length - 1]);
    await ready(engine);
    const after = (await engine.generate(small({ images: [{ seed: 9 }] }))).images[0].data;
    expect(Buffer.compare(Buffer.from(before), Buffer.from(after))).toBe(0);
    const inline = createEngine({ modelDir: dir, provider: 'cpu', deviceId: 0, cpuThreads: 1, lazyUnets: true, pixelTransfer: 'message', commitAhead: false }, { logger });
    await inline.start();
    try {
      const output = await inline.generate(small({ images: [{ seed: 9 }] }));
      expect(output.transfer?.mode).toBe('message');
      expect(Buffer.compare(Buffer.from(before), Buffer.from(output.images[0].data))).toBe(0);
      expect(inline.canTake(4)).toBe(true);
      void inline.generate(small());
      expect(inline.canTake(4)).toBe(false);
    } finally {
      await inline.close();
    }
  });
});

describe('recovery', () => {
  it('comes back after five kills within a minute, waiting longer each time, and runs jobs after', async () => {
    const workers: ChildProcess[] = [];
    const spawnedAt: number[] = [];
    const { logger, lines } = captureLogger();
    const engine = createEngine(
      { modelDir: dir, provider: 'cpu', deviceId: 0, cpuThreads: 1, lazyUnets: true, restartDelayMs: 100, restartMaxDelayMs: 1_000 },
      {
        logger,
        startWorker: (script) => {
          spawnedAt.push(performance.now());
          return tracked(workers)(script);
        },
      },
    );
    await engine.start();
    try {
      const diedAt: number[] = [];
      for (let death = 1; death <= 5; death++) {
        diedAt.push(performance.now());
        await kill(workers[workers.length - 1]);
        expect(engine.availability(4).state).toBe('unavailable');
        await ready(engine);
      }
      expect(workers).toHaveLength(6);
      // 100, 200, 400, 800 ms, then the 1 s cap
      const waits = diedAt.map((at, i) => spawnedAt[i + 1] - at);
      [100, 200, 400, 800, 1000].forEach((least, i) => expect(waits[i]).toBeGreaterThanOrEqual(least - 5));
      expect(waits[4]).toBeLessThan(1_900);
      expect((await engine.generate(small())).images).toHaveLength(1);
      expect(engine.availability(4)).toEqual({ state: 'ready' });
      expect(lines.filter((line) => line.msg === 'engine worker restarted')).toHaveLength(5);
    } finally {
      await engine.close();
    }
  });

  it('keeps trying after a worker that fails to start, and is ready once one starts fine', async () => {
    const exiting = join(root, 'exits.mjs');
    writeFileSync(exiting, 'process.exit(3);\n');
    const workers: ChildProcess[] = [];
    let spawns = 0;
    const { logger, lines } = captureLogger();
    const engine = createEngine(
      { modelDir: dir, provider: 'cpu', deviceId: 0, cpuThreads: 1, lazyUnets: true, restartDelayMs: 50 },
      // the first restart gets a worker that exits at once, as one that cannot load its libraries would
      { logger, startWorker: (script) => (++spawns === 2 ? startWorkerProcess(exiting) : tracked(workers)(script)) },
    );
    await engine.start();
    try {
      await kill(workers[0]);
      await ready(engine);
      expect(spawns).toBe(3);
      expect(lines.some((line) => line.msg === 'the engine worker did not start again')).toBe(true);
      expect(engine.availability(4)).toEqual({ state: 'ready' });
      expect((await engine.generate(small())).images).toHaveLength(1);
    } finally {
      await engine.close();
    }
  });

  it('kills a frozen worker (SIGSTOP) after its run overstays, rejects that request with timeout, and runs the next', async () => {
    const workers: ChildProcess[] = [];
    const { logger, lines } = captureLogger();
    const engine = createEngine(
      { modelDir: dir, provider: 'cpu', deviceId: 0, cpuThreads: 1, restartDelayMs: 50, minRunTimeoutMs: 1_500, firstRunTimeoutMs: 20_000 },
      { logger, startWorker: tracked(workers) },
    );
    await engine.start();
    try {
      await engine.generate(small());
      let running!: () => void;
      const began = new Promise<void>((resolve) => (running = resolve));
      const frozen = engine.generate(small(), () => running());
      const ahead = engine.generate(small({ images: [{ seed: 3 }] }));
      await began;
      const stoppedAt = performance.now();
      workers[0].kill('SIGSTOP');
      await expect(frozen).rejects.toMatchObject({ code: 'timeout' });
      // the limit is 5 × a tiny run's median, raised to the 1.5 s floor
      expect(performance.now() - stoppedAt).toBeGreaterThan(1_000);
      await expect(ahead).rejects.toMatchObject({ code: 'crashed' });
      expect(lines.some((line) => String(line.msg).startsWith('a run took far longer than runs like it'))).toBe(true);
      await ready(engine);
      expect((await engine.generate(small())).images).toHaveLength(1);
      expect(workers).toHaveLength(2);
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
    expect(error.problems).toEqual([expect.stringMatching(/^vae_decoder\/model\.onnx: not an ONNX model/)]);
  });

  it('fails with EXECUTION_PROVIDER=cuda when CUDA cannot load, saying what is missing and how to install it', async () => {
    const error = await start(dir, 'cuda');
    expect(error.message).toContain('EXECUTION_PROVIDER=cuda, but CUDA is not usable');
    expect(error.message).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12');
  });
});
