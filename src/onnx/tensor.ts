// TensorProto helpers: element types, dims, inline bytes, external-data locations (onnx/docs/ExternalData.md), new tensors.

import { createMessage, int64, type TensorProto } from './proto.js';

/** `TensorProto.DataType` numbers (onnx.proto) with their size in bytes; sub-byte and string types are left out. */
export const DATA_TYPES = {
  FLOAT: { code: 1, bytes: 4 },
  UINT8: { code: 2, bytes: 1 },
  INT8: { code: 3, bytes: 1 },
  UINT16: { code: 4, bytes: 2 },
  INT16: { code: 5, bytes: 2 },
  INT32: { code: 6, bytes: 4 },
  INT64: { code: 7, bytes: 8 },
  BOOL: { code: 9, bytes: 1 },
  FLOAT16: { code: 10, bytes: 2 },
  DOUBLE: { code: 11, bytes: 8 },
  UINT32: { code: 12, bytes: 4 },
  UINT64: { code: 13, bytes: 8 },
  BFLOAT16: { code: 16, bytes: 2 },
} as const satisfies Record<string, { code: number; bytes: number }>;

export type DataTypeName = keyof typeof DATA_TYPES;

export const FLOAT = DATA_TYPES.FLOAT.code;
export const FLOAT16 = DATA_TYPES.FLOAT16.code;

/** The name of a `DataType` number, or `type <n>` when the table does not list it. */
export function dataTypeName(code: number): string {
  return (Object.keys(DATA_TYPES) as DataTypeName[]).find((name) => DATA_TYPES[name].code === code) ?? `type ${code}`;
}

/** Bytes per element of a `DataType` number; throws for types without a fixed byte size. */
export function bytesPerElement(code: number): number {
  const entry = Object.values(DATA_TYPES).find((t) => t.code === code);
  if (!entry) throw new RangeError(`data type ${code} has no fixed byte size`);
  return entry.bytes;
}

export function tensorDims(tensor: TensorProto): number[] {
  return tensor.dims.map(int64);
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** `data_location = EXTERNAL` (onnx.proto `TensorProto.DataLocation`). */
const EXTERNAL = 1;

/** Where an external tensor's bytes are: `location` relative to the model's folder; `length` undefined means "to the end". */
export type ExternalData = { location: string; offset: number; length: number | undefined; checksum: string | undefined };

export function isExternal(tensor: TensorProto): boolean {
  return tensor.data_location === EXTERNAL;
}

/** The external location of `tensor`, or null when its data is inline. */
export function externalData(tensor: TensorProto): ExternalData | null {
  if (!isExternal(tensor)) return null;
  const entry = (key: string): string | undefined => tensor.external_data.find((e) => e.key === key)?.value;
  const location = entry('location');
  if (!location) throw new RangeError(`tensor ${tensor.name}: external data without a location`);
  const number = (key: string): number | undefined => {
    const text = entry(key);
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) throw new RangeError(`tensor ${tensor.name}: external data ${key} "${text}" is not a byte count`);
    return Number(text);
  };
  return { location, offset: number('offset') ?? 0, length: number('length'), checksum: entry('checksum') };
}

/** Points `tensor` at `length` bytes from `offset` of `location`, dropping any inline data. */
export function setExternalData(tensor: TensorProto, location: string, offset: number, length: number): void {
  clearData(tensor);
  tensor.data_location = EXTERNAL;
  tensor.external_data = [
    createMessage('StringStringEntryProto', { key: 'location', value: location }),
    createMessage('StringStringEntryProto', { key: 'offset', value: String(offset) }),
    createMessage('StringStringEntryProto', { key: 'length', value: String(length) }),
  ];
}

/** Stores `bytes` (little-endian, row-major) inline as `raw_data`, dropping any external location. */
export function setRawData(tensor: TensorProto, bytes: Uint8Array): void {
  clearData(tensor);
  tensor.raw_data = bytes;
}

function clearData(tensor: TensorProto): void {
  for (const field of ['float_data', 'int32_data', 'int64_data', 'double_data', 'uint64_data', 'string_data', 'external_data'] as const) {
    tensor[field] = [];
  }
  delete (tensor as Partial<TensorProto>).raw_data;
  delete (tensor as Partial<TensorProto>).data_location;
}

/**
 * The inline bytes of a tensor (little-endian, row-major), from `raw_data` or the typed fields; throws for external
 * tensors, whose bytes live in their data file.
 */
export function inlineBytes(tensor: TensorProto): Uint8Array {
  if (isExternal(tensor)) throw new RangeError(`tensor ${tensor.name}: data is external (${externalData(tensor)?.location})`);
  const count = elementCount(tensorDims(tensor));
  const size = bytesPerElement(tensor.data_type);
  if (tensor.raw_data && tensor.raw_data.length > 0) {
    if (tensor.raw_data.length !== count * size) {
      throw new RangeError(`tensor ${tensor.name}: raw_data has ${tensor.raw_data.length} bytes, dims need ${count * size}`);
    }
    return tensor.raw_data;
  }
  const out = new Uint8Array(count * size);
  const view = new DataView(out.buffer);
  const code = tensor.data_type;
  // the typed field each data type uses (onnx.proto TensorProto comments)
  if (code === FLOAT) tensor.float_data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else if (code === DATA_TYPES.DOUBLE.code) tensor.double_data.forEach((v, i) => view.setFloat64(i * 8, v, true));
  else if (code === DATA_TYPES.INT64.code) tensor.int64_data.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v.toString()), true));
  else if (code === DATA_TYPES.UINT64.code || code === DATA_TYPES.UINT32.code) {
    tensor.uint64_data.forEach((v, i) => (size === 8 ? view.setBigUint64(i * 8, BigInt(v.toString()), true) : view.setUint32(i * 4, int64(v), true)));
  } else {
    // INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16 and BFLOAT16 are all carried in int32_data
    tensor.int32_data.forEach((v, i) => {
      if (size === 4) view.setInt32(i * 4, v, true);
      else if (size === 2) view.setUint16(i * 2, v & 0xffff, true);
      else view.setUint8(i, v & 0xff);
    });
  }
  const stored = [tensor.float_data, tensor.double_data, tensor.int64_data, tensor.uint64_data, tensor.int32_data].reduce((n, a) => n + a.length, 0);
  if (stored !== count) throw new RangeError(`tensor ${tensor.name}: holds ${stored} values, dims need ${count}`);
  return out;
}

/** A float32 tensor's inline values (a copy, so alignment never matters). */
export function inlineFloat32(tensor: TensorProto): Float32Array {
  if (tensor.data_type !== FLOAT) throw new RangeError(`tensor ${tensor.name}: ${dataTypeName(tensor.data_type)}, not FLOAT`);
  const bytes = inlineBytes(tensor);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** A new tensor with inline `raw_data` (little-endian bytes of `data`, whose length must match `dims`). */
export function makeTensor(name: string, dataType: number, dims: readonly number[], data: Uint8Array | ArrayBufferView): TensorProto {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length !== elementCount(dims) * bytesPerElement(dataType)) {
    throw new RangeError(`tensor ${name}: ${bytes.length} bytes for dims [${dims.join(', ')}] of ${dataTypeName(dataType)}`);
  }
  return createMessage<TensorProto>('TensorProto', { name, data_type: dataType, dims: [...dims], raw_data: Uint8Array.from(bytes) });
}
