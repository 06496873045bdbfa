// Tiny SDXL-architecture UNet and VAE decoder graphs written the way torch.onnx.export writes them (spec/model-build.md §3).

import { float16ToFloat32, float32ToFloat16 } from '../../src/diffusion/fp16.js';
import { attr, createGraph, type Attributes, type GraphBuilder, type Tensor } from './onnx-writer.js';
import { createTinyRng } from './generate.js';

/**
 * A diffusers-layout state dict: key → shape and float32 values. Values come from the key's own seeded generator, so
 * they do not depend on the order the graph asks for them.
 */
export type StateDict = Map<string, { shape: number[]; data: Float32Array }>;

export type WeightSet = {
  seed: number;
  /** Round every value to the nearest float16, so a float16 safetensors file holds exactly these values. */
  halfRounded?: boolean;
  /** Pairs of keys given equal values (the second copies the first), so the exporter's deduplication merges them. */
  tied?: readonly (readonly [string, string])[];
};

/** The widths of the tiny UNet: SDXL's inputs (2048-wide context, 1280-wide pooled embedding, 6 time ids), small insides. */
export const TINY_UNET = { channels: [32, 48], groups: 8, heads: 2, timeDim: 64, addTimeDim: 8, context: 2048, pooled: 1280, timeIds: 6 } as const;
/** The tiny VAE decoder's widths per up block (SDXL's order: wide first), 8× upsampling like the real one. */
export const TINY_VAE = { channels: [16, 16, 16, 8], groups: 4, latent: 4 } as const;

/** Keys of the tiny VAE that the decoder graph does not hold (the encoder's), as a real AutoencoderKL file has them. */
const VAE_ENCODER_EXTRAS: readonly [string, number[]][] = [
  ['encoder.conv_in.weight', [16, 3, 3, 3]],
  ['encoder.conv_in.bias', [16]],
  ['quant_conv.weight', [8, 8, 1, 1]],
  ['quant_conv.bias', [8]],
];

/** Hands out parameters by key and remembers them in `stateDict`. */
function createParameters(set: WeightSet) {
  const stateDict: StateDict = new Map();
  const tiedTo = new Map((set.tied ?? []).map(([a, b]) => [b, a]));
  const hash = (text: string): number => {
    let h = 2166136261 ^ set.seed;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
    return h >>> 0;
  };
  const make = (key: string, shape: number[], scale: number): Float32Array => {
    const source = tiedTo.get(key) ?? key;
    const rng = createTinyRng(hash(source));
    const count = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array = Float32Array.from({ length: count }, () => rng.uniform(-scale, scale));
    if (set.halfRounded) data = float16ToFloat32(float32ToFloat16(data));
    return data;
  };
  return {
    stateDict,
    /** `kind` sets the values: weights ±1/√fan_in, biases small, norm scales near 1. */
    get(key: string, shape: number[], kind: 'weight' | 'bias' | 'scale' = 'weight'): Float32Array {
      const existing = stateDict.get(key);
      if (existing) return existing.data;
      const fanIn = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
      let data: Float32Array = make(key, shape, kind === 'weight' ? 1 / Math.sqrt(fanIn) : kind === 'bias' ? 0.05 : 0.2);
      if (kind === 'scale') data = data.map((v) => 1 + v);
      if (set.halfRounded && kind === 'scale') data = float16ToFloat32(float32ToFloat16(data));
      stateDict.set(key, { shape, data });
      return data;
    },
  };
}

type Parameters = ReturnType<typeof createParameters>;

/**
 * A graph builder that names nodes and values the way torch.onnx.export does: scoped node names
 * (`/down_blocks.0/resnets.0/conv1/Conv`, repeated modules as `nonlinearity_1`), outputs `<node>_output_0`, Linear
 * weights on 3-D inputs folded to `onnx::MatMul_<n>` (transposed), GroupNorm scales to `onnx::Mul_<n>`/`onnx::Add_<n>`.
 */
