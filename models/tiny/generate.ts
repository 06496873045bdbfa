// Writes a tiny SDXL-Lightning ONNX folder: the optimum layout and I/O contract (spec/lightning.md §6.2, §6.3), tiny compute.

import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { attr, createGraph, writeModel, type Attributes, type Dim, type GraphBuilder } from './onnx-writer.js';
import { writeTinySafetyClassifier, type TinySafetyOptions } from './safety-classifier.js';
import { buildSmallVocabulary, mergesFileText } from './vocabulary.js';

export type TinyModelOptions = {
  /** UNet step counts, each written as `unet_<n>step/` (default 1, 2, 4, 8). */
  steps?: readonly number[];
  /** Write one `unet/` instead (the 4-step epsilon graph; its config.json has no `lightning_steps`). */
  loneUnet?: boolean;
  /** Dtype of every float input and output of every model (default float32); compute stays float32 inside. */
  floatType?: 'float32' | 'float16';
  /** `input_ids` dtype of both text encoders (default int64, as optimum exports). */
  idsType?: 'int64' | 'int32';
  /** UNet `timestep` as a rank-0 scalar (optimum) or shape [1] (older exports); default scalar. */
  timestepShape?: 'scalar' | 'vector';
  /** text_encoder_2 and the UNets keep their initializers in `model.onnx_data` (default true). */
  externalData?: boolean;
  /** The image safety classifier in `safety_classifier/`: what it answers (default: every image safe, score 0.01), or false for none. */
  safety?: TinySafetyOptions | false;
};

export const DEFAULT_TINY_STEPS = [1, 2, 4, 8] as const;

/** The SDXL widths the tiny graphs keep (spec §1.2, §6.3). */
const TEXT_ENCODERS = {
  text_encoder: { width: 768, layers: 12, seed: 101 },
  text_encoder_2: { width: 1280, layers: 32, seed: 202 },
} as const;
const LATENT_CHANNELS = 4;
const CROSS_WIDTH = TEXT_ENCODERS.text_encoder.width + TEXT_ENCODERS.text_encoder_2.width;
const POOLED_WIDTH = TEXT_ENCODERS.text_encoder_2.width;
const TIME_IDS = 6;
const VAE_SCALE = 8;
const VAE_SCALING_FACTOR = 0.13025;
const EXTERNAL_DATA_FILE = 'model.onnx_data';

/**
 * Mulberry32, a 32-bit seeded generator for the tiny weights (never Math.random, so every folder is identical).
 * Reference: `createTinyRng(1).next()` is 0.6270739405881613.
 */
export function createTinyRng(seed: number): { next(): number; uniform(low: number, high: number): number } {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return { next, uniform: (low, high) => low + (high - low) * next() };
}

type Rng = ReturnType<typeof createTinyRng>;
type GraphOptions = Required<Omit<TinyModelOptions, 'steps' | 'loneUnet' | 'externalData' | 'safety'>>;

/**
 * Writes the whole folder into `dir` (created if missing): model_index.json, scheduler/, tokenizer/, tokenizer_2/,
 * text_encoder/, text_encoder_2/, `unet_<n>step/` per step count (or `unet/`), vae_decoder/ and safety_classifier/.
 */
