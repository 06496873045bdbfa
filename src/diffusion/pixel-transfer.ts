// How a result's 8-bit pixels cross from the worker process to the bot: a file in shared memory, not an IPC message.
//
// Measured on a shared 2-core VM (bench/pipeline.ts prints it): a 2×2 grid of 1024² RGB is 12.6 MB. As an 'advanced'
// IPC message it is serialized on the worker's thread (5–6 ms), and the worker's event loop must keep turning to push
// it through the channel, which it cannot while onnxruntime runs the next request; the bot's thread then gathers
// and deserializes it (5–7 ms). Written to a tmpfs file on libuv's thread pool it leaves the worker's thread free,
// and the bot reads it with one blocking read (1.7 ms for 12.6 MB): not on the bot's thread pool, where sharp's
// encodes run, because a read queued behind four of them waited 0.7 s (p50) under a full queue. IPC then carries only
// a small message naming the file.

import { accessSync, closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PixelRef, PixelTransferMode, ResultMessage, WorkerImage } from './protocol.js';

const FOLDER_PREFIX = 'lightning-engine-';

/** tmpfs where Linux has it (no disk writes), else the system's temporary folder. */
function sharedRoot(): string {
  try {
    if (existsSync('/dev/shm') && statSync('/dev/shm').isDirectory()) {
      accessSync('/dev/shm', constants.W_OK);
      return '/dev/shm';
    }
  } catch {
    // not writable: fall through
  }
  return tmpdir();
}

/**
 * Makes this engine's private folder for pixel files (mode 0700, named after the bot's pid) and removes folders
 * left by bot processes that no longer run (killed with -9, so they could not clean up).
 */
export function createPixelFolder(): string {
  const root = sharedRoot();
  for (const name of safeList(root)) {
    const pid = Number(/^lightning-engine-(\d+)-/.exec(name)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) rmSync(join(root, name), { recursive: true, force: true });
  }
  return mkdtempSync(join(root, `${FOLDER_PREFIX}${process.pid}-`));
}

/** Empties the folder of files a dead worker wrote but never announced. */
export function clearPixelFolder(folder: string): void {
  for (const name of safeList(folder)) rmSync(join(folder, name), { force: true });
}

export function removePixelFolder(folder: string): void {
  rmSync(folder, { recursive: true, force: true });
}

/** Worker side: writes the images one after another into `folder/<id>.rgb` (no copy; writev from the buffers). */
export async function writePixels(folder: string, id: number, images: readonly WorkerImage[]): Promise<PixelRef> {
  const file = join(folder, `${id}.rgb`);
  const bytes = images.reduce((sum, image) => sum + image.data.byteLength, 0);
  const handle = await open(file, 'w', 0o600);
  try {
    let written = 0;
    const buffers = images.map((image) => image.data);
    while (written < bytes) {
      const { bytesWritten } = await handle.writev(written === 0 ? buffers : [concatFrom(buffers, written)]);
      if (bytesWritten === 0) throw new Error(`could not write ${file}: the disk took no more bytes`);
      written += bytesWritten;
    }
  } catch (error) {
    await rm(file, { force: true });
    throw error;
  } finally {
    await handle.close();
  }
  return { file, bytes };
}

/** Bot side: reads the file with one blocking read (see above), deletes it, and returns the images as views into it. */
export function readPixels(ref: PixelRef, shapes: readonly { width: number; height: number }[]): WorkerImage[] {
  const expected = shapes.reduce((sum, { width, height }) => sum + width * height * 3, 0);
  if (expected !== ref.bytes) throw new Error(`pixel file ${ref.file}: holds ${ref.bytes} bytes, the images need ${expected}`);
  const buffer = Buffer.allocUnsafe(ref.bytes);
  const fd = openSync(ref.file, 'r');
  try {
    let read = 0;
    while (read < ref.bytes) {
      const bytesRead = readSync(fd, buffer, read, ref.bytes - read, read);
      if (bytesRead === 0) throw new Error(`pixel file ${ref.file}: ended after ${read} of ${ref.bytes} bytes`);
      read += bytesRead;
    }
  } finally {
    closeSync(fd);
    unlinkSync(ref.file);
  }
  let offset = 0;
  return shapes.map(({ width, height }) => {
    const size = width * height * 3;
    const data = new Uint8Array(buffer.buffer, buffer.byteOffset + offset, size);
    offset += size;
    return { width, height, data };
  });
}

/** The bytes of `buffers` from `offset` on, as one buffer (only after a short write, which tmpfs does not do). */
function concatFrom(buffers: readonly Uint8Array[], offset: number): Uint8Array {
  return Buffer.concat(buffers).subarray(offset);
}

function safeList(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Worker side: the pixels of one result as the result message carries them, a file in `shared-file` mode, or the
 * bytes themselves in `message` mode and whenever the file cannot be written (a full /dev/shm; `onFallback` says why).
 */
export async function packPixels(
  mode: PixelTransferMode,
  folder: string,
  id: number,
  images: readonly WorkerImage[],
  onFallback: (error: Error) => void,
): Promise<ResultMessage['pixels']> {
  if (mode === 'shared-file') {
    try {
      return { ref: await writePixels(folder, id, images) };
    } catch (error) {
      onFallback(error as Error);
    }
  }
  return { inline: images.map((image) => image.data) };
}

/** Bot side: the images of a result message, from its file or from the message itself. */
export function unpackPixels(message: Pick<ResultMessage, 'pixels' | 'shapes'>): WorkerImage[] {
  if ('ref' in message.pixels) return readPixels(message.pixels.ref, message.shapes);
  const { inline } = message.pixels;
  return message.shapes.map(({ width, height }, i) => ({ width, height, data: inline[i] }));
}
