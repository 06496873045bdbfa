import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BASE_REPO, BASE_UNET_WEIGHTS, LIGHTNING_FILES, LIGHTNING_REPO, SAFETY_REPO, writeStateDict, writeTinyHubRepos, type TinyHubRepos } from '../../../models/tiny/hub-repos.js';
import { torchExportUnet } from '../../../models/tiny/torch-export.js';
import { findModelFolder } from '../../../src/diffusion/model-folder.js';
import { safetyClassifierProblems } from '../../../src/diffusion/safety-files.js';
import type { RetryPolicy } from '../../../src/models-fetch/download.js';
import { planFetch, runFetch, type FetchOptions, type FetchProgress } from '../../../src/models-fetch/fetch.js';
import { createHubClient } from '../../../src/models-fetch/hub.js';
import { loadManifest, type Manifest } from '../../../src/models-fetch/manifest.js';
import { startFakeHub, type FakeHub } from '../../fakes/hub.js';
import { maxAbsDiff, rms, runAsFloat32, SESSION, unetFeeds } from '../model-build/run-model.js';

const root = mkdtempSync(join(tmpdir(), 'models-fetch-'));
const projectRoot = new URL('../../../', import.meta.url).pathname;
const noWait: RetryPolicy = { tries: 3, baseDelayMs: 1000, maxDelayMs: 30_000, sleep: async () => {} };

let repos: TinyHubRepos;
let hub: FakeHub;
let manifest: Manifest;
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
const fetchAll = async (modelDir: string, extra: Partial<FetchOptions> = {}, lines: string[] = []) => {
  const opts = options(modelDir, extra);
  const progress: FetchProgress = { retrying: (m) => lines.push(`retry: ${m}`), note: (m) => lines.push(m), buildFinished: (b, s) => lines.push(`${b.target} ${s}`) };
  return runFetch(await planFetch(opts), opts, progress);
};




