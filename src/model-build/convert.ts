// The base ONNX graph with every mapped weight taken from a safetensors file, written as model.onnx + external data, streaming.

import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  bytesPerElement,
  encodeModel,
  externalData,
  FLOAT,
  FLOAT16,
  inlineBytes,
  isExternal,
  readModelFile,
  setExternalData,
  setRawData,
  type ModelProto,
  type TensorProto,
} from '../onnx/index.js';
import type { ByteSource } from './byte-source.js';
import { convertGraphToFloat16, type Fp16Policy } from './fp16-graph.js';
import { planMapping, type MappingOptions, type MappingPlan, type WeightAssignment } from './mapping.js';
import { bytesToFloat16, bytesToFloat32, readSafetensorsHeader, type SafetensorsEntry, type SafetensorsHeader } from './safetensors.js';

export type Dtype = 'fp16' | 'fp32';
export const DTYPES = ['fp16', 'fp32'] as const satisfies readonly Dtype[];

export type ConvertRequest = {
  /** The base graph (`unet/model.onnx` of the SDXL base repo); its external data is never read. */
  baseGraph: string;
  /** The new weights (diffusers state-dict keys); the header may come from elsewhere, e.g. read from the hub earlier. */
  weights: ByteSource;
  header?: SafetensorsHeader;
  dtype: Dtype;
  fp16Policy: Fp16Policy;
  mapping?: MappingOptions;
  /** Folder for `model.onnx` (+ `dataFile`), created if missing. */
  outDir: string;
  /** External data file name beside model.onnx, or null to keep every tensor inline (a graph under 2 GB). */
  dataFile: string | null;
  /** Output bytes written so far, of `total`. */
  onBytes?: (done: number, total: number) => void;
};

/** A written file: path, size in bytes and sha256 (hex). */
export type WrittenFile = { path: string; size: number; sha256: string };

export type ConvertResult = { files: WrittenFile[]; plan: MappingPlan; tensors: number };

/** Tensors of at least this many bytes go to the external data file (optimum's `size_threshold`). */
const EXTERNAL_THRESHOLD = 1024;
/** Each external tensor starts on a 64-byte boundary, so a runtime may map it in place. */
const ALIGNMENT = 64;

export class ConvertError extends Error {
  override name = 'ConvertError';
}

/**
 * Writes `outDir/model.onnx` (and its data file): the base graph, fp16 when asked (spec/model-build.md §5), with each
 * initializer's data from its state-dict key. Files are written as `.part` and renamed when whole. One tensor is in
 * memory at a time.
 */
export async function convertModel(request: ConvertRequest): Promise<ConvertResult> {
  const model = await readModelFile(request.baseGraph);
  const header = request.header ?? (await readSafetensorsHeader(request.weights));
  const plan = planMapping(model.graph!, new Map(header.tensors.map((t) => [t.name, t.shape])), {
    graphName: request.baseGraph,
    weightsName: request.weights.name,
    ...request.mapping,
  });
  if (request.dtype === 'fp16') convertGraphToFloat16(model.graph!, request.fp16Policy);
  const byInitializer = new Map(plan.assignments.map((a) => [a.initializer, a]));
  const left = model.graph!.initializer.filter((t) => isExternal(t) && !byInitializer.has(t.name));
  if (left.length > 0) throw new ConvertError(`${request.baseGraph}: external tensors without new data: ${left.map((t) => t.name).join(', ')}`);
  const files = await writeModel(model, header, byInitializer, request);
  return { files, plan, tensors: byInitializer.size };
}

