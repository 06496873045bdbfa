// Web results on disk: each delivered file (a grid or one image) and what the page shows about it, so the history
// survives restarts; one image of a grid comes from the image cache, or is cut out of the grid when it has gone.

import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ImageCache } from '../../core/image-cache.js';
import { cacheKey } from '../../core/deliver.js';
import { JOB_ID_PATTERN, type Job } from '../../core/jobs.js';
import type { ResultDelivery } from '../../core/service.js';
import { ASPECT_SIZES } from '../../core/request.js';
import { cellOrigin, encodePng, gridLayout, placeholderTile } from '../../render/index.js';

/** What is kept about a delivered result besides its file. */
export type StoredResult = {
  fileName: string;
  contentType: string;
  extension: string;
  /** The file's own size (a grid of the images, or one). */
  fileWidth: number;
  fileHeight: number;
  seeds: number[];
  /** Each image's size as generated. */
  width: number;
  height: number;
  elapsedMs: number;
  truncated: boolean;
  fromCache: boolean;
  /** Images were hidden by the safety check; the note says so. */
  safetyNote?: string;
};

/** A job's files in the results folder: `<job>.json` and `<job>.<extension>`. */
const RESULT_FILE = /^([a-km-z2-9]{12})\.(json|png|webp|jpg)$/;

export class WebResults {
  private readonly dir: string;
  private readonly images: Pick<ImageCache, 'get'>;
  private readonly maxBytes: number;
  /** Job id → bytes its files take, oldest result first (a Map keeps insertion order). */
  private readonly kept = new Map<string, number>();
  private total = 0;

  /** `maxBytes`: the oldest results are removed once the folder holds more. */
  constructor(dir: string, images: Pick<ImageCache, 'get'>, maxBytes = Infinity) {
    this.dir = dir;
    this.images = images;
    this.maxBytes = maxBytes;
  }

  /** Creates the folder and learns what it holds, oldest first, trimming it to the limit. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const found = new Map<string, { bytes: number; at: number }>();
    for (const name of await readdir(this.dir)) {
      const match = RESULT_FILE.exec(name);
      if (!match) continue;
      const info = await stat(join(this.dir, name)).catch(() => undefined);
      if (!info) continue;
      const entry = found.get(match[1]) ?? { bytes: 0, at: 0 };
      found.set(match[1], { bytes: entry.bytes + info.size, at: Math.max(entry.at, info.mtimeMs) });
    }
    for (const [jobId, { bytes }] of [...found].sort((a, b) => a[1].at - b[1].at)) this.remember(jobId, bytes);
    await this.trim();
  }

  /** Keeps a delivered result: the file first, then its record, each written whole and renamed into place. */
  async save(jobId: string, result: ResultDelivery): Promise<StoredResult> {
    const stored: StoredResult = {
      fileName: result.fileName,
      contentType: result.file.contentType,
      extension: result.file.extension,
      fileWidth: result.file.width,
      fileHeight: result.file.height,
      seeds: result.seeds,
      width: result.width,
      height: result.height,
      elapsedMs: result.elapsedMs,
      truncated: result.truncated,
      fromCache: result.fromCache,
      ...(result.safetyNote ? { safetyNote: result.safetyNote } : {}),
    };
    const record = Buffer.from(JSON.stringify(stored));
    await this.write(`${this.name(jobId)}.${stored.extension}`, result.file.data);
    await this.write(`${this.name(jobId)}.json`, record);
    this.remember(jobId, result.file.data.length + record.length);
    await this.trim();
    return stored;
  }

  /** The record of a job's result, or undefined when none was kept (or it was deleted). */
  async get(jobId: string): Promise<StoredResult | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, `${this.name(jobId)}.json`), 'utf8')) as StoredResult;
    } catch {
      return undefined;
    }
  }

  /** The delivered file. */
  async file(jobId: string): Promise<{ stored: StoredResult; data: Buffer } | undefined> {
    const stored = await this.get(jobId);
    if (!stored) return undefined;
    try {
      return { stored, data: await readFile(join(this.dir, `${this.name(jobId)}.${stored.extension}`)) };
    } catch {
      return undefined;
    }
  }

  /**
   * Image `index` of a job as PNG: the full-size one from the image cache, else cut out of the delivered grid (the
   * web asks for files no byte budget shrinks, so the cut is the image itself).
   */
  async image(job: Pick<Job, 'id' | 'kind' | 'parentId' | 'parentIndex' | 'request' | 'safety'>, index: number): Promise<Buffer | undefined> {
    // the cache keeps the original pixels: an image the safety check hid stays hidden here too
    if (job.safety?.[index]?.action === 'hide') {
      const { width, height } = ASPECT_SIZES[job.request.aspect];
      return encodePng(placeholderTile(width, height));
    }
    const cached = await this.images.get(...cacheKey(job, index)).catch(() => undefined);
    if (cached) return cached;
    const jobId = job.id;
    const file = await this.file(jobId);
    if (!file || index < 0 || index >= file.stored.seeds.length) return undefined;
    const { stored, data } = file;
    const count = stored.seeds.length;
    if (count === 1) return stored.extension === 'png' ? data : sharp(data).png().toBuffer();
    const layout = gridLayout(count, stored.width, stored.height);
    // a grid shrunk to fit a budget is cut at the same places, scaled
    const scale = stored.fileWidth / layout.width;
    const { left, top } = cellOrigin(layout, index);
    const region = {
      left: Math.round(left * scale),
      top: Math.round(top * scale),
      width: Math.min(Math.round(stored.width * scale), stored.fileWidth - Math.round(left * scale)),
      height: Math.min(Math.round(stored.height * scale), stored.fileHeight - Math.round(top * scale)),
    };
    return sharp(data).extract(region).png().toBuffer();
  }

  private remember(jobId: string, bytes: number): void {
    this.total += bytes - (this.kept.get(jobId) ?? 0);
    this.kept.delete(jobId);
    this.kept.set(jobId, bytes);
  }

  /** Removes the oldest results until the folder is within its limit (the newest one always stays). */
  private async trim(): Promise<void> {
    for (const [jobId, bytes] of this.kept) {
      if (this.total <= this.maxBytes || this.kept.size <= 1) return;
      this.kept.delete(jobId);
      this.total -= bytes;
      const names = (await readdir(this.dir)).filter((name) => name.startsWith(`${jobId}.`));
      await Promise.all(names.map((name) => unlink(join(this.dir, name)).catch(() => undefined)));
    }
  }

  private name(jobId: string): string {
    // ids come from URLs: only a job id's own characters ever reach a path
    if (!JOB_ID_PATTERN.test(jobId)) throw new RangeError(`not a job id: ${JSON.stringify(jobId)}`);
    return jobId;
  }

  private async write(name: string, data: Buffer): Promise<void> {
    const temporary = join(this.dir, `.${name}.tmp`);
    await writeFile(temporary, data);
    await rename(temporary, join(this.dir, name));
  }
}
