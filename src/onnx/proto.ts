// ONNX ModelProto in and out of bytes through protobufjs, with TypeScript shapes for the messages the project touches.

import { readFile, writeFile } from 'node:fs/promises';
import protobuf from 'protobufjs';
import { ONNX_SCHEMA } from './schema.js';

/** An int64 field as protobufjs hands it over: a Long (exact) when decoded, a plain number when we set it. */
export type Int64 = number | { low: number; high: number; unsigned: boolean; toNumber(): number; toString(): string };

export type StringStringEntryProto = { key: string; value: string };

export type TensorProto = {
  dims: Int64[];
  data_type: number;
  name: string;
  raw_data: Uint8Array;
  float_data: number[];
  int32_data: number[];
  int64_data: Int64[];
  double_data: number[];
  uint64_data: Int64[];
  string_data: Uint8Array[];
  external_data: StringStringEntryProto[];
  data_location: number;
  doc_string: string;
};

export type AttributeProto = {
  name: string;
  type: number;
  f: number;
  i: Int64;
  s: Uint8Array;
  t: TensorProto | null;
  g: GraphProto | null;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
};

export type NodeProto = {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain: string;
  attribute: AttributeProto[];
  doc_string: string;
};

export type TensorShapeDimension = { dim_value?: Int64; dim_param?: string; denotation?: string };
export type TypeProto = {
  tensor_type?: { elem_type: number; shape?: { dim: TensorShapeDimension[] } | null } | null;
  denotation?: string;
};
export type ValueInfoProto = { name: string; type: TypeProto | null; doc_string: string };

export type GraphProto = {
  node: NodeProto[];
  name: string;
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
  doc_string: string;
};

export type OperatorSetIdProto = { domain: string; version: Int64 };

export type ModelProto = {
  ir_version: Int64;
  opset_import: OperatorSetIdProto[];
  producer_name: string;
  producer_version: string;
  domain: string;
  model_version: Int64;
  doc_string: string;
  graph: GraphProto | null;
  metadata_props: StringStringEntryProto[];
};

type MessageName = 'ModelProto' | 'GraphProto' | 'NodeProto' | 'TensorProto' | 'AttributeProto' | 'ValueInfoProto' | 'StringStringEntryProto' | 'TypeProto';

let root: protobuf.Root | undefined;

/** The protobufjs type of one onnx.proto message (field names as in onnx.proto: snake_case). */
export function messageType(name: MessageName): protobuf.Type {
  root ??= protobuf.parse(ONNX_SCHEMA, { keepCase: true }).root;
  return root.lookupType(`onnx.${name}`);
}

/**
 * A new message with every field at its default (repeated fields empty), then `fields` set; the same shape
 * `decodeModel` gives, so created and decoded parts mix freely.
 */
export function createMessage<T>(name: MessageName, fields: Partial<T>): T {
  return messageType(name).create(fields as Record<string, unknown>) as unknown as T;
}

export class OnnxFormatError extends Error {
  override name = 'OnnxFormatError';
}

/** Decodes ModelProto bytes. Byte fields are views into `bytes` (no copy), so keep `bytes` unchanged while the model lives. */
export function decodeModel(bytes: Uint8Array, source = 'model'): ModelProto {
  let model: ModelProto;
  try {
    model = messageType('ModelProto').decode(bytes) as unknown as ModelProto;
  } catch (error) {
    throw new OnnxFormatError(`${source}: not an ONNX model (${(error as Error).message})`);
  }
  if (!model.graph) throw new OnnxFormatError(`${source}: not an ONNX model (it has no graph)`);
  return model;
}

/** The ModelProto's bytes. onnxruntime accepts them directly (`InferenceSession.create(bytes)`) when no tensor is external. */
export function encodeModel(model: ModelProto): Buffer {
  const bytes = messageType('ModelProto').encode(model as unknown as protobuf.Message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Reads a model file: the graph and its inline tensors; tensors stored in external data files stay there, untouched. */
export async function readModelFile(path: string): Promise<ModelProto> {
  return decodeModel(await readFile(path), path);
}

/** Writes `model` to `path` (its external data files, if any, are the caller's). */
export async function writeModelFile(path: string, model: ModelProto): Promise<void> {
  await writeFile(path, encodeModel(model));
}

/** An int64 field as a number; throws where it does not fit a double exactly (never the case for dims or offsets). */
export function int64(value: Int64): number {
  const number = typeof value === 'number' ? value : value.toNumber();
  if (!Number.isSafeInteger(number)) throw new RangeError(`int64 value ${value.toString()} does not fit a JavaScript number`);
  return number;
}
