// safetensors files: the header read with two small reads, checked against the format's rules; tensors read one at a time.

import { open } from 'node:fs/promises';
import { float16ToFloat32, float32ToFloat16 } from '../diffusion/fp16.js';
import type { ByteSource } from './byte-source.js';

/** Element types of the format (huggingface/safetensors README) and their size in bytes. */
export const SAFETENSORS_DTYPES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
} as const satisfies Record<string, number>;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;

/** One tensor; `offset` is absolute in the file (8 + header length + its data_offsets begin), `length` in bytes. */
export type SafetensorsEntry = { name: string; dtype: SafetensorsDtype; shape: number[]; offset: number; length: number };

export type SafetensorsHeader = {
  source: string;
  /** In file order. */
  tensors: SafetensorsEntry[];
  byName: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Where the data buffer starts (8 + header length) and the file's size implied by the last tensor. */
  dataStart: number;
  fileSize: number;
};

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** The format caps the header at 100 MB. */
const MAX_HEADER_BYTES = 100_000_000;

/** Reads and checks the header: the 8-byte length, then the JSON (two reads, so a hub file costs two small requests). */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const prefix = await source.read(0, 8);
  const length = prefix.readBigUInt64LE(0);
  if (length < 2n || length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`${source.name}: not a safetensors file (header length ${length} is outside 2 bytes – 100 MB)`);
  }
  const json = await source.read(8, Number(length));
  return parseSafetensorsHeader(json, source.name);
}

/** Checks a header's JSON bytes: a first `{`, known dtypes, sizes that match shapes, tensors that tile the buffer without holes. */
export function parseSafetensorsHeader(json: Uint8Array, source: string): SafetensorsHeader {
  if (json[0] !== 0x7b) throw new SafetensorsError(`${source}: not a safetensors file (the header does not start with "{")`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json).trimEnd());
  } catch (error) {
    throw new SafetensorsError(`${source}: the header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(`${source}: the header is not a JSON object`);
  const dataStart = 8 + json.length;
  const tensors: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = entry.dtype as SafetensorsDtype;
    if (!(typeof dtype === 'string' && dtype in SAFETENSORS_DTYPES)) throw new SafetensorsError(`${source}: tensor ${name} has unknown dtype ${JSON.stringify(entry.dtype)}`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(`${source}: tensor ${name} has a bad shape ${JSON.stringify(shape)}`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      throw new SafetensorsError(`${source}: tensor ${name} has bad data_offsets ${JSON.stringify(offsets)}`);
    }
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[dtype];
    if (offsets[1] - offsets[0] !== expected) {
      throw new SafetensorsError(`${source}: tensor ${name} holds ${offsets[1] - offsets[0]} bytes; ${dtype} [${shape.join(', ')}] needs ${expected}`);
    }
    tensors.push({ name, dtype, shape: shape as number[], offset: dataStart + offsets[0], length: expected });
  }
  tensors.sort((a, b) => a.offset - b.offset || a.length - b.length);
  let end = dataStart;
  for (const tensor of tensors) {
    if (tensor.offset !== end) {
      throw new SafetensorsError(`${source}: tensor ${tensor.name} starts at byte ${tensor.offset - dataStart} of the data, expected ${end - dataStart} (the format allows no holes or overlaps)`);
    }
    end += tensor.length;
  }
  return { source, tensors, byName: new Map(tensors.map((t) => [t.name, t])), metadata, dataStart, fileSize: end };
}

/** A tensor's bytes as stored (little-endian). */
export function readTensorBytes(source: ByteSource, entry: SafetensorsEntry): Promise<Buffer> {
  return source.read(entry.offset, entry.length);
}

/** Stored bytes of an F16, BF16 or F32 tensor as float32 values (a fresh, aligned array). */
export function bytesToFloat32(bytes: Uint8Array, dtype: SafetensorsDtype, name: string): Float32Array {
  const copy = new Uint8Array(bytes); // aligned, and never a view of the caller's buffer
  if (dtype === 'F32') return new Float32Array(copy.buffer);
  if (dtype === 'F16') return float16ToFloat32(new Uint16Array(copy.buffer));
  if (dtype === 'BF16') {
    const halves = new Uint16Array(copy.buffer);
    const out = new Float32Array(halves.length);
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
    return out;
  }
  throw new SafetensorsError(`tensor ${name}: ${dtype} is not a floating-point type the builder reads (F16, BF16, F32)`);
}

/** Stored bytes of an F16, BF16 or F32 tensor as binary16 bits (F16 is taken as is: a view of `bytes` when aligned). */
export function bytesToFloat16(bytes: Uint8Array, dtype: SafetensorsDtype, name: string): Uint16Array {
  if (dtype === 'F16') return bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2) : new Uint16Array(new Uint8Array(bytes).buffer);
  return float32ToFloat16(clampToHalf(bytesToFloat32(bytes, dtype, name)));
}

/** Clamps finite values to ±65504 so fp16 rounding never makes an infinity out of a large weight (NaN stays NaN). */
export function clampToHalf(values: Float32Array): Float32Array {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v > 65504) values[i] = 65504;
    else if (v < -65504) values[i] = -65504;
  }
  return values;
}

/** A tensor to write: F32 data as Float32Array, F16 as binary16 bits. */
export type TensorToWrite = { name: string; dtype: 'F16' | 'F32'; shape: readonly number[]; data: Float32Array | Uint16Array };

/** Writes a safetensors file, streaming tensor by tensor (header padded with spaces to a multiple of 8, as the Rust writer does). */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[] | (() => AsyncIterable<TensorToWrite>), header?: { entries: readonly Omit<TensorToWrite, 'data'>[]; metadata?: Record<string, string> }): Promise<void> {
  const entries = header?.entries ?? (tensors as readonly TensorToWrite[]);
  const json: Record<string, unknown> = {};
  if (header?.metadata) json.__metadata__ = header.metadata;
  let offset = 0;
  for (const entry of entries) {
    const length = entry.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[entry.dtype];
    json[entry.name] = { dtype: entry.dtype, shape: entry.shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  const handle = await open(path, 'w');
  try {
    await handle.write(prefix);
    await handle.write(text);
    const source = typeof tensors === 'function' ? tensors() : tensors;
    let index = 0;
    for await (const tensor of source) {
      const expected = entries[index++];
      if (!expected || expected.name !== tensor.name) throw new SafetensorsError(`${path}: tensor ${tensor.name} arrives out of the header's order`);
      await handle.write(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    }
    if (index !== entries.length) throw new SafetensorsError(`${path}: ${entries.length - index} tensors of the header were never written`);
  } finally {
    await handle.close();
  }
}
