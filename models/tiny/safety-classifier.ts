// Writes a tiny image safety classifier: the files and I/O contract of AdamCodd/vit-base-nsfw-detector's ONNX export
// (pixel_values [batch, 3, 384, 384] float32 → logits [batch, 2], labels sfw / nsfw), with an output the caller sets.

import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { attr, createGraph, writeModel, type GraphBuilder } from './onnx-writer.js';

/**
 * What the tiny classifier answers. `score`: the same nsfw probability for every image. `fromMean`: the nsfw logit
 * is `scale × mean(pixel_values) + offset` (the sfw logit is 0), so a test picks each image's score by its colour
 * and sees the preprocessing at work (a white image normalises to 1, a black one to −1).
 */
export type TinySafetyOptions = { score: number } | { fromMean: { scale: number; offset: number } };

/** The input side of the real export's preprocessor_config.json. */
const INPUT_SIZE = 384;

/** The folder the bot reads: safety_classifier/ with model.onnx, config.json and preprocessor_config.json. */
export async function writeTinySafetyClassifier(modelDir: string, options: TinySafetyOptions, folder = 'safety_classifier'): Promise<void> {
  const dir = path.join(modelDir, folder);
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, 'config.json'),
    `${JSON.stringify({ architectures: ['ViTForImageClassification'], model_type: 'vit', image_size: INPUT_SIZE, id2label: { 0: 'sfw', 1: 'nsfw' }, label2id: { sfw: '0', nsfw: '1' } }, null, 2)}\n`,
  );
  await writeFile(
    path.join(dir, 'preprocessor_config.json'),
    `${JSON.stringify(
      {
        do_normalize: true,
        do_rescale: true,
        do_resize: true,
        image_mean: [0.5, 0.5, 0.5],
        image_processor_type: 'ViTImageProcessor',
        image_std: [0.5, 0.5, 0.5],
        resample: 2,
        rescale_factor: 1 / 255,
        size: { height: INPUT_SIZE, width: INPUT_SIZE },
      },
      null,
      2,
    )}\n`,
  );
  await writeModel(path.join(dir, 'model.onnx'), classifierGraph(options));
}

/** The logit of `p` (the nsfw logit that gives probability p against an sfw logit of 0), clamped off 0 and 1. */
function logit(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`a score is a probability from 0 to 1, got ${p}`);
  const clamped = Math.min(Math.max(p, 1e-7), 1 - 1e-7);
  return Math.log(clamped / (1 - clamped));
}

/** mean over C, H, W → [batch]; times the scale plus the offset → the nsfw logit; stacked after a zero sfw logit. */
function classifierGraph(options: TinySafetyOptions): GraphBuilder {
  const g = createGraph('tiny_safety_classifier');
  g.input('pixel_values', 'float32', ['batch_size', 3, INPUT_SIZE, INPUT_SIZE]);
  const { scale, offset } = 'score' in options ? { scale: 0, offset: logit(options.score) } : options.fromMean;
  const mean = g.op('ReduceMean', ['pixel_values'], { axes: attr.ints([1, 2, 3]), keepdims: attr.int(0) });
  const nsfw = g.op('Add', [g.op('Mul', [mean, g.initializer('scale', 'float32', [], Float32Array.of(scale))]), g.initializer('offset', 'float32', [], Float32Array.of(offset))]);
  const column = g.op('Unsqueeze', [nsfw, g.initializer('axes', 'int64', [1], BigInt64Array.of(1n))]);
  // [batch, 1] × [1, 2] puts the logit in the nsfw column; the sfw column stays 0
  g.node('MatMul', [column, g.initializer('to_nsfw', 'float32', [1, 2], Float32Array.of(0, 1))], ['logits']);
  g.output('logits', 'float32', ['batch_size', 2]);
  return g;
}
