// A minimal ONNX model writer: a graph builder and a hand-written protobuf encoding of the few onnx.proto messages it needs.

import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';

/** Element types the writer knows, by onnxruntime-node's names. */
export type ElementType = 'float32' | 'float16' | 'int64' | 'int32';

/** `TensorProto.DataType` numbers (onnx.proto). */
export const ONNX_DATA_TYPES = {
  float32: 1,
  int32: 6,
  int64: 7,
  float16: 10,
} as const satisfies Record<ElementType, number>;

/** Typed-array storage of each element type; float16 is binary16 bits, as onnxruntime-node takes it. */
export type TensorData = {
  float32: Float32Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
};

/** A fixed size (`dim_value`) or a symbolic one (`dim_param`, e.g. "batch_size"). */
export type Dim = number | string;

export type Tensor<T extends ElementType = ElementType> = {
  name: string;
  type: T;
  dims: readonly number[];
  data: TensorData[T];
};

/** An attribute value tagged with its `AttributeProto.AttributeType`, since a JS number cannot say int or float. */
export type Attribute =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: Tensor }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'ints'; value: readonly number[] };

export type Attributes = Readonly<Record<string, Attribute>>;

export const attr = {
  float: (value: number): Attribute => ({ kind: 'float', value }),
  int: (value: number): Attribute => ({ kind: 'int', value }),
  string: (value: string): Attribute => ({ kind: 'string', value }),
  tensor: (value: Tensor): Attribute => ({ kind: 'tensor', value }),
  floats: (value: readonly number[]): Attribute => ({ kind: 'floats', value }),
  ints: (value: readonly number[]): Attribute => ({ kind: 'ints', value }),
} as const;

export type NodeSpec = {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  domain: string;
  attributes: Attributes;
};

/** A graph input or output; `shape: null` leaves the rank unknown. */
export type ValueInfo = { name: string; type: ElementType; shape: readonly Dim[] | null };

/** Collects a graph in the order nodes are added; that order must be topological, as ONNX requires. */
export type GraphBuilder = {
  readonly name: string;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly initializers: readonly Tensor[];
  readonly nodes: readonly NodeSpec[];
  input(name: string, type: ElementType, shape: readonly Dim[] | null): string;
  output(name: string, type: ElementType, shape: readonly Dim[] | null): string;
  /** Adds a constant tensor and returns its name. */
  initializer<T extends ElementType>(name: string, type: T, dims: readonly number[], data: TensorData[T]): string;
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attributes?: Attributes,
    options?: { name?: string; domain?: string },
  ): readonly string[];
  /** A single-output node whose output gets a fresh name, returned. */
  op(opType: string, inputs: readonly string[], attributes?: Attributes): string;
};

export function createGraph(name: string): GraphBuilder {
  const inputs: ValueInfo[] = [];
  const outputs: ValueInfo[] = [];
  const initializers: Tensor[] = [];
  const nodes: NodeSpec[] = [];
  let fresh = 0;
  const graph: GraphBuilder = {
    name,
    inputs,
    outputs,
    initializers,
    nodes,
    input(valueName, type, shape) {
      inputs.push({ name: valueName, type, shape });
      return valueName;
    },
    output(valueName, type, shape) {
      outputs.push({ name: valueName, type, shape });
      return valueName;
    },
    initializer(tensorName, type, dims, data) {
      const count = dims.reduce((a, b) => a * b, 1);
      if (data.length !== count) {
        throw new RangeError(`initializer ${tensorName}: dims [${dims.join(', ')}] need ${count} values, got ${data.length}`);
      }
      initializers.push({ name: tensorName, type, dims, data } as Tensor);
      return tensorName;
    },
    node(opType, nodeInputs, nodeOutputs, attributes = {}, options = {}) {
      nodes.push({
        opType,
        inputs: nodeInputs,
        outputs: nodeOutputs,
        attributes,
        name: options.name ?? `${opType}_${nodes.length}`,
        domain: options.domain ?? '',
      });
      return nodeOutputs;
    },
    op(opType, nodeInputs, attributes = {}) {
      const out = `${opType.toLowerCase()}_${fresh++}`;
      graph.node(opType, nodeInputs, [out], attributes);
      return out;
    },
  };
  return graph;
}

