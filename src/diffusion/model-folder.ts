// Finds and checks the SDXL-Lightning model folder: the optimum ONNX layout with one UNet per step count.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { PREDICTION_TYPES, type PredictionType } from './scheduler.js';

/** Where an admin learns how to get or build the folder. */
export const MODEL_HELP = 'Get it with `npm run models:fetch`, which downloads the official SDXL and SDXL-Lightning files and builds the folder (models/README.md explains it)';

export type TokenizerFiles = { vocab: string; merges: string };

/** One Lightning UNet: the step count it was distilled for and what it predicts. */
export type UnetEntry = { steps: number; prediction: PredictionType; model: string; folder: string };

export type ModelFolder = {
  root: string;
  tokenizer: TokenizerFiles;
  tokenizer2: TokenizerFiles;
  textEncoder: string;
  textEncoder2: string;
  vaeDecoder: string;
  /** Installed UNets, fewest steps first; the step counts offered to users. */
  unets: UnetEntry[];
};

/** One error for everything wrong with the folder; each line names a file, what was expected and what to do. */
export class ModelFolderError extends Error {
  override readonly name = 'ModelFolderError';
  readonly problems: readonly string[];
  constructor(root: string, problems: readonly string[]) {
    super(`The model folder ${root} is not usable:\n${problems.map((p) => `  - ${p}`).join('\n')}\n${MODEL_HELP}.`);
    this.problems = problems;
  }
}

const UNET_FOLDER = /^unet_(\d+)step$/;
/** A lone `unet/` without `lightning_steps` in its config.json is taken as the 4-step epsilon checkpoint. */
const LONE_UNET_STEPS = 4;
const MAX_STEPS = 50;

/** Reads the folder's layout (files only; sessions check inputs and outputs when they load). */
export function findModelFolder(root: string): ModelFolder {
  const absolute = resolve(root);
  const problems: string[] = [];
  const name = (path: string): string => relative(absolute, path) || '.';
  if (!existsSync(absolute) || !statSync(absolute).isDirectory()) {
    throw new ModelFolderError(absolute, ['the folder does not exist']);
  }
  const requireFile = (...parts: string[]): string => {
    const path = join(absolute, ...parts);
    if (!existsSync(path)) problems.push(`${name(path)}: missing`);
    return path;
  };
  const tokenizerFiles = (folder: string): TokenizerFiles => ({
    vocab: requireFile(folder, 'vocab.json'),
    merges: requireFile(folder, 'merges.txt'),
  });
  const tokenizer = tokenizerFiles('tokenizer');
  const tokenizer2 = tokenizerFiles('tokenizer_2');
  if (existsSync(join(absolute, 'tokenizer_2')) && !['special_tokens_map.json', 'tokenizer_config.json'].some((f) => existsSync(join(absolute, 'tokenizer_2', f)))) {
    problems.push('tokenizer_2/special_tokens_map.json: missing (it sets the pad token "!" that text_encoder_2 expects)');
  }
  const textEncoder = requireFile('text_encoder', 'model.onnx');
  const textEncoder2 = requireFile('text_encoder_2', 'model.onnx');
  const vaeDecoder = requireFile('vae_decoder', 'model.onnx');
  const unets = findUnets(absolute, problems, name);
  if (unets.length === 0 && !problems.some((p) => p.startsWith('unet'))) {
    problems.push('unet_1step/, unet_2step/, unet_4step/ or unet_8step/ (each with model.onnx): none found');
  }
  if (problems.length > 0) throw new ModelFolderError(absolute, problems);
  return { root: absolute, tokenizer, tokenizer2, textEncoder, textEncoder2, vaeDecoder, unets };
}

type UnetConfig = { lightning_steps?: unknown; prediction_type?: unknown };

function findUnets(root: string, problems: string[], name: (path: string) => string): UnetEntry[] {
  const byStep = new Map<number, UnetEntry>();
  const folders = readdirSync(root, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  for (const folder of folders.filter((f) => UNET_FOLDER.test(f)).sort()) {
    const steps = Number(UNET_FOLDER.exec(folder)![1]);
    const entry = readUnet(root, folder, steps, problems, name);
    if (entry) byStep.set(steps, entry);
  }
  if (folders.includes('unet')) {
    const config = readUnetConfig(root, 'unet', problems, name);
    const declared = config?.lightning_steps;
    // the plain SDXL export also has unet/: beside step folders it is used only when it names its own step count
    if (byStep.size === 0 || declared !== undefined) {
      const steps = declared === undefined ? LONE_UNET_STEPS : Number(declared);
      const entry = readUnet(root, 'unet', steps, problems, name);
      if (entry && byStep.has(steps)) {
        problems.push(`unet/ and unet_${steps}step/: two UNets for ${steps} steps; remove one`);
      } else if (entry) {
        byStep.set(steps, entry);
      }
    }
  }
  return [...byStep.values()].sort((a, b) => a.steps - b.steps);
}

function readUnet(root: string, folder: string, steps: number, problems: string[], name: (path: string) => string): UnetEntry | undefined {
  const configPath = join(root, folder, 'config.json');
  const model = join(root, folder, 'model.onnx');
  if (!Number.isInteger(steps) || steps < 1 || steps > MAX_STEPS) {
    problems.push(`${name(configPath)}: lightning_steps must be an integer from 1 to ${MAX_STEPS}`);
    return undefined;
  }
  if (!existsSync(model)) {
    problems.push(`${name(model)}: missing`);
    return undefined;
  }
  const config = readUnetConfig(root, folder, problems, name);
  if (config?.lightning_steps !== undefined && Number(config.lightning_steps) !== steps) {
    problems.push(`${name(configPath)}: lightning_steps is ${String(config.lightning_steps)} but the folder is for ${steps} steps`);
    return undefined;
  }
  const declared = config?.prediction_type;
  if (declared !== undefined && !PREDICTION_TYPES.includes(declared as PredictionType)) {
    problems.push(`${name(configPath)}: prediction_type must be ${PREDICTION_TYPES.map((p) => `"${p}"`).join(' or ')}, found ${JSON.stringify(declared)}`);
    return undefined;
  }
  // Lightning's 1-step checkpoint predicts x0; the others predict noise (spec §3.5)
  const prediction = (declared as PredictionType | undefined) ?? (steps === 1 ? 'sample' : 'epsilon');
  return { steps, prediction, model, folder: join(root, folder) };
}

function readUnetConfig(root: string, folder: string, problems: string[], name: (path: string) => string): UnetConfig | undefined {
  const path = join(root, folder, 'config.json');
  if (!existsSync(path)) return undefined;
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as UnetConfig;
    problems.push(`${name(path)}: expected a JSON object`);
  } catch (error) {
    problems.push(`${name(path)}: not valid JSON (${(error as Error).message})`);
  }
  return undefined;
}
