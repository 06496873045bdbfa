// `npm run cuda:install`: download onnxruntime's CUDA provider from NuGet now. With `--at-install` (the project's own
// install step) only where an NVIDIA GPU is, and never failing the install.

import { installCudaProvider } from '../install/cuda-provider.js';
import { parseArgsOrUsage } from './output.js';

const USAGE = `usage: npm run cuda:install
  downloads onnxruntime's CUDA provider (Microsoft.ML.OnnxRuntime.Gpu.Linux from NuGet) beside onnxruntime-node's
  binding; behind a proxy set GLOBAL_AGENT_HTTPS_PROXY. npm ci does this by itself on a host with an NVIDIA GPU.`;

const { values } = parseArgsOrUsage({ options: { 'at-install': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } }, USAGE);
const atInstall = values['at-install'];

if (!atInstall) process.stdout.write('downloading onnxruntime’s CUDA provider from NuGet (a few hundred MB)…\n');
const outcome = await installCudaProvider({ force: !atInstall });
process.stdout.write(`${outcome.lines.join('\n')}\n`);
// at install a missing CUDA provider is news, not an error: the CPU provider is bundled
process.exit(outcome.installed || atInstall ? 0 : 1);
