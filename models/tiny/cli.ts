// Command line for the tiny model folder: `node dist/models/tiny/cli.js <dir> [flags]` writes it and lists its files.

import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_TINY_STEPS, writeTinyModelFolder, type TinyModelOptions } from './generate.js';
import { writeTinyHubRepos } from './hub-repos.js';

const USAGE =
  'usage: node dist/models/tiny/cli.js <dir> [--fp16] [--int32] [--vector-timestep] [--lone-unet] [--steps 1,2,4,8] [--no-external-data] [--safety-score 0.9 | --no-safety]\n' +
  '       node dist/models/tiny/cli.js <dir> --hub-repos [--steps 1,2,4,8]   (tiny copies of the hub repos models:fetch reads, under their repo ids)';

/** Turns the command line into the folder and its options; throws when it cannot. */
function parseTinyModelArgs(args: readonly string[]): { dir: string; options: TinyModelOptions; hubRepos: boolean } {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: {
      fp16: { type: 'boolean', default: false },
      int32: { type: 'boolean', default: false },
      'vector-timestep': { type: 'boolean', default: false },
      'lone-unet': { type: 'boolean', default: false },
      steps: { type: 'string' },
      'no-external-data': { type: 'boolean', default: false },
      'safety-score': { type: 'string' },
      'no-safety': { type: 'boolean', default: false },
      'hub-repos': { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1) throw new Error(`expected one folder, found ${positionals.length}`);
  const options: TinyModelOptions = {
    floatType: values.fp16 ? 'float16' : 'float32',
    idsType: values.int32 ? 'int32' : 'int64',
    timestepShape: values['vector-timestep'] ? 'vector' : 'scalar',
    loneUnet: values['lone-unet'],
    externalData: !values['no-external-data'],
  };
  const score = values['safety-score'];
  if (score !== undefined) {
    if (!/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(score)) throw new Error(`--safety-score expects a number from 0 to 1, found "${score}"`);
    options.safety = { score: Number(score) };
  }
  if (values['no-safety']) options.safety = false;
  if (values.steps !== undefined) {
    const parts = values.steps.split(',');
    if (!parts.every((part) => /^[1-9]\d*$/.test(part))) {
      throw new Error(`--steps expects positive integers separated by commas, found "${values.steps}"`);
    }
    options.steps = parts.map(Number);
  }
  return { dir: positionals[0], options, hubRepos: values['hub-repos'] };
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const lines: string[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const relative = path.join(prefix, entry.name);
    if (entry.isDirectory()) lines.push(...(await listFiles(path.join(dir, entry.name), relative)));
    else lines.push(`${String((await stat(path.join(dir, entry.name))).size).padStart(9)}  ${relative}`);
  }
  return lines;
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseTinyModelArgs>;
  try {
    parsed = parseTinyModelArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const { dir, options, hubRepos } = parsed;
  if (hubRepos) {
    const written = await writeTinyHubRepos(dir, options.steps ?? DEFAULT_TINY_STEPS);
    console.log(`wrote tiny hub repos to ${path.resolve(dir)} (${Object.keys(written.repos).join(', ')}; references in ${written.reference}):`);
    console.log((await listFiles(dir)).join('\n'));
    return;
  }
  await writeTinyModelFolder(dir, options);
  console.log(`wrote a tiny SDXL-Lightning folder to ${path.resolve(dir)} (${JSON.stringify(options)}):`);
  console.log((await listFiles(dir)).join('\n'));
}

await main();