beforeAll(async () => {
  repos = await writeTinyHubRepos(join(root, 'hub'), [1, 2, 4]);
  manifest = await loadManifest(join(projectRoot, 'models/manifest.json'));
  hub = await startFakeHub(repos.repos);
});
afterEach(() => {
  for (const set of [hub.faults.dropAfter, hub.faults.corruptOnce, hub.faults.corrupt, hub.faults.notFound]) set.clear();
  hub.faults.ignoreRange = false;
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('models:fetch builds the Lightning folder from the official files', () => {
  it('fp16: downloads, self-checks, builds UNets and the fp16-fix VAE that match the references, and a re-run does nothing', async () => {
    const modelDir = freshDir();
    const lines: string[] = [];
    const summary = await fetchAll(modelDir, { steps: [1, 4] }, lines);
    expect(summary.folderProblem).toBeUndefined();
    expect(summary.built).toBe(3);
    const folder = findModelFolder(modelDir);
    expect(folder.unets.map((u) => [u.steps, u.prediction])).toEqual([[1, 'sample'], [4, 'epsilon']]);
    expect(JSON.parse(readFileSync(join(modelDir, 'unet_1step/config.json'), 'utf8'))).toEqual({ lightning_steps: 1, prediction_type: 'sample' });

    // the self-check read a few tensors of the base weights by range, never the whole data file
    expect(lines.find((l) => l.startsWith('self-check (unet/model.onnx)'))).toMatch(/all \d+ base weights map; \d+ tensors of \d+ rules \(name, norm, matmul, identity\) match/);
    const baseData = statSync(join(repos.repos[BASE_REPO], 'unet/model.onnx_data')).size;
    expect(hub.sentFor('unet/model.onnx_data')).toBeGreaterThan(0);
    expect(hub.sentFor('unet/model.onnx_data')).toBeLessThan(baseData / 4);
    // downloads are removed once built
    expect(existsSync(join(modelDir, '.build/downloads', LIGHTNING_REPO, LIGHTNING_FILES[4]))).toBe(false);

    const feeds = unetFeeds();
    for (const steps of [1, 4]) {
      const built = await runAsFloat32(join(modelDir, `unet_${steps}step/model.onnx`), feeds, 'out_sample');
      const reference = await runAsFloat32(join(repos.reference, `unet_${steps}step/model.onnx`), feeds, 'out_sample');
      // fp16 weights and activations against the fp32 reference: within 1% of the output's scale
      expect(maxAbsDiff(built, reference)).toBeLessThan(0.01 * rms(reference) * 10);
      expect(maxAbsDiff(built, reference)).toBeGreaterThan(0);
    }
    const session = await ort.InferenceSession.create(join(modelDir, 'unet_4step/model.onnx'), SESSION);
    expect(Object.fromEntries(session.inputMetadata.map((m) => [m.name, m.isTensor ? m.type : '']))).toEqual({
      sample: 'float16', timestep: 'float32', encoder_hidden_states: 'float16', text_embeds: 'float16', time_ids: 'float32',
    });
    await session.release();
    const latent = new ort.Tensor('float32', Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(i)), [1, 4, 8, 8]);
    const vae = await runAsFloat32(join(modelDir, 'vae_decoder/model.onnx'), { latent_sample: latent }, 'sample');
    const vaeReference = await runAsFloat32(join(repos.reference, 'vae_decoder/model.onnx'), { latent_sample: latent }, 'sample');
    expect(vae.length).toBe(3 * 64 * 64);
    expect(maxAbsDiff(vae, vaeReference)).toBeLessThan(0.05 * rms(vaeReference));

    const before = hub.requests.length;
    const again: string[] = [];
    const second = await fetchAll(modelDir, { steps: [1, 4] }, again);
    expect(second).toMatchObject({ downloaded: 0, built: 0 });
    expect(again).toEqual(expect.arrayContaining(['unet_1step skipped', 'unet_4step skipped', 'vae_decoder skipped']));
    expect(hub.requests.slice(before).filter((r) => r.url.includes('/resolve/') && !r.headers.range)).toEqual([]);
    expect(new Set(hub.requests.map((r) => r.host))).toEqual(new Set([new URL(hub.endpoint).host]));
  });

  it('fp32: the built UNet equals the reference exactly, and the VAE is the base one', async () => {
    const modelDir = freshDir();
    const summary = await fetchAll(modelDir, { steps: [2], dtype: 'fp32', keepDownloads: true });
    expect(summary.folderProblem).toBeUndefined();
    // without `safety` the classifier is not fetched
    expect(existsSync(join(modelDir, 'safety_classifier'))).toBe(false);
    const feeds = unetFeeds();
    const built = await runAsFloat32(join(modelDir, 'unet_2step/model.onnx'), feeds, 'out_sample');
    const reference = await runAsFloat32(join(repos.reference, 'unet_2step/model.onnx'), feeds, 'out_sample');
    expect(maxAbsDiff(built, reference)).toBe(0);
    expect(readFileSync(join(modelDir, 'vae_decoder/model.onnx'))).toEqual(readFileSync(join(repos.repos[BASE_REPO], 'vae_decoder/model.onnx')));
    expect(existsSync(join(modelDir, '.build/downloads', LIGHTNING_REPO, LIGHTNING_FILES[2]))).toBe(true);

    // the engine runs the built folder end to end (tokenizers, encoders, the built UNet, the built VAE)
    const image = join(root, 'built.png');
    const imagine = await promisify(execFile)(process.execPath, [join(projectRoot, 'dist/src/cli/imagine.js'), 'a lighthouse at dusk', '--steps', '2', '--count', '1', '--seed', '7', '--model-dir', modelDir, '--provider', 'cpu', '--out', image], { cwd: root, env: { PATH: process.env.PATH ?? '' } });
    expect(imagine.stderr).not.toMatch(/error/i);
    expect(readFileSync(image).subarray(1, 4).toString()).toBe('PNG');

  });

  it('resumes an interrupted weights download with a Range request', async () => {
    const path = LIGHTNING_FILES[4];
    hub.faults.dropAfter.set(path, 200_000);
    const lines: string[] = [];
    const result = await fetchAll(freshDir(), { steps: [4], dtype: 'fp32' }, lines);
    expect(result.folderProblem).toBeUndefined();
    const downloads = hub.requests.filter((r) => r.url.endsWith(`/resolve/main/${path}`) && !/-\d+$/.test(r.headers.range ?? ''));
    const [cut, resumed] = downloads.slice(-2);
    expect(cut.headers.range).toBeUndefined();
    expect(resumed.headers.range).toMatch(/^bytes=\d+-$/);
    expect(resumed.sentBytes).toBe(statSync(join(repos.repos[LIGHTNING_REPO], path)).size - Number(/\d+/.exec(resumed.headers.range!)![0]));
    expect(lines.filter((l) => l.startsWith('retry:'))).toHaveLength(1);
  });

  it('catches a corrupted safetensors by its sha256, fetches it again, and gives up when it stays corrupt', async () => {
    hub.faults.corruptOnce.add(LIGHTNING_FILES[4]);
    const lines: string[] = [];
    const result = await fetchAll(freshDir(), { steps: [4], dtype: 'fp32' }, lines);
    expect(result.folderProblem).toBeUndefined();
    expect(lines.join('\n')).toMatch(/sdxl_lightning_4step_unet\.safetensors \(ByteDance\/SDXL-Lightning at main\): sha256 mismatch after download \(expected [0-9a-f]{64}, got [0-9a-f]{64}\); fetching it again/);

    hub.faults.corrupt.add(LIGHTNING_FILES[4]);
    const modelDir = freshDir();
    await expect(fetchAll(modelDir, { steps: [4], dtype: 'fp32' })).rejects.toThrow(/sha256 mismatch after download .*; gave up after 3 tries\.$/);
    expect(existsSync(join(modelDir, 'unet_4step/model.onnx'))).toBe(false);
  });

  it('refuses to start when the disk is too small, naming the numbers', async () => {
    await expect(fetchAll(freshDir(), { freeBytes: async () => 1_000_000, diskMarginBytes: 500_000_000 })).rejects.toThrow(
      /^Not enough disk space in .*: the downloads and the build need 0\.\d\d GB plus a 0\.50 GB margin, but only 0\.00 GB are free\./,
    );
  });

  it('reports an unknown step count and a file the hub lacks', async () => {
    await expect(fetchAll(freshDir(), { steps: [3] })).rejects.toThrow('--steps 3: the manifest has no UNet for 3 steps (it lists 1, 2, 4, 8).');
    await expect(fetchAll(freshDir(), { steps: [8] })).rejects.toThrow('.build/downloads/ByteDance/SDXL-Lightning/sdxl_lightning_8step_unet.safetensors: the hub lists no file sdxl_lightning_8step_unet.safetensors in ByteDance/SDXL-Lightning at main.');
  });
});

describe('the self-check and the mapping stop a wrong build before it writes', () => {
  it('a base safetensors whose square matrices are transposed fails the self-check, naming the tensor', async () => {
    const base = join(root, 'permuted-base');
    cpSync(repos.repos[BASE_REPO], base, { recursive: true });
    const { stateDict } = torchExportUnet(BASE_UNET_WEIGHTS);
    for (const [key, value] of stateDict) {
      const [rows, cols] = value.shape;
      if (value.shape.length !== 2 || rows !== cols || !/\.(to_[qkv]|to_out\.0|proj_in|proj_out)\.weight$/.test(key)) continue;
      const t = new Float32Array(value.data.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = value.data[r * cols + c];
      stateDict.set(key, { shape: value.shape, data: t });
    }
    await writeStateDict(join(base, 'unet/diffusion_pytorch_model.fp16.safetensors'), stateDict, 'F16');
    const odd = await startFakeHub({ ...repos.repos, [BASE_REPO]: base });
    const modelDir = freshDir();
    try {
      await expect(fetchAll(modelDir, { steps: [4], client: createHubClient({ endpoint: odd.endpoint }) })).rejects.toThrow(
        /^Self-check failed: .*unet\/model\.onnx initializer onnx::MatMul_\d+ \(matmul rule, transposed\) does not hold stabilityai\/stable-diffusion-xl-base-1\.0:unet\/diffusion_pytorch_model\.fp16\.safetensors down_blocks\.1\.attentions\.0\.[\w.]+\.weight: \d+ of 2304 values differ/,
      );
      expect(odd.sentFor(LIGHTNING_FILES[4])).toBeLessThan(100_000); // its header only
      expect(existsSync(join(modelDir, 'unet_4step'))).toBe(false);
    } finally {
      await odd.close();
    }
  });

  it('new weights with an unknown key and a missing one are refused by name before they are downloaded', async () => {
    const lightning = join(root, 'odd-lightning');
    cpSync(repos.repos[LIGHTNING_REPO], lightning, { recursive: true });
    const { stateDict } = torchExportUnet({ seed: 104, halfRounded: true });
    stateDict.delete('mid_block.resnets.0.conv2.bias');
    stateDict.set('mid_block.attentions.0.proj_in.weight', { shape: [48, 48], data: new Float32Array(48 * 48) });
    await writeStateDict(join(lightning, LIGHTNING_FILES[4]), stateDict, 'F16');
    const odd = await startFakeHub({ ...repos.repos, [LIGHTNING_REPO]: lightning });
    try {
      const error = await fetchAll(freshDir(), { steps: [4], dtype: 'fp32', client: createHubClient({ endpoint: odd.endpoint }) }).catch((e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/^ByteDance\/SDXL-Lightning:sdxl_lightning_4step_unet\.safetensors does not map onto unet\/model\.onnx:\n/);
      expect((error as Error).message).toContain('  - mid_block.attentions.0.proj_in.weight [48, 48]: no initializer of the graph takes it');
      expect((error as Error).message).toContain('  - mid_block.resnets.0.conv2.bias: read by Conv "/mid_block/resnets.0/conv2/Conv" as bias, but the weights have no mid_block.resnets.0.conv2.bias');
      expect(odd.sentFor(LIGHTNING_FILES[4])).toBeLessThan(100_000);
    } finally {
      await odd.close();
    }
  });
});

describe('the command line', () => {
  const run = (args: string[], env: Record<string, string>) =>
    promisify(execFile)(process.execPath, args, { cwd: root, env: { PATH: process.env.PATH ?? '', ...env } }).then(
      (r) => ({ code: 0, ...r }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );

  it('models:fetch --dry-run lists downloads, builds, sizes and free disk, and downloads nothing', async () => {
    const before = hub.requests.length;
    const result = await run([join(projectRoot, 'dist/src/cli/models-fetch.js'), '--dry-run', '--steps', '1,4'], { HF_ENDPOINT: hub.endpoint, MODEL_DIR: freshDir() });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^would fetch and build into .*:\ndownload:\n {2}tokenizer\/vocab\.json {2}0\.00 GB {2}← stabilityai\/stable-diffusion-xl-base-1\.0 tokenizer\/vocab\.json at main\n/);
    expect(result.stdout).toMatch(/\n {2}unet_4step\/ {2}0\.00 GB fp16 {2}← unet\/model\.onnx \+ ByteDance\/SDXL-Lightning sdxl_lightning_4step_unet\.safetensors/);
    expect(result.stdout).toMatch(/\n {2}vae_decoder\/ {2}0\.00 GB fp16 {2}← vae_decoder\/model\.onnx \+ madebyollin\/sdxl-vae-fp16-fix diffusion_pytorch_model\.safetensors/);
    expect(result.stdout).toMatch(/to download 0\.\d\d GB; disk needed at most 0\.\d\d GB, free \d+\.\d\d GB\n$/);
    expect(hub.requests.slice(before).filter((r) => r.url.includes('/resolve/') && !/^bytes=\d+-\d+$/.test(r.headers.range ?? ''))).toEqual([]);
  });

  it('models:fetch builds a folder the bot accepts, sending HF_TOKEN, and refuses a bad --dtype', async () => {
    const modelDir = freshDir();
    const before = hub.requests.length;
    const result = await run([join(projectRoot, 'dist/src/cli/models-fetch.js'), '--steps', '2', '--dtype', 'fp32'], { HF_ENDPOINT: hub.endpoint, MODEL_DIR: modelDir, HF_TOKEN: 'secret-token' });
    expect(result.stderr).toContain('the model folder is complete');
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/unet_2step\/: written \(/);
    expect(findModelFolder(modelDir).unets.map((u) => u.steps)).toEqual([2]);
    // SAFETY=on by default: the classifier's ONNX export comes along, as it is
    expect(result.stderr).toContain('safety_classifier/model.onnx');
    expect(safetyClassifierProblems(modelDir)).toEqual([]);
    expect(readFileSync(join(modelDir, 'safety_classifier/model.onnx'))).toEqual(readFileSync(join(repos.repos[SAFETY_REPO], 'onnx/model.onnx')));
    expect(hub.requests.slice(before).every((r) => r.headers.authorization === 'Bearer secret-token')).toBe(true);
    expect(result.stderr).not.toContain('secret-token');
    const bad = await run([join(projectRoot, 'dist/src/cli/models-fetch.js'), '--dtype', 'bf16'], { HF_ENDPOINT: hub.endpoint, MODEL_DIR: freshDir() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('--dtype must be fp16 or fp32; got "bf16".\n');
  });

  it('models:build turns a local diffusers UNet file or a hub REPO:PATH into unet_<n>step/, and names missing flags', async () => {
    const modelDir = freshDir();
    const build = join(projectRoot, 'dist/src/cli/models-build.js');
    const env = { HF_ENDPOINT: hub.endpoint, MODEL_DIR: modelDir };
    const local = await run([build, '--unet', join(repos.repos[LIGHTNING_REPO], LIGHTNING_FILES[2]), '--steps', '3', '--prediction', 'epsilon', '--dtype', 'fp32'], env);
    expect(local.stderr).toMatch(/self-check \(unet\/model\.onnx\): all \d+ base weights map/);
    expect(local.stderr).toContain('built unet_3step/ in ');
    expect(local.stderr).toContain('The rest of the folder is not complete yet (npm run models:fetch gets it)');
    expect(local.code).toBe(1);
    expect(JSON.parse(readFileSync(join(modelDir, 'unet_3step/config.json'), 'utf8'))).toEqual({ lightning_steps: 3, prediction_type: 'epsilon' });
    const feeds = unetFeeds();
    expect(maxAbsDiff(await runAsFloat32(join(modelDir, 'unet_3step/model.onnx'), feeds, 'out_sample'), await runAsFloat32(join(repos.reference, 'unet_2step/model.onnx'), feeds, 'out_sample'))).toBe(0);

    const fromHub = await run([build, '--unet', `${LIGHTNING_REPO}:${LIGHTNING_FILES[1]}`, '--steps', '1', '--prediction', 'sample'], env);
    expect(fromHub.stderr).toContain('built unet_1step/ in ');
    expect(JSON.parse(readFileSync(join(modelDir, 'unet_1step/config.json'), 'utf8'))).toEqual({ lightning_steps: 1, prediction_type: 'sample' });
    expect(existsSync(join(modelDir, '.build/downloads', LIGHTNING_REPO, LIGHTNING_FILES[1]))).toBe(false);

    const incomplete = await run([build, '--unet', 'nowhere.safetensors', '--steps', '4'], env);
    expect(incomplete.code).toBe(2);
    expect(incomplete.stderr.split('\n')[0]).toBe('--prediction is needed.');
  });
});
