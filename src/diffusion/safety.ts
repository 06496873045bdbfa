// The image safety classifier: an ONNX image classifier (a ViT with the labels sfw / nsfw) that scores every image
// before it leaves the engine. Its preprocessing is read from the folder's preprocessor_config.json, as the Hugging
// Face image processor would do it: resize (Pillow's filter), rescale, normalise, NCHW float32.

import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { contractProblems, type ModelContract } from './contract.js';
import { ModelFolderError } from './model-folder.js';
import { resizeLikePil } from './resample.js';
import { findSafetyClassifier, readSafetyConfig, SAFETY_FOLDER, SAFETY_HELP, type SafetyConfig, type SafetyPreprocess } from './safety-files.js';
import { OnnxModel, type SessionOptions } from './session.js';
import type { RgbImage } from './vae.js';

export { findSafetyClassifier, readSafetyConfig, safetyClassifierProblems, SAFETY_FOLDER, SAFETY_HELP, type SafetyConfig, type SafetyFiles, type SafetyPreprocess } from './safety-files.js';

/** transformers.js / optimum image-classification exports: `pixel_values` [batch, 3, H, W] → `logits` [batch, labels]. */
export const SAFETY_CLASSIFIER_CONTRACT: ModelContract = { inputs: { pixel_values: ['float32', 'float16'] }, outputs: ['logits'] };

/** One image's check: its probability of the flagged label, and whether that reached the threshold. */
export type SafetyVerdict = { flagged: boolean; score: number };

export type SafetyClassifier = {
  readonly label: string;
  readonly config: SafetyConfig;
  readonly threshold: number;
  /** Scores each image (any size; resized here); one verdict per image, in order. */
  classify(images: readonly RgbImage[]): Promise<SafetyVerdict[]>;
  /** Releases the session; call once. */
  close(): Promise<void>;
};

/**
 * Images → the classifier's `pixel_values`, NCHW float32 [batch, 3, height, width]: each resized like Pillow, then
 * `(byte × rescale − mean) / std` per channel, in float32 as the image processor's numpy arrays are.
 */
export function preprocessImages(images: readonly RgbImage[], preprocess: SafetyPreprocess): { values: Float32Array; dims: number[] } {
  const { width, height } = preprocess;
  const plane = width * height;
  const values = new Float32Array(images.length * 3 * plane);
  const scale = Math.fround(preprocess.rescale);
  const mean = preprocess.mean.map(Math.fround);
  const std = preprocess.std.map(Math.fround);
  images.forEach((image, b) => {
    const resized = resizeLikePil(image, width, height, preprocess.filter);
    const base = b * 3 * plane;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const rescaled = Math.fround(resized.data[p * 3 + c] * scale);
        values[base + c * plane + p] = Math.fround(Math.fround(rescaled - mean[c]) / std[c]);
      }
    }
  });
  return { values, dims: [images.length, 3, height, width] };
}

/** The softmax of one row of logits, computed from its largest value so that no exp overflows. */
export function softmax(logits: ArrayLike<number>): number[] {
  const values = Array.from(logits);
  const top = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - top));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

export type SafetyOptions = {
  modelDir: string;
  /** A score at or above this is flagged (SAFETY_THRESHOLD). */
  threshold: number;
  session: SessionOptions;
  log?: (level: 'info' | 'warn' | 'error', message: string, details?: Record<string, unknown>) => void;
};

/**
 * Loads `safety_classifier/` from the model folder on the pipeline's provider and checks its files, inputs and
 * outputs; a ModelFolderError names each problem (a missing folder included). The caller calls `close()`.
 */
export async function loadSafetyClassifier(options: SafetyOptions): Promise<SafetyClassifier> {
  const log = options.log ?? (() => {});
  if (!(options.threshold >= 0 && options.threshold <= 1)) throw new RangeError(`the safety threshold must be from 0 to 1, got ${options.threshold}`);
  const files = findSafetyClassifier(options.modelDir);
  if (!files) throw new ModelFolderError(options.modelDir, [`${SAFETY_FOLDER}/: missing (SAFETY=on checks every image with it)`, SAFETY_HELP]);
  const config = readSafetyConfig(files, options.modelDir);
  const label = relative(options.modelDir, files.model);
  if (!existsSync(files.model)) throw new ModelFolderError(options.modelDir, [`${label}: missing`, SAFETY_HELP]);
  const started = performance.now();
  let model: OnnxModel;
  try {
    model = await OnnxModel.load(files.model, label, options.session, (details) => log('error', 'onnxruntime run failed', details));
  } catch (error) {
    throw new ModelFolderError(options.modelDir, [`${label}: onnxruntime cannot load it: ${(error as Error).message}`, SAFETY_HELP]);
  }
  const problems = contractProblems(model, SAFETY_CLASSIFIER_CONTRACT);
  const input = model.inputs.get('pixel_values');
  if (input) {
    const [, channels, height, width] = input.shape;
    const fixed = (dim: number | string | undefined, want: number): boolean => typeof dim !== 'number' || dim < 0 || dim === want;
    if (input.shape.length !== 4 || !fixed(channels, 3) || !fixed(height, config.preprocess.height) || !fixed(width, config.preprocess.width)) {
      problems.push(
        `${label}: input "pixel_values" has shape [${input.shape.join(', ')}]; preprocessor_config.json says [batch, 3, ${config.preprocess.height}, ${config.preprocess.width}]`,
      );
    }
  }
  if (problems.length > 0) {
    await model.release();
    throw new ModelFolderError(options.modelDir, [...problems, SAFETY_HELP]);
  }
  log('info', 'model loaded', { model: label, provider: options.session.provider, ms: Math.round(performance.now() - started) });
  // a graph exported for batch 1 is run once per image
  const batchDim = input!.shape[0];
  const batchOfOne = typeof batchDim === 'number' && batchDim === 1;

  const run = async (images: readonly RgbImage[]): Promise<SafetyVerdict[]> => {
    const pixels = preprocessImages(images, config.preprocess);
    const { logits } = await model.run({ pixel_values: pixels }, ['logits']);
    const classes = logits.dims[logits.dims.length - 1];
    if (logits.dims.length !== 2 || logits.dims[0] !== images.length || classes !== config.labels.length) {
      throw new Error(`${label}: output "logits" has dims [${logits.dims.join(', ')}]; expected [${images.length}, ${config.labels.length}]`);
    }
    return images.map((_, i) => {
      const score = softmax(logits.values.subarray(i * classes, (i + 1) * classes))[config.flaggedIndex];
      return { flagged: score >= options.threshold, score };
    });
  };
  return {
    label,
    config,
    threshold: options.threshold,
    classify: async (images) => {
      if (images.length === 0) return [];
      if (!batchOfOne) return run(images);
      const verdicts: SafetyVerdict[] = [];
      for (const image of images) verdicts.push(...(await run([image])));
      return verdicts;
    },
    close: () => model.release(),
  };
}
