import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageCache } from '../../../src/core/image-cache.js';

const root = mkdtempSync(join(tmpdir(), 'image-cache-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A noisy image, so its PNG has a predictable, non-trivial size. */
function noisy(seed: number, size = 64) {
  let state = seed;
  const data = new Uint8Array(size * size * 3).map(() => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state >>> 24;
  });
  return { width: size, height: size, data };
}

describe('ImageCache', () => {
  it('stores full-size PNGs and reads them back exactly', async () => {
    const cache = new ImageCache(join(root, 'a'), 10 * 2 ** 20);
    await cache.start();
    const image = noisy(1);
    await cache.put('job1', 2, image);
    const png = await cache.get('job1', 2);
    const { data, info } = await sharp(png!).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, Buffer.compare(data, Buffer.from(image.data))]).toEqual([64, 64, 0]);
    expect(await cache.get('job1', 3)).toBeUndefined();
    expect(await cache.get('nojob', 0)).toBeUndefined();
  });

  it('keeps under its cap by dropping the least recently used first', async () => {
    const dir = join(root, 'b');
    const probe = new ImageCache(join(root, 'probe'), 10 * 2 ** 20);
    await probe.start();
    await probe.put('x', 0, noisy(2));
    const one = probe.bytes;
    const cache = new ImageCache(dir, Math.floor(one * 3.5));
    await cache.start();
    await cache.put('a', 0, noisy(3));
    await cache.put('b', 0, noisy(4));
    await cache.put('c', 0, noisy(5));
    await cache.get('a', 0); // a is now the most recently used
    await cache.put('d', 0, noisy(6));
    expect(readdirSync(dir).sort()).toEqual(['a-0.png', 'c-0.png', 'd-0.png']);
    expect(cache.bytes).toBeLessThanOrEqual(Math.floor(one * 3.5));
    expect(await cache.get('b', 0)).toBeUndefined();
  });

  it('learns what is on disk at start, oldest use first, and trims it to a smaller cap', async () => {
    const dir = join(root, 'c');
    const first = new ImageCache(dir, 10 * 2 ** 20);
    await first.start();
    for (const [i, job] of ['old', 'mid', 'new'].entries()) {
      await first.put(job, 0, noisy(10 + i));
      const at = new Date(Date.now() - (3 - i) * 60_000);
      utimesSync(join(dir, `${job}-0.png`), at, at);
    }
    const size = statSync(join(dir, 'mid-0.png')).size;
    const second = new ImageCache(dir, size * 2 + 10);
    await second.start();
    expect(readdirSync(dir).sort()).toEqual(['mid-0.png', 'new-0.png']);
    expect(await second.get('mid', 0)).toBeInstanceOf(Buffer);
  });
});