function createTorchGraph(name: string, params: Parameters, counterSeed: number) {
  const g = createGraph(name);
  const scope: string[] = [];
  const nodeCounts = new Map<string, number>();
  const moduleCalls = new Map<string, number>();
  // torch numbers folded constants by value ids, not key order: a shuffled counter keeps the mapping honest
  const counterRng = createTinyRng(counterSeed);
  const usedCounters = new Set<number>();
  const counter = (): number => {
    let n: number;
    do n = 100 + Math.floor(counterRng.next() * 9000);
    while (usedCounters.has(n));
    usedCounters.add(n);
    return n;
  };

  const op = (opType: string, inputs: readonly string[], attributes: Attributes = {}, outputs = 1): string[] => {
    const base = `/${[...scope, opType].join('/')}`;
    const seen = nodeCounts.get(base) ?? 0;
    nodeCounts.set(base, seen + 1);
    const nodeName = seen === 0 ? base : `${base}_${seen}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${nodeName}_output_${i}`);
    g.node(opType, inputs, outs, attributes, { name: nodeName });
    return outs;
  };
  const op1 = (opType: string, inputs: readonly string[], attributes: Attributes = {}): string => op(opType, inputs, attributes)[0];
  /** Runs `body` inside module `segment`; a module called again gets `segment_<k>`. */
  const within = <T>(segment: string, body: () => T): T => {
    const key = `${scope.join('/')}/${segment}`;
    const calls = moduleCalls.get(key) ?? 0;
    moduleCalls.set(key, calls + 1);
    scope.push(calls === 0 ? segment : `${segment}_${calls}`);
    try {
      return body();
    } finally {
      scope.pop();
    }
  };
  /** The module path for parameter keys (the modules that hold parameters are each called once). */
  const keyPath = (): string => scope.join('.');
  const constant = (tensor: Omit<Tensor, 'name'>): string => op1('Constant', [], { value: attr.tensor({ name: '', ...tensor } as Tensor) });
  const floats = (values: readonly number[], dims: readonly number[] = [values.length]): string => constant({ type: 'float32', dims, data: Float32Array.from(values) });
  const ints = (values: readonly number[]): string => constant({ type: 'int64', dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
  const named = (key: string, shape: number[], kind: 'weight' | 'bias' | 'scale' = 'weight'): string => {
    if (!g.initializers.some((t) => t.name === key)) g.initializer(key, 'float32', shape, params.get(key, shape, kind));
    return key;
  };

  const layers = {
    conv(x: string, inC: number, outC: number, kernel: number, stride = 1): string {
      const k = keyPath();
      const w = named(`${k}.weight`, [outC, inC, kernel, kernel]);
      const b = named(`${k}.bias`, [outC], 'bias');
      const pad = Math.floor(kernel / 2);
      return op1('Conv', [x, w, b], { kernel_shape: attr.ints([kernel, kernel]), pads: attr.ints([pad, pad, pad, pad]), strides: attr.ints([stride, stride]), dilations: attr.ints([1, 1]), group: attr.int(1) });
    },
    /** Linear on a 3-D input: MatMul with the folded transpose, then Add of the bias (torch's `linear` symbolic). */
    linear3d(x: string, inF: number, outF: number, bias: boolean): string {
      const k = keyPath();
      const w = params.get(`${k}.weight`, [outF, inF]);
      const wt = new Float32Array(w.length);
      for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) wt[i * outF + o] = w[o * inF + i];
      const folded = g.initializer(`onnx::MatMul_${counter()}`, 'float32', [inF, outF], wt);
      const product = op1('MatMul', [x, folded]);
      return bias ? op1('Add', [named(`${k}.bias`, [outF], 'bias'), product]) : product;
    },
    /** Linear on a 2-D input: Gemm with transB=1 and the original names. */
    linear2d(x: string, inF: number, outF: number): string {
      const k = keyPath();
      return op1('Gemm', [x, named(`${k}.weight`, [outF, inF]), named(`${k}.bias`, [outF], 'bias')], { alpha: attr.float(1), beta: attr.float(1), transB: attr.int(1) });
    },
    /** GroupNorm as torch exports it; `rank` 4 ([B,C,H,W]: folded [C,1,1]) or 3 ([B,C,L]: folded [C,1]). */
    groupNorm(x: string, channels: number, groups: number, eps: number, rank: 3 | 4 = 4): string {
      const k = keyPath();
      const grouped = op1('Reshape', [x, ints([0, groups, -1])]);
      const normed = op1('InstanceNormalization', [grouped, floats(new Array(groups).fill(1)), floats(new Array(groups).fill(0))], { epsilon: attr.float(eps) });
      const back = op1('Reshape', [normed, op1('Shape', [x])]);
      const unit = rank === 4 ? [channels, 1, 1] : [channels, 1];
      const scale = g.initializer(`onnx::Mul_${counter()}`, 'float32', unit, params.get(`${k}.weight`, [channels], 'scale'));
      const shift = g.initializer(`onnx::Add_${counter()}`, 'float32', unit, params.get(`${k}.bias`, [channels], 'bias'));
      return op1('Add', [op1('Mul', [back, scale]), shift]);
    },
    /** LayerNorm decomposed as opset 14 exports it; weight and bias keep their names. */
    layerNorm(x: string, width: number): string {
      const k = keyPath();
      const mean = op1('ReduceMean', [x], { axes: attr.ints([-1]), keepdims: attr.int(1) });
      const centred = op1('Sub', [x, mean]);
      const variance = op1('ReduceMean', [op1('Pow', [centred, floats([2], [])])], { axes: attr.ints([-1]), keepdims: attr.int(1) });
      const normed = op1('Div', [centred, op1('Sqrt', [op1('Add', [variance, floats([1e-5], [])])])]);
      return op1('Add', [op1('Mul', [normed, named(`${k}.weight`, [width], 'scale')]), named(`${k}.bias`, [width], 'bias')]);
    },
    silu(x: string): string {
      return op1('Mul', [x, op1('Sigmoid', [x])]);
    },
    /** diffusers' Timesteps (flip_sin_to_cos, shift 1): [N] → [N, dim] = cat(cos(t·f), sin(t·f)), f a constant table. */
    timesteps(t: string, dim: number): string {
      const half = dim / 2;
      const frequencies = Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / (half - 1)));
      const phase = op1('Mul', [op1('Unsqueeze', [t, ints([1])]), floats(frequencies, [1, half])]);
      return op1('Concat', [op1('Cos', [phase]), op1('Sin', [phase])], { axis: attr.int(-1) });
    },
  };

  /** Self- or cross-attention on [B, S, C]; `context` [B, T, contextWidth] for cross-attention. */
  function attention(x: string, width: number, heads: number, context?: { value: string; width: number }, bias = false): string {
    const head = width / heads;
    const q = within('to_q', () => layers.linear3d(x, width, width, bias));
    const k = within('to_k', () => layers.linear3d(context?.value ?? x, context?.width ?? width, width, bias));
    const v = within('to_v', () => layers.linear3d(context?.value ?? x, context?.width ?? width, width, bias));
    const split = (value: string): string => op1('Transpose', [op1('Reshape', [value, ints([0, -1, heads, head])])], { perm: attr.ints([0, 2, 1, 3]) });
    const keysT = op1('Transpose', [op1('Reshape', [k, ints([0, -1, heads, head])])], { perm: attr.ints([0, 2, 3, 1]) });
    const scores = op1('Mul', [op1('MatMul', [split(q), keysT]), floats([1 / Math.sqrt(head)], [])]);
    const mixed = op1('MatMul', [op1('Softmax', [scores], { axis: attr.int(-1) }), split(v)]);
    const merged = op1('Reshape', [op1('Transpose', [mixed], { perm: attr.ints([0, 2, 1, 3]) }), ints([0, -1, width])]);
    return within('to_out.0', () => layers.linear3d(merged, width, width, true));
  }

  return { g, op, op1, within, layers, attention, floats, ints };
}

