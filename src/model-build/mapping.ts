// Graph → state-dict mapping for torch.onnx.export graphs (spec/model-build.md §3): from names, consumer scopes, input roles and Identity aliases.

import {
  createMessage,
  elementCount,
  externalData,
  FLOAT,
  FLOAT16,
  indexGraph,
  intAttribute,
  isExternal,
  tensorDims,
  type GraphIndex,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from '../onnx/index.js';

/** How an initializer was tied to its state-dict key. */
export const MAPPING_RULES = ['name', 'identity', 'matmul', 'gemm', 'norm', 'linear-bias', 'conv'] as const;
export type MappingRule = (typeof MAPPING_RULES)[number];

/**
 * One graph initializer filled from one state-dict key. `transpose`: the graph holds the key's 2-D matrix transposed
 * (Linear weights folded into `MatMul(x, Wᵀ)`); otherwise the same elements in the same order, possibly with unit
 * dimensions added or dropped (`[C]` ↔ `[C,1,1]` behind InstanceNormalization).
 */
export type WeightAssignment = { initializer: string; key: string; rule: MappingRule; transpose: boolean; dims: number[]; keyShape: number[] };

export type MappingPlan = {
  assignments: WeightAssignment[];
  /** Inline initializers with no state-dict counterpart (shape constants, frequency tables), kept as they are. */
  keptInline: string[];
  /** Identity nodes fed by an initializer, turned into initializers of their own (their output names the dropped parameter). */
  unfoldedAliases: string[];
  /** Keys left out on purpose (`ignoreKeyPrefixes`), e.g. the VAE encoder's, which the decoder graph does not hold. */
  ignoredKeys: string[];
};

export type MappingOptions = {
  /** State-dict keys with these prefixes are allowed to stay unused. */
  ignoreKeyPrefixes?: readonly string[];
  /** Read old VAE attention names (`query`, `key`, `value`, `proj_attn`) as `to_q`, `to_k`, `to_v`, `to_out.0`, as diffusers does on load. */
  legacyAttentionNames?: boolean;
  /** Names the graph in messages, e.g. `unet/model.onnx`. */
  graphName?: string;
  /** Names the weights in messages, e.g. the safetensors file. */
  weightsName?: string;
};

export class MappingError extends Error {
  override name = 'MappingError';
  readonly problems: readonly string[];
  constructor(graphName: string, weightsName: string, problems: readonly string[]) {
    const shown = problems.slice(0, 40);
    const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : '';
    super(`${weightsName} does not map onto ${graphName}:\n${shown.map((p) => `  - ${p}`).join('\n')}${more}`);
    this.problems = problems;
  }
}

const LEGACY_ATTENTION: Readonly<Record<string, string>> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };

/**
 * Makes `graph` ready for new weights and says which key fills each initializer. Changes `graph` in place: Identity
 * aliases of initializers become initializers, and an initializer whose consumers need different keys is split.
 * Throws MappingError listing every initializer or key that did not map, by name.
 */