export async function writeTinyModelFolder(dir: string, options: TinyModelOptions = {}): Promise<void> {
  const graphOptions: GraphOptions = {
    floatType: options.floatType ?? 'float32',
    idsType: options.idsType ?? 'int64',
    timestepShape: options.timestepShape ?? 'scalar',
  };
  const unets = options.loneUnet
    ? [{ folder: 'unet', steps: 4, lightning: false }]
    : (options.steps ?? DEFAULT_TINY_STEPS).map((steps) => ({ folder: `unet_${steps}step`, steps, lightning: true }));
  const invalid = unets.find((unet) => !Number.isInteger(unet.steps) || unet.steps < 1);
  if (invalid !== undefined) throw new RangeError(`step counts must be positive integers, got ${invalid.steps}`);
  const external = options.externalData ?? true ? { externalDataFile: EXTERNAL_DATA_FILE } : {};
  const vocabulary = buildSmallVocabulary();

  await writeJson(path.join(dir, 'model_index.json'), modelIndex());
  await writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), schedulerConfig());
  for (const [folder, padToken] of [
    ['tokenizer', '<|endoftext|>'],
    ['tokenizer_2', '!'],
  ] as const) {
    await writeJson(path.join(dir, folder, 'vocab.json'), vocabulary.vocab);
    await writeFile(path.join(dir, folder, 'merges.txt'), mergesFileText(vocabulary.merges));
    await writeJson(path.join(dir, folder, 'special_tokens_map.json'), specialTokensMap(padToken));
    await writeJson(path.join(dir, folder, 'tokenizer_config.json'), tokenizerConfig(padToken));
  }

  const vocabSize = Object.keys(vocabulary.vocab).length;
  await writeJson(path.join(dir, 'text_encoder', 'config.json'), textEncoderConfig('text_encoder', vocabSize));
  await writeModel(path.join(dir, 'text_encoder', 'model.onnx'), textEncoderGraph('text_encoder', graphOptions));
  await writeJson(path.join(dir, 'text_encoder_2', 'config.json'), textEncoderConfig('text_encoder_2', vocabSize));
  await writeModel(
    path.join(dir, 'text_encoder_2', 'model.onnx'),
    textEncoderGraph('text_encoder_2', graphOptions),
    external,
  );

  for (const unet of unets) {
    await writeJson(path.join(dir, unet.folder, 'config.json'), unetConfig(unet.lightning ? unet.steps : null));
    await writeModel(path.join(dir, unet.folder, 'model.onnx'), unetGraph(unet.steps, graphOptions), external);
  }

  await writeJson(path.join(dir, 'vae_decoder', 'config.json'), vaeConfig());
  await writeModel(path.join(dir, 'vae_decoder', 'model.onnx'), vaeDecoderGraph(graphOptions));

  const safety = options.safety ?? { score: 0.01 };
  if (safety !== false) await writeTinySafetyClassifier(dir, safety);
}

// --- graphs, opset 17: ReduceSum, Unsqueeze and Squeeze take `axes` as an input (ReduceMean only from opset 18) ---

/** Float inputs arrive in the I/O dtype and are cast to float32, since ORT's CPU EP lacks fp16 kernels for many ops. */
function floatInput(g: GraphBuilder, name: string, shape: readonly Dim[], options: GraphOptions): string {
  g.input(name, options.floatType, shape);
  return options.floatType === 'float32' ? name : g.op('Cast', [name], { to: attr.int(1) });
}

/**
 * Runs `opType` into the graph output `name` and returns the float32 value: the output itself, or (float16 I/O) the
 * value before the Cast that feeds the output. The caller declares the output, so it controls the output order.
 */
function floatResult(
  g: GraphBuilder,
  name: string,
  options: GraphOptions,
  opType: string,
  inputs: readonly string[],
  attributes: Attributes = {},
): string {
  if (options.floatType === 'float32') {
    g.node(opType, inputs, [name], attributes);
    return name;
  }
  const value = g.op(opType, inputs, attributes);
  g.node('Cast', [value], [name], { to: attr.int(10) });
  return value;
}

function vector(g: GraphBuilder, name: string, values: ArrayLike<number>, dims: readonly number[] = [values.length]): string {
  return g.initializer(name, 'float32', dims, Float32Array.from(values));
}

function randomVector(g: GraphBuilder, name: string, rng: Rng, length: number, low: number, high: number): string {
  return vector(g, name, Array.from({ length }, () => rng.uniform(low, high)));
}

function int64s(g: GraphBuilder, name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
  return g.initializer(name, 'int64', dims, BigInt64Array.from(values, (v) => BigInt(v)));
}

/** 0, 1, … n−1 as float32, where n is `axis` of `value`'s runtime shape. */
function positions(g: GraphBuilder, value: string, axis: number, prefix: string): string {
  const length = g.op('Gather', [g.op('Shape', [value]), int64s(g, `${prefix}.axis`, [axis], [])], { axis: attr.int(0) });
  const zero = vector(g, `${prefix}.start`, [0], []);
  const one = vector(g, `${prefix}.delta`, [1], []);
  return g.op('Range', [zero, g.op('Cast', [length], { to: attr.int(1) }), one]);
}

