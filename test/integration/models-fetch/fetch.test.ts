import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { findModelFolder } from '../../../src/diffusion/model-folder.js';
import type { RetryPolicy } from '../../../src/models-fetch/download.js';
import { planFetch, runFetch, type FetchOptions } from '../../../src/models-fetch/fetch.js';
import { createHubClient } from '../../../src/models-fetch/hub.js';
import { loadManifest, parseManifest, type Manifest } from '../../../src/models-fetch/manifest.js';
import { startFakeHub, type FakeHub } from '../../fakes/hub.js';

const REPO = 'tiny/sdxl-lightning-onnx';
const root = mkdtempSync(join(tmpdir(), 'models-fetch-'));
const source = join(root, 'source');
const projectRoot = new URL('../../../', import.meta.url).pathname;
const noWait: RetryPolicy = { tries: 5, baseDelayMs: 1000, maxDelayMs: 30_000, sleep: async () => {} };

const manifest: Manifest = parseManifest(
  {
    files: [
      ...['tokenizer', 'tokenizer_2'].flatMap((dir) =>
        ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json'].map((name) => ({ target: `${dir}/${name}`, repo: REPO, revision: 'main', path: `${dir}/${name}`, why: 'tokenizer' })),
      ),
      ...['text_encoder/model.onnx', 'text_encoder_2/model.onnx', 'text_encoder_2/model.onnx_data', 'vae_decoder/model.onnx'].map((path) => ({ target: path, repo: REPO, revision: 'main', path, why: 'model' })),
    ],
    unets: [1, 2, 4, 8].map((steps) => ({
      steps,
      target: `unet_${steps}step`,
      repo: REPO,
      revision: 'main',
      files: [`unet_${steps}step/model.onnx`, `unet_${steps}step/model.onnx_data`],
      prediction: steps === 1 ? 'sample' : 'epsilon',
      why: 'tiny UNet',
    })),
    missing: [],
  },
  'test manifest',
);

let hub: FakeHub;
let counter = 0;
const freshDir = (): string => join(root, `model-${++counter}`);
const options = (modelDir: string, extra: Partial<FetchOptions> = {}): FetchOptions => ({
  manifest,
  modelDir,
  client: createHubClient({ endpoint: hub.endpoint }),
  retry: noWait,
  diskMarginBytes: 0,
  ...extra,
});
const fetchAll = async (modelDir: string, extra: Partial<FetchOptions> = {}, retries: string[] = []) => {
  const opts = options(modelDir, extra);
  return runFetch(await planFetch(opts), opts, { retrying: (message) => retries.push(message) });
};
const resolves = (path: string) => hub.requests.filter((r) => r.url.endsWith(`/resolve/main/${path}`));