export function planMapping(graph: GraphProto, keyShapes: ReadonlyMap<string, readonly number[]>, options: MappingOptions = {}): MappingPlan {
  const graphName = options.graphName ?? graph.name;
  const weightsName = options.weightsName ?? 'the weights';
  const keys = normaliseKeys(keyShapes, options.legacyAttentionNames ?? false);
  const unfoldedAliases = unfoldIdentityAliases(graph);
  const problems: string[] = [];
  const assignments: WeightAssignment[] = [];
  const keptInline: string[] = [];

  const index = indexGraph(graph);
  const splits: { tensor: TensorProto; uses: RoleUse[] }[] = [];
  const decided = new Map<string, RoleUse | 'name'>();
  for (const tensor of graph.initializer) {
    if (tensor.data_type !== FLOAT && tensor.data_type !== FLOAT16) continue;
    if (keys.has(tensor.name)) {
      decided.set(tensor.name, 'name');
      continue;
    }
    const roles = index.consumers(tensor.name).map((use) => roleOf(index, use.node, use.index, keys));
    const found = roles.filter((r): r is RoleUse => typeof r === 'object');
    const byKey = new Map<string, RoleUse>();
    for (const role of found) {
      const seen = byKey.get(`${role.key}\n${role.transpose}`);
      if (seen) seen.uses.push(...role.uses);
      else byKey.set(`${role.key}\n${role.transpose}`, role);
    }
    const distinct = [...byKey.values()];
    if (distinct.length === 0) {
      const reason = roles.find((r): r is string => typeof r === 'string');
      // an inline tensor may be a constant of the export; not one that is named like a parameter or read as one
      const parameterLike = /\.(weight|bias)$/.test(tensor.name) || (reason !== undefined && elementCount(tensorDims(tensor)) > 1);
      if (isExternal(tensor) || parameterLike) {
        problems.push(`${tensor.name}: ${reason ?? `no state-dict key matches its name, and its consumers (${describeUse(index, tensor.name)}) give no role`}`);
      } else keptInline.push(tensor.name);
      continue;
    }
    decided.set(tensor.name, distinct[0]);
    if (distinct.length > 1) splits.push({ tensor, uses: distinct.slice(1) });
  }
  // one initializer read as several keys (equal weights merged by the exporter's deduplication): one copy per key
  for (const { tensor, uses } of splits) {
    for (const role of uses) {
      const copy = copyTensor(tensor, uniqueInitializerName(graph, `${tensor.name}.${role.key}`));
      graph.initializer.push(copy);
      for (const node of graph.node) {
        node.input.forEach((input, i) => {
          if (input === tensor.name && role.uses.some((u) => u.node === node && u.index === i)) node.input[i] = copy.name;
        });
      }
      decided.set(copy.name, role);
    }
  }

  const used = new Map<string, string>();
  for (const tensor of graph.initializer) {
    const decision = decided.get(tensor.name);
    if (decision === undefined) continue;
    const key = decision === 'name' ? tensor.name : decision.key;
    const original = keys.get(key)!;
    const transpose = decision === 'name' ? false : decision.transpose;
    const rule: MappingRule = decision === 'name' ? (unfoldedAliases.includes(tensor.name) ? 'identity' : 'name') : decision.rule;
    const dims = tensorDims(tensor);
    const keyShape = [...keyShapes.get(original.key)!];
    const shapeProblem = checkShapes(dims, keyShape, transpose);
    if (shapeProblem) {
      problems.push(`${tensor.name} [${dims.join(', ')}] ← ${original.key} [${keyShape.join(', ')}]${transpose ? ' transposed' : ''}: ${shapeProblem}`);
      continue;
    }
    const earlier = used.get(original.key);
    if (earlier !== undefined) {
      problems.push(`${original.key}: fills two initializers, ${earlier} and ${tensor.name}`);
      continue;
    }
    used.set(original.key, tensor.name);
    assignments.push({ initializer: tensor.name, key: original.key, rule, transpose, dims, keyShape });
  }
  const ignoredKeys: string[] = [];
  for (const key of keyShapes.keys()) {
    if (used.has(key)) continue;
    if ((options.ignoreKeyPrefixes ?? []).some((prefix) => key.startsWith(prefix))) ignoredKeys.push(key);
    else problems.push(`${key} [${keyShapes.get(key)!.join(', ')}]: no initializer of the graph takes it`);
  }
  if (problems.length > 0) throw new MappingError(graphName, weightsName, problems);
  return { assignments, keptInline, unfoldedAliases, ignoredKeys };
}

/** Graph-side key → the weights' own key and shape (the same unless legacy attention names were renamed). */
function normaliseKeys(keyShapes: ReadonlyMap<string, readonly number[]>, legacy: boolean): Map<string, { key: string }> {
  const keys = new Map<string, { key: string }>();
  for (const key of keyShapes.keys()) keys.set(key, { key });
  if (!legacy) return keys;
  for (const key of keyShapes.keys()) {
    const renamed = key
      .split('.')
      .map((segment) => LEGACY_ATTENTION[segment] ?? segment)
      .join('.');
    if (renamed !== key && !keys.has(renamed)) keys.set(renamed, { key });
  }
  return keys;
}

