// A finished job's pixels in Redis: written once by the worker, read once and deleted by the bot, bounded in size.

import type { Redis } from 'ioredis';
import type { WorkerImage } from '../diffusion/protocol.js';
import { MAX_RESULT_BYTES, RESULT_TTL_SECONDS, resultKey, type RemoteImageMeta } from './protocol.js';

const RGB = 3;

/** A result that breaks the size bound or does not match its description; the message is for the admin log. */
export class ResultError extends Error {
  override readonly name = 'ResultError';
}

/** Checks the description alone: whole RGB images within MAX_RESULT_BYTES. Returns the total bytes. */
export function checkResultSize(images: readonly RemoteImageMeta[]): number {
  if (images.length === 0) throw new ResultError('a result with no images');
  let total = 0;
  for (const { width, height } of images) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new ResultError(`an image of ${width}×${height} pixels`);
    total += width * height * RGB;
  }
  if (total > MAX_RESULT_BYTES) throw new ResultError(`a result of ${total} bytes, over the bound of ${MAX_RESULT_BYTES}`);
  return total;
}

/**
 * Stores the images of `jobId` as one hash (field = image index, value = HWC RGB bytes) that expires after
 * RESULT_TTL_SECONDS unless the bot takes it first. Returns the key and what the bot needs to check the bytes.
 */
export async function writeResult(redis: Redis, jobId: string, images: readonly WorkerImage[]): Promise<{ key: string; images: RemoteImageMeta[] }> {
  const meta = images.map(({ width, height }) => ({ width, height }));
  checkResultSize(meta);
  images.forEach((image, index) => {
    if (image.data.length !== image.width * image.height * RGB) throw new ResultError(`image ${index} has ${image.data.length} bytes for ${image.width}×${image.height} RGB`);
  });
  const key = resultKey(jobId);
  const fields = images.flatMap((image, index) => [String(index), Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength)]);
  await redis.multi().del(key).hset(key, ...fields).expire(key, RESULT_TTL_SECONDS).exec();
  return { key, images: meta };
}

/**
 * Reads a result once and deletes it. Undefined when it is gone (expired, taken before, or lost with a Redis restart):
 * the job must run again. Throws a ResultError when the bytes are not what the description says.
 */
export async function takeResult(redis: Redis, key: string, images: readonly RemoteImageMeta[]): Promise<WorkerImage[] | undefined> {
  checkResultSize(images);
  const [[readError, fields], [deleteError]] = (await redis.multi().hgetallBuffer(key).del(key).exec()) as [[Error | null, Record<string, Buffer>], [Error | null, number]];
  if (readError) throw readError;
  if (deleteError) throw deleteError;
  if (Object.keys(fields).length === 0) return undefined;
  if (Object.keys(fields).length !== images.length) throw new ResultError(`the result holds ${Object.keys(fields).length} images; its job says ${images.length}`);
  return images.map(({ width, height }, index) => {
    const data = fields[String(index)];
    if (!data || data.length !== width * height * RGB) throw new ResultError(`image ${index} has ${data?.length ?? 0} bytes for ${width}×${height} RGB`);
    return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  });
}