/**
 * Weights (1 − ρ)·ρ^pos for positions `pos` [S], as [S, 1]: a summary over the sequence that favours its start,
 * where the prompt's tokens sit, yet still sees the padding after them.
 */
function decayingWeights(g: GraphBuilder, pos: string, prefix: string, rho: number): string {
  const decay = g.op('Exp', [g.op('Mul', [pos, vector(g, `${prefix}.log_rho`, [Math.log(rho)], [])])]);
  const weights = g.op('Mul', [decay, vector(g, `${prefix}.one_minus_rho`, [1 - rho], [])]);
  return g.op('Unsqueeze', [weights, int64s(g, `${prefix}.axes`, [1])]);
}

/**
 * A CLIP-shaped text encoder with no attention: h0 = sin(id·a + pos·b + c); each layer
 * h' = tanh(h·w + summary(h)·u + h0·s + v), where summary is a sum over the sequence weighted towards its start, so
 * every position sees every id (pad ids included), the embedding keeps reaching deep layers, and every hidden state
 * differs. `last_hidden_state` is a LayerNorm of the last one; the pooled output is that LayerNorm at the first
 * position of the largest id (transformers' argmax pooling, spec §1.2), times a per-channel vector.
 */
function textEncoderGraph(name: keyof typeof TEXT_ENCODERS, options: GraphOptions): GraphBuilder {
  const { width, layers, seed } = TEXT_ENCODERS[name];
  const rng = createTinyRng(seed);
  const g = createGraph(name);
  const float = options.floatType;
  const seq: Dim[] = ['batch_size', 'sequence_length', width];

  const ids = g.input('input_ids', options.idsType, ['batch_size', 'sequence_length']);
  const idsFloat = g.op('Cast', [ids], { to: attr.int(1) });
  const idColumn = g.op('Unsqueeze', [idsFloat, int64s(g, 'axes.2', [2])]);
  const pos = positions(g, ids, 1, 'position');
  const posColumn = g.op('Unsqueeze', [pos, int64s(g, 'axes.1', [1])]);
  const idPhase = g.op('Mul', [idColumn, randomVector(g, 'embed.id_frequency', rng, width, 0.05, 0.5)]);
  const posPhase = g.op('Mul', [posColumn, randomVector(g, 'embed.position_frequency', rng, width, 0.05, 0.5)]);
  const phase = g.op('Add', [g.op('Add', [idPhase, posPhase]), randomVector(g, 'embed.phase', rng, width, -Math.PI, Math.PI)]);

  const hidden = [floatResult(g, 'hidden_states.0', options, 'Sin', [phase])];
  const summaryWeights = decayingWeights(g, pos, 'summary', 0.9);
  const sumAxes = int64s(g, 'summary.sum_axes', [1]);
  const sign = (): number => (rng.next() < 0.5 ? -1 : 1);
  const signed = (low: number, high: number): number[] => Array.from({ length: width }, () => sign() * rng.uniform(low, high));
  for (let k = 0; k < layers; k++) {
    const h = hidden[k];
    const summary = g.op('ReduceSum', [g.op('Mul', [h, summaryWeights]), sumAxes], { keepdims: attr.int(1) });
    const terms = [
      g.op('Mul', [h, vector(g, `layers.${k}.w`, signed(0.5, 1))]),
      g.op('Mul', [summary, vector(g, `layers.${k}.u`, signed(0.5, 1))]),
      g.op('Mul', [hidden[0], vector(g, `layers.${k}.s`, signed(0.5, 1))]),
      randomVector(g, `layers.${k}.v`, rng, width, -0.2, 0.2),
    ];
    const mixed = terms.slice(1).reduce((sum, term) => g.op('Add', [sum, term]), terms[0]);
    hidden.push(floatResult(g, `hidden_states.${k + 1}`, options, 'Tanh', [mixed]));
  }

  const gamma = randomVector(g, 'final_layer_norm.weight', rng, width, 0.8, 1.2);
  const beta = randomVector(g, 'final_layer_norm.bias', rng, width, -0.1, 0.1);
  const normed = floatResult(g, 'last_hidden_state', options, 'LayerNormalization', [hidden[layers], gamma, beta], {
    axis: attr.int(-1),
    epsilon: attr.float(1e-5),
  });

  const eosIndex = g.op('Cast', [g.op('ArgMax', [idsFloat], { axis: attr.int(1), keepdims: attr.int(1) })], { to: attr.int(1) });
  const eosMask = g.op('Cast', [g.op('Equal', [pos, eosIndex])], { to: attr.int(1) });
  const eosRow = g.op('MatMul', [g.op('Unsqueeze', [eosMask, int64s(g, 'axes.1b', [1])]), normed]);
  const pooled = g.op('Squeeze', [eosRow, int64s(g, 'axes.1c', [1])]);
  const projection = randomVector(g, 'projection', rng, width, 0.5, 1.5);
  const pooledName = name === 'text_encoder' ? 'pooler_output' : 'text_embeds';
  floatResult(g, pooledName, options, 'Mul', [pooled, projection]);

  // output order as optimum writes it (spec §1.2)
  const pooledOutput = (): void => void g.output(pooledName, float, ['batch_size', width]);
  if (name === 'text_encoder_2') pooledOutput();
  g.output('last_hidden_state', float, seq);
  if (name === 'text_encoder') pooledOutput();
  for (let k = 0; k <= layers; k++) g.output(`hidden_states.${k}`, float, seq);
  return g;
}

