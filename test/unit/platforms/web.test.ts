import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ResultDelivery } from '../../../src/core/service.js';
import { WebResults } from '../../../src/platforms/web/results.js';
import { loadConfig } from '../../../src/config.js';
import { REFUSAL_SENTENCES, type RefusalCode } from '../../../src/core/refusal.js';
import { createAuth, SESSION_COOKIE, tokenUserId } from '../../../src/platforms/web/auth.js';
import { nearestAspect, nearestSteps } from '../../../src/platforms/web/compat.js';
import { REFUSAL_STATUS, refusalError, validationError, WebError } from '../../../src/platforms/web/errors.js';
import { JobEvents } from '../../../src/platforms/web/events.js';
import { clientAddress, hostName, isLoopbackHost } from '../../../src/platforms/web/host.js';

const TOKEN = '0123456789abcdef0123456789abcdef';

describe('the web settings', () => {
  it('are on at 127.0.0.1:7860 by default, off with WEB_PORT=0, and take several tokens', () => {
    const history = 2048 * 2 ** 20;
    expect(loadConfig({}).web).toEqual({ host: '127.0.0.1', port: 7860, tokens: [], resultsMaxBytes: history });
    expect(loadConfig({ WEB_PORT: '0' }).web).toBeUndefined();
    expect(loadConfig({ WEB_HOST: '0.0.0.0', WEB_PORT: '8080', WEB_TOKEN: `${TOKEN}, ${TOKEN}x`, WEB_HISTORY_MB: '10' }).web).toEqual({
      host: '0.0.0.0',
      port: 8080,
      tokens: [TOKEN, `${TOKEN}x`],
      resultsMaxBytes: 10 * 2 ** 20,
    });
  });

  it('refuse an open host without a token, and short tokens, without quoting them', () => {
    expect(() => loadConfig({ WEB_HOST: '::' })).toThrow('WEB_HOST :: is reachable from other machines, so WEB_TOKEN must be set');
    expect(() => loadConfig({ WEB_HOST: '::', WEB_PORT: '0' })).not.toThrow();
    expect(() => loadConfig({ WEB_TOKEN: 'hunter2' })).toThrow(
      'WEB_TOKEN entries must be at least 32 characters without spaces (one has 7); make one with: openssl rand -hex 32',
    );
    expect(() => loadConfig({ WEB_TOKEN: 'hunter2' })).not.toThrow(/hunter2/);
    expect(() => loadConfig({ WEB_PORT: '70000' })).toThrow('WEB_PORT must be a whole number from 0 to 65535; found "70000"');
  });
});

describe('web addresses', () => {
  it('knows loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.8.9.10', 'localhost', 'app.localhost', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '192.168.1.5', 'example.org', '128.0.0.1']) expect(isLoopbackHost(host), host).toBe(false);
  });

  it('reads Host headers and client addresses', () => {
    expect(['localhost:7860', '[::1]:7860', 'Example.ORG', '127.0.0.1'].map(hostName)).toEqual(['localhost', '::1', 'example.org', '127.0.0.1']);
    expect([clientAddress('::ffff:10.0.0.2'), clientAddress('::1'), clientAddress('10.0.0.2')]).toEqual(['10.0.0.2', '::1', '10.0.0.2']);
  });
});

describe('web access', () => {
  const request = (headers: Record<string, string>, cookies: Record<string, string> = {}) => ({ headers, cookies, ip: '::ffff:10.1.2.3' });

  it('is the client address without tokens', () => {
    expect(createAuth([]).identify(request({}))).toEqual({ userId: '10.1.2.3' });
  });

  it('is a token, by Bearer header or by the session cookie that stands for it', () => {
    const other = `${TOKEN}-other`;
    const auth = createAuth([TOKEN, other]);
    expect(auth.identify(request({}))).toBeUndefined();
    expect(auth.identify(request({ authorization: `Bearer ${TOKEN}` }))).toEqual({ userId: tokenUserId(TOKEN) });
    expect(auth.identify(request({ authorization: `bearer  ${other} ` }))).toEqual({ userId: tokenUserId(other) });
    expect(auth.identify(request({ authorization: `Bearer ${TOKEN.slice(1)}` }))).toBeUndefined();
    expect(auth.identify(request({ authorization: `Basic ${TOKEN}` }))).toBeUndefined();
    const session = auth.sessionFor(other);
    expect(session).toMatch(/^[0-9a-f]{64}$/);
    expect(session).not.toContain(other);
    expect(auth.identify(request({}, { [SESSION_COOKIE]: session }))).toEqual({ userId: tokenUserId(other) });
    expect(auth.identify(request({}, { [SESSION_COOKIE]: session.replace(/.$/, (c) => (c === '0' ? '1' : '0')) }))).toBeUndefined();
    expect(auth.matchToken(TOKEN)).toBe(TOKEN);
    expect(auth.matchToken('')).toBeUndefined();
  });

  it('names a token’s member by the first 12 hex digits of its SHA-256', () => {
    // printf %s 0123456789abcdef0123456789abcdef | sha256sum
    expect(tokenUserId(TOKEN)).toBe('3eb1bd439947');
  });
});

describe('mapping A1111 and OpenAI numbers onto Lightning', () => {
  it('takes the nearest installed step count, the fewer on a tie', () => {
    expect([1, 2, 3, 5, 6, 7, 20, 50].map((steps) => nearestSteps(steps, [1, 2, 4, 8]))).toEqual([1, 2, 2, 4, 4, 8, 8, 8]);
    expect(nearestSteps(30, [])).toBe(30);
  });

  it('takes the SDXL bucket nearest in shape', () => {
    expect(nearestAspect(512, 512)).toBe('1:1');
    expect(nearestAspect(1792, 1024)).toBe('16:9');
    expect(nearestAspect(1024, 1792)).toBe('9:16');
    expect(nearestAspect(1216, 832)).toBe('3:2');
    expect(nearestAspect(1536, 1024)).toBe('3:2');
    expect(nearestAspect(640, 480)).toBe('4:3');
    expect(nearestAspect(3000, 1000)).toBe('21:9');
  });
});

