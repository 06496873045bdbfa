import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_PROVIDER_FILES } from '../../../src/diffusion/cuda.js';
import { downloadFailure, installCudaProvider, installWish, planCudaInstall, type InstallFacts } from '../../../src/install/cuda-provider.js';

const root = mkdtempSync(join(tmpdir(), 'cuda-install-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** What onnxruntime-node 1.30's script printed on this machine, which cannot resolve api.nuget.org. */
const NUGET_UNREACHABLE = `node:internal/process/promises:391
    triggerUncaughtException(err, true /* fromPromise */);
    ^

Error: getaddrinfo ENOTFOUND api.nuget.org
    at GetAddrInfoReqWrap.onlookupall [as oncomplete] (node:dns:122:26) {
  errno: -3008,
  code: 'ENOTFOUND',
  syscall: 'getaddrinfo',
  hostname: 'api.nuget.org'
}

Node.js v20.20.2
`;

const noGpu = { gpus: [], gpuError: 'nvidia-smi not found (no NVIDIA driver installed)' };
const oneGpu = { gpus: ['0, NVIDIA H200, 143771 MiB, 570.124.06'] };

/**
 * A stand-in for onnxruntime-node's install script: it records that it ran and with which ONNXRUNTIME_NODE_INSTALL,
 * then writes the provider files into `bindingDir`, or fails as the real one does without NuGet.
 */
function fakeScript(name: string, bindingDir: string, behaviour: 'install' | 'unreachable' | 'nothing'): { script: string; marker: string } {
  const script = join(root, `${name}.cjs`);
  const marker = join(root, `${name}.ran`);
  const body = {
    install: `for (const f of ${JSON.stringify(CUDA_PROVIDER_FILES)}) fs.writeFileSync(path.join(${JSON.stringify(bindingDir)}, f), 'so');`,
    unreachable: `Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND api.nuget.org'), { code: 'ENOTFOUND' }));`,
    nothing: '',
  }[behaviour];
  writeFileSync(script, `const fs = require('fs'); const path = require('path');\nfs.writeFileSync(${JSON.stringify(marker)}, String(process.env.ONNXRUNTIME_NODE_INSTALL));\n${body}\n`);
  return { script, marker };
}

function bindingDir(name: string): string {
  const dir = join(root, name, 'bin');
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('installWish', () => {
  it('reads ONNXRUNTIME_NODE_INSTALL, then npm’s --onnxruntime-node-install flag, as onnxruntime-node does', () => {
    expect(installWish({})).toEqual({ wish: 'auto' });
    expect(installWish({ ONNXRUNTIME_NODE_INSTALL: 'skip' })).toEqual({ wish: 'skip' });
    expect(installWish({ ONNXRUNTIME_NODE_INSTALL: 'cuda12' })).toEqual({ wish: 'download' });
    expect(installWish({ npm_config_onnxruntime_node_install: 'skip' })).toEqual({ wish: 'skip' });
    expect(installWish({ ONNXRUNTIME_NODE_INSTALL: 'cuda12', npm_config_onnxruntime_node_install: 'skip' })).toEqual({ wish: 'download' });
    expect(installWish({ ONNXRUNTIME_NODE_INSTALL: 'cuda11' })).toEqual({ wish: 'auto', problem: 'ONNXRUNTIME_NODE_INSTALL must be skip or cuda12; found "cuda11", so it is ignored' });
    expect(installWish({ ONNXRUNTIME_NODE_INSTALL: 'toString' }).wish).toBe('auto');
  });
});

describe('planCudaInstall', () => {
  const facts = (changes: Partial<InstallFacts>): InstallFacts => ({ wish: 'auto', force: false, missingFiles: [...CUDA_PROVIDER_FILES], ...noGpu, ...changes });

  it('downloads where a GPU is, when asked, or when forced; says in one line why not otherwise', () => {
    expect(planCudaInstall(facts(oneGpu))).toEqual({ download: true });
    expect(planCudaInstall(facts({ wish: 'download' }))).toEqual({ download: true });
    expect(planCudaInstall(facts({ force: true, missingFiles: [] }))).toEqual({ download: true });
    expect(planCudaInstall(facts({}))).toMatchInlineSnapshot(`
      {
        "download": false,
        "line": "onnxruntime CUDA provider: not downloaded, because no NVIDIA GPU is visible here — nvidia-smi not found (no NVIDIA driver installed). The bot runs on the bundled CPU provider; on a GPU host, add CUDA with \`npm run cuda:install\`.",
      }
    `);
    expect(planCudaInstall(facts({ wish: 'skip', ...oneGpu }))).toMatchInlineSnapshot(`
      {
        "download": false,
        "line": "onnxruntime CUDA provider: not downloaded (ONNXRUNTIME_NODE_INSTALL=skip). The bot runs on the bundled CPU provider; add CUDA later with \`npm run cuda:install\`.",
      }
    `);
    expect(planCudaInstall(facts({ missingFiles: [], ...oneGpu }))).toEqual({
      download: false,
      line: 'onnxruntime CUDA provider: already installed; `npm run doctor` checks that it loads.',
    });
  });

  it('every line is one line', () => {
    for (const changes of [{}, { wish: 'skip' as const }, { missingFiles: [] }]) {
      const plan = planCudaInstall(facts(changes));
      expect(plan.download || !plan.line.includes('\n')).toBe(true);
    }
  });
});

describe('downloadFailure', () => {
  it('takes the thrown error’s message from the script’s output, not its stack', () => {
    expect(downloadFailure(NUGET_UNREACHABLE, 1, null)).toBe('getaddrinfo ENOTFOUND api.nuget.org');
    expect(downloadFailure('Failed to download from https://x. HTTP status code = 503\n', 1, null)).toBe('Failed to download from https://x. HTTP status code = 503');
    expect(downloadFailure('', null, 'SIGTERM')).toBe('ended by SIGTERM');
    expect(downloadFailure('', 3, null)).toBe('exit status 3');
  });
});

describe('installCudaProvider', () => {
  it('at install on a host without a GPU: does not run onnxruntime-node’s script, and says so', async () => {
    const dir = bindingDir('no-gpu');
    const { script, marker } = fakeScript('no-gpu', dir, 'install');
    const outcome = await installCudaProvider({ force: false }, { env: {}, bindingDir: dir, script, listGpus: async () => noGpu });
    expect(outcome.installed).toBe(false);
    expect(outcome.lines).toHaveLength(1);
    expect(outcome.lines[0]).toContain('no NVIDIA GPU is visible here');
    expect(existsSync(marker)).toBe(false);
  });

  it('at install on a GPU host: runs the script with ONNXRUNTIME_NODE_INSTALL=cuda12 and checks the files arrived', async () => {
    const dir = bindingDir('gpu');
    const { script, marker } = fakeScript('gpu', dir, 'install');
    const outcome = await installCudaProvider({ force: false }, { env: { PATH: process.env.PATH }, bindingDir: dir, script, listGpus: async () => oneGpu });
    expect(outcome).toEqual({ installed: true, lines: [`onnxruntime CUDA provider: downloaded from NuGet into ${dir}; \`npm run doctor\` checks that CUDA loads.`] });
    expect(readFileSync(marker, 'utf8')).toBe('cuda12');
    for (const file of CUDA_PROVIDER_FILES) expect(existsSync(join(dir, file))).toBe(true);
  });

  it('a GPU host without NuGet: one line with the reason and the command to retry, not a thrown error', async () => {
    const dir = bindingDir('no-nuget');
    const { script } = fakeScript('no-nuget', dir, 'unreachable');
    const outcome = await installCudaProvider({ force: false }, { env: { PATH: process.env.PATH }, bindingDir: dir, script, listGpus: async () => oneGpu });
    expect(outcome.installed).toBe(false);
    expect(outcome.lines).toMatchInlineSnapshot(`
      [
        "onnxruntime CUDA provider: could not download it from NuGet (getaddrinfo ENOTFOUND api.nuget.org), so the bot runs on the bundled CPU provider; retry with \`npm run cuda:install\`, or copy the files by hand (models/README.md, "GPU setup").",
      ]
    `);
  });

  it('a script that exits 0 without the files is a failure too', async () => {
    const dir = bindingDir('silent');
    const { script } = fakeScript('silent', dir, 'nothing');
    const outcome = await installCudaProvider({ force: true }, { env: {}, bindingDir: dir, script });
    expect(outcome.installed).toBe(false);
    expect(outcome.lines[0]).toContain('(the script ended without libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so, libonnxruntime_providers_tensorrt.so)');
  });

  it('npm run cuda:install downloads even without a GPU in sight and whatever ONNXRUNTIME_NODE_INSTALL says', async () => {
    const dir = bindingDir('forced');
    const { script, marker } = fakeScript('forced', dir, 'install');
    const outcome = await installCudaProvider({ force: true }, { env: { ONNXRUNTIME_NODE_INSTALL: 'skip' }, bindingDir: dir, script, listGpus: async () => noGpu });
    expect(outcome.installed).toBe(true);
    expect(existsSync(marker)).toBe(true);
  });
});