async function writeModel(model: ModelProto, header: SafetensorsHeader, byInitializer: Map<string, WeightAssignment>, request: ConvertRequest): Promise<WrittenFile[]> {
  await mkdir(request.outDir, { recursive: true });
  const modelPath = join(request.outDir, 'model.onnx');
  const dataPath = request.dataFile === null ? null : join(request.outDir, request.dataFile);
  const total = model.graph!.initializer.reduce((n, t) => n + (byInitializer.has(t.name) ? byInitializer.get(t.name)!.dims.reduce((a, b) => a * b, 1) * bytesPerElement(t.data_type) : 0), 0);
  const data = dataPath === null ? null : await open(`${dataPath}.part`, 'w');
  const dataHash = createHash('sha256');
  let offset = 0;
  let done = 0;
  try {
    for (const tensor of model.graph!.initializer) {
      const assignment = byInitializer.get(tensor.name);
      if (!assignment) continue;
      const entry = header.byName.get(assignment.key)!;
      const bytes = await tensorData(request.weights, entry, tensor, assignment);
      if (data !== null && bytes.length >= EXTERNAL_THRESHOLD) {
        const padding = (ALIGNMENT - (offset % ALIGNMENT)) % ALIGNMENT;
        if (padding > 0) {
          const zeros = new Uint8Array(padding);
          await data.write(zeros);
          dataHash.update(zeros);
          offset += padding;
        }
        await data.write(bytes);
        dataHash.update(bytes);
        setExternalData(tensor, request.dataFile!, offset, bytes.length);
        offset += bytes.length;
      } else {
        setRawData(tensor, bytes);
      }
      done += bytes.length;
      request.onBytes?.(done, total);
    }
  } finally {
    await data?.close();
  }
  const files: WrittenFile[] = [];
  if (dataPath !== null) {
    if (offset === 0) await rm(`${dataPath}.part`, { force: true });
    else {
      await rename(`${dataPath}.part`, dataPath);
      files.push({ path: dataPath, size: offset, sha256: dataHash.digest('hex') });
    }
  }
  const encoded = encodeModel(model);
  if (encoded.length >= 2 ** 31) throw new ConvertError(`${modelPath}: the graph would be ${encoded.length} bytes, over protobuf's 2 GB; write it with an external data file`);
  await mkdir(dirname(modelPath), { recursive: true });
  const handle = await open(`${modelPath}.part`, 'w');
  try {
    await handle.write(encoded);
  } finally {
    await handle.close();
  }
  await rename(`${modelPath}.part`, modelPath);
  files.unshift({ path: modelPath, size: encoded.length, sha256: createHash('sha256').update(encoded).digest('hex') });
  return files;
}

/** The key's values in the initializer's layout and dtype (FLOAT or FLOAT16), as little-endian bytes. */
async function tensorData(weights: ByteSource, entry: SafetensorsEntry, tensor: TensorProto, assignment: WeightAssignment): Promise<Uint8Array> {
  const stored = await weights.read(entry.offset, entry.length);
  let values: Float32Array | Uint16Array;
  if (tensor.data_type === FLOAT16) values = bytesToFloat16(stored, entry.dtype, entry.name);
  else if (tensor.data_type === FLOAT) values = bytesToFloat32(stored, entry.dtype, entry.name);
  else throw new ConvertError(`${tensor.name}: the graph stores it as data type ${tensor.data_type}; the builder writes FLOAT and FLOAT16 weights`);
  if (assignment.transpose) {
    const [rows, cols] = assignment.keyShape.filter((d) => d !== 1);
    values = transpose(values, rows, cols);
  }
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Row-major `rows × cols` → `cols × rows`, in 64 × 64 tiles so both sides stay in cache. */
export function transpose<T extends Float32Array | Uint16Array>(values: T, rows: number, cols: number): T {
  const out = new (values.constructor as { new (n: number): T })(values.length);
  const TILE = 64;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = values[base + c];
      }
    }
  }
  return out;
}

/** The float32 values of a graph tensor, inline or read from its external data file through `source`. */
export async function graphTensorFloat32(tensor: TensorProto, source: ByteSource | null): Promise<Float32Array> {
  const external = externalData(tensor);
  let bytes: Uint8Array;
  if (external) {
    if (!source) throw new ConvertError(`${tensor.name}: external data in ${external.location}, but no data file was given`);
    const length = external.length ?? tensor.dims.reduce<number>((n, d) => n * Number(d.toString()), 1) * bytesPerElement(tensor.data_type);
    bytes = await source.read(external.offset, length);
  } else {
    bytes = inlineBytes(tensor);
  }
  const copy = new Uint8Array(bytes);
  if (tensor.data_type === FLOAT) return new Float32Array(copy.buffer);
  if (tensor.data_type === FLOAT16) return bytesToFloat32(copy, 'F16', tensor.name);
  throw new ConvertError(`${tensor.name}: data type ${tensor.data_type} is not a float type`);
}