beforeAll(async () => {
  await writeTinyModelFolder(source);
  hub = await startFakeHub(source, REPO);
});
afterEach(() => {
  hub.faults.dropAfter.clear();
  hub.faults.corruptOnce.clear();
  hub.faults.notFound.clear();
  hub.faults.ignoreRange = false;
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('models:fetch', () => {
  it('fetches a folder the engine accepts, only from 127.0.0.1, and a second run downloads nothing', async () => {
    const modelDir = freshDir();
    const first = await fetchAll(modelDir);
    expect(first.folderProblem).toBeUndefined();
    expect(first.downloaded).toBe(20);
    const folder = findModelFolder(modelDir);
    expect(folder.unets.map((u) => [u.steps, u.prediction])).toEqual([[1, 'sample'], [2, 'epsilon'], [4, 'epsilon'], [8, 'epsilon']]);
    expect(readFileSync(join(modelDir, 'text_encoder_2/model.onnx_data'))).toEqual(readFileSync(join(source, 'text_encoder_2/model.onnx_data')));

    const before = hub.requests.length;
    const second = await fetchAll(modelDir);
    expect(second).toMatchObject({ downloaded: 0, skipped: 20, receivedBytes: 0 });
    expect(hub.requests.slice(before).filter((r) => r.url.includes('/resolve/'))).toEqual([]);
    expect(new Set(hub.requests.map((r) => r.host))).toEqual(new Set([new URL(hub.endpoint).host]));
  });

  it('resumes an interrupted download from its .part with a Range request', async () => {
    const path = 'text_encoder_2/model.onnx_data';
    const size = statSync(join(source, path)).size;
    hub.faults.dropAfter.set(path, 100_000);
    const before = resolves(path).length;
    const retries: string[] = [];
    const result = await fetchAll(freshDir(), {}, retries);
    expect(result.folderProblem).toBeUndefined();
    const [cut, resumed] = resolves(path).slice(before);
    expect(cut.headers.range).toBeUndefined();
    const from = Number(/^bytes=(\d+)-$/.exec(resumed.headers.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(resumed.sentBytes).toBe(size - from);
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatch(/^text_encoder_2\/model\.onnx_data \(tiny\/sdxl-lightning-onnx at main\): download (interrupted|ended early)/);
  });

  it('starts the .part again when the server ignores Range', async () => {
    const modelDir = freshDir();
    mkdirSync(join(modelDir, 'vae_decoder'), { recursive: true });
    writeFileSync(join(modelDir, 'vae_decoder/model.onnx.part'), readFileSync(join(source, 'vae_decoder/model.onnx')).subarray(0, 1000));
    hub.faults.ignoreRange = true;
    const result = await fetchAll(modelDir);
    expect(result.folderProblem).toBeUndefined();
    expect(readFileSync(join(modelDir, 'vae_decoder/model.onnx'))).toEqual(readFileSync(join(source, 'vae_decoder/model.onnx')));
  });

  it('detects a corrupted download by its hash and fetches it again', async () => {
    hub.faults.corruptOnce.add('unet_4step/model.onnx_data');
    hub.faults.corruptOnce.add('tokenizer/vocab.json');
    const retries: string[] = [];
    const modelDir = freshDir();
    const result = await fetchAll(modelDir, {}, retries);
    expect(result.folderProblem).toBeUndefined();
    expect(retries.join('\n')).toMatch(/tokenizer\/vocab\.json \(tiny\/sdxl-lightning-onnx at main\): git blob sha1 mismatch after download \(expected [0-9a-f]{40}, got [0-9a-f]{40}\); fetching it again/);
    expect(retries.join('\n')).toMatch(/unet_4step\/model\.onnx_data \(.*\): sha256 mismatch after download \(expected [0-9a-f]{64}, got [0-9a-f]{64}\); fetching it again/);
    expect(readFileSync(join(modelDir, 'unet_4step/model.onnx_data'))).toEqual(readFileSync(join(source, 'unet_4step/model.onnx_data')));
  });

  it('names the file and the repo when the hub lacks a file', async () => {
    hub.faults.notFound.add('text_encoder_2/model.onnx_data');
    await expect(fetchAll(freshDir())).rejects.toThrowErrorMatchingInlineSnapshot(
      `[FetchError: text_encoder_2/model.onnx_data: the hub lists no file text_encoder_2/model.onnx_data in tiny/sdxl-lightning-onnx at main.]`,
    );
  });

  it('refuses to start when the disk is too small, naming the numbers', async () => {
    await expect(fetchAll(freshDir(), { freeBytes: async () => 1_000_000, diskMarginBytes: 500_000_000 })).rejects.toThrow(
      /^Not enough disk space in .*: 0\.\d\d GB still to download plus a 0\.50 GB margin, but only 0\.00 GB free\.$/,
    );
  });

  it('fetches only the chosen step counts and reports an unknown one', async () => {
    const modelDir = freshDir();
    const result = await fetchAll(modelDir, { steps: [4] });
    expect(result.folderProblem).toBeUndefined();
    expect(findModelFolder(modelDir).unets.map((u) => u.steps)).toEqual([4]);
    await expect(fetchAll(freshDir(), { steps: [3] })).rejects.toThrow('--steps 3: the manifest has no UNet for 3 steps (it lists 1, 2, 4, 8).');
  });

  it('ships a default manifest that parses and lists the UNets as missing with the recipe', async () => {
    const defaults = await loadManifest(join(projectRoot, 'models/manifest.json'));
    expect(defaults.unets).toEqual([]);
    expect(defaults.missing.map((m) => m.steps)).toEqual([1, 2, 4, 8]);
    for (const part of defaults.missing) expect(part.why).toContain('Building it yourself');
  });

  it('the CLI fetches the default manifest from HF_ENDPOINT and exits 1 naming the missing UNets', async () => {
    const base = await startFakeHub(source, 'stabilityai/stable-diffusion-xl-base-1.0');
    const modelDir = freshDir();
    const run = promisify(execFile);
    const result = await run(process.execPath, [join(projectRoot, 'dist/src/cli/models-fetch.js')], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HF_ENDPOINT: base.endpoint, MODEL_DIR: modelDir, HF_TOKEN: 'secret-token' },
    }).then(
      (r) => ({ code: 0, ...r }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    await base.close();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('fetched 12 file(s)');
    expect(result.stderr).toMatch(/still missing; build these yourself \(models\/README\.md, "Building it yourself"\):\n {2}unet_1step: /);
    expect(result.stderr).toContain('The model folder is not complete yet');
    expect(base.requests.length).toBeGreaterThan(0);
    expect(base.requests.every((r) => r.headers.authorization === 'Bearer secret-token')).toBe(true);
    expect(readFileSync(join(modelDir, 'text_encoder/model.onnx'))).toEqual(readFileSync(join(source, 'text_encoder/model.onnx')));
  });

  it('the CLI dry run lists files, sizes, total and free disk, and downloads nothing', async () => {
    const base = await startFakeHub(source, 'stabilityai/stable-diffusion-xl-base-1.0');
    const { stdout } = await promisify(execFile)(process.execPath, [join(projectRoot, 'dist/src/cli/models-fetch.js'), '--dry-run', '--steps', '4'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HF_ENDPOINT: base.endpoint, MODEL_DIR: freshDir() },
    });
    await base.close();
    expect(stdout).toMatch(/^would fetch into .*:\n {2}tokenizer\/vocab\.json {2}0\.00 GB {2}← stabilityai\/stable-diffusion-xl-base-1\.0 tokenizer\/vocab\.json at main\n/);
    expect(stdout).toMatch(/total 0\.\d\d GB, still to download 0\.\d\d GB, free disk \d+\.\d\d GB\n/);
    expect(stdout).toContain('  unet_4step: no published ONNX Lightning 4-step UNet');
    expect(stdout).not.toContain('unet_8step');
    expect(base.requests.filter((r) => r.url.includes('/resolve/'))).toEqual([]);
  });
});