type TorchGraph = ReturnType<typeof createTorchGraph>;

function resnet(t: TorchGraph, x: string, inC: number, outC: number, temb: string | null): string {
  const { layers, op1, within } = t;
  let h = within('norm1', () => layers.groupNorm(x, inC, TINY_UNET.groups, 1e-5));
  h = within('nonlinearity', () => layers.silu(h));
  h = within('conv1', () => layers.conv(h, inC, outC, 3));
  if (temb !== null) {
    const activated = within('nonlinearity', () => layers.silu(temb));
    const projected = within('time_emb_proj', () => layers.linear2d(activated, TINY_UNET.timeDim, outC));
    h = op1('Add', [h, op1('Unsqueeze', [projected, t.ints([2, 3])])]);
  }
  h = within('norm2', () => layers.groupNorm(h, outC, TINY_UNET.groups, 1e-5));
  h = within('nonlinearity', () => layers.silu(h));
  h = within('conv2', () => layers.conv(h, outC, outC, 3));
  const shortcut = inC === outC ? x : within('conv_shortcut', () => layers.conv(x, inC, outC, 1));
  return op1('Div', [op1('Add', [shortcut, h]), t.floats([1], [])]);
}

function transformer(t: TorchGraph, x: string, width: number, context: string): string {
  const { layers, op1, within } = t;
  let h = within('norm', () => layers.groupNorm(x, width, TINY_UNET.groups, 1e-6));
  h = op1('Reshape', [op1('Transpose', [h], { perm: attr.ints([0, 2, 3, 1]) }), t.ints([0, -1, width])]);
  h = within('proj_in', () => layers.linear3d(h, width, width, true));
  h = within('transformer_blocks.0', () => {
    let y = h;
    const n1 = within('norm1', () => layers.layerNorm(y, width));
    y = op1('Add', [within('attn1', () => t.attention(n1, width, TINY_UNET.heads)), y]);
    const n2 = within('norm2', () => layers.layerNorm(y, width));
    y = op1('Add', [within('attn2', () => t.attention(n2, width, TINY_UNET.heads, { value: context, width: TINY_UNET.context })), y]);
    const n3 = within('norm3', () => layers.layerNorm(y, width));
    const ff = within('ff', () => {
      const inner = 4 * width;
      const [hidden, gate] = within('net.0', () => {
        const projected = within('proj', () => layers.linear3d(n3, width, 2 * inner, true));
        return t.op('Split', [projected, t.ints([inner, inner])], { axis: attr.int(-1) }, 2);
      });
      const gelu = op1('Mul', [op1('Mul', [gate, op1('Add', [op1('Erf', [op1('Div', [gate, t.floats([Math.SQRT2], [])])]), t.floats([1], [])])]), t.floats([0.5], [])]);
      return within('net.2', () => layers.linear3d(op1('Mul', [hidden, gelu]), inner, width, true));
    });
    return op1('Add', [ff, y]);
  });
  h = within('proj_out', () => layers.linear3d(h, width, width, true));
  const back = op1('Reshape', [op1('Transpose', [h], { perm: attr.ints([0, 2, 1]) }), op1('Shape', [x])]);
  return op1('Add', [back, x]);
}