/** How each step count's UNet weighs its terms; 1 step predicts the clean latent, the rest noise (spec §0). */
function unetGains(steps: number): { sample: number; condition: number } {
  // An epsilon output ≈ the scaled input makes the Euler steps shrink the noise to ≈0.25–0.45 of unit, and they carry
  // the conditioning into the final latent about 2–4× amplified, hence 0.08. The x0 model's output is the final latent
  // itself, ≈0.3 (≈2 after ÷0.13025, where the tiny VAE is not saturated). Measured in test/unit/models/tiny.test.ts.
  return steps === 1 ? { sample: 0.2, condition: 0.1 } : { sample: 1, condition: 0.08 };
}

/**
 * A UNet-shaped graph: out = gain·Conv1x1(sample) + condition, where condition [B,4] sums sin(timestep·f),
 * encoder_hidden_states·W [2048×4] summed over the sequence with weights favouring its start, text_embeds·W [1280×4]
 * and sin(time_ids·g)·W [6×4] (a different frequency and weight per time_ids position). W has no structure, so the
 * two encoders' halves and their order matter. Every step count gets its own constants.
 */
function unetGraph(steps: number, options: GraphOptions): GraphBuilder {
  const rng = createTinyRng(1000 + steps);
  const gains = unetGains(steps);
  const g = createGraph(`unet_${steps}step`);
  const spatial: Dim[] = ['batch_size', LATENT_CHANNELS, 'height', 'width'];

  const sample = floatInput(g, 'sample', spatial, options);
  const timestep = floatInput(g, 'timestep', options.timestepShape === 'scalar' ? [] : [1], options);
  const context = floatInput(g, 'encoder_hidden_states', ['batch_size', 'sequence_length', CROSS_WIDTH], options);
  const textEmbeds = floatInput(g, 'text_embeds', ['batch_size', POOLED_WIDTH], options);
  const timeIds = floatInput(g, 'time_ids', ['batch_size', TIME_IDS], options);

  const mixing = Array.from({ length: LATENT_CHANNELS * LATENT_CHANNELS }, (_, i) =>
    gains.sample * ((i % (LATENT_CHANNELS + 1) === 0 ? 1 : 0) + rng.uniform(-0.05, 0.05)),
  );
  const mixingWeight = vector(g, 'conv_in.weight', mixing, [LATENT_CHANNELS, LATENT_CHANNELS, 1, 1]);
  const mixingBias = randomVector(g, 'conv_in.bias', rng, LATENT_CHANNELS, -0.02, 0.02);
  const mixed = g.op('Conv', [sample, mixingWeight, mixingBias], { kernel_shape: attr.ints([1, 1]) });

  const c = gains.condition;
  const matrix = (name: string, rows: number, scale: number): string =>
    vector(g, name, Array.from({ length: rows * LATENT_CHANNELS }, () => rng.uniform(-scale, scale)), [rows, LATENT_CHANNELS]);

  const timePhase = g.op('Add', [
    g.op('Mul', [timestep, randomVector(g, 'time.frequency', rng, LATENT_CHANNELS, 0.002, 0.02)]),
    randomVector(g, 'time.phase', rng, LATENT_CHANNELS, -Math.PI, Math.PI),
  ]);
  const timeTerm = g.op('Mul', [g.op('Sin', [timePhase]), vector(g, 'time.scale', [c, -c, c, -c])]);

  const contextProjected = g.op('MatMul', [context, matrix('context.weight', CROSS_WIDTH, (5 * c) / Math.sqrt(CROSS_WIDTH))]);
  const contextWeights = decayingWeights(g, positions(g, context, 1, 'context.position'), 'context', 0.9);
  const contextTerm = g.op('ReduceSum', [g.op('Mul', [contextProjected, contextWeights]), int64s(g, 'context.sum_axes', [1])], {
    keepdims: attr.int(0),
  });

  const textTerm = g.op('MatMul', [textEmbeds, matrix('text_embeds.weight', POOLED_WIDTH, (1.5 * c) / Math.sqrt(POOLED_WIDTH))]);

  const timeIdsPhase = g.op('Add', [
    g.op('Mul', [timeIds, randomVector(g, 'time_ids.frequency', rng, TIME_IDS, 0.01, 0.05)]),
    randomVector(g, 'time_ids.phase', rng, TIME_IDS, -Math.PI, Math.PI),
  ]);
  // no weight near zero, so each of the six values (order: height, width, crop top, crop left, height, width) counts
  const timeIdsWeight = Array.from({ length: TIME_IDS * LATENT_CHANNELS }, () => (rng.next() < 0.5 ? -c : c) * rng.uniform(0.5, 1.5));
  const timeIdsMatrix = vector(g, 'time_ids.weight', timeIdsWeight, [TIME_IDS, LATENT_CHANNELS]);
  const timeIdsTerm = g.op('MatMul', [g.op('Sin', [timeIdsPhase]), timeIdsMatrix]);

  const condition = g.op('Add', [g.op('Add', [g.op('Add', [timeTerm, contextTerm]), textTerm]), timeIdsTerm]);
  const conditionMap = g.op('Unsqueeze', [condition, int64s(g, 'axes.2_3', [2, 3])]);
  floatResult(g, 'out_sample', options, 'Add', [mixed, conditionMap]);
  g.output('out_sample', options.floatType, spatial);
  return g;
}

