// Random access to the bytes of a big file without holding it: a local file, or a hub file read with HTTP ranges.

import { open } from 'node:fs/promises';
import type { HubClient } from '../models-fetch/hub.js';

/** Reads `length` bytes at `offset`; `close()` releases what the source holds (the caller calls it). */
export type ByteSource = {
  /** Names the file in messages: a path, or `repo:path`. */
  readonly name: string;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
};

/** A local file, read with positioned reads. */
export async function openFileSource(path: string): Promise<ByteSource> {
  const handle = await open(path, 'r');
  return {
    name: path,
    async read(offset, length) {
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buffer, done, length - done, offset + done);
        if (bytesRead === 0) throw new RangeError(`${path}: ends before byte ${offset + length} (read ${offset + done})`);
        done += bytesRead;
      }
      return buffer;
    },
    close: () => handle.close(),
  };
}

/** A file on the hub, each read one `Range` request (for headers and a few tensors: a whole file is downloaded instead). */
export function hubSource(client: HubClient, repo: string, revision: string, path: string): ByteSource {
  return {
    name: `${repo}:${path}`,
    read: (offset, length) => client.readRange(repo, revision, path, offset, length),
    close: async () => {},
  };
}