function upsample(t: TorchGraph, x: string, channels: number): string {
  return t.within('upsamplers.0', () => {
    const scales = t.g.initializer(`onnx::Resize_${9000 + t.g.initializers.length}`, 'float32', [4], Float32Array.from([1, 1, 2, 2]));
    const resized = t.op1('Resize', [x, '', scales], { mode: attr.string('nearest'), coordinate_transformation_mode: attr.string('asymmetric'), nearest_mode: attr.string('floor') });
    return t.within('conv', () => t.layers.conv(resized, channels, channels, 3));
  });
}

/** Merges equal float initializers as torch's deduplication does: the later one becomes an Identity of the first. */
function deduplicate(g: GraphBuilder): void {
  const initializers = g.initializers as Tensor[];
  const nodes = g.nodes as GraphBuilder['nodes'][number][];
  const kept: Tensor[] = [];
  const aliases: GraphBuilder['nodes'][number][] = [];
  for (const tensor of initializers) {
    const twin = kept.find((k) => k.type === tensor.type && k.dims.join() === tensor.dims.join() && k.data.length === tensor.data.length && k.data.every((v, i) => v === tensor.data[i]));
    if (twin && tensor.type === 'float32' && tensor.data.length > 1) {
      aliases.push({ opType: 'Identity', inputs: [twin.name], outputs: [tensor.name], name: `Identity_${aliases.length}`, domain: '', attributes: {} });
    } else kept.push(tensor);
  }
  initializers.splice(0, initializers.length, ...kept);
  nodes.unshift(...aliases);
}

