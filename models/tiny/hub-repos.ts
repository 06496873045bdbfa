// Tiny copies of the official hub repos the builder reads, laid out under their real repo ids and paths, with references.

import { cp, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { float32ToFloat16 } from '../../src/diffusion/fp16.js';
import { writeSafetensors } from '../../src/model-build/safetensors.js';
import { writeTinyModelFolder } from './generate.js';
import { writeTinySafetyClassifier } from './safety-classifier.js';
import { writeModel } from './onnx-writer.js';
import { torchExportUnet, torchExportVaeDecoder, withLegacyAttentionNames, type StateDict, type WeightSet } from './torch-export.js';

export const BASE_REPO = 'stabilityai/stable-diffusion-xl-base-1.0';
export const LIGHTNING_REPO = 'ByteDance/SDXL-Lightning';
export const VAE_FIX_REPO = 'madebyollin/sdxl-vae-fp16-fix';
export const SAFETY_REPO = 'AdamCodd/vit-base-nsfw-detector';

/** The Lightning UNet file for each step count (the 1-step one predicts x0). */
export const LIGHTNING_FILES: Readonly<Record<number, string>> = {
  1: 'sdxl_lightning_1step_unet_x0.safetensors',
  2: 'sdxl_lightning_2step_unet.safetensors',
  4: 'sdxl_lightning_4step_unet.safetensors',
  8: 'sdxl_lightning_8step_unet.safetensors',
};

/** The base weights: two pairs tied, so the export merges them (an inline bias and a folded, external matrix). */
export const BASE_UNET_WEIGHTS: WeightSet = {
  seed: 1,
  tied: [
    ['down_blocks.0.resnets.0.conv1.bias', 'down_blocks.0.resnets.0.conv2.bias'],
    ['down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight', 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v.weight'],
  ],
};
export const lightningWeights = (steps: number): WeightSet => ({ seed: 100 + steps, halfRounded: true });
export const BASE_VAE_WEIGHTS: WeightSet = { seed: 7 };
export const FIX_VAE_WEIGHTS: WeightSet = { seed: 8, halfRounded: true };

export type TinyHubRepos = {
  /** repo id → folder holding its files. */
  repos: Record<string, string>;
  /** Reference folders: `unet_<n>step/` and `vae_decoder/`, the graphs written directly with the new weights (fp32). */
  reference: string;
};

/** Writes a state dict as safetensors, F16 (rounded to nearest even) or F32, keys in the dict's order. */
export async function writeStateDict(path: string, stateDict: StateDict, dtype: 'F16' | 'F32'): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeSafetensors(
    path,
    [...stateDict].map(([name, { shape, data }]) => ({ name, dtype, shape, data: dtype === 'F16' ? float32ToFloat16(data) : data })),
  );
}

/**
 * Writes under `root`: the SDXL base repo (tokenizers, text encoders, the torch-export-shaped `unet/model.onnx` with
 * `model.onnx_data` and `vae_decoder/model.onnx`, and the same weights as `unet/…fp16.safetensors` and
 * `vae/…fp16.safetensors`), the Lightning repo (one fp16 UNet file per step count, each its own weights), the fp16-fix
 * VAE repo (old attention names), the safety classifier repo (its ONNX export under onnx/, a tiny one that
 * scores every image 0.01), and the references.
 */
export async function writeTinyHubRepos(root: string, steps: readonly number[] = [1, 2, 4, 8]): Promise<TinyHubRepos> {
  const base = join(root, BASE_REPO);
  const lightning = join(root, LIGHTNING_REPO);
  const vaeFix = join(root, VAE_FIX_REPO);
  const reference = join(root, 'reference');
  await rm(root, { recursive: true, force: true });

  // tokenizers and text encoders: the tiny generator's (they are downloaded as they are)
  const scratch = join(root, 'scratch');
  await writeTinyModelFolder(scratch, { steps: [] });
  await mkdir(base, { recursive: true });
  for (const part of ['tokenizer', 'tokenizer_2', 'text_encoder', 'text_encoder_2', 'model_index.json', 'scheduler']) await cp(join(scratch, part), join(base, part), { recursive: true });
  await rm(scratch, { recursive: true, force: true });

  const opset = { opset: 14, producerName: 'pytorch', irVersion: 7 };
  const unet = torchExportUnet(BASE_UNET_WEIGHTS);
  await writeModel(join(base, 'unet/model.onnx'), unet.graph, { ...opset, externalDataFile: 'model.onnx_data' });
  await writeStateDict(join(base, 'unet/diffusion_pytorch_model.fp16.safetensors'), unet.stateDict, 'F16');
  const vae = torchExportVaeDecoder(BASE_VAE_WEIGHTS);
  await writeModel(join(base, 'vae_decoder/model.onnx'), vae.graph, opset);
  await writeStateDict(join(base, 'vae/diffusion_pytorch_model.fp16.safetensors'), vae.stateDict, 'F16');

  await mkdir(lightning, { recursive: true });
  for (const n of steps) {
    const built = torchExportUnet(lightningWeights(n));
    await writeStateDict(join(lightning, LIGHTNING_FILES[n]), built.stateDict, 'F16');
    await writeModel(join(reference, `unet_${n}step/model.onnx`), built.graph, { ...opset, externalDataFile: 'model.onnx_data' });
  }
  const fixed = torchExportVaeDecoder(FIX_VAE_WEIGHTS);
  await mkdir(vaeFix, { recursive: true });
  await writeStateDict(join(vaeFix, 'diffusion_pytorch_model.safetensors'), withLegacyAttentionNames(fixed.stateDict), 'F32');
  await writeModel(join(reference, 'vae_decoder/model.onnx'), fixed.graph, opset);
  const safety = join(root, SAFETY_REPO);
  await writeTinySafetyClassifier(safety, { score: 0.01 }, 'onnx');
  return { repos: { [BASE_REPO]: base, [LIGHTNING_REPO]: lightning, [VAE_FIX_REPO]: vaeFix, [SAFETY_REPO]: safety }, reference };
}