type RoleUse = { key: string; transpose: boolean; rule: MappingRule; uses: { node: NodeProto; index: number }[] };

/** The module path of a node from its scoped name (`/down_blocks.1/attentions.0/…/to_q/MatMul` → `down_blocks.1.attentions.0.….to_q`). */
export function nodeScope(node: NodeProto): string[] {
  if (!node.name.startsWith('/')) return [];
  return node.name.split('/').filter(Boolean).slice(0, -1);
}

/**
 * The key one consumer implies for its input `inputIndex`, from the consumer's scope and the input's role; a string
 * says why none fits, undefined means this consumer gives no hint (a shape computation, say).
 */
function roleOf(index: GraphIndex, node: NodeProto, inputIndex: number, keys: ReadonlyMap<string, unknown>): RoleUse | string | undefined {
  const role = inputRole(index, node, inputIndex);
  if (!role) return undefined;
  const scope = nodeScope(node);
  if (scope.length === 0) return `its consumer ${node.op_type} "${node.name}" has no module scope in its name`;
  const candidates = scopeCandidates(scope).map((path) => `${path}.${role.suffix}`).filter((key) => keys.has(key));
  const unique = [...new Set(candidates)];
  if (unique.length === 0) return `read by ${node.op_type} "${node.name}" as ${role.suffix}, but the weights have no ${scope.join('.')}.${role.suffix}`;
  if (unique.length > 1) return `read by ${node.op_type} "${node.name}" as ${role.suffix}: ambiguous between ${unique.join(', ')}`;
  return { key: unique[0], transpose: role.transpose, rule: role.rule, uses: [{ node, index: inputIndex }] };
}

type Role = { suffix: 'weight' | 'bias'; transpose: boolean; rule: MappingRule };

/** What a parameter is to its consumer, from the op and the input position (spec/model-build.md §3). */
function inputRole(index: GraphIndex, node: NodeProto, inputIndex: number): Role | undefined {
  switch (node.op_type) {
    case 'MatMul':
      return inputIndex === 1 ? { suffix: 'weight', transpose: true, rule: 'matmul' } : undefined;
    case 'Gemm':
      if (inputIndex === 1) return { suffix: 'weight', transpose: intAttribute(node, 'transB', 0) === 0, rule: 'gemm' };
      return inputIndex === 2 ? { suffix: 'bias', transpose: false, rule: 'gemm' } : undefined;
    case 'Conv':
    case 'ConvTranspose':
      return inputIndex === 1 ? { suffix: 'weight', transpose: false, rule: 'conv' } : inputIndex === 2 ? { suffix: 'bias', transpose: false, rule: 'conv' } : undefined;
    case 'LayerNormalization':
    case 'GroupNormalization':
      return inputIndex === 1 ? { suffix: 'weight', transpose: false, rule: 'norm' } : inputIndex === 2 ? { suffix: 'bias', transpose: false, rule: 'norm' } : undefined;
    case 'Mul':
    case 'Add': {
      const other = node.input[1 - inputIndex];
      if (other === undefined || inputIndex > 1) return undefined;
      const source = upstream(index, other);
      if (node.op_type === 'Mul' && source && (source.op_type === 'InstanceNormalization' || source.op_type === 'Div')) return { suffix: 'weight', transpose: false, rule: 'norm' };
      if (node.op_type === 'Add' && source?.op_type === 'Mul') {
        // the bias after a norm's scale: Mul(norm(x), weight) → Add(·, bias)
        const scaled = upstream(index, source.input.find((i) => !index.initializer(i)) ?? '');
        if (scaled && (scaled.op_type === 'InstanceNormalization' || scaled.op_type === 'Div')) return { suffix: 'bias', transpose: false, rule: 'norm' };
      }
      if (node.op_type === 'Add' && source && (source.op_type === 'MatMul' || source.op_type === 'Gemm')) return { suffix: 'bias', transpose: false, rule: 'linear-bias' };
      return undefined;
    }
    default:
      return undefined;
  }
}

