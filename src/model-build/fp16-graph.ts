// float32 → float16 graph conversion that keeps chosen parts fp32 with Casts at the borders (spec/model-build.md §5).

import {
  createMessage,
  dataTypeName,
  findAttribute,
  FLOAT,
  FLOAT16,
  indexGraph,
  inlineFloat32,
  int64,
  makeNode,
  attribute,
  makeTensor,
  setRawData,
  setValueElemType,
  uniqueName,
  valueElemType,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from '../onnx/index.js';
import { float32ToFloat16 } from '../diffusion/fp16.js';
import { clampToHalf } from './safetensors.js';
import { nodeScope } from './mapping.js';

export type Fp16Policy = {
  /** Graph inputs that stay float32 (the UNet's `timestep` and `time_ids`, which feed only the sinusoidal embeddings). */
  fp32Inputs: readonly string[];
  /** Module scopes computed in float32 (`time_proj`, `add_time_proj`: diffusers' Timesteps always run in fp32). */
  fp32Scopes: readonly string[];
};

/** What the conversion did; `fp16Initializers` are the float initializers whose data the writer must store as fp16. */
export type Fp16Result = { fp16Initializers: Set<string>; fp32Nodes: number; fp16Nodes: number; castsAdded: number };

export class Fp16ConversionError extends Error {
  override name = 'Fp16ConversionError';
}

/** Ops whose float outputs take the type of input 0 (elementwise, shape and layout ops, the usual layers). */
const FOLLOWS_INPUT_0 = new Set(
  ('Abs Acos Add Asin Atan AveragePool BatchNormalization Ceil Clip Concat Conv ConvTranspose Cos CumSum DepthToSpace Div Dropout ' +
    'Einsum Elu Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GroupNormalization HardSigmoid ' +
    'Identity InstanceNormalization LayerNormalization LeakyRelu Log LogSoftmax MatMul Max MaxPool Mean Min Mish Mod Mul Neg Pad Pow Range ' +
    'Reciprocal ReduceL2 ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize Round ScatterElements ' +
    'ScatterND Selu Sigmoid Sign Sin Slice Softmax Softplus SpaceToDepth Split Sqrt Squeeze Sub Sum Tanh Tile TopK Transpose Trilu Unsqueeze Upsample').split(' '),
);
/** Ops whose outputs are never float. */
const NON_FLOAT_OUTPUT = new Set('And ArgMax ArgMin Equal Greater GreaterOrEqual IsInf IsNaN Less LessOrEqual NonZero Not Or Shape Size Xor'.split(' '));
/** Inputs that must stay float32 whatever the node computes in: Resize's roi and scales. */
const FP32_INPUTS: Readonly<Record<string, readonly number[]>> = { Resize: [1, 2], Upsample: [1] };
/** Ops that pass float data through unchanged, so fp32 may flow through them without a reason to narrow it. */
const PASS_THROUGH = new Set('Cast Concat Expand Flatten Gather Identity Reshape Slice Split Squeeze Tile Transpose Unsqueeze'.split(' '));

/**
 * Converts a float32 graph to float16 in place. Float initializers and Constant tensors become fp16 where their
 * consumers are fp16 (the caller writes the listed initializers' data as fp16; inline ones are converted here).
 * Nodes stay fp32 when they sit in an `fp32Scopes` module, compute a norm's variance (Pow → ReduceMean → Add →
 * Sqrt, which overflows fp16), or only pass fp32 values along; Casts are put where fp32 and fp16 meet.
 * `Cast(to=FLOAT)` in fp16 parts becomes `to=FLOAT16`; graph inputs, outputs and value infos get their new types.
 */
export function convertGraphToFloat16(graph: GraphProto, policy: Fp16Policy): Fp16Result {
  const index = indexGraph(graph);
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const elemType = inferElemTypes(graph);
  const isFloat = (value: string): boolean => value !== '' && elemType.get(value) === FLOAT;
  /** Tensors whose precision follows their consumers: float initializers and Constant nodes' outputs. */
  const constantNode = new Map<string, NodeProto>();
  for (const node of graph.node) if (node.op_type === 'Constant' && isFloat(node.output[0])) constantNode.set(node.output[0], node);
  const flexible = (value: string): boolean => (initializers.has(value) && initializers.get(value)!.data_type === FLOAT) || constantNode.has(value);
  const isScalar = (value: string): boolean => {
    const tensor = initializers.get(value) ?? constantTensor(constantNode.get(value));
    return tensor !== undefined && tensor.dims.reduce<number>((n, d) => n * int64(d), 1) <= 1;
  };

  // 1. each float value's precision: graph inputs first, then every node in order
  const precision = new Map<string, 16 | 32>();
  for (const input of graph.input) if (isFloat(input.name) && !initializers.has(input.name)) precision.set(input.name, policy.fp32Inputs.includes(input.name) ? 32 : 16);
  const nodePrecision = new Map<NodeProto, 16 | 32>();
  const blockedVariance = varianceNodes(graph, index);
  for (const node of graph.node) {
    if (node.op_type === 'Constant') continue;
    const floatInputs = node.input.filter(isFloat);
    const produced = floatInputs.filter((v) => !flexible(v));
    const scope = nodeScope(node);
    let p: 16 | 32;
    if (scope.some((segment) => policy.fp32Scopes.includes(segment)) || blockedVariance.has(node)) p = 32;
    else if (floatInputs.length === 0) p = 32; // makes floats from integers (Cast, ConstantOfShape): fp32, consumers narrow it
    else if (produced.length > 0 && produced.every((v) => precision.get(v) === 32) && (PASS_THROUGH.has(node.op_type) || floatInputs.every((v) => !flexible(v) || isScalar(v)))) p = 32;
    else p = 16;
    nodePrecision.set(node, p);
    for (const output of node.output) if (isFloat(output)) precision.set(output, p);
  }

  // 2. what each flexible tensor must be, from its consumers
  const wanted = new Map<string, Set<16 | 32>>();
  const required = (node: NodeProto, inputIndex: number): 16 | 32 => ((FP32_INPUTS[node.op_type] ?? []).includes(inputIndex) ? 32 : nodePrecision.get(node)!);
  for (const node of graph.node) {
    if (!nodePrecision.has(node)) continue;
    node.input.forEach((value, i) => {
      if (flexible(value)) (wanted.get(value) ?? wanted.set(value, new Set()).get(value)!).add(required(node, i));
    });
  }
  for (const output of graph.output) if (flexible(output.name)) (wanted.get(output.name) ?? wanted.set(output.name, new Set()).get(output.name)!).add(16);

  // 3. rewrite: flexible tensors get the precision their consumers want (both: an fp16 twin), Casts where values meet
  const fp16Initializers = new Set<string>();
  const twins = new Map<string, string>();
  const newInitializers: TensorProto[] = [];
  const newConstants: NodeProto[] = [];
  for (const [value, set] of wanted) {
    const to16 = set.has(16);
    if (!to16) {
      precision.set(value, 32);
      continue;
    }
    const tensor = initializers.get(value);
    if (set.has(32)) {
      const twinName = uniqueName(graph, `${value}_fp16`);
      if (tensor && tensor.data_location !== 1) newInitializers.push(halfTensor(tensor, twinName));
      else if (tensor) {
        // an external weight wanted both ways: keep it fp32 and cast a copy (rare; a weight has one consumer)
        newConstants.push(makeNode({ opType: 'Cast', inputs: [value], outputs: [twinName], name: twinName, attributes: [attribute.int('to', FLOAT16)] }));
      } else newConstants.push(halfConstant(constantNode.get(value)!, twinName));
      twins.set(value, twinName);
      precision.set(value, 32);
      precision.set(twinName, 16);
    } else {
      precision.set(value, 16);
      if (tensor) {
        if (tensor.data_location !== 1) setRawData(tensor, halfTensor(tensor, tensor.name).raw_data);
        tensor.data_type = FLOAT16;
        fp16Initializers.add(value);
      } else {
        const node = constantNode.get(value)!;
        Object.assign(node, halfConstant(node, value));
      }
    }
  }

  let castsAdded = 0;
  const casts = new Map<string, string>();
  const castTo = (value: string, p: 16 | 32, before: NodeProto[]): string => {
    const key = `${value}\n${p}`;
    const existing = casts.get(key);
    if (existing) return existing;
    const name = uniqueName(graph, `${value}_to_fp${p}`);
    before.push(makeNode({ opType: 'Cast', inputs: [value], outputs: [name], name, attributes: [attribute.int('to', p === 16 ? FLOAT16 : FLOAT)] }));
    casts.set(key, name);
    castsAdded++;
    return name;
  };
  const nodes: NodeProto[] = [...newConstants];
  for (const node of graph.node) {
    const p = nodePrecision.get(node);
    if (p !== undefined) {
      node.input.forEach((value, i) => {
        if (!isFloat(value)) return;
        const need = required(node, i);
        if (twins.has(value) && need === 16) node.input[i] = twins.get(value)!;
        else if (precision.get(value) !== need) node.input[i] = castTo(value, need, nodes);
      });
      if (p === 16 && node.op_type === 'Cast') {
        const to = findAttribute(node, 'to');
        if (to && int64(to.i) === FLOAT) to.i = FLOAT16;
      }
      if (p === 16 && node.op_type === 'ConstantOfShape') {
        const value = findAttribute(node, 'value');
        if (value?.t && value.t.data_type === FLOAT) value.t = halfTensor(value.t, value.t.name);
      }
    }
    nodes.push(node);
  }
  // a graph output keeps its name: the value that reaches it is cast in place when its producer computed in fp32
  for (const output of graph.output) {
    if (!isFloat(output.name)) continue;
    if (precision.get(output.name) === 32 && !flexible(output.name)) {
      const producer = index.producer(output.name)!;
      const inner = uniqueName(graph, `${output.name}_fp32`);
      producer.output[producer.output.indexOf(output.name)] = inner;
      for (const node of nodes) node.input.forEach((v, i) => v === output.name && (node.input[i] = inner));
      nodes.push(makeNode({ opType: 'Cast', inputs: [inner], outputs: [output.name], name: `${output.name}_to_fp16`, attributes: [attribute.int('to', FLOAT16)] }));
      castsAdded++;
    }
    setValueElemType(output, FLOAT16);
  }
  graph.node = nodes;
  graph.initializer.push(...newInitializers);
  for (const input of graph.input) if (isFloat(input.name) && precision.get(input.name) === 16) setValueElemType(input, FLOAT16);
  for (const info of graph.value_info) {
    if (valueElemType(info) === FLOAT && precision.get(info.name) === 16) setValueElemType(info, FLOAT16);
  }
  const counts = [...nodePrecision.values()];
  return { fp16Initializers, fp32Nodes: counts.filter((p) => p === 32).length, fp16Nodes: counts.filter((p) => p === 16).length, castsAdded };
}

/** The element type of every value, from graph inputs, initializers, value infos and each op's rule. */
export function inferElemTypes(graph: GraphProto): Map<string, number> {
  const types = new Map<string, number>();
  for (const info of [...graph.input, ...graph.value_info]) if (valueElemType(info)) types.set(info.name, valueElemType(info));
  for (const tensor of graph.initializer) types.set(tensor.name, tensor.data_type);
  for (const node of graph.node) {
    const first = types.get(node.input.find((v) => v !== '') ?? '');
    const set = (i: number, type: number | undefined) => {
      if (node.output[i] && type !== undefined) types.set(node.output[i], type);
    };
    const op = node.op_type;
    if (node.domain !== '' && node.domain !== 'ai.onnx') {
      throw new Fp16ConversionError(`node "${node.name}": op ${node.domain}.${op} is outside the ONNX domain; the fp16 conversion knows only standard ops`);
    }
    if (op === 'Cast') set(0, int64(findAttribute(node, 'to')?.i ?? 0));
    else if (op === 'CastLike') set(0, types.get(node.input[1]));
    else if (op === 'Constant') set(0, constantTensor(node)?.data_type ?? (findAttribute(node, 'value_float') || findAttribute(node, 'value_floats') ? FLOAT : 7));
    else if (op === 'ConstantOfShape') set(0, findAttribute(node, 'value')?.t?.data_type ?? FLOAT);
    else if (op === 'Where') set(0, types.get(node.input[1]));
    else if (NON_FLOAT_OUTPUT.has(op)) node.output.forEach((_, i) => set(i, ['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero'].includes(op) ? 7 : 9));
    else if (op === 'TopK') {
      set(0, first);
      set(1, 7);
    } else if (FOLLOWS_INPUT_0.has(op)) node.output.forEach((_, i) => set(i, op === 'Dropout' && i === 1 ? 9 : first));
    else if (node.input.some((v) => types.get(v) === FLOAT)) {
      throw new Fp16ConversionError(`node "${node.name}": op ${op} takes float tensors and the fp16 conversion has no type rule for it (${dataTypeName(first ?? 0)} input)`);
    } else node.output.forEach((_, i) => set(i, first));
  }
  return types;
}

/** Nodes of a norm's variance: Pow(x, 2) and the ReduceMean, Add (ε), Sqrt and Div that follow in the same scope. */
function varianceNodes(graph: GraphProto, index: ReturnType<typeof indexGraph>): Set<NodeProto> {
  const blocked = new Set<NodeProto>();
  const chain = ['ReduceMean', 'Add', 'Sqrt', 'Div', 'Reciprocal'];
  for (const node of graph.node) {
    if (node.op_type !== 'Pow') continue;
    blocked.add(node);
    let frontier = [node];
    for (let depth = 0; depth < 4 && frontier.length > 0; depth++) {
      frontier = frontier.flatMap((n) => index.consumers(n.output[0]).map((u) => u.node)).filter((n) => chain.includes(n.op_type) && !blocked.has(n));
      for (const n of frontier) blocked.add(n);
      frontier = frontier.filter((n) => n.op_type !== 'Div');
    }
  }
  return blocked;
}

function constantTensor(node: NodeProto | undefined): TensorProto | undefined {
  return node ? findAttribute(node, 'value')?.t ?? undefined : undefined;
}

/** An inline float32 tensor as float16 (clamped to ±65504), named `name`. */
function halfTensor(tensor: TensorProto, name: string): TensorProto {
  const half = float32ToFloat16(clampToHalf(inlineFloat32(tensor)));
  const out = makeTensor(name, FLOAT16, tensor.dims.map(int64), half);
  return out;
}

/** A Constant node holding the fp16 version of `node`'s float tensor, with output `output`. */
function halfConstant(node: NodeProto, output: string): NodeProto {
  const tensor = constantTensor(node);
  let source: TensorProto;
  if (tensor) source = tensor;
  else {
    const scalar = findAttribute(node, 'value_float');
    const list = findAttribute(node, 'value_floats');
    const values = scalar ? [scalar.f] : (list?.floats ?? []);
    source = makeTensor('', FLOAT, scalar ? [] : [values.length], Float32Array.from(values));
  }
  return createMessage<NodeProto>('NodeProto', {
    op_type: 'Constant',
    name: output === node.output[0] ? node.name : output,
    input: [],
    output: [output],
    domain: '',
    attribute: [attribute.tensor('value', halfTensor(source, ''))],
  });
}