/**
 * A VAE-decoder-shaped graph: a 1×1 Conv 4→192, DepthToSpace 8 (each latent pixel becomes an 8×8 RGB block whose
 * pixels all weigh the latent differently), then tanh so inputs of magnitude ≈1–4 land mostly inside (−1, 1).
 */
function vaeDecoderGraph(options: GraphOptions): GraphBuilder {
  const rng = createTinyRng(3000);
  const g = createGraph('vae_decoder');
  const outChannels = 3 * VAE_SCALE * VAE_SCALE;
  const latent = floatInput(g, 'latent_sample', ['batch_size', LATENT_CHANNELS, 'latent_height', 'latent_width'], options);
  const weight = vector(
    g,
    'conv.weight',
    Array.from({ length: outChannels * LATENT_CHANNELS }, () => rng.uniform(-0.15, 0.15)),
    [outChannels, LATENT_CHANNELS, 1, 1],
  );
  const bias = randomVector(g, 'conv.bias', rng, outChannels, -0.1, 0.1);
  const conv = g.op('Conv', [latent, weight, bias], { kernel_shape: attr.ints([1, 1]) });
  const image = g.op('DepthToSpace', [conv], { blocksize: attr.int(VAE_SCALE), mode: attr.string('DCR') });
  floatResult(g, 'sample', options, 'Tanh', [image]);
  g.output('sample', options.floatType, ['batch_size', 3, 'latent_height * 8', 'latent_width * 8']);
  return g;
}

