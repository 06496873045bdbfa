import { describe, expect, it } from 'vitest';
import type { EngineOutput, EngineRequest } from '../../../src/core/engine-port.js';
import type { EngineAvailability, EngineInfo } from '../../../src/diffusion/index.js';
import { createCompositeEngine, type StartableEngine } from '../../../src/remote/composite.js';
import { describeAnnouncement } from '../../../src/remote/doctor.js';
import { decodeFailure, encodeFailure, MAX_RESULT_BYTES, type WorkerAnnouncement } from '../../../src/remote/protocol.js';
import { canMatch } from '../../../src/remote/remote-engine.js';
import { checkResultSize, ResultError } from '../../../src/remote/results.js';

describe('canMatch', () => {
  it('finds a worker for every job when one exists, moving earlier picks aside', () => {
    // the 4-step job must not take the only 8-step worker
    expect(canMatch([4, 8], [[4, 8], [4]])).toBe(true);
    expect(canMatch([8, 4], [[4, 8], [4]])).toBe(true);
    expect(canMatch([8, 8], [[4, 8], [4]])).toBe(false);
    expect(canMatch([4, 4, 4], [[4, 8], [4]])).toBe(false);
    expect(canMatch([2], [[4, 8], [4]])).toBe(false);
    expect(canMatch([], [])).toBe(true);
  });
});

describe('the wire formats', () => {
  it('carries the engine error code in a failed job’s reason', () => {
    expect(decodeFailure(encodeFailure('invalid_request', 'no UNet for 3 steps'))).toEqual({ code: 'invalid_request', message: 'no UNet for 3 steps' });
    expect(decodeFailure('job stalled more than allowable limit')).toEqual({ code: 'internal', message: 'job stalled more than allowable limit' });
    expect(decodeFailure(undefined)).toEqual({ code: 'internal', message: 'the worker gave no reason' });
  });

  it('bounds a result’s size before any byte moves', () => {
    expect(checkResultSize([{ width: 1024, height: 1024 }])).toBe(3 * 2 ** 20);
    expect(() => checkResultSize(Array.from({ length: 9 }, () => ({ width: 1024, height: 1024 })))).toThrow(ResultError);
    expect(() => checkResultSize([{ width: 4096, height: 4096 }])).toThrow(`over the bound of ${MAX_RESULT_BYTES}`);
    expect(() => checkResultSize([{ width: 0.5, height: 2 }])).toThrow('an image of 0.5×2 pixels');
    expect(() => checkResultSize([])).toThrow('a result with no images');
  });

  it('describes a worker for the doctor', () => {
    const worker: WorkerAnnouncement = {
      id: 'gpu-a',
      instance: 'x',
      host: 'box-1',
      pid: 1,
      device: 'cuda:0',
      provider: 'cuda',
      steps: [1, 2, 4, 8],
      state: 'busy',
      job: 'abcdefghijkm',
      startedAt: 1_000_000 - 3 * 3600_000,
      lastSeen: 1_000_000 - 2_000,
    };
    expect(describeAnnouncement(worker, 1_000_000)).toMatchInlineSnapshot(`"gpu-a on box-1 (cuda:0), steps 1/2/4/8, busy with job abcdefghijkm, last seen 2 s ago, up 3 h"`);
  });
});

/** An engine part whose state the test sets. */
function part(name: string, steps: number[], state: { free: boolean; availability?: EngineAvailability; runs?: string[] }): StartableEngine & { calls: string[] } {
  const info: EngineInfo = { provider: 'cuda', steps, modelDir: name };
  const listeners = new Set<() => void>();
  const calls: string[] = [];
  return {
    calls,
    info,
    canTake: (n) => state.free && steps.includes(n),
    availability: () => state.availability ?? { state: 'ready' },
    onChange: (listener) => (listeners.add(listener), () => listeners.delete(listener)),
    runs: (jobId) => state.runs?.includes(jobId) ?? false,
    async generate(request: EngineRequest): Promise<EngineOutput> {
      calls.push(request.jobId ?? '');
      return { images: [], timings: { tokenizeMs: 0, textMs: 0, noiseMs: 0, unetStepMs: [], vaeMs: 0, totalMs: 0, hostMs: 0 }, truncated: false, prediction: 'epsilon', worker: name };
    },
    start: async () => info,
    close: async () => undefined,
  };
}

describe('the composite engine (ENGINE=both)', () => {
  const request = (steps: number, jobId: string): EngineRequest => ({ prompt: 'p', steps, width: 64, height: 64, images: [{ seed: 1 }], jobId });

  it('offers the union of the steps and gives a job to a part that can take it, the local one first', async () => {
    const localState = { free: true };
    const remoteState = { free: true, runs: ['old'] };
    const local = part('local', [4], localState);
    const remote = part('remote', [4, 8], remoteState);
    const both = createCompositeEngine([local, remote]);
    expect(both.info?.steps).toEqual([4, 8]);
    expect(both.canTake(8)).toBe(true);
    await both.generate(request(4, 'a'));
    await both.generate(request(8, 'b'));
    localState.free = false;
    await both.generate(request(4, 'c'));
    // a job a worker already runs (handed over before a restart) stays with it
    localState.free = true;
    await both.generate(request(4, 'old'));
    expect([local.calls, remote.calls]).toEqual([['a'], ['b', 'c', 'old']]);
  });

  it('says why nothing can run a step count', () => {
    const local = part('local', [4], { free: true, availability: { state: 'unavailable', reason: 'restarting', detail: 'the engine worker is starting' } });
    const remote = part('remote', [8], { free: false, availability: { state: 'unavailable', reason: 'no_worker', detail: 'no GPU worker is connected' } });
    const both = createCompositeEngine([local, remote]);
    expect(both.availability(4)).toEqual({ state: 'unavailable', reason: 'restarting', detail: 'the engine worker is starting' });
    const remoteOnly = createCompositeEngine([part('local', [4], { free: true }), remote]);
    expect(remoteOnly.availability(4)).toEqual({ state: 'ready' });
    expect(remoteOnly.availability(8)).toEqual({ state: 'unavailable', reason: 'no_worker', detail: 'no 8-step UNet; no GPU worker is connected' });
  });
});
