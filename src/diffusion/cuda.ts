// Why onnxruntime's CUDA provider can or cannot load here: provider files, `ldd`, the GPU (spec/onnxruntime-node.md §2).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The three files onnxruntime-node's install script extracts from NuGet for CUDA. */
export const CUDA_PROVIDER_FILES = [
  'libonnxruntime_providers_shared.so',
  'libonnxruntime_providers_cuda.so',
  'libonnxruntime_providers_tensorrt.so',
] as const;

export const CUDA_INSTALL_HINT =
  'install the CUDA provider with `npm run cuda:install` (onnxruntime-node\'s `ONNXRUNTIME_NODE_INSTALL=cuda12` ' +
  'download from NuGet; on a host without NuGet, copy its three files by hand), and CUDA 12 runtime libraries with ' +
  'cuDNN 9 on the loader path (see models/README.md, "GPU setup")';

export type CudaReport = {
  /** Folder of onnxruntime-node's native binding, where the provider libraries must sit. */
  bindingDir: string;
  missingProviderFiles: string[];
  /** Shared libraries `ldd` cannot resolve for the CUDA provider (libcudart, libcublas, libcudnn…). */
  unresolvedLibraries: string[];
  /** `nvidia-smi` lines (name, memory, driver), or why there are none. */
  gpus: string[];
  gpuError?: string;
};

/** onnxruntime-node's native folder for this platform, e.g. `node_modules/onnxruntime-node/bin/napi-v6/linux/x64`. */
export function onnxruntimeBindingDir(): string {
  const require = createRequire(import.meta.url);
  const packageDir = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(packageDir, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Checks the CUDA provider's files and their libraries, and lists GPUs; never throws. */
export async function inspectCuda(): Promise<CudaReport> {
  const bindingDir = onnxruntimeBindingDir();
  const missingProviderFiles = CUDA_PROVIDER_FILES.filter((file) => !existsSync(join(bindingDir, file)));
  const unresolvedLibraries: string[] = [];
  const cudaProvider = join(bindingDir, 'libonnxruntime_providers_cuda.so');
  if (existsSync(cudaProvider)) {
    try {
      const { stdout } = await run('ldd', [cudaProvider], { timeout: 10_000 });
      for (const line of stdout.split('\n')) {
        const match = /^\s*(\S+)\s*=>\s*not found/.exec(line);
        if (match) unresolvedLibraries.push(match[1]);
      }
    } catch (error) {
      unresolvedLibraries.push(`(ldd failed: ${(error as Error).message.split('\n')[0]})`);
    }
  }
  const { gpus, gpuError } = await listNvidiaGpus();
  return { bindingDir, missingProviderFiles, unresolvedLibraries, gpus, gpuError };
}

/** The GPUs `nvidia-smi` lists (index, name, memory, driver), or why it lists none; never throws. */
export async function listNvidiaGpus(): Promise<{ gpus: string[]; gpuError?: string }> {
  try {
    const { stdout } = await run('nvidia-smi', ['--query-gpu=index,name,memory.total,driver_version', '--format=csv,noheader'], {
      timeout: 10_000,
    });
    const gpus = stdout.split('\n').filter((line) => line.trim().length > 0);
    return gpus.length > 0 ? { gpus } : { gpus, gpuError: 'nvidia-smi listed none' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { gpus: [], gpuError: code === 'ENOENT' ? 'nvidia-smi not found (no NVIDIA driver installed)' : (error as Error).message.split('\n')[0] };
  }
}

/** One sentence on what keeps CUDA from loading, for start-up errors and warnings. */
export function describeCudaProblem(report: CudaReport, loadError?: string): string {
  const parts: string[] = [];
  if (report.missingProviderFiles.length > 0) {
    parts.push(`onnxruntime's CUDA provider is not installed (missing ${report.missingProviderFiles.join(', ')} in ${report.bindingDir})`);
  }
  if (report.unresolvedLibraries.length > 0) {
    parts.push(`the CUDA provider cannot find ${report.unresolvedLibraries.join(', ')} (ldd)`);
  }
  if (report.gpus.length === 0 && report.gpuError) parts.push(`no GPU visible: ${report.gpuError}`);
  if (parts.length === 0 && loadError) parts.push(`creating a CUDA session failed: ${loadError}`);
  return `${parts.join('; ')}. To fix: ${CUDA_INSTALL_HINT}.`;
}