export type WriteModelOptions = {
  /** Put initializers in this file beside the model (e.g. "model.onnx_data"), as large exports do. */
  externalDataFile?: string;
  /** Initializers smaller than this many bytes stay inline (onnx's `convert_model_to_external_data` uses 1024). */
  externalDataThreshold?: number;
  producerName?: string;
  /** Default-domain opset; the tiny models are written for 17. */
  opset?: number;
  irVersion?: number;
};

export type EncodedModel = {
  model: Uint8Array;
  /** The external data file's bytes, or null when every initializer stayed inline. */
  externalData: Uint8Array | null;
};

/** Offsets in the external data file are aligned so a reader may map tensors in place. */
const EXTERNAL_ALIGNMENT = 16;

/** The ModelProto bytes (IR 8, default-domain opset 17 unless told) and the external data file's bytes, if any. */
export function encodeModel(graph: GraphBuilder, options: WriteModelOptions = {}): EncodedModel {
  const external = options.externalDataFile;
  const threshold = options.externalDataThreshold ?? 1024;
  const dataChunks: Uint8Array[] = [];
  let dataLength = 0;
  const initializers = graph.initializers.map((tensor) => {
    const raw = rawData(tensor);
    if (external === undefined || raw.length < threshold) return encodeTensor(tensor, raw);
    const padding = (EXTERNAL_ALIGNMENT - (dataLength % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
    if (padding > 0) dataChunks.push(new Uint8Array(padding));
    const offset = dataLength + padding;
    dataChunks.push(raw);
    dataLength = offset + raw.length;
    return encodeTensor(tensor, null, { location: external, offset, length: raw.length });
  });
  const graphBytes = concat([
    ...graph.nodes.map((node) => fieldMessage(1, encodeNode(node))),
    fieldString(2, graph.name),
    ...initializers.map((tensor) => fieldMessage(5, tensor)),
    ...graph.inputs.map((info) => fieldMessage(11, encodeValueInfo(info))),
    ...graph.outputs.map((info) => fieldMessage(12, encodeValueInfo(info))),
  ]);
  const opsetImport = concat([fieldString(1, ''), fieldVarint(2, options.opset ?? 17)]);
  const model = concat([
    fieldVarint(1, options.irVersion ?? 8),
    fieldString(2, options.producerName ?? 'lightning-image-bot tiny models'),
    fieldMessage(7, graphBytes),
    fieldMessage(8, opsetImport),
  ]);
  return { model, externalData: dataChunks.length === 0 ? null : concat(dataChunks) };
}

/**
 * Writes `modelPath` and, when `externalDataFile` is given and some initializer reaches the threshold, that file in the
 * same folder (its `location` is relative to the model's folder, which onnxruntime resolves when loading by path).
 */
export async function writeModel(modelPath: string, graph: GraphBuilder, options: WriteModelOptions = {}): Promise<void> {
  const { model, externalData } = encodeModel(graph, options);
  const dir = path.dirname(modelPath);
  await mkdir(dir, { recursive: true });
  await writeFile(modelPath, model);
  if (externalData !== null && options.externalDataFile !== undefined) {
    await writeFile(path.join(dir, options.externalDataFile), externalData);
  }
}

// --- onnx.proto messages (field numbers from onnx/onnx.proto) ---

function encodeNode(node: NodeSpec): Uint8Array {
  return concat([
    ...node.inputs.map((name) => fieldString(1, name)),
    ...node.outputs.map((name) => fieldString(2, name)),
    fieldString(3, node.name),
    fieldString(4, node.opType),
    ...Object.entries(node.attributes).map(([name, value]) => fieldMessage(5, encodeAttribute(name, value))),
    ...(node.domain === '' ? [] : [fieldString(7, node.domain)]),
  ]);
}

/** `AttributeProto.AttributeType` numbers. */
const ATTRIBUTE_TYPES = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const satisfies Record<
  Attribute['kind'],
  number
>;

function encodeAttribute(name: string, attribute: Attribute): Uint8Array {
  const head = [fieldString(1, name), fieldVarint(20, ATTRIBUTE_TYPES[attribute.kind])];
  switch (attribute.kind) {
    case 'float':
      return concat([...head, fieldFloat(2, attribute.value)]);
    case 'int':
      return concat([...head, fieldVarint(3, attribute.value)]);
    case 'string':
      return concat([...head, fieldBytes(4, utf8(attribute.value))]);
    case 'tensor':
      return concat([...head, fieldMessage(5, encodeTensor(attribute.value, rawData(attribute.value)))]);
    case 'floats':
      return concat([...head, ...attribute.value.map((v) => fieldFloat(7, v))]);
    case 'ints':
      return concat([...head, ...attribute.value.map((v) => fieldVarint(8, v))]);
  }
}

type ExternalLocation = { location: string; offset: number; length: number };

function encodeTensor(tensor: Tensor, raw: Uint8Array | null, external?: ExternalLocation): Uint8Array {
  const fields = [
    ...tensor.dims.map((d) => fieldVarint(1, d)),
    fieldVarint(2, ONNX_DATA_TYPES[tensor.type]),
    fieldString(8, tensor.name),
  ];
  if (raw !== null) fields.push(fieldBytes(9, raw));
  if (external !== undefined) {
    for (const [key, value] of [
      ['location', external.location],
      ['offset', String(external.offset)],
      ['length', String(external.length)],
    ]) {
      fields.push(fieldMessage(13, concat([fieldString(1, key), fieldString(2, value)])));
    }
    fields.push(fieldVarint(14, 1)); // data_location = EXTERNAL
  }
  return concat(fields);
}

function encodeValueInfo(info: ValueInfo): Uint8Array {
  const tensorType = [fieldVarint(1, ONNX_DATA_TYPES[info.type])];
  if (info.shape !== null) {
    const dims = info.shape.map((d) =>
      fieldMessage(1, typeof d === 'number' ? fieldVarint(1, d) : fieldString(2, d)),
    );
    tensorType.push(fieldMessage(2, concat(dims)));
  }
  const typeProto = fieldMessage(1, concat(tensorType));
  return concat([fieldString(1, info.name), fieldMessage(2, typeProto)]);
}

/** `raw_data` is little-endian whatever the host's byte order. */
function rawData(tensor: Tensor): Uint8Array {
  const { data } = tensor;
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else if (data instanceof Uint16Array) data.forEach((v, i) => view.setUint16(i * 2, v, true));
  else if (data instanceof Int32Array) data.forEach((v, i) => view.setInt32(i * 4, v, true));
  else data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  return out;
}

// --- protobuf wire format: varint (type 0), fixed32 (type 5), length-delimited (type 2) ---

function varint(value: number | bigint): Uint8Array {
  // int64 fields: negatives are written as their 64-bit two's complement (ten bytes)
  let v = BigInt.asUintN(64, BigInt(value));
  const bytes: number[] = [];
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Uint8Array.from(bytes);
}

function tag(field: number, wireType: 0 | 2 | 5): Uint8Array {
  return varint((field << 3) | wireType);
}

function fieldVarint(field: number, value: number | bigint): Uint8Array {
  return concat([tag(field, 0), varint(value)]);
}

function fieldFloat(field: number, value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setFloat32(0, value, true);
  return concat([tag(field, 5), bytes]);
}

function fieldBytes(field: number, bytes: Uint8Array): Uint8Array {
  return concat([tag(field, 2), varint(bytes.length), bytes]);
}

const fieldMessage = fieldBytes;

function fieldString(field: number, value: string): Uint8Array {
  return fieldBytes(field, utf8(value));
}

const encoder = new TextEncoder();

function utf8(value: string): Uint8Array {
  return encoder.encode(value);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
