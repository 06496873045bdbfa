// A small Hugging Face hub client: list a repo folder (tree API) and open a file (resolve URL) from a byte offset.

import { Readable } from 'node:stream';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

/** How a hub file is checked: LFS files by their sha256, small git files by their git blob sha1. */
export type FileHash = { algorithm: 'sha256' | 'git-sha1'; hex: string };

/** A file as the hub lists it; `size` in bytes. */
export type HubFile = { path: string; size: number; hash: FileHash };

/** An open download: `start` is the byte the body begins at (0 when the server ignored the Range). */
export type HubDownload = { start: number; body: Readable };

export type HubClient = {
  endpoint: string;
  /** Lists every file under `dir` (recursively; '' is the repo root). A folder the hub does not have lists as empty. */
  listFiles(repo: string, revision: string, dir: string): Promise<HubFile[]>;
  /** Opens `path` from byte `offset`; the caller reads or destroys `body`. */
  open(repo: string, revision: string, path: string, offset: number): Promise<HubDownload>;
  /** Exactly `length` bytes of `path` from byte `offset` (one Range request); a server that ignores the range fails it. */
  readRange(repo: string, revision: string, path: string, offset: number, length: number): Promise<Buffer>;
};

export type HubOptions = { endpoint?: string; token?: string };

/** Whether a failed request may succeed when tried again (network trouble, 5xx, 429) or never will (404, 401). */
export class HubError extends Error {
  override name = 'HubError';
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}

type TreeEntry = { type?: unknown; path?: unknown; size?: unknown; oid?: unknown; lfs?: { oid?: unknown; size?: unknown } };

/** Makes a client for `endpoint` (default HF_ENDPOINT, then huggingface.co), sending `Bearer token` when one is given. */
export function createHubClient(options: HubOptions = {}): HubClient {
  const endpoint = (options.endpoint || DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
  const headers = (extra: Record<string, string> = {}): Record<string, string> =>
    options.token ? { ...extra, authorization: `Bearer ${options.token}` } : extra;
  const encodePath = (path: string): string => path.split('/').filter(Boolean).map(encodeURIComponent).join('/');

  const request = async (url: string, init: RequestInit, what: string): Promise<Response> => {
    let response: Response;
    try {
      response = await fetch(url, { ...init, redirect: 'follow' });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new HubError(`${what}: cannot reach ${endpoint} (${cause?.code ?? cause?.message ?? (error as Error).message}).`, true);
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new HubError(`${what}: the hub refused access (HTTP ${response.status}); set HF_TOKEN to a token that may read this repo.`, false);
    }
    return response;
  };

  return {
    endpoint,
    async listFiles(repo, revision, dir) {
      const what = `${repo} at ${revision}${dir ? `, folder ${dir}` : ''}`;
      const url = `${endpoint}/api/models/${repo}/tree/${encodeURIComponent(revision)}${dir ? `/${encodePath(dir)}` : ''}?recursive=true`;
      const response = await request(url, { headers: headers() }, what);
      if (response.status === 404) {
        await response.body?.cancel();
        return [];
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new HubError(`${what}: the hub answered HTTP ${response.status} to the file listing.`, response.status >= 500 || response.status === 429);
      }
      const entries = (await response.json()) as unknown;
      if (!Array.isArray(entries)) throw new HubError(`${what}: the hub's file listing is not a list.`, false);
      return (entries as TreeEntry[])
        .filter((entry) => entry.type === 'file' && typeof entry.path === 'string' && typeof entry.size === 'number')
        .map((entry): HubFile => {
          const lfs = entry.lfs && typeof entry.lfs.oid === 'string' ? entry.lfs : undefined;
          return {
            path: entry.path as string,
            size: lfs && typeof lfs.size === 'number' ? lfs.size : (entry.size as number),
            hash: lfs ? { algorithm: 'sha256', hex: String(lfs.oid) } : { algorithm: 'git-sha1', hex: String(entry.oid) },
          };
        });
    },
    async open(repo, revision, path, offset) {
      const what = `${path} from ${repo} at ${revision}`;
      const url = `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
      const response = await request(url, { headers: headers(offset > 0 ? { range: `bytes=${offset}-` } : {}) }, what);
      if (response.status === 404) {
        await response.body?.cancel();
        throw new HubError(`${what}: the hub has no such file (HTTP 404).`, false);
      }
      if (response.status === 416) {
        await response.body?.cancel();
        return { start: offset, body: Readable.from([]) };
      }
      if ((response.status !== 200 && response.status !== 206) || !response.body) {
        await response.body?.cancel();
        throw new HubError(`${what}: the hub answered HTTP ${response.status}.`, response.status >= 500 || response.status === 429);
      }
      const start = response.status === 206 ? Number(/^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1] ?? offset) : 0;
      return { start, body: Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>) };
    },
    async readRange(repo, revision, path, offset, length) {
      const what = `${path} from ${repo} at ${revision}, bytes ${offset}–${offset + length - 1}`;
      if (length === 0) return Buffer.alloc(0);
      const url = `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
      const response = await request(url, { headers: headers({ range: `bytes=${offset}-${offset + length - 1}` }) }, what);
      if (response.status !== 206) {
        await response.body?.cancel();
        const why = response.status === 200 ? 'the server ignored the range request' : response.status === 404 ? 'the hub has no such file' : `HTTP ${response.status}`;
        throw new HubError(`${what}: ${why} (HTTP ${response.status}).`, response.status >= 500 || response.status === 429);
      }
      const body = Buffer.from(await response.arrayBuffer());
      if (body.length !== length) throw new HubError(`${what}: received ${body.length} bytes, expected ${length}.`, true);
      return body;
    },
  };
}
