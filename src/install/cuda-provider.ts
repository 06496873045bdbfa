// onnxruntime's CUDA provider at install time: downloaded only where an NVIDIA GPU is (or when asked), and a failed
// download is one sentence that leaves the CPU provider in place, never a failed `npm ci` (spec/onnxruntime-node.md §2).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CUDA_PROVIDER_FILES, listNvidiaGpus, onnxruntimeBindingDir } from '../diffusion/cuda.js';

/** The command that adds the provider later; doctor and every message name it. */
export const CUDA_INSTALL_COMMAND = 'npm run cuda:install';

/** Values of `ONNXRUNTIME_NODE_INSTALL` that onnxruntime-node's own script reads, and what they mean here. */
const INSTALL_VALUES = { skip: 'skip', cuda12: 'download', true: 'download', '1': 'download', ON: 'download' } as const;

/** What the environment asks for: nothing set is `auto` (download when a GPU is seen). */
export type InstallWish = 'auto' | 'skip' | 'download';

/**
 * Reads `ONNXRUNTIME_NODE_INSTALL`, or npm's `--onnxruntime-node-install=…` (`npm_config_onnxruntime_node_install`),
 * as onnxruntime-node's script does; an unknown value is a problem sentence and counts as `auto`.
 */
export function installWish(env: NodeJS.ProcessEnv): { wish: InstallWish; problem?: string } {
  const [name, value] = env.ONNXRUNTIME_NODE_INSTALL
    ? ['ONNXRUNTIME_NODE_INSTALL', env.ONNXRUNTIME_NODE_INSTALL]
    : ['--onnxruntime-node-install', env.npm_config_onnxruntime_node_install];
  if (!value) return { wish: 'auto' };
  if (Object.hasOwn(INSTALL_VALUES, value)) return { wish: INSTALL_VALUES[value as keyof typeof INSTALL_VALUES] };
  return { wish: 'auto', problem: `${name} must be skip or cuda12; found "${value}", so it is ignored` };
}

export type InstallFacts = {
  wish: InstallWish;
  /** `npm run cuda:install`: download (again) whatever the files and the GPU check say. */
  force: boolean;
  /** The provider files that are missing from onnxruntime-node's native folder. */
  missingFiles: readonly string[];
  /** GPUs nvidia-smi lists, or why none. */
  gpus: readonly string[];
  gpuError?: string;
};

export type InstallPlan = { download: true } | { download: false; line: string };

/** Whether to download, or the one line that says why not. Pure. */
export function planCudaInstall(facts: InstallFacts): InstallPlan {
  if (facts.force) return { download: true };
  if (facts.wish === 'skip') {
    return { download: false, line: `onnxruntime CUDA provider: not downloaded (ONNXRUNTIME_NODE_INSTALL=skip). The bot runs on the bundled CPU provider; add CUDA later with \`${CUDA_INSTALL_COMMAND}\`.` };
  }
  if (facts.missingFiles.length === 0) {
    return { download: false, line: 'onnxruntime CUDA provider: already installed; `npm run doctor` checks that it loads.' };
  }
  if (facts.wish === 'auto' && facts.gpus.length === 0) {
    return {
      download: false,
      line: `onnxruntime CUDA provider: not downloaded, because no NVIDIA GPU is visible here — ${facts.gpuError ?? 'nvidia-smi listed none'}. The bot runs on the bundled CPU provider; on a GPU host, add CUDA with \`${CUDA_INSTALL_COMMAND}\`.`,
    };
  }
  return { download: true };
}

/** The reason a failed run of onnxruntime-node's script gives: its error's message, without the stack. */
export function downloadFailure(output: string, status: number | null, signal: string | null): string {
  const thrown = /^\s*(?:\w*Error(?: \[\w+\])?): (.+)$/m.exec(output);
  if (thrown) return thrown[1].trim();
  const last = output.trim().split('\n').filter(Boolean).pop();
  return last?.trim() || (signal ? `ended by ${signal}` : `exit status ${status}`);
}

export type DownloadResult = { ok: true } | { ok: false; reason: string };

/** onnxruntime-node's own install script, as the package ships it. */
export function onnxruntimeInstallScript(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('onnxruntime-node/package.json')), 'script', 'install.js');
}

/**
 * Runs onnxruntime-node's install script with `ONNXRUNTIME_NODE_INSTALL=cuda12` (which forces the download; unset, the
 * script does nothing when npm runs it from the project's own install). Its output is kept for the failure reason.
 */
export function runOnnxruntimeInstall(options: { script: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<DownloadResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [options.script], {
      env: { ...(options.env ?? process.env), ONNXRUNTIME_NODE_INSTALL: 'cuda12' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 30 * 60_000,
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', (error) => resolve({ ok: false, reason: error.message }));
    child.once('close', (status, signal) => resolve(status === 0 ? { ok: true } : { ok: false, reason: downloadFailure(output, status, signal) }));
  });
}

export type InstallOutcome = { installed: boolean; lines: string[] };

export type InstallDeps = {
  env?: NodeJS.ProcessEnv;
  bindingDir?: string;
  script?: string;
  listGpus?: () => Promise<{ gpus: string[]; gpuError?: string }>;
};

/**
 * Installs the CUDA provider when the plan says so (`force`: whatever the GPU check says, as `npm run cuda:install`
 * does) and returns the lines to print. Never throws for a failed download: the CPU provider stays usable.
 */
export async function installCudaProvider(options: { force: boolean }, deps: InstallDeps = {}): Promise<InstallOutcome> {
  const env = deps.env ?? process.env;
  const bindingDir = deps.bindingDir ?? onnxruntimeBindingDir();
  const { wish, problem } = installWish(env);
  const lines = problem && !options.force ? [`onnxruntime CUDA provider: ${problem}.`] : [];
  const missingFiles = CUDA_PROVIDER_FILES.filter((file) => !existsSync(join(bindingDir, file)));
  const checkGpus = !options.force && wish === 'auto' && missingFiles.length > 0;
  const { gpus, gpuError } = checkGpus ? await (deps.listGpus ?? listNvidiaGpus)() : { gpus: [], gpuError: undefined };
  const plan = planCudaInstall({ wish, force: options.force, missingFiles, gpus, gpuError });
  if (!plan.download) return { installed: false, lines: [...lines, plan.line] };

  const result = await runOnnxruntimeInstall({ script: deps.script ?? onnxruntimeInstallScript(), env });
  const stillMissing = CUDA_PROVIDER_FILES.filter((file) => !existsSync(join(bindingDir, file)));
  if (result.ok && stillMissing.length === 0) {
    return { installed: true, lines: [...lines, `onnxruntime CUDA provider: downloaded from NuGet into ${bindingDir}; \`npm run doctor\` checks that CUDA loads.`] };
  }
  const reason = result.ok ? `the script ended without ${stillMissing.join(', ')}` : result.reason;
  return {
    installed: false,
    lines: [
      ...lines,
      `onnxruntime CUDA provider: could not download it from NuGet (${reason}), so the bot runs on the bundled CPU provider; ` +
        `retry with \`${CUDA_INSTALL_COMMAND}\`, or copy the files by hand (models/README.md, "GPU setup").`,
    ],
  };
}
