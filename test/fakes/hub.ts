// A fake Hugging Face hub on 127.0.0.1: serves a local folder as one repo (tree API and resolve with Range), with switches to inject failures.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative, sep } from 'node:path';

export type HubRequest = { method: string; url: string; headers: IncomingHttpHeaders; host: string; sentBytes: number };

/** Failures, each keyed by repo path: drop the connection after `n` body bytes, corrupt once, 404, ignore Range. */
export type HubFaults = { dropAfter: Map<string, number>; corruptOnce: Set<string>; notFound: Set<string>; ignoreRange: boolean };

export type FakeHub = { endpoint: string; requests: HubRequest[]; faults: HubFaults; close(): Promise<void> };

const isLfs = (path: string): boolean => /\.onnx(_data)?$/.test(path);

function listFolder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

/** Serves `folder` as repo `repo` at revision `revision`; ONNX files are listed as LFS (sha256), the rest with a git blob sha1. */
export async function startFakeHub(folder: string, repo: string, revision = 'main'): Promise<FakeHub> {
  const files = new Map(listFolder(folder).map((path) => [path, readFileSync(join(folder, path))]));
  const requests: HubRequest[] = [];
  const faults: HubFaults = { dropAfter: new Map(), corruptOnce: new Set(), notFound: new Set(), ignoreRange: false };
  const treePrefix = `/api/models/${repo}/tree/${revision}`;
  const resolvePrefix = `/${repo}/resolve/${revision}/`;

  const server = createServer((req, res) => {
    const record: HubRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, host: req.headers.host ?? '', sentBytes: 0 };
    requests.push(record);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = decodeURIComponent(url.pathname);
    if (path === treePrefix || path.startsWith(`${treePrefix}/`)) {
      const dir = path.slice(treePrefix.length + 1);
      const entries = [...files]
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
    if (path.startsWith(resolvePrefix)) {
      const name = path.slice(resolvePrefix.length);
      const data = files.get(name);
      if (!data || faults.notFound.has(name)) return void res.writeHead(404).end('Entry not found');
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = range && !faults.ignoreRange ? Number(range[1]) : 0;
      let body = Buffer.from(data.subarray(start));
      if (faults.corruptOnce.delete(name) && body.length > 0) body[body.length - 1] ^= 0xff;
      const headers = { 'content-length': String(body.length), 'accept-ranges': 'bytes' };
      if (start > 0) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` });
      else res.writeHead(200, headers);
      const drop = faults.dropAfter.get(name);
      if (drop !== undefined) {
        faults.dropAfter.delete(name);
        record.sentBytes = Math.min(drop, body.length);
        res.write(body.subarray(0, drop), () => res.destroy());
        return;
      }
      record.sentBytes = body.length;
      return void res.end(body);
    }
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    faults,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
