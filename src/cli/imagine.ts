// `npm run imagine -- "a lighthouse at dusk" --steps 4 --seed 42 --aspect 16:9 --count 4 --out out.png`:
// one generation from the command line, through the same engine the bot uses.

import { accessSync, constants, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { ASPECT_SIZES, ASPECTS, isAspect, isSeed, MAX_SEED, randomSeed, type Aspect } from '../core/request.js';
import { createEngine, EngineError, findModelFolder, ModelFolderError, PROVIDER_CHOICES, type ProviderChoice } from '../diffusion/index.js';
import { composeGrid, encodePng } from '../render/index.js';
import { createCliLogger, fail, loadConfigOrFail, parseArgsOrUsage } from './output.js';

const USAGE = `usage: npm run imagine -- "<prompt>" [--steps N] [--seed N|-1] [--aspect ${ASPECTS.join('|')}] [--count 1-4]
                            [--out out.png] [--singles] [--model-dir DIR] [--provider ${PROVIDER_CHOICES.join('|')}]`;
/** `--seed -1` asks for a random seed, as in the AUTOMATIC1111 web UI. */
const RANDOM_SEED = '-1';

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

/** The options that take a number; a negative one after them is their value, not an option. */
const NUMBER_OPTIONS = new Set(['--steps', '--seed', '--count']);

/** `--seed -1` → `--seed=-1`: parseArgs reads a value that starts with a dash as the next option ("ambiguous"). */
function joinNegativeNumbers(argv: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (NUMBER_OPTIONS.has(argv[i]) && /^-\d/.test(argv[i + 1] ?? '')) joined.push(`${argv[i]}=${argv[++i]}`);
    else joined.push(argv[i]);
  }
  return joined;
}

/** Ends the command before any work when `path`'s folder is missing or not writable, or `path` is a folder. */
function checkWritable(path: string): void {
  const folder = dirname(resolve(path));
  let isFolder: boolean;
  try {
    isFolder = statSync(folder).isDirectory();
  } catch {
    fail(`--out: the folder ${folder} does not exist; create it or choose another path.`, 2);
  }
  if (!isFolder) fail(`--out: ${folder} is not a folder; choose another path.`, 2);
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    fail(`--out: this user may not write in ${folder}; choose another path.`, 2);
  }
  let target;
  try {
    target = statSync(path);
  } catch {
    return;
  }
  if (target.isDirectory()) fail(`--out: ${path} is a folder; name a .png file.`, 2);
}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgsOrUsage(
    {
      args: joinNegativeNumbers(argv),
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
    },
    USAGE,
  );
  const prompt = positionals.join(' ').trim();
  if (!prompt) fail(`Give a prompt.\n${USAGE}`, 2);
  const whole = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) fail(`--${name} must be a whole number, got "${text}".`, 2);
    return Number(text);
  };
  if (values.seed !== undefined && values.seed.startsWith('-') && values.seed !== RANDOM_SEED) {
    fail(`--seed must be a whole number from 0 to ${MAX_SEED}, or -1 for a random one; got "${values.seed}".`, 2);
  }
  const seed = (values.seed === RANDOM_SEED ? undefined : whole('seed', values.seed)) ?? randomSeed();
  if (!isSeed(seed)) fail(`--seed must be from 0 to ${MAX_SEED}.`, 2);
  const count = whole('count', values.count)!;
  if (count < 1 || count > MAX_COUNT) fail(`--count must be from 1 to ${MAX_COUNT}, got ${count}.`, 2);
  if (!isAspect(values.aspect)) fail(`--aspect must be one of ${ASPECTS.join(', ')}; got "${values.aspect}".`, 2);
  if (values.provider !== undefined && !(PROVIDER_CHOICES as readonly string[]).includes(values.provider)) {
    fail(`--provider must be one of ${PROVIDER_CHOICES.join(', ')}; got "${values.provider}".`, 2);
  }
  if (extname(values.out).toLowerCase() !== '.png') fail(`--out must name a .png file, got "${values.out}".`, 2);
  checkWritable(values.out);
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
    const save = async (path: string, png: Buffer): Promise<void> => {
      try {
        await writeFile(path, png);
      } catch (error) {
        fail(`Could not write ${path}: ${(error as Error).message}`);
      }
      written.push(path);
    };
    const image = output.images.length === 1 ? output.images[0] : composeGrid(output.images);
    await save(options.out, await encodePng(image));
    if (options.singles && output.images.length > 1) {
      for (const [i, single] of output.images.entries()) await save(options.out.replace(/\.png$/i, `-${i + 1}.png`), await encodePng(single));
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
