import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { runCli, type CliResult } from './run-cli.js';

const root = mkdtempSync(join(tmpdir(), 'cli-'));
const modelDir = join(root, 'model');

const cli = (script: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(script, args, { cwd: root, env: { MODEL_DIR: modelDir, ...env } });

beforeAll(async () => {
  await writeTinyModelFolder(modelDir);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('npm run imagine', () => {
  it('writes a 2×2 grid and the singles, and prints seeds, size, provider and stage timings', async () => {
    const out = join(root, 'grid.png');
    const result = await cli('imagine.js', ['a lighthouse at dusk', '--steps', '2', '--seed', '42', '--aspect', '16:9', '--count', '4', '--out', out, '--singles']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('seeds: 42, 43, 44, 45 (image i uses seed + i)');
    expect(result.stdout).toContain('size: 1344×768 (16:9), steps: 2 (epsilon), provider: cpu');
    expect(result.stdout).toMatch(/timings: tokenize [\d.]+ ms, text encoders [\d.]+ ms, noise [\d.]+ ms, UNet [\d.]+ ms \+ [\d.]+ ms, VAE/);
    const grid = await sharp(out).metadata();
    expect([grid.format, grid.width! > 2 * 1344, grid.height! > 2 * 768]).toEqual(['png', true, true]);
    for (let i = 1; i <= 4; i++) {
      const single = await sharp(join(root, `grid-${i}.png`)).metadata();
      expect([single.width, single.height]).toEqual([1344, 768]);
    }
    expect(result.stderr).toMatch(/warning: CUDA is not usable/);
  });

  it('writes one image at full size for --count 1, the same pixels for the same seed', async () => {
    const first = join(root, 'one.png');
    const second = join(root, 'two.png');
    expect((await cli('imagine.js', ['a red cat', '--seed', '7', '--out', first])).code).toBe(0);
    expect((await cli('imagine.js', ['a red cat', '--seed', '7', '--out', second])).code).toBe(0);
    const [a, b] = await Promise.all([first, second].map((path) => sharp(path).raw().toBuffer({ resolveWithObject: true })));
    expect([a.info.width, a.info.height]).toEqual([1024, 1024]);
    expect(Buffer.compare(a.data, b.data)).toBe(0);
  });

  it('answers bad arguments with one sentence and the usage, exit status 2', async () => {
    for (const [args, message] of [
      [['--steps', '4'], 'Give a prompt.'],
      [['cat', '--seed', '1e3'], '--seed must be a whole number, got "1e3".'],
      [['cat', '--aspect', '5:4'], '--aspect must be one of 1:1, 4:3'],
      [['cat', '--count', '5'], '--count must be from 1 to 4, got 5.'],
      [['cat', '--out', 'x.jpg'], '--out must name a .png file'],
    ] as const) {
      const result = await cli('imagine.js', [...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(message);
    }
  });

  it('says a step count is not installed', async () => {
    const result = await cli('imagine.js', ['cat', '--steps', '3', '--out', join(root, 'x.png')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no UNet for 3 steps is installed; installed: 1, 2, 4, 8');
  });

  it('says how to get a model folder when there is none', async () => {
    const result = await cli('imagine.js', ['cat'], { MODEL_DIR: join(root, 'missing') });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the folder does not exist');
    expect(result.stderr).toContain('npm run models:fetch');
    expect(result.stderr).toContain('npm run models:tiny');
    expect(existsSync(join(root, 'out.png'))).toBe(false);
  });
});

describe('npm run doctor', () => {
  it('checks the box and the model folder, loading every model with --load', async () => {
    const result = await cli('doctor.js', ['--load']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/ok {4}onnxruntime-node 1\.30\.\d+/);
    expect(result.stdout).toMatch(/provider libraries missing: libonnxruntime_providers_shared\.so|provider libraries present/);
    expect(result.stdout).toContain('ok    4-step UNet (epsilon): unet_4step/model.onnx');
    expect(result.stdout).toContain('every session loads on cpu and has the inputs and outputs the pipeline needs');
    expect(result.stdout).toContain('The bot can run with this setup.');
  });

  it('fails, naming the problem, when CUDA is required but missing or the folder is broken', async () => {
    const cuda = await cli('doctor.js', [], { EXECUTION_PROVIDER: 'cuda' });
    expect(cuda.code).toBe(1);
    expect(cuda.stdout).toContain('FAIL  EXECUTION_PROVIDER=cuda cannot work');
    const missing = await cli('doctor.js', [], { MODEL_DIR: join(root, 'missing'), EXECUTION_PROVIDER: 'cpu' });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('FAIL  the folder does not exist');
  });
});
