// The command-line tools' arguments: every option they document is accepted, and every bad one is one sentence
// before any work, never a stack trace.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { CUDA_PROVIDER_FILES, onnxruntimeBindingDir } from '../../../src/diffusion/cuda.js';
import { runCli, type CliResult } from './run-cli.js';

const root = mkdtempSync(join(tmpdir(), 'cli-arguments-'));
const modelDir = join(root, 'model');
/** No MODEL_DIR in the environment: the options alone must find the folder. */
const cli = (script: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(script, args, { cwd: root, env });
const STACK_FRAME = /^\s+at .+\(.*:\d+:\d+\)$/m;

beforeAll(async () => {
  await writeTinyModelFolder(modelDir, { steps: [1] });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('npm run doctor', () => {
  it('--help prints the usage and exits 0', async () => {
    const result = await cli('doctor.js', ['--help']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatchInlineSnapshot(`
      "usage: npm run doctor -- [--load] [--model-dir DIR] [--provider auto|cuda|cpu]
        --load       also load every model (the safety classifier too) with the provider and check its inputs and outputs
        --model-dir  the model folder to check (default: MODEL_DIR, else models/sdxl-lightning)
        --provider   the execution provider to check for (default: EXECUTION_PROVIDER, else auto)
      "
    `);
  });

  it('--model-dir checks that folder, as imagine’s option does', async () => {
    const result = await cli('doctor.js', ['--model-dir', modelDir, '--provider', 'cpu', '--load']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Model folder (MODEL_DIR=${modelDir})`);
    expect(result.stdout).toContain('ok    1-step UNet (sample): unet_1step/model.onnx');
    expect(result.stdout).toContain('every session loads on cpu');
    expect(result.stdout).toContain('Image safety check (SAFETY=on)');
    expect(result.stdout).toMatch(/ok {4}classifier: safety_classifier\/model\.onnx \([\d.]+ (B|KiB)\), labels sfw\/nsfw, 384×384 bilinear; flagged from a score of 0\.5/);
    expect(result.stdout).toMatch(/ok {4}the classifier is loaded on cpu and scores a plain grey test image 0\.010 \(\d+ ms\)/);
  });

  it('fails SAFETY=on without the classifier, naming the fix, and only warns with SAFETY=off', async () => {
    const bare = join(root, 'no-classifier');
    await writeTinyModelFolder(bare, { steps: [1], safety: false });
    const on = await cli('doctor.js', ['--model-dir', bare, '--provider', 'cpu']);
    expect(on.code).toBe(1);
    expect(on.stdout).toContain('FAIL  safety_classifier/: missing (SAFETY=on checks every image with it)');
    expect(on.stdout).toContain('get it with `npm run models:fetch` (it downloads only what is missing), or set SAFETY=off');
    const off = await cli('doctor.js', ['--model-dir', bare, '--provider', 'cpu'], { SAFETY: 'off' });
    expect(off.stdout).toContain('warn  SAFETY=off: images are posted without an image check');
    expect(off.stdout).not.toContain('FAIL');
  });

  it('an unknown option or a bad provider is one sentence and the usage, exit 2', async () => {
    const unknown = await cli('doctor.js', ['--model', modelDir]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split('\n')[0]).toMatch(/^Unknown option '--model'/);
    expect(unknown.stderr).toContain('usage: npm run doctor --');
    const provider = await cli('doctor.js', ['--provider', 'gpu']);
    expect(provider).toMatchObject({ code: 2, stdout: '', stderr: '--provider must be one of auto, cuda, cpu; got "gpu".\n' });
    for (const result of [unknown, provider]) expect(result.stderr).not.toMatch(STACK_FRAME);
  });

  it('names the command that adds the CUDA provider when it is missing', async (context) => {
    if (CUDA_PROVIDER_FILES.every((file) => existsSync(join(onnxruntimeBindingDir(), file)))) context.skip('the CUDA provider is installed here');
    const result = await cli('doctor.js', ['--model-dir', modelDir]);
    expect(result.stdout).toMatch(/warn {2}provider libraries missing: .*; add them with `npm run cuda:install`/);
  });
});

describe('npm run imagine', () => {
  it('--seed -1 asks for a random seed, as in the AUTOMATIC1111 web UI', async () => {
    const out = join(root, 'random.png');
    const result = await cli('imagine.js', ['a red cat', '--seed', '-1', '--steps', '1', '--model-dir', modelDir, '--out', out]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^seeds: \d+$/m);
    expect(existsSync(out)).toBe(true);
  });

  it('a negative seed other than -1 is one sentence, exit 2', async () => {
    for (const args of [['--seed', '-5'], ['--seed=-5']]) {
      const result = await cli('imagine.js', ['a red cat', ...args, '--model-dir', modelDir]);
      expect(result).toMatchObject({ code: 2, stderr: '--seed must be a whole number from 0 to 9007199254740991, or -1 for a random one; got "-5".\n' });
    }
    const count = await cli('imagine.js', ['a red cat', '--count', '-2', '--model-dir', modelDir]);
    expect(count).toMatchObject({ code: 2, stderr: '--count must be a whole number, got "-2".\n' });
  });

  it('checks --out before generating: a missing folder, a file where the folder should be', async () => {
    const cases = [
      [join(root, 'missing', 'dir', 'x.png'), `--out: the folder ${join(root, 'missing', 'dir')} does not exist; create it or choose another path.\n`],
      [join(modelDir, 'model_index.json', 'x.png'), `--out: ${join(modelDir, 'model_index.json')} is not a folder; choose another path.\n`],
    ] as const;
    for (const [out, message] of cases) {
      const started = Date.now();
      const result = await cli('imagine.js', ['a red cat', '--steps', '1', '--model-dir', modelDir, '--out', out]);
      // one sentence and nothing else: the engine (whose start warns about CUDA) never started
      expect(result).toMatchObject({ code: 2, stdout: '', stderr: message });
      expect(Date.now() - started).toBeLessThan(10_000);
    }
  });

  it('an --out that is a folder named like a PNG is refused before generating', async () => {
    const folder = join(root, 'folder.png');
    mkdirSync(folder);
    const result = await cli('imagine.js', ['a red cat', '--model-dir', modelDir, '--out', folder]);
    expect(result).toMatchObject({ code: 2, stdout: '', stderr: `--out: ${folder} is a folder; name a .png file.\n` });
  });
});

describe('npm run cuda:install', () => {
  it('--help says what it downloads, and an unknown option is the usage, exit 2', async () => {
    const help = await cli('cuda-install.js', ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Microsoft.ML.OnnxRuntime.Gpu.Linux from NuGet');
    const unknown = await cli('cuda-install.js', ['--gpu']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('usage: npm run cuda:install');
  });

  it('at install on this machine: one line and exit 0 whatever happens', async () => {
    const result = await cli('cuda-install.js', ['--at-install'], { ONNXRUNTIME_NODE_INSTALL: 'skip' });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout.trimEnd().split('\n')).toEqual([
      'onnxruntime CUDA provider: not downloaded (ONNXRUNTIME_NODE_INSTALL=skip). The bot runs on the bundled CPU provider; add CUDA later with `npm run cuda:install`.',
    ]);
  });
});