// --- JSON files, shaped like the SDXL base repository's ---

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

const DIFFUSERS_VERSION = '0.27.2';
const TRANSFORMERS_VERSION = '4.40.0';

function modelIndex(): Record<string, unknown> {
  return {
    _class_name: 'StableDiffusionXLPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    force_zeros_for_empty_prompt: true,
    scheduler: ['diffusers', 'EulerDiscreteScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'],
    text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    tokenizer_2: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  };
}

/** SDXL base's scheduler with Lightning's trailing spacing (spec §3). */
function schedulerConfig(): Record<string, unknown> {
  return {
    _class_name: 'EulerDiscreteScheduler',
    _diffusers_version: DIFFUSERS_VERSION,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    clip_sample: false,
    interpolation_type: 'linear',
    num_train_timesteps: 1000,
    prediction_type: 'epsilon',
    sample_max_value: 1.0,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    timestep_spacing: 'trailing',
    trained_betas: null,
    use_karras_sigmas: false,
  };
}

function addedToken(content: string): Record<string, unknown> {
  return { content, lstrip: false, normalized: true, rstrip: false, single_word: false };
}

function specialTokensMap(padToken: string): Record<string, unknown> {
  return {
    bos_token: addedToken('<|startoftext|>'),
    eos_token: addedToken('<|endoftext|>'),
    pad_token: padToken,
    unk_token: addedToken('<|endoftext|>'),
  };
}

function tokenizerConfig(padToken: string): Record<string, unknown> {
  const token = (content: string): Record<string, unknown> => ({ __type: 'AddedToken', ...addedToken(content) });
  return {
    add_prefix_space: false,
    bos_token: token('<|startoftext|>'),
    clean_up_tokenization_spaces: true,
    do_lower_case: true,
    eos_token: token('<|endoftext|>'),
    errors: 'replace',
    model_max_length: 77,
    pad_token: padToken,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: token('<|endoftext|>'),
  };
}

function textEncoderConfig(name: keyof typeof TEXT_ENCODERS, vocabSize: number): Record<string, unknown> {
  const { width, layers } = TEXT_ENCODERS[name];
  const bigG = name === 'text_encoder_2';
  return {
    architectures: [bigG ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'],
    attention_dropout: 0.0,
    bos_token_id: 0,
    dropout: 0.0,
    eos_token_id: 2,
    hidden_act: bigG ? 'gelu' : 'quick_gelu',
    hidden_size: width,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    intermediate_size: width * 4,
    layer_norm_eps: 1e-5,
    max_position_embeddings: 77,
    model_type: 'clip_text_model',
    num_attention_heads: bigG ? 20 : 12,
    num_hidden_layers: layers,
    pad_token_id: 1,
    projection_dim: bigG ? 1280 : 768,
    torch_dtype: 'float32',
    transformers_version: TRANSFORMERS_VERSION,
    vocab_size: vocabSize,
  };
}

/** `lightningSteps: null` is a plain `unet/` folder, whose step count and prediction type the config does not say. */
function unetConfig(lightningSteps: number | null): Record<string, unknown> {
  const config: Record<string, unknown> = {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: DIFFUSERS_VERSION,
    addition_embed_type: 'text_time',
    cross_attention_dim: CROSS_WIDTH,
    in_channels: LATENT_CHANNELS,
    out_channels: LATENT_CHANNELS,
    projection_class_embeddings_input_dim: 2816,
    sample_size: 128,
    time_cond_proj_dim: null,
  };
  if (lightningSteps !== null) {
    config.lightning_steps = lightningSteps;
    config.prediction_type = lightningSteps === 1 ? 'sample' : 'epsilon';
  }
  return config;
}

function vaeConfig(): Record<string, unknown> {
  return {
    _class_name: 'AutoencoderKL',
    _diffusers_version: DIFFUSERS_VERSION,
    act_fn: 'silu',
    block_out_channels: [128, 256, 512, 512],
    force_upcast: true,
    in_channels: 3,
    latent_channels: LATENT_CHANNELS,
    out_channels: 3,
    sample_size: 1024,
    scaling_factor: VAE_SCALING_FACTOR,
  };
}