/** The node behind `value`, looking through the Reshape/Identity/Cast nodes torch puts around a norm. */
function upstream(index: GraphIndex, value: string): NodeProto | undefined {
  let node = index.producer(value);
  for (let hops = 0; node && ['Reshape', 'Identity', 'Cast'].includes(node.op_type) && hops < 4; hops++) node = index.producer(node.input[0]);
  return node;
}

/**
 * Module paths a scope may stand for: as written, then with `_<k>` call counters dropped from segments (a module
 * called twice gets `nonlinearity_1`); module names that end in `_1` themselves (`linear_1`) survive because only
 * paths that exist as keys are taken.
 */
function scopeCandidates(scope: readonly string[]): string[] {
  const options = scope.map((segment) => {
    const stripped = segment.replace(/_\d+$/, '');
    return stripped === segment ? [segment] : [segment, stripped];
  });
  let paths = [''];
  for (const choice of options) paths = paths.flatMap((p) => choice.map((c) => (p ? `${p}.${c}` : c)));
  return paths;
}

/** Why the initializer's dims cannot hold the key's tensor, or undefined when they can. */
function checkShapes(dims: readonly number[], keyShape: readonly number[], transpose: boolean): string | undefined {
  if (elementCount(dims) !== elementCount(keyShape)) return `${elementCount(keyShape)} values do not fit ${elementCount(dims)}`;
  const squeeze = (shape: readonly number[]) => shape.filter((d) => d !== 1);
  const target = squeeze(dims);
  let source = squeeze(keyShape);
  if (transpose) {
    if (source.length !== 2 || target.length !== 2) return 'a transposed weight must be a matrix';
    source = [source[1], source[0]];
  }
  return target.length === source.length && target.every((d, i) => d === source[i]) ? undefined : 'the shapes differ';
}

function describeUse(index: GraphIndex, name: string): string {
  const uses = index.consumers(name);
  return uses.length === 0 ? 'no consumer' : uses.map((u) => `${u.node.op_type} "${u.node.name}" input ${u.index}`).join(', ');
}

/** Identity nodes fed (through other Identities) by an initializer become initializers named after their output. */
function unfoldIdentityAliases(graph: GraphProto): string[] {
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const outputs = new Set(graph.output.map((o) => o.name));
  const unfolded: string[] = [];
  const kept: NodeProto[] = [];
  for (const node of graph.node) {
    const source = node.op_type === 'Identity' ? initializers.get(node.input[0]) : undefined;
    if (!source || outputs.has(node.output[0]) || initializers.has(node.output[0])) {
      kept.push(node);
      continue;
    }
    const copy = copyTensor(source, node.output[0]);
    graph.initializer.push(copy);
    initializers.set(copy.name, copy);
    unfolded.push(copy.name);
  }
  graph.node = kept;
  return unfolded;
}

/** A new initializer with `tensor`'s type, dims and data reference (inline bytes shared, external location copied). */
function copyTensor(tensor: TensorProto, name: string): TensorProto {
  const external = externalData(tensor);
  return createMessage<TensorProto>('TensorProto', {
    name,
    data_type: tensor.data_type,
    dims: [...tensor.dims],
    ...(external
      ? { data_location: tensor.data_location, external_data: tensor.external_data.map((e) => createMessage('StringStringEntryProto', { key: e.key, value: e.value })) }
      : { raw_data: tensor.raw_data, float_data: [...tensor.float_data], int32_data: [...tensor.int32_data] }),
  });
}

function uniqueInitializerName(graph: GraphProto, base: string): string {
  const taken = new Set(graph.initializer.map((t) => t.name));
  if (!taken.has(base)) return base;
  for (let k = 1; ; k++) if (!taken.has(`${base}_${k}`)) return `${base}_${k}`;
}