describe('web errors', () => {
  it('give every refusal an HTTP status and its sentence, in each API family’s shape', () => {
    expect(Object.keys(REFUSAL_STATUS).sort()).toEqual((Object.keys(REFUSAL_SENTENCES) as RefusalCode[]).sort());
    expect(Object.values(REFUSAL_STATUS).every((status) => status >= 400 && status < 600)).toBe(true);
    const limited = refusalError({ code: 'rate_limited', retryAfterMs: 40_000 });
    expect([limited.status, limited.retryAfterMs]).toEqual([429, 40_000]);
    expect(limited.body('web')).toEqual({ error: { code: 'rate_limited', message: 'You can imagine again in 40 s.' } });
    expect(limited.body('openai')).toEqual({ error: { message: 'You can imagine again in 40 s.', type: 'rate_limit_error', param: null, code: 'rate_limited' } });
    expect(limited.body('a1111')).toEqual({ error: 'rate_limited', detail: 'You can imagine again in 40 s.' });
    expect(refusalError({ code: 'invalid_option', option: 'count', expected: 'a whole number from 1 to 4' }).body('openai')).toMatchObject({ error: { param: 'count' } });
  });

  it('say which field a schema violation is about', () => {
    const sentence = (error: WebError) => [error.status, error.message];
    expect(sentence(validationError([{ keyword: 'type', instancePath: '/steps', params: { type: 'integer' } }]))).toEqual([400, 'The field "steps" must be a whole number.']);
    expect(sentence(validationError([{ keyword: 'required', instancePath: '', params: { missingProperty: 'prompt' } }]))).toEqual([400, 'The field "prompt" is required.']);
    expect(sentence(validationError([{ keyword: 'minimum', instancePath: '/index', params: { limit: 0 } }]))).toEqual([400, 'The field "index" must be at least 0.']);
    expect(sentence(validationError([{ keyword: 'type', instancePath: '', params: { type: 'object' } }]))).toEqual([400, 'The body must be a JSON object.']);
  });
});

describe('a job’s events', () => {
  it('replay what a stream missed, or nothing it can vouch for', () => {
    const events = new JobEvents({ keepFinishedMs: 60_000 });
    const queued = events.publish('job1', 'queued', { position: 2 });
    events.publish('other', 'queued', { position: 1 });
    const running = events.publish('job1', 'running', {});
    const done = events.publish('job1', 'done', {});
    expect(events.since('job1', queued.id)).toEqual([running, done]);
    expect(events.since('job1', done.id)).toEqual([]);
    expect(events.since('job1', 'cafebabe.1')).toBeUndefined();
    expect(events.since('job1', undefined)).toBeUndefined();
    expect(events.since('job1', `${events.epoch}.x`)).toBeUndefined();
    expect(events.latest('job1')).toEqual(done);
    events.close();
  });

  it('keep the newest 64 of a job, and say so when a stream missed more', () => {
    const events = new JobEvents({ keepFinishedMs: 60_000 });
    const first = events.publish('job', 'running', { step: 0 });
    for (let step = 1; step < 70; step++) events.publish('job', 'running', { step });
    expect(events.since('job', first.id)).toBeUndefined();
    const recent = events.since('job', `${events.epoch}.60`)!;
    expect(recent.map((event) => event.data.step)).toEqual([60, 61, 62, 63, 64, 65, 66, 67, 68, 69]);
    events.close();
  });

  it('hand each event to every listener, and drop one that throws', () => {
    const events = new JobEvents({ keepFinishedMs: 60_000 });
    const seen: string[] = [];
    events.subscribe('job', () => {
      throw new Error('gone');
    });
    const stop = events.subscribe('job', (event) => seen.push(event.type));
    events.publish('job', 'queued', {});
    expect(events.listenerCount).toBe(1);
    stop();
    events.publish('job', 'running', {});
    expect(seen).toEqual(['queued']);
    events.close();
  });
});

describe('the web results folder', () => {
  const result = (bytes: number): ResultDelivery => ({
    file: { data: Buffer.alloc(bytes, 1), format: 'png', contentType: 'image/png', extension: 'png', width: 8, height: 8 },
    fileName: 'x.png',
    seeds: [1],
    width: 8,
    height: 8,
    elapsedMs: 1,
    truncated: false,
    fromCache: false,
  });
  const ids = ['aaaaaaaaaaaa', 'bbbbbbbbbbbb', 'cccccccccccc'];

  it('removes the oldest results beyond its limit, and counts what an earlier start left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'web-results-'));
    try {
      const noCache = { get: async () => undefined };
      const results = new WebResults(dir, noCache, 2_600);
      await results.start();
      for (const id of ids) await results.save(id, result(1_000));
      expect(await results.get(ids[0])).toBeUndefined();
      expect((await results.file(ids[1]))?.data.length).toBe(1_000);
      expect((await results.file(ids[2]))?.data.length).toBe(1_000);
      expect(readdirSync(dir).sort()).toEqual([`${ids[1]}.json`, `${ids[1]}.png`, `${ids[2]}.json`, `${ids[2]}.png`]);
      // a later start with a smaller limit trims what is there, oldest first
      const smaller = new WebResults(dir, noCache, 1_500);
      await smaller.start();
      expect(await smaller.get(ids[1])).toBeUndefined();
      expect(await smaller.get(ids[2])).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
