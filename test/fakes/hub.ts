// A fake Hugging Face hub on 127.0.0.1: serves local folders as repos (tree API with LFS metadata, resolve with Range), with switches to inject failures.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative, sep } from 'node:path';

export type HubRequest = { method: string; url: string; headers: IncomingHttpHeaders; host: string; sentBytes: number };

/**
 * Failures, each keyed by repo path: drop the connection after `n` body bytes, corrupt once (the last byte of the
 * body), corrupt the file for good (served and listed hashes disagree), 404, ignore Range.
 */
export type HubFaults = { dropAfter: Map<string, number>; corruptOnce: Set<string>; corrupt: Set<string>; notFound: Set<string>; ignoreRange: boolean };

export type FakeHub = {
  endpoint: string;
  requests: HubRequest[];
  faults: HubFaults;
  /** Body bytes sent for one repo path, all requests together. */
  sentFor(path: string): number;
  close(): Promise<void>;
};

/** Files the real hub keeps in LFS (listed with `lfs.oid`, their sha256). */
const isLfs = (path: string): boolean => /\.(onnx(_data)?|safetensors)$/.test(path);

function listFolder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

/**
 * Serves each `repos` entry (repo id → folder) at `revision`: `GET /api/models/{repo}/tree/{rev}/{dir}` and
 * `GET /{repo}/resolve/{rev}/{path}` with `Range: bytes=a-` or `bytes=a-b`. A string serves one folder as `repo`.
 */
export async function startFakeHub(repos: Record<string, string> | string, repo = '', revision = 'main'): Promise<FakeHub> {
  const folders = typeof repos === 'string' ? { [repo]: repos } : repos;
  const files = new Map<string, Map<string, Buffer>>();
  for (const [id, folder] of Object.entries(folders)) files.set(id, new Map(listFolder(folder).map((path) => [path, readFileSync(join(folder, path))])));
  const requests: HubRequest[] = [];
  const sent = new Map<string, number>();
  const faults: HubFaults = { dropAfter: new Map(), corruptOnce: new Set(), corrupt: new Set(), notFound: new Set(), ignoreRange: false };

  const route = (path: string): { repo: string; kind: 'tree' | 'resolve'; rest: string } | undefined => {
    for (const id of files.keys()) {
      const tree = `/api/models/${id}/tree/${revision}`;
      if (path === tree || path.startsWith(`${tree}/`)) return { repo: id, kind: 'tree', rest: path.slice(tree.length + 1) };
      const resolve = `/${id}/resolve/${revision}/`;
      if (path.startsWith(resolve)) return { repo: id, kind: 'resolve', rest: path.slice(resolve.length) };
    }
    return undefined;
  };

  const server = createServer((req, res) => {
    const record: HubRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, host: req.headers.host ?? '', sentBytes: 0 };
    requests.push(record);
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    const found = route(path);
    if (!found) return void res.writeHead(404).end('not found');
    const repoFiles = files.get(found.repo)!;
    if (found.kind === 'tree') {
      const dir = found.rest;
      const entries = [...repoFiles]
        .filter(([name]) => !faults.notFound.has(name) && (dir === '' || name.startsWith(`${dir}/`)))
        .map(([name, data]) => {
          const blob = createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
          if (!isLfs(name)) return { type: 'file', path: name, size: data.length, oid: blob };
          const sha256 = createHash('sha256').update(data).digest('hex');
          return { type: 'file', path: name, size: data.length, oid: blob, lfs: { oid: sha256, size: data.length, pointerSize: 134 } };
        });
      if (entries.length === 0) return void res.writeHead(404).end('{"error":"Entry not found"}');
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(entries));
    }
    const name = found.rest;
    const stored = repoFiles.get(name);
    if (!stored || faults.notFound.has(name)) return void res.writeHead(404).end('Entry not found');
    let data = stored;
    if (faults.corrupt.has(name)) {
      data = Buffer.from(stored);
      data[Math.floor(data.length / 2)] ^= 0xff;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = range && !faults.ignoreRange ? Number(range[1]) : 0;
    const end = range && !faults.ignoreRange && range[2] !== '' ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
    let body = Buffer.from(data.subarray(start, end + 1));
    // the one-off faults hit downloads (to the end of the file), not the small bounded reads of headers and tensors
    const download = !range || range[2] === '' || faults.ignoreRange;
    if (download && faults.corruptOnce.delete(name) && body.length > 0) body[body.length - 1] ^= 0xff;
    const headers = { 'content-length': String(body.length), 'accept-ranges': 'bytes' };
    if (range && !faults.ignoreRange) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${data.length}` });
    else res.writeHead(200, headers);
    const drop = download ? faults.dropAfter.get(name) : undefined;
    if (drop !== undefined) {
      faults.dropAfter.delete(name);
      body = body.subarray(0, Math.min(drop, body.length));
      record.sentBytes = body.length;
      sent.set(name, (sent.get(name) ?? 0) + body.length);
      res.write(body, () => res.destroy());
      return;
    }
    record.sentBytes = body.length;
    sent.set(name, (sent.get(name) ?? 0) + body.length);
    return void res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    faults,
    sentFor: (path) => sent.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
