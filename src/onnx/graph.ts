// Graph helpers: who produces and who consumes each value, attributes, new nodes, value infos and outputs, fresh names.

import { createMessage, int64, type AttributeProto, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';

/** `AttributeProto.AttributeType` numbers (onnx.proto). */
const ATTRIBUTE_TYPES = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** Attribute values for `makeNode`; a JS number cannot say int or float, so each value says which it is. */
export const attribute = {
  int: (name: string, value: number): AttributeProto => createMessage<AttributeProto>('AttributeProto', { name, type: ATTRIBUTE_TYPES.INT, i: value }),
  float: (name: string, value: number): AttributeProto => createMessage<AttributeProto>('AttributeProto', { name, type: ATTRIBUTE_TYPES.FLOAT, f: value }),
  string: (name: string, value: string): AttributeProto =>
    createMessage<AttributeProto>('AttributeProto', { name, type: ATTRIBUTE_TYPES.STRING, s: new TextEncoder().encode(value) }),
  tensor: (name: string, value: TensorProto): AttributeProto => createMessage<AttributeProto>('AttributeProto', { name, type: ATTRIBUTE_TYPES.TENSOR, t: value }),
  ints: (name: string, values: readonly number[]): AttributeProto => createMessage<AttributeProto>('AttributeProto', { name, type: ATTRIBUTE_TYPES.INTS, ints: [...values] }),
  floats: (name: string, values: readonly number[]): AttributeProto =>
    createMessage<AttributeProto>('AttributeProto', { name, type: ATTRIBUTE_TYPES.FLOATS, floats: [...values] }),
} as const;

export type NodeFields = { opType: string; inputs: readonly string[]; outputs: readonly string[]; name?: string; domain?: string; attributes?: readonly AttributeProto[] };

/** A new NodeProto; append it to `graph.node` after its inputs' producers (ONNX requires topological order). */
export function makeNode(fields: NodeFields): NodeProto {
  return createMessage<NodeProto>('NodeProto', {
    op_type: fields.opType,
    input: [...fields.inputs],
    output: [...fields.outputs],
    name: fields.name ?? '',
    domain: fields.domain ?? '',
    attribute: [...(fields.attributes ?? [])],
  });
}

export function findAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/** An INT attribute's value, or `fallback` when the node does not set it. */
export function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const found = findAttribute(node, name);
  return found ? int64(found.i) : fallback;
}

/** A tensor value description; `shape` entries are sizes or symbolic names ("batch_size"); null leaves the rank unknown. */
export function makeValueInfo(name: string, elemType: number, shape: readonly (number | string)[] | null): ValueInfoProto {
  const dims = shape?.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
  return createMessage<ValueInfoProto>('ValueInfoProto', {
    name,
    type: createMessage('TypeProto', { tensor_type: { elem_type: elemType, ...(dims ? { shape: { dim: dims } } : {}) } }),
  });
}

/** The element type of a value info (0 when it states none). */
export function valueElemType(info: ValueInfoProto): number {
  return info.type?.tensor_type?.elem_type ?? 0;
}

/** Sets the element type of a value info, keeping its shape. */
export function setValueElemType(info: ValueInfoProto, elemType: number): void {
  if (info.type?.tensor_type) info.type.tensor_type.elem_type = elemType;
}

/** Declares `name` (a value some node produces) as a graph output. */
export function addGraphOutput(graph: GraphProto, name: string, elemType: number, shape: readonly (number | string)[] | null): void {
  if (graph.output.some((o) => o.name === name)) throw new RangeError(`graph ${graph.name}: ${name} is already an output`);
  graph.output.push(makeValueInfo(name, elemType, shape));
}

/** A consumer of a value: the node and which of its inputs reads it. */
export type Use = { node: NodeProto; index: number };

/**
 * A read-only index of one graph: producers, consumers and initializers by value name. It describes the graph as it
 * was when made; make a new one after changing nodes.
 */
export type GraphIndex = {
  readonly graph: GraphProto;
  initializer(name: string): TensorProto | undefined;
  producer(value: string): NodeProto | undefined;
  consumers(value: string): readonly Use[];
  isGraphInput(value: string): boolean;
};

export function indexGraph(graph: GraphProto): GraphIndex {
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const producers = new Map<string, NodeProto>();
  const consumers = new Map<string, Use[]>();
  for (const node of graph.node) {
    for (const output of node.output) if (output) producers.set(output, node);
    node.input.forEach((input, index) => {
      if (!input) return;
      const list = consumers.get(input) ?? [];
      list.push({ node, index });
      consumers.set(input, list);
    });
  }
  const inputs = new Set(graph.input.map((i) => i.name));
  return {
    graph,
    initializer: (name) => initializers.get(name),
    producer: (value) => producers.get(value),
    consumers: (value) => consumers.get(value) ?? [],
    isGraphInput: (value) => inputs.has(value) && !initializers.has(value),
  };
}

/** A value or node name not yet used in `graph`, made from `base` (`base`, then `base_1`, `base_2`, …). */
export function uniqueName(graph: GraphProto, base: string): string {
  const taken = new Set<string>();
  for (const node of graph.node) {
    taken.add(node.name);
    for (const name of [...node.input, ...node.output]) taken.add(name);
  }
  for (const list of [graph.initializer, graph.input, graph.output, graph.value_info]) for (const item of list) taken.add(item.name);
  if (!taken.has(base)) return base;
  for (let k = 1; ; k++) if (!taken.has(`${base}_${k}`)) return `${base}_${k}`;
}

/** The default-domain opset a model imports (0 when it imports none). */
export function defaultOpset(model: { opset_import: { domain: string; version: Parameters<typeof int64>[0] }[] }): number {
  const entry = model.opset_import.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  return entry ? int64(entry.version) : 0;
}
