// Building one part of the model folder (a UNet or the VAE decoder), recorded so a re-run skips what is finished and intact.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { openFileSource } from './byte-source.js';
import { convertModel, type Dtype, type WrittenFile } from './convert.js';
import type { Fp16Policy } from './fp16-graph.js';
import type { MappingOptions } from './mapping.js';
import type { SafetensorsHeader } from './safetensors.js';

/** Bump when the builder's output for the same inputs changes, so older builds are redone. */
export const BUILDER_VERSION = 1;

export const PART_KINDS = {
  /** The sinusoidal time embeddings and their inputs stay fp32 (spec/model-build.md §5); weights in model.onnx_data. */
  unet: {
    fp16: { fp32Inputs: ['timestep', 'time_ids'], fp32Scopes: ['time_proj', 'add_time_proj'] },
    mapping: {},
    dataFile: 'model.onnx_data',
  },
  /** The decoder graph holds no encoder keys; old checkpoints name the attention query/key/value/proj_attn; inline (< 2 GB). */
  vae: {
    fp16: { fp32Inputs: [], fp32Scopes: [] },
    mapping: { ignoreKeyPrefixes: ['encoder.', 'quant_conv.'], legacyAttentionNames: true },
    dataFile: null,
  },
} as const satisfies Record<string, { fp16: Fp16Policy; mapping: MappingOptions; dataFile: string | null }>;
export type PartKind = keyof typeof PART_KINDS;

/** What a built part was made from; a part is rebuilt when any of it changes. */
export type PartInputs = { kind: PartKind; dtype: Dtype; graphSha256: string; weightsSha256: string; config: Record<string, unknown> | null; builder: number };

export type PartRecord = { inputs: PartInputs; files: { name: string; size: number; sha256: string }[] };
export type BuildRecord = { parts: Record<string, PartRecord> };

/** The record's file, inside the model folder's hidden work folder. */
export const recordPath = (modelDir: string): string => join(modelDir, '.build', 'record.json');

export async function readBuildRecord(modelDir: string): Promise<BuildRecord> {
  try {
    const parsed = JSON.parse(await readFile(recordPath(modelDir), 'utf8')) as BuildRecord;
    return parsed && typeof parsed.parts === 'object' ? parsed : { parts: {} };
  } catch {
    return { parts: {} };
  }
}

async function writeBuildRecord(modelDir: string, record: BuildRecord): Promise<void> {
  await mkdir(join(modelDir, '.build'), { recursive: true });
  await writeFile(`${recordPath(modelDir)}.part`, `${JSON.stringify(record, null, 2)}\n`);
  await rename(`${recordPath(modelDir)}.part`, recordPath(modelDir));
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sameInputs = (a: PartInputs, b: PartInputs): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Whether `target` was built from `inputs` and every file it wrote is still there with its size and sha256. */
export async function isPartBuilt(modelDir: string, target: string, inputs: PartInputs): Promise<boolean> {
  const part = (await readBuildRecord(modelDir)).parts[target];
  if (!part || !sameInputs(part.inputs, inputs)) return false;
  for (const file of part.files) {
    const path = join(modelDir, target, file.name);
    const size = await stat(path).then((s) => s.size, () => -1);
    if (size !== file.size || (await sha256File(path)) !== file.sha256) return false;
  }
  return true;
}

export type BuildPartRequest = {
  modelDir: string;
  /** The folder inside the model folder, e.g. `unet_4step` or `vae_decoder`. */
  target: string;
  inputs: PartInputs;
  baseGraph: string;
  weights: string;
  header?: SafetensorsHeader;
  onBytes?: (done: number, total: number) => void;
};

/** Writes the part (model.onnx, its data file, its config.json), then records it with each file's size and sha256. */
export async function buildPart(request: BuildPartRequest): Promise<WrittenFile[]> {
  const kind = PART_KINDS[request.inputs.kind];
  const outDir = join(request.modelDir, request.target);
  const weights = await openFileSource(request.weights);
  let files: WrittenFile[];
  try {
    ({ files } = await convertModel({
      baseGraph: request.baseGraph,
      weights,
      ...(request.header ? { header: request.header } : {}),
      dtype: request.inputs.dtype,
      fp16Policy: kind.fp16,
      mapping: kind.mapping,
      outDir,
      dataFile: kind.dataFile,
      ...(request.onBytes ? { onBytes: request.onBytes } : {}),
    }));
  } finally {
    await weights.close();
  }
  if (request.inputs.config) {
    const text = `${JSON.stringify(request.inputs.config, null, 2)}\n`;
    const path = join(outDir, 'config.json');
    await writeFile(path, text);
    files.push({ path, size: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') });
  }
  const record = await readBuildRecord(request.modelDir);
  record.parts[request.target] = { inputs: request.inputs, files: files.map((f) => ({ name: basename(f.path), size: f.size, sha256: f.sha256 })) };
  await writeBuildRecord(request.modelDir, record);
  return files;
}
