// The image safety classifier's files (safety_classifier/ in the model folder) and what its JSON says, read without
// loading onnxruntime, so start-up checks and the fetch can look at them cheaply.

import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ModelFolderError } from './model-folder.js';
import { PIL_FILTERS, type ResampleFilter } from './resample.js';

/** The classifier's folder inside the model folder. */
export const SAFETY_FOLDER = 'safety_classifier';
/** Where an admin learns how to get it or turn it off. */
export const SAFETY_HELP = 'Get it with `npm run models:fetch` (it downloads only what is missing), or set SAFETY=off to run without an image check (models/README.md)';

/** The label whose probability is the score; matched without regard to case. */
const FLAGGED_LABEL = 'nsfw';

export type SafetyFiles = { root: string; model: string; config: string; preprocessor: string };

/** How the image processor prepares pixels (transformers `ViTImageProcessor` fields). */
export type SafetyPreprocess = {
  width: number;
  height: number;
  filter: ResampleFilter;
  /** Multiplies the 0–255 bytes (`rescale_factor`, 1/255); 1 when `do_rescale` is false. */
  rescale: number;
  /** Per channel, R G B; mean 0 and std 1 when `do_normalize` is false. */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
};

/** What the folder's JSON files say: the preprocessing, every label in index order, and which one is flagged. */
export type SafetyConfig = { preprocess: SafetyPreprocess; labels: string[]; flaggedIndex: number };

/** The classifier's files in `modelDir`, or undefined when the folder has no `safety_classifier/`. */
export function findSafetyClassifier(modelDir: string): SafetyFiles | undefined {
  const root = join(modelDir, SAFETY_FOLDER);
  if (!existsSync(root)) return undefined;
  return { root, model: join(root, 'model.onnx'), config: join(root, 'config.json'), preprocessor: join(root, 'preprocessor_config.json') };
}

type Json = Record<string, unknown>;

function readJson(path: string, name: string, problems: string[]): Json | undefined {
  if (!existsSync(path)) {
    problems.push(`${name}: missing`);
    return undefined;
  }
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Json;
    problems.push(`${name}: expected a JSON object`);
  } catch (error) {
    problems.push(`${name}: not valid JSON (${(error as Error).message})`);
  }
  return undefined;
}

const isTriple = (value: unknown): value is [number, number, number] =>
  Array.isArray(value) && value.length === 3 && value.every((v) => typeof v === 'number' && Number.isFinite(v));

/** Reads config.json and preprocessor_config.json; every problem is one line naming the file, what was expected and found. */
export function readSafetyConfig(files: SafetyFiles, modelDir: string): SafetyConfig {
  const problems: string[] = [];
  const name = (path: string): string => relative(modelDir, path);
  const config = readJson(files.config, name(files.config), problems);
  const processor = readJson(files.preprocessor, name(files.preprocessor), problems);

  const labels: string[] = [];
  let flaggedIndex = -1;
  if (config) {
    const id2label = config.id2label;
    if (id2label && typeof id2label === 'object' && !Array.isArray(id2label)) {
      for (const [index, label] of Object.entries(id2label as Json)) {
        if (/^\d+$/.test(index) && typeof label === 'string') labels[Number(index)] = label;
      }
    }
    flaggedIndex = labels.findIndex((label) => label?.toLowerCase() === FLAGGED_LABEL);
    if (labels.length < 2 || labels.some((label) => label === undefined) || flaggedIndex < 0) {
      problems.push(`${name(files.config)}: expected "id2label" to number its labels from 0 and include "${FLAGGED_LABEL}", found ${JSON.stringify(config.id2label ?? null)}`);
    }
  }

  let preprocess: SafetyPreprocess | undefined;
  if (processor) {
    const where = name(files.preprocessor);
    const size = processor.size as Json | undefined;
    const width = size?.width;
    const height = size?.height;
    if (processor.do_resize === false) problems.push(`${where}: "do_resize" is false; the classifier needs its images resized to its input size`);
    if (!(Number.isInteger(width) && Number.isInteger(height) && (width as number) > 0 && (height as number) > 0)) {
      problems.push(`${where}: expected "size" to be {"height": …, "width": …} in pixels, found ${JSON.stringify(processor.size ?? null)}`);
    }
    const resample = processor.resample ?? 2;
    const filter = PIL_FILTERS[resample as keyof typeof PIL_FILTERS];
    if (!filter) {
      problems.push(`${where}: "resample" must be ${Object.entries(PIL_FILTERS).map(([code, f]) => `${code} (${f})`).join(' or ')}, found ${JSON.stringify(resample)}`);
    }
    const rescaleFactor = processor.rescale_factor ?? 1 / 255;
    if (typeof rescaleFactor !== 'number' || !(rescaleFactor > 0)) problems.push(`${where}: "rescale_factor" must be a positive number, found ${JSON.stringify(rescaleFactor)}`);
    const normalize = processor.do_normalize !== false;
    const mean = normalize ? processor.image_mean : [0, 0, 0];
    const std = normalize ? processor.image_std : [1, 1, 1];
    if (!isTriple(mean)) problems.push(`${where}: "image_mean" must be three numbers (R, G, B), found ${JSON.stringify(mean ?? null)}`);
    if (!isTriple(std) || std.some((v) => v <= 0)) problems.push(`${where}: "image_std" must be three positive numbers (R, G, B), found ${JSON.stringify(std ?? null)}`);
    if (problems.length === 0) {
      preprocess = {
        width: width as number,
        height: height as number,
        filter: filter!,
        rescale: processor.do_rescale === false ? 1 : (rescaleFactor as number),
        mean: mean as [number, number, number],
        std: std as [number, number, number],
      };
    }
  }
  if (problems.length > 0 || !preprocess) throw new ModelFolderError(modelDir, [...problems, SAFETY_HELP]);
  return { preprocess, labels, flaggedIndex };
}

/** The problems that keep the classifier in `modelDir` from loading, found from its files alone; [] when none. */
export function safetyClassifierProblems(modelDir: string): string[] {
  const files = findSafetyClassifier(modelDir);
  if (!files) return [`${SAFETY_FOLDER}/: missing (SAFETY=on checks every image with it)`];
  const problems: string[] = [];
  try {
    readSafetyConfig(files, modelDir);
  } catch (error) {
    if (!(error instanceof ModelFolderError)) throw error;
    problems.push(...error.problems.filter((problem) => problem !== SAFETY_HELP));
  }
  if (!existsSync(files.model)) problems.push(`${relative(modelDir, files.model)}: missing`);
  return problems;
}
