// `npm run imagine -- "a lighthouse at dusk" --steps 4 --seed 42 --aspect 16:9 --count 4 --out out.png`:
// one generation from the command line, through the same engine the bot uses.

import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseArgs } from 'node:util';
import { ASPECT_SIZES, ASPECTS, isAspect, isSeed, randomSeed, type Aspect } from '../core/request.js';
import { createEngine, EngineError, findModelFolder, ModelFolderError, PROVIDER_CHOICES, type ProviderChoice } from '../diffusion/index.js';
import { composeGrid, encodePng } from '../render/index.js';
import { createCliLogger, fail, loadConfigOrFail } from './output.js';

const USAGE = `usage: npm run imagine -- "<prompt>" [--steps N] [--seed N] [--aspect ${ASPECTS.join('|')}] [--count 1-4]
                            [--out out.png] [--singles] [--model-dir DIR] [--provider ${PROVIDER_CHOICES.join('|')}]`;

const MAX_COUNT = 4;
const DEFAULT_STEPS = 4;

type Options = {
  prompt: string;
  steps: number | undefined;
  seed: number;
  aspect: Aspect;
  count: number;
  out: string;
  singles: boolean;
  modelDir: string | undefined;
  provider: ProviderChoice | undefined;
};

function parseOptions(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        steps: { type: 'string' },
        seed: { type: 'string' },
        aspect: { type: 'string', default: '1:1' },
        count: { type: 'string', default: '1' },
        out: { type: 'string', default: 'out.png' },
        singles: { type: 'boolean', default: false },
        'model-dir': { type: 'string' },
        provider: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    fail(`${(error as Error).message}\n${USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const prompt = positionals.join(' ').trim();
  if (!prompt) fail(`Give a prompt.\n${USAGE}`, 2);
  const whole = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) fail(`--${name} must be a whole number, got "${text}".`, 2);
    return Number(text);
  };
  const seed = whole('seed', values.seed) ?? randomSeed();
  if (!isSeed(seed)) fail(`--seed must be from 0 to ${Number.MAX_SAFE_INTEGER}.`, 2);
  const count = whole('count', values.count)!;
  if (count < 1 || count > MAX_COUNT) fail(`--count must be from 1 to ${MAX_COUNT}, got ${count}.`, 2);
  if (!isAspect(values.aspect)) fail(`--aspect must be one of ${ASPECTS.join(', ')}; got "${values.aspect}".`, 2);
  if (values.provider !== undefined && !(PROVIDER_CHOICES as readonly string[]).includes(values.provider)) {
    fail(`--provider must be one of ${PROVIDER_CHOICES.join(', ')}; got "${values.provider}".`, 2);
  }
  if (extname(values.out).toLowerCase() !== '.png') fail(`--out must name a .png file, got "${values.out}".`, 2);
  return {
    prompt,
    steps: whole('steps', values.steps),
    seed,
    aspect: values.aspect,
    count,
    out: values.out,
    singles: values.singles,
    modelDir: values['model-dir'],
    provider: values.provider as ProviderChoice | undefined,
  };
}

const ms = (value: number): string => `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const config = loadConfigOrFail({
    ...(options.modelDir ? { MODEL_DIR: options.modelDir } : {}),
    ...(options.provider ? { EXECUTION_PROVIDER: options.provider } : {}),
  });
  try {
    findModelFolder(config.modelDir);
  } catch (error) {
    if (error instanceof ModelFolderError) {
      fail(`${error.message}\nTo try every stage without the real model, write a tiny one: npm run models:tiny -- /tmp/tiny-model, then add --model-dir /tmp/tiny-model.`);
    }
    throw error;
  }

  const logger = createCliLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const engine = createEngine(
    { modelDir: config.modelDir, provider: config.provider, deviceId: config.cudaDeviceId, lazyUnets: true, cpuThreads: config.cpuThreads },
    { logger },
  );
  try {
    const info = await engine.start();
    const steps = options.steps ?? (info.steps.includes(DEFAULT_STEPS) ? DEFAULT_STEPS : info.steps[info.steps.length - 1]);
    const { width, height } = ASPECT_SIZES[options.aspect];
    const seeds = Array.from({ length: options.count }, (_, i) => options.seed + i);
    const output = await engine.generate({ prompt: options.prompt, steps, width, height, images: seeds.map((seed) => ({ seed })) });

    const encodeStarted = performance.now();
    const written: string[] = [];
    const image = output.images.length === 1 ? output.images[0] : composeGrid(output.images);
    await writeFile(options.out, await encodePng(image));
    written.push(options.out);
    if (options.singles && output.images.length > 1) {
      for (const [i, single] of output.images.entries()) {
        const path = options.out.replace(/\.png$/i, `-${i + 1}.png`);
        await writeFile(path, await encodePng(single));
        written.push(path);
      }
    }
    const encodeMs = performance.now() - encodeStarted;

    const t = output.timings;
    const lines = [
      `wrote ${written.join(', ')} (${image.width}×${image.height})`,
      `seeds: ${seeds.join(', ')}${seeds.length > 1 ? ' (image i uses seed + i)' : ''}`,
      `size: ${width}×${height} (${options.aspect}), steps: ${steps} (${output.prediction}), provider: ${info.provider}`,
      `timings: tokenize ${ms(t.tokenizeMs)}, text encoders ${ms(t.textMs)}, noise ${ms(t.noiseMs)}, ` +
        `UNet ${t.unetStepMs.map(ms).join(' + ')}, VAE ${ms(t.vaeMs)}, total ${ms(t.totalMs)} (host work ${ms(t.hostMs)}); PNG ${ms(encodeMs)}`,
    ];
    if (output.truncated) lines.push('note: the prompt is longer than 75 tokens; the rest was cut, as diffusers does.');
    process.stdout.write(`${lines.join('\n')}\n`);
  } catch (error) {
    if (error instanceof EngineError) fail(error.message);
    throw error;
  } finally {
    await engine.close();
  }
}

await main();
