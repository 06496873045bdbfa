// A size-capped cache of full-size images on disk, least recently used out first, so U1–U4 answer without the GPU.

import { mkdir, readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodePng, type RgbImage } from '../render/index.js';

const FILE = /^([a-z0-9]+)-(\d+)\.png$/;

export class ImageCache {
  private readonly dir: string;
  private readonly maxBytes: number;
  /** File name → size, in least-recently-used-first order (a Map keeps insertion order). */
  private readonly entries = new Map<string, number>();
  private total = 0;

  constructor(dir: string, maxBytes: number) {
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  /** Creates the folder and learns what is already there (oldest use first, by modification time). */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const files = (await readdir(this.dir)).filter((name) => FILE.test(name));
    const stats = await Promise.all(files.map(async (name) => ({ name, ...(await stat(join(this.dir, name))) })));
    stats.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const { name, size } of stats) this.remember(name, size);
    await this.evict();
  }

  /** Stores image `index` of a job as PNG (written whole, then renamed into place). */
  async put(jobId: string, index: number, image: RgbImage): Promise<void> {
    const name = `${jobId}-${index}.png`;
    const data = await encodePng(image);
    const temporary = join(this.dir, `.${name}.tmp`);
    await writeFile(temporary, data);
    await rename(temporary, join(this.dir, name));
    this.forget(name);
    this.remember(name, data.length);
    await this.evict();
  }

  /** Whether image `index` of a job is cached (as far as this process knows; `get` may still miss a deleted file). */
  has(jobId: string, index: number): boolean {
    return this.entries.has(`${jobId}-${index}.png`);
  }

  /** The PNG of image `index` of a job, or undefined when it was never cached or has been evicted. */
  async get(jobId: string, index: number): Promise<Buffer | undefined> {
    const name = `${jobId}-${index}.png`;
    const size = this.entries.get(name);
    if (size === undefined) return undefined;
    try {
      const data = await readFile(join(this.dir, name));
      const now = new Date();
      await utimes(join(this.dir, name), now, now);
      this.forget(name);
      this.remember(name, size);
      return data;
    } catch {
      this.forget(name);
      return undefined;
    }
  }

  get bytes(): number {
    return this.total;
  }

  private remember(name: string, size: number): void {
    this.entries.set(name, size);
    this.total += size;
  }

  private forget(name: string): void {
    const size = this.entries.get(name);
    if (size === undefined) return;
    this.entries.delete(name);
    this.total -= size;
  }

  private async evict(): Promise<void> {
    for (const [name] of this.entries) {
      if (this.total <= this.maxBytes) return;
      this.forget(name);
      await unlink(join(this.dir, name)).catch(() => undefined);
    }
  }
}