export type TorchGraphResult = { graph: GraphBuilder; stateDict: StateDict };

/**
 * The tiny SDXL UNet (inputs sample, timestep (scalar), encoder_hidden_states, text_embeds, time_ids; output
 * out_sample) as torch.onnx.export writes it, with `weights` for its parameters; `deduplicate` merges equal tensors.
 */
export function torchExportUnet(weights: WeightSet, options: { deduplicate?: boolean } = {}): TorchGraphResult {
  const params = createParameters(weights);
  const t = createTorchGraph('main_graph', params, 77);
  const { g, op1, within, layers } = t;
  const [c0, c1] = TINY_UNET.channels;
  const sample = g.input('sample', 'float32', ['batch_size', 4, 'height', 'width']);
  const timestep = g.input('timestep', 'float32', []);
  const context = g.input('encoder_hidden_states', 'float32', ['batch_size', 'sequence_length', TINY_UNET.context]);
  const textEmbeds = g.input('text_embeds', 'float32', ['batch_size', TINY_UNET.pooled]);
  const timeIds = g.input('time_ids', 'float32', ['batch_size', TINY_UNET.timeIds]);

  const batch = op1('Unsqueeze', [op1('Gather', [op1('Shape', [sample]), t.ints([0])], { axis: attr.int(0) }), t.ints([0])]);
  const timesteps = op1('Expand', [op1('Unsqueeze', [timestep, t.ints([0])]), op1('Reshape', [batch, t.ints([-1])])]);
  const tProj = within('time_proj', () => layers.timesteps(timesteps, c0));
  let emb = within('time_embedding', () => {
    const a = within('linear_1', () => layers.linear2d(tProj, c0, TINY_UNET.timeDim));
    const b = within('act', () => layers.silu(a));
    return within('linear_2', () => layers.linear2d(b, TINY_UNET.timeDim, TINY_UNET.timeDim));
  });
  const flatIds = op1('Reshape', [timeIds, t.ints([-1])]);
  const timeEmbeds = op1('Reshape', [within('add_time_proj', () => layers.timesteps(flatIds, TINY_UNET.addTimeDim)), t.ints([-1, TINY_UNET.timeIds * TINY_UNET.addTimeDim])]);
  const addInput = op1('Concat', [textEmbeds, timeEmbeds], { axis: attr.int(-1) });
  const aug = within('add_embedding', () => {
    const a = within('linear_1', () => layers.linear2d(addInput, TINY_UNET.pooled + TINY_UNET.timeIds * TINY_UNET.addTimeDim, TINY_UNET.timeDim));
    const b = within('act', () => layers.silu(a));
    return within('linear_2', () => layers.linear2d(b, TINY_UNET.timeDim, TINY_UNET.timeDim));
  });
  emb = op1('Add', [emb, aug]);

  let h = within('conv_in', () => layers.conv(sample, 4, c0, 3));
  const skip0 = within('down_blocks.0', () => within('resnets.0', () => resnet(t, h, c0, c0, emb)));
  h = within('down_blocks.0', () => within('downsamplers.0', () => within('conv', () => layers.conv(skip0, c0, c0, 3, 2))));
  const skip1 = within('down_blocks.1', () => {
    const r = within('resnets.0', () => resnet(t, h, c0, c1, emb));
    return within('attentions.0', () => transformer(t, r, c1, context));
  });
  h = within('mid_block', () => within('resnets.0', () => resnet(t, skip1, c1, c1, emb)));
  h = within('up_blocks.0', () => {
    const joined = op1('Concat', [h, skip1], { axis: attr.int(1) });
    const r = within('resnets.0', () => resnet(t, joined, 2 * c1, c1, emb));
    const a = within('attentions.0', () => transformer(t, r, c1, context));
    return upsample(t, a, c1);
  });
  h = within('up_blocks.1', () => within('resnets.0', () => resnet(t, op1('Concat', [h, skip0], { axis: attr.int(1) }), c1 + c0, c0, emb)));
  h = within('conv_norm_out', () => layers.groupNorm(h, c0, TINY_UNET.groups, 1e-5));
  h = within('conv_act', () => layers.silu(h));
  const out = within('conv_out', () => layers.conv(h, c0, 4, 3));
  g.node('Identity', [out], ['out_sample'], {}, { name: '/Identity_out' });
  g.output('out_sample', 'float32', ['batch_size', 4, 'height', 'width']);
  if (options.deduplicate ?? true) deduplicate(g);
  return { graph: g, stateDict: params.stateDict };
}

/** The tiny SDXL VAE decoder (input latent_sample, output sample, 8× larger) as torch.onnx.export writes it. */
export function torchExportVaeDecoder(weights: WeightSet): TorchGraphResult {
  const params = createParameters(weights);
  const t = createTorchGraph('main_graph', params, 99);
  const { g, op1, within, layers } = t;
  const widths = TINY_VAE.channels;
  const latent = g.input('latent_sample', 'float32', ['batch_size', TINY_VAE.latent, 'latent_height', 'latent_width']);
  const vaeResnet = (x: string, inC: number, outC: number): string => {
    let h = within('norm1', () => layers.groupNorm(x, inC, TINY_VAE.groups, 1e-6));
    h = within('nonlinearity', () => layers.silu(h));
    h = within('conv1', () => layers.conv(h, inC, outC, 3));
    h = within('norm2', () => layers.groupNorm(h, outC, TINY_VAE.groups, 1e-6));
    h = within('nonlinearity', () => layers.silu(h));
    h = within('conv2', () => layers.conv(h, outC, outC, 3));
    const shortcut = inC === outC ? x : within('conv_shortcut', () => layers.conv(x, inC, outC, 1));
    return op1('Div', [op1('Add', [shortcut, h]), t.floats([1], [])]);
  };
  let h = within('post_quant_conv', () => layers.conv(latent, TINY_VAE.latent, TINY_VAE.latent, 1));
  h = within('decoder', () => {
    let x = within('conv_in', () => layers.conv(h, TINY_VAE.latent, widths[0], 3));
    x = within('mid_block', () => {
      let y = within('resnets.0', () => vaeResnet(x, widths[0], widths[0]));
      y = within('attentions.0', () => {
        const c = widths[0];
        const flat = op1('Reshape', [y, t.ints([0, c, -1])]);
        const normed = within('group_norm', () => layers.groupNorm(flat, c, TINY_VAE.groups, 1e-6, 3));
        const tokens = op1('Transpose', [normed], { perm: attr.ints([0, 2, 1]) });
        const attended = t.attention(tokens, c, 1, undefined, true);
        const back = op1('Reshape', [op1('Transpose', [attended], { perm: attr.ints([0, 2, 1]) }), op1('Shape', [y])]);
        return op1('Div', [op1('Add', [back, y]), t.floats([1], [])]);
      });
      return within('resnets.1', () => vaeResnet(y, widths[0], widths[0]));
    });
    widths.forEach((width, i) => {
      const inC = i === 0 ? widths[0] : widths[i - 1];
      x = within(`up_blocks.${i}`, () => {
        const r = within('resnets.0', () => vaeResnet(x, inC, width));
        return i < widths.length - 1 ? upsample(t, r, width) : r;
      });
    });
    const last = widths[widths.length - 1];
    x = within('conv_norm_out', () => layers.groupNorm(x, last, TINY_VAE.groups, 1e-6));
    x = within('conv_act', () => layers.silu(x));
    return within('conv_out', () => layers.conv(x, last, 3, 3));
  });
  g.node('Identity', [h], ['sample'], {}, { name: '/Identity_out' });
  g.output('sample', 'float32', ['batch_size', 3, 'height', 'width']);
  for (const [key, shape] of VAE_ENCODER_EXTRAS) params.get(key, shape);
  deduplicate(g);
  return { graph: g, stateDict: params.stateDict };
}

/** Renames attention keys to the names older VAE checkpoints use (`query`, `key`, `value`, `proj_attn`). */
export function withLegacyAttentionNames(stateDict: StateDict): StateDict {
  const renames: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };
  const out: StateDict = new Map();
  for (const [key, value] of stateDict) {
    const renamed = key.replace(/\.(to_q|to_k|to_v|to_out\.0)\./, (_, name: string) => `.${renames[name]}.`);
    out.set(renamed, value);
  }
  return out;
}
