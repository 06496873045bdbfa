import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTinyRng, writeTinyModelFolder } from '../../../models/tiny/generate.js';
import { attr, createGraph, writeModel } from '../../../models/tiny/onnx-writer.js';
import {
  ClipTokenizer,
  eulerStep,
  float16ToFloat32,
  float32ToFloat16,
  lightningSchedule,
  scaleModelInput,
  torchRandn,
} from '../../../src/diffusion/index.js';

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: 2,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

let root: string;
let generationMs: number;
const folders = {
  plain: '',
  /** float16 I/O, int32 ids, timestep [1] */
  variant: '',
  /** one `unet/`, no external data */
  lone: '',
};
const sessions = new Map<string, ort.InferenceSession>();

async function session(folder: string, model: string): Promise<ort.InferenceSession> {
  const file = path.join(folder, model, 'model.onnx');
  let opened = sessions.get(file);
  if (opened === undefined) {
    opened = await ort.InferenceSession.create(file, SESSION_OPTIONS);
    sessions.set(file, opened);
  }
  return opened;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-models-'));
  folders.plain = path.join(root, 'plain');
  folders.variant = path.join(root, 'variant');
  folders.lone = path.join(root, 'lone');
  const started = performance.now();
  await writeTinyModelFolder(folders.plain);
  generationMs = performance.now() - started;
  await writeTinyModelFolder(folders.variant, { floatType: 'float16', idsType: 'int32', timestepShape: 'vector' });
  await writeTinyModelFolder(folders.lone, { loneUnet: true, externalData: false });
});

afterAll(async () => {
  for (const opened of sessions.values()) await opened.release();
  if (root !== undefined) fs.rmSync(root, { recursive: true, force: true });
});

function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

const readJson = (file: string): Record<string, unknown> => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

const f32 = (data: ArrayLike<number>, dims: readonly number[]): ort.Tensor =>
  new ort.Tensor('float32', Float32Array.from(data), dims);
const i64 = (data: readonly number[], dims: readonly number[]): ort.Tensor =>
  new ort.Tensor('int64', BigInt64Array.from(data, (v) => BigInt(v)), dims);

/** A deterministic float32 array in [−scale, scale]. */
function noise(length: number, seed: number, scale = 1): Float32Array {
  const rng = createTinyRng(seed);
  return Float32Array.from({ length }, () => rng.uniform(-scale, scale));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

const floats = (tensor: ort.Tensor): Float32Array => tensor.data as Float32Array;

const hidden = (width: number, layers: number): { name: string; isTensor: true; type: string; shape: (string | number)[] }[] =>
  Array.from({ length: layers + 1 }, (_, k) => ({
    name: `hidden_states.${k}`,
    isTensor: true,
    type: 'float32',
    shape: ['batch_size', 'sequence_length', width],
  }));

describe('writeTinyModelFolder', () => {
  it('writes the optimum layout, small and fast', () => {
    const steps = [1, 2, 4, 8].flatMap((n) =>
      ['config.json', 'model.onnx', 'model.onnx_data'].map((file) => `unet_${n}step/${file}`),
    );
    const tokenizer = (name: string): string[] =>
      ['merges.txt', 'special_tokens_map.json', 'tokenizer_config.json', 'vocab.json'].map((file) => `${name}/${file}`);
    expect(filesUnder(folders.plain)).toEqual(
      [
        'model_index.json',
        'scheduler/scheduler_config.json',
        ...tokenizer('tokenizer'),
        ...tokenizer('tokenizer_2'),
        'text_encoder/config.json',
        'text_encoder/model.onnx',
        'text_encoder_2/config.json',
        'text_encoder_2/model.onnx',
        'text_encoder_2/model.onnx_data',
        ...steps,
        'vae_decoder/config.json',
        'vae_decoder/model.onnx',
        'safety_classifier/config.json',
        'safety_classifier/model.onnx',
        'safety_classifier/preprocessor_config.json',
      ].sort(),
    );
    const bytes = filesUnder(folders.plain).reduce((sum, file) => sum + fs.statSync(path.join(folders.plain, file)).size, 0);
    console.log(`tiny folder: ${(bytes / 1e6).toFixed(2)} MB written in ${generationMs.toFixed(0)} ms`);
    expect(bytes).toBeLessThan(5e6);
    expect(generationMs).toBeLessThan(2000);
  });

  it('writes the same bytes every time', async () => {
    const again = path.join(root, 'again');
    await writeTinyModelFolder(again);
    const digest = (dir: string): string[] =>
      filesUnder(dir).map((file) => `${file} ${createHash('sha256').update(fs.readFileSync(path.join(dir, file))).digest('hex')}`);
    expect(digest(again)).toEqual(digest(folders.plain));
  });

  it('writes configs for the scheduler, the step-specific UNets and the VAE', () => {
    const scheduler = readJson(path.join(folders.plain, 'scheduler/scheduler_config.json'));
    expect(scheduler).toMatchObject({
      _class_name: 'EulerDiscreteScheduler',
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      beta_end: 0.012,
      num_train_timesteps: 1000,
      timestep_spacing: 'trailing',
      prediction_type: 'epsilon',
    });
    expect(readJson(path.join(folders.plain, 'model_index.json'))._class_name).toBe('StableDiffusionXLPipeline');
    for (const n of [1, 2, 4, 8]) {
      expect(readJson(path.join(folders.plain, `unet_${n}step/config.json`))).toMatchObject({
        _class_name: 'UNet2DConditionModel',
        sample_size: 128,
        in_channels: 4,
        out_channels: 4,
        lightning_steps: n,
        prediction_type: n === 1 ? 'sample' : 'epsilon',
      });
    }
    expect(readJson(path.join(folders.plain, 'vae_decoder/config.json'))).toMatchObject({
      _class_name: 'AutoencoderKL',
      scaling_factor: 0.13025,
      latent_channels: 4,
      block_out_channels: [128, 256, 512, 512],
    });
    expect(readJson(path.join(folders.plain, 'text_encoder/config.json'))).toMatchObject({ hidden_size: 768, num_hidden_layers: 12 });
    expect(readJson(path.join(folders.plain, 'text_encoder_2/config.json'))).toMatchObject({
      architectures: ['CLIPTextModelWithProjection'],
      hidden_size: 1280,
      projection_dim: 1280,
      num_hidden_layers: 32,
    });
  });

  it('writes tokenizer folders the CLIP tokenizer reads, padding with eos and with "!"', () => {
    const open = (name: string): ClipTokenizer =>
      ClipTokenizer.fromFiles(path.join(folders.plain, name, 'vocab.json'), path.join(folders.plain, name, 'merges.txt'));
    const first = open('tokenizer');
    const second = open('tokenizer_2');
    expect(first.padTokenId).toBe(first.eosTokenId);
    expect(second.padTokenId).toBe(0);
    const ids = first.encode('a photo of a cat');
    expect(ids).toHaveLength(77);
    expect(ids.slice(0, 7)).toEqual([first.bosTokenId, ...first.tokenize('a photo of a cat'), first.eosTokenId]);
    expect(first.tokenize('a photo of a cat')).toHaveLength(5);
    for (const name of ['tokenizer', 'tokenizer_2']) {
      expect(readJson(path.join(folders.plain, name, 'tokenizer_config.json'))).toMatchObject({
        model_max_length: 77,
        pad_token: name === 'tokenizer' ? '<|endoftext|>' : '!',
      });
    }
  });

  it('lone UNet: a single unet/ whose config names no step count, every initializer inline', async () => {
    const files = filesUnder(folders.lone);
    expect(files.filter((file) => file.startsWith('unet'))).toEqual(['unet/config.json', 'unet/model.onnx']);
    expect(files.some((file) => file.endsWith('.onnx_data'))).toBe(false);
    const config = readJson(path.join(folders.lone, 'unet/config.json'));
    expect(config._class_name).toBe('UNet2DConditionModel');
    expect(config).not.toHaveProperty('lightning_steps');
    expect(config).not.toHaveProperty('prediction_type');
    // the same graph as the 4-step file
    const feeds = unetFeeds(1, 8, 8, 7);
    const lone = await (await session(folders.lone, 'unet')).run(feeds);
    const four = await (await session(folders.plain, 'unet_4step')).run(feeds);
    expect(maxAbsDiff(floats(lone.out_sample), floats(four.out_sample))).toBe(0);
  });

  it('keeps external data beside the model, which loads by path only', async () => {
    for (const model of ['text_encoder_2', 'unet_1step', 'unet_2step', 'unet_4step', 'unet_8step']) {
      const dir = path.join(folders.plain, model);
      const data = fs.statSync(path.join(dir, 'model.onnx_data')).size;
      expect(data).toBeGreaterThan(fs.statSync(path.join(dir, 'model.onnx')).size);
      await expect(session(folders.plain, model)).resolves.toBeDefined();
    }
    for (const model of ['text_encoder', 'vae_decoder']) {
      expect(fs.existsSync(path.join(folders.plain, model, 'model.onnx_data'))).toBe(false);
    }
    // from a buffer the weights cannot be found: proof they are not inline
    const buffer = fs.readFileSync(path.join(folders.plain, 'unet_4step/model.onnx'));
    await expect(ort.InferenceSession.create(buffer, SESSION_OPTIONS)).rejects.toThrow();
  });

  it('rng: reproduces the mulberry32 reference value', () => {
    expect(createTinyRng(1).next()).toBe(0.6270739405881613);
  });
});

describe('model metadata (what onnxruntime-node reports)', () => {
  it('text_encoder', async () => {
    const te = await session(folders.plain, 'text_encoder');
    expect(te.inputNames).toEqual(['input_ids']);
    expect(te.outputNames).toEqual(['last_hidden_state', 'pooler_output', ...hidden(768, 12).map((h) => h.name)]);
    expect(te.inputMetadata).toEqual([
      { name: 'input_ids', isTensor: true, type: 'int64', shape: ['batch_size', 'sequence_length'] },
    ]);
    expect(te.outputMetadata).toEqual([
      { name: 'last_hidden_state', isTensor: true, type: 'float32', shape: ['batch_size', 'sequence_length', 768] },
      { name: 'pooler_output', isTensor: true, type: 'float32', shape: ['batch_size', 768] },
      ...hidden(768, 12),
    ]);
  });

  it('text_encoder_2', async () => {
    const te = await session(folders.plain, 'text_encoder_2');
    expect(te.inputNames).toEqual(['input_ids']);
    expect(te.outputMetadata).toEqual([
      { name: 'text_embeds', isTensor: true, type: 'float32', shape: ['batch_size', 1280] },
      { name: 'last_hidden_state', isTensor: true, type: 'float32', shape: ['batch_size', 'sequence_length', 1280] },
      ...hidden(1280, 32),
    ]);
  });

  it('unet', async () => {
    for (const n of [1, 2, 4, 8]) {
      const unet = await session(folders.plain, `unet_${n}step`);
      expect(unet.inputMetadata).toEqual([
        { name: 'sample', isTensor: true, type: 'float32', shape: ['batch_size', 4, 'height', 'width'] },
        { name: 'timestep', isTensor: true, type: 'float32', shape: [] },
        { name: 'encoder_hidden_states', isTensor: true, type: 'float32', shape: ['batch_size', 'sequence_length', 2048] },
        { name: 'text_embeds', isTensor: true, type: 'float32', shape: ['batch_size', 1280] },
        { name: 'time_ids', isTensor: true, type: 'float32', shape: ['batch_size', 6] },
      ]);
      expect(unet.outputMetadata).toEqual([
        { name: 'out_sample', isTensor: true, type: 'float32', shape: ['batch_size', 4, 'height', 'width'] },
      ]);
    }
  });

  it('vae_decoder', async () => {
    const vae = await session(folders.plain, 'vae_decoder');
    expect(vae.inputMetadata).toEqual([
      { name: 'latent_sample', isTensor: true, type: 'float32', shape: ['batch_size', 4, 'latent_height', 'latent_width'] },
    ]);
    expect(vae.outputMetadata).toEqual([
      { name: 'sample', isTensor: true, type: 'float32', shape: ['batch_size', 3, 'latent_height * 8', 'latent_width * 8'] },
    ]);
  });

  it('float16 / int32 / vector-timestep variant', async () => {
    const te = await session(folders.variant, 'text_encoder');
    expect(te.inputMetadata[0]).toEqual({
      name: 'input_ids',
      isTensor: true,
      type: 'int32',
      shape: ['batch_size', 'sequence_length'],
    });
    expect(new Set(te.outputMetadata.map((m) => (m.isTensor ? m.type : 'not a tensor')))).toEqual(new Set(['float16']));
    const te2 = await session(folders.variant, 'text_encoder_2');
    expect(te2.inputMetadata[0]).toMatchObject({ type: 'int32' });
    expect(new Set(te2.outputMetadata.map((m) => (m.isTensor ? m.type : 'not a tensor')))).toEqual(new Set(['float16']));
    const unet = await session(folders.variant, 'unet_4step');
    expect(unet.inputMetadata.map((m) => (m.isTensor ? [m.name, m.type, m.shape] : m.name))).toEqual([
      ['sample', 'float16', ['batch_size', 4, 'height', 'width']],
      ['timestep', 'float16', [1]],
      ['encoder_hidden_states', 'float16', ['batch_size', 'sequence_length', 2048]],
      ['text_embeds', 'float16', ['batch_size', 1280]],
      ['time_ids', 'float16', ['batch_size', 6]],
    ]);
    expect(unet.outputMetadata[0]).toMatchObject({ name: 'out_sample', type: 'float16' });
    const vae = await session(folders.variant, 'vae_decoder');
    expect(vae.inputMetadata[0]).toMatchObject({ type: 'float16' });
    expect(vae.outputMetadata[0]).toMatchObject({ type: 'float16' });
  });

  it('cannot tell a rank-0 input from one of unknown rank: both report shape []', async () => {
    const g = createGraph('ranks');
    g.input('scalar', 'float32', []);
    g.input('unknown', 'float32', null);
    g.node('Add', ['scalar', 'unknown'], ['sum']);
    g.output('sum', 'float32', null);
    const file = path.join(root, 'ranks', 'model.onnx');
    await writeModel(file, g);
    const ranks = await ort.InferenceSession.create(file, SESSION_OPTIONS);
    expect(ranks.inputMetadata.map((m) => (m.isTensor ? m.shape : null))).toEqual([[], []]);
    await ranks.release();
  });
});

describe('text encoders', () => {
  const length = 77;
  /** Two rows: a short prompt padded with `pad`, and a different prompt. */
  const ids = (pad: number, eos = 600): number[] => {
    const row = (tokens: number[]): number[] => [...tokens, eos, ...new Array<number>(length - tokens.length - 1).fill(pad)];
    return [...row([598, 5, 300, 41]), ...row([598, 77, 12, 300, 9, 150])];
  };

  it('gives 13 distinct hidden states, a final LayerNorm and a pooled output that all depend on the ids', async () => {
    const te = await session(folders.plain, 'text_encoder');
    const out = await te.run({ input_ids: i64(ids(600), [2, length]) });
    expect(out.last_hidden_state.dims).toEqual([2, length, 768]);
    expect(out.pooler_output.dims).toEqual([2, 768]);
    for (let k = 0; k <= 12; k++) expect(out[`hidden_states.${k}`].dims).toEqual([2, length, 768]);
    for (let k = 0; k < 12; k++) {
      expect(maxAbsDiff(floats(out[`hidden_states.${k}`]), floats(out[`hidden_states.${k + 1}`]))).toBeGreaterThan(0.5);
    }
    expect(maxAbsDiff(floats(out.last_hidden_state), floats(out['hidden_states.12']))).toBeGreaterThan(0.5);
    const rows = (tensor: ort.Tensor): [Float32Array, Float32Array] => {
      const data = floats(tensor);
      return [data.subarray(0, data.length / 2), data.subarray(data.length / 2)];
    };
    for (const name of ['hidden_states.11', 'pooler_output']) {
      const [a, b] = rows(out[name]);
      expect(meanAbsDiff(a, b), name).toBeGreaterThan(0.01);
    }
  });

  it('text_encoder_2: every position sees the pad id, and text_embeds depends on the prompt', async () => {
    const te = await session(folders.plain, 'text_encoder_2');
    const padEos = await te.run({ input_ids: i64(ids(600), [2, length]) });
    const padBang = await te.run({ input_ids: i64(ids(0), [2, length]) });
    expect(padEos.text_embeds.dims).toEqual([2, 1280]);
    expect(padEos['hidden_states.32'].dims).toEqual([2, length, 1280]);
    expect(maxAbsDiff(floats(padEos['hidden_states.31']), floats(padEos['hidden_states.32']))).toBeGreaterThan(0.5);
    // position 1 holds the same token in both, yet changes with the padding after the prompt
    const position1 = (tensor: ort.Tensor): Float32Array => floats(tensor).subarray(1280, 2560);
    expect(meanAbsDiff(position1(padEos['hidden_states.31']), position1(padBang['hidden_states.31']))).toBeGreaterThan(1e-3);
    expect(meanAbsDiff(floats(padEos.text_embeds), floats(padBang.text_embeds))).toBeGreaterThan(1e-3);
    const embeds = floats(padBang.text_embeds);
    expect(meanAbsDiff(embeds.subarray(0, 1280), embeds.subarray(1280))).toBeGreaterThan(0.05);
  });

  it('runs with int32 ids and float16 outputs, matching the int64 / float32 graph', async () => {
    const plain = await (await session(folders.plain, 'text_encoder_2')).run({ input_ids: i64(ids(0), [2, length]) });
    const variant = await (await session(folders.variant, 'text_encoder_2')).run({
      input_ids: new ort.Tensor('int32', Int32Array.from(ids(0)), [2, length]),
    });
    for (const name of ['text_embeds', 'hidden_states.31']) {
      expect(variant[name].type).toBe('float16');
      expect(variant[name].data).toBeInstanceOf(Uint16Array);
      const widened = float16ToFloat32(variant[name].data as Uint16Array);
      expect(maxAbsDiff(widened, floats(plain[name]))).toBeLessThan(5e-3);
    }
  });

  it('takes any sequence length', async () => {
    const out = await (await session(folders.plain, 'text_encoder')).run({ input_ids: i64([598, 5, 600], [1, 3]) });
    expect(out['hidden_states.11'].dims).toEqual([1, 3, 768]);
    expect(out.pooler_output.dims).toEqual([1, 768]);
  });
});

/** UNet feeds of batch `batch` and `h`×`w` latents, deterministic from `seed`. */
function unetFeeds(batch: number, h: number, w: number, seed: number): Record<string, ort.Tensor> {
  return {
    sample: f32(noise(batch * 4 * h * w, seed), [batch, 4, h, w]),
    timestep: f32([999], []),
    encoder_hidden_states: f32(noise(batch * 77 * 2048, seed + 1, 0.8), [batch, 77, 2048]),
    text_embeds: f32(noise(batch * 1280, seed + 2, 1.5), [batch, 1280]),
    time_ids: f32(Array.from({ length: batch }, () => [h * 8, w * 8, 0, 0, h * 8, w * 8]).flat(), [batch, 6]),
  };
}

describe('unet', () => {
  const [batch, h, w] = [2, 16, 12];

  it('returns out_sample of the sample shape, with unit-scale epsilon and smaller x0 outputs', async () => {
    const feeds = unetFeeds(batch, h, w, 1);
    const rms = (a: Float32Array): number => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    const eps = await (await session(folders.plain, 'unet_4step')).run(feeds);
    expect(eps.out_sample.dims).toEqual([batch, 4, h, w]);
    expect(rms(floats(eps.out_sample))).toBeGreaterThan(0.4);
    expect(rms(floats(eps.out_sample))).toBeLessThan(1.2);
    const x0 = await (await session(folders.plain, 'unet_1step')).run(feeds);
    expect(rms(floats(x0.out_sample))).toBeGreaterThan(0.1);
    expect(rms(floats(x0.out_sample))).toBeLessThan(0.6);
  });

  it('changes its output when any single input changes', async () => {
    const unet = await session(folders.plain, 'unet_4step');
    const feeds = unetFeeds(batch, h, w, 2);
    const base = floats((await unet.run(feeds)).out_sample);
    const context = floats(feeds.encoder_hidden_states);
    const swappedHalves = new Float32Array(context.length);
    for (let row = 0; row < batch * 77; row++) {
      const offset = row * 2048;
      swappedHalves.set(context.subarray(offset + 768, offset + 2048), offset);
      swappedHalves.set(context.subarray(offset, offset + 768), offset + 1280);
    }
    const changed: Record<string, Record<string, ort.Tensor>> = {
      sample: { sample: f32(noise(batch * 4 * h * w, 99), [batch, 4, h, w]) },
      timestep: { timestep: f32([749], []) },
      encoder_hidden_states: { encoder_hidden_states: f32(noise(context.length, 98, 0.8), [batch, 77, 2048]) },
      'encoder_hidden_states halves swapped': { encoder_hidden_states: f32(swappedHalves, [batch, 77, 2048]) },
      text_embeds: { text_embeds: f32(noise(batch * 1280, 97, 1.5), [batch, 1280]) },
      'time_ids width and height swapped': {
        time_ids: f32(Array.from({ length: batch }, () => [w * 8, h * 8, 0, 0, w * 8, h * 8]).flat(), [batch, 6]),
      },
      'time_ids crop': {
        time_ids: f32(Array.from({ length: batch }, () => [h * 8, w * 8, 64, 0, h * 8, w * 8]).flat(), [batch, 6]),
      },
    };
    for (const [what, change] of Object.entries(changed)) {
      const out = floats((await unet.run({ ...feeds, ...change })).out_sample);
      expect(meanAbsDiff(out, base), what).toBeGreaterThan(0.01);
    }
    for (const other of ['unet_1step', 'unet_2step', 'unet_8step']) {
      const out = floats((await (await session(folders.plain, other)).run(feeds)).out_sample);
      expect(meanAbsDiff(out, base), other).toBeGreaterThan(0.01);
    }
  });

  it('float16 I/O with timestep [1] matches the float32 scalar graph', async () => {
    const feeds = unetFeeds(batch, h, w, 3);
    const plain = floats((await (await session(folders.plain, 'unet_4step')).run(feeds)).out_sample);
    const half = (tensor: ort.Tensor, dims = tensor.dims): ort.Tensor =>
      new ort.Tensor('float16', float32ToFloat16(floats(tensor)), dims);
    const out = await (await session(folders.variant, 'unet_4step')).run({
      sample: half(feeds.sample),
      timestep: half(feeds.timestep, [1]),
      encoder_hidden_states: half(feeds.encoder_hidden_states),
      text_embeds: half(feeds.text_embeds),
      time_ids: half(feeds.time_ids),
    });
    expect(out.out_sample.type).toBe('float16');
    expect(out.out_sample.dims).toEqual([batch, 4, h, w]);
    expect(maxAbsDiff(float16ToFloat32(out.out_sample.data as Uint16Array), plain)).toBeLessThan(2e-2);
  });
});

describe('vae_decoder', () => {
  it('decodes 8× larger, mostly inside (−1, 1), with pixels that vary inside each 8×8 block', async () => {
    const vae = await session(folders.plain, 'vae_decoder');
    const latent = noise(2 * 4 * 16 * 16, 5, 3);
    const out = await vae.run({ latent_sample: f32(latent, [2, 4, 16, 16]) });
    expect(out.sample.dims).toEqual([2, 3, 128, 128]);
    const image = floats(out.sample);
    const saturated = image.filter((v) => Math.abs(v) > 0.98).length / image.length;
    expect(saturated).toBeLessThan(0.05);
    // the first 8×8 block of channel 0 holds 64 different values
    const block = new Set<number>();
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) block.add(image[y * 128 + x]);
    expect(block.size).toBe(64);
    const half = await (await session(folders.variant, 'vae_decoder')).run({
      latent_sample: new ort.Tensor('float16', float32ToFloat16(latent), [2, 4, 16, 16]),
    });
    expect(half.sample.data).toBeInstanceOf(Uint16Array);
    expect(maxAbsDiff(float16ToFloat32(half.sample.data as Uint16Array), image)).toBeLessThan(1e-2);
  });
});

describe('the whole pipeline on tiny models (spec/lightning.md §0)', () => {
  type Encoded = { context: Float32Array; pooled: Float32Array };

  async function encode(prompt: string, options: { layers?: [string, string]; swapHalves?: boolean } = {}): Promise<Encoded> {
    const [layer1, layer2] = options.layers ?? ['hidden_states.11', 'hidden_states.31'];
    const tokenizer = (name: string): ClipTokenizer =>
      ClipTokenizer.fromFiles(path.join(folders.plain, name, 'vocab.json'), path.join(folders.plain, name, 'merges.txt'));
    const first = await (await session(folders.plain, 'text_encoder')).run({
      input_ids: i64(tokenizer('tokenizer').encode(prompt), [1, 77]),
    });
    const second = await (await session(folders.plain, 'text_encoder_2')).run({
      input_ids: i64(tokenizer('tokenizer_2').encode(prompt), [1, 77]),
    });
    const h1 = floats(first[layer1]);
    const h2 = floats(second[layer2]);
    const context = new Float32Array(77 * 2048);
    for (let s = 0; s < 77; s++) {
      const row1 = h1.subarray(s * 768, (s + 1) * 768);
      const row2 = h2.subarray(s * 1280, (s + 1) * 1280);
      const [a, b] = options.swapHalves ? [row2, row1] : [row1, row2];
      context.set(a, s * 2048);
      context.set(b, s * 2048 + a.length);
    }
    return { context, pooled: floats(second.text_embeds) };
  }

  async function generate(steps: number, encoded: Encoded, h = 24, w = 32): Promise<Float32Array> {
    const unet = await session(folders.plain, `unet_${steps}step`);
    const { timesteps, sigmas, initNoiseSigma } = lightningSchedule(steps);
    let x: Float32Array = torchRandn(42, [1, 4, h, w]).map((v) => v * initNoiseSigma);
    for (let i = 0; i < steps; i++) {
      const out = await unet.run({
        sample: f32(scaleModelInput(x, sigmas[i]), [1, 4, h, w]),
        timestep: f32([timesteps[i]], []),
        encoder_hidden_states: f32(encoded.context, [1, 77, 2048]),
        text_embeds: f32(encoded.pooled, [1, 1280]),
        time_ids: f32([h * 8, w * 8, 0, 0, h * 8, w * 8], [1, 6]),
      });
      x = eulerStep(x, floats(out.out_sample), sigmas[i], sigmas[i + 1], steps === 1 ? 'sample' : 'epsilon');
    }
    const vae = await session(folders.plain, 'vae_decoder');
    const image = await vae.run({ latent_sample: f32(x.map((v) => v / 0.13025), [1, 4, h, w]) });
    return floats(image.sample);
  }

  it.each([1, 2, 4, 8])('%i step(s): an unsaturated image that changes with the prompt and with pipeline mistakes', async (steps) => {
    const cat = await encode('a photo of a cat');
    const image = await generate(steps, cat);
    const mean = image.reduce((s, v) => s + v, 0) / image.length;
    const std = Math.sqrt(image.reduce((s, v) => s + (v - mean) ** 2, 0) / image.length);
    const saturated = image.filter((v) => Math.abs(v) > 0.98).length / image.length;
    expect(std).toBeGreaterThan(0.2);
    expect(saturated).toBeLessThan(0.05);
    const mistakes: Record<string, Encoded> = {
      'another prompt': await encode('a red castle on a hill at sunset'),
      'last hidden states instead of the penultimate': await encode('a photo of a cat', {
        layers: ['hidden_states.12', 'hidden_states.32'],
      }),
      'encoder halves swapped': await encode('a photo of a cat', { swapHalves: true }),
    };
    for (const [what, encoded] of Object.entries(mistakes)) {
      // ≥ 0.01 on the [−1, 1] scale is over one 8-bit level on average
      expect(meanAbsDiff(await generate(steps, encoded), image), what).toBeGreaterThan(0.01);
    }
  });
});

describe('speed at 1024² (128×128 latents, batch 4)', () => {
  it('runs a UNet step and a VAE decode well under a second each', async () => {
    const unet = await session(folders.plain, 'unet_4step');
    const vae = await session(folders.plain, 'vae_decoder');
    const feeds = unetFeeds(4, 128, 128, 11);
    const latent = { latent_sample: f32(noise(4 * 4 * 128 * 128, 12, 3), [4, 4, 128, 128]) };
    // the best of three warm runs, so a busy machine does not fail the test
    const fastest = async <T>(run: () => Promise<T>): Promise<{ ms: number; result: T }> => {
      let result = await run();
      let ms = Infinity;
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        result = await run();
        ms = Math.min(ms, performance.now() - started);
      }
      return { ms, result };
    };
    const step = await fastest(() => unet.run(feeds));
    const decode = await fastest(() => vae.run(latent));
    console.log(`128×128 latents, batch 4: UNet ${step.ms.toFixed(1)} ms, VAE ${decode.ms.toFixed(1)} ms (best of 3)`);
    expect(step.result.out_sample.dims).toEqual([4, 4, 128, 128]);
    expect(decode.result.sample.dims).toEqual([4, 3, 1024, 1024]);
    expect(step.ms).toBeLessThan(250);
    expect(decode.ms).toBeLessThan(750);
  });
});

describe('the writer builds deliberately wrong models too', () => {
  it('writes a text encoder whose input is named "ids"', async () => {
    const g = createGraph('wrong_text_encoder');
    g.input('ids', 'int64', ['batch_size', 'sequence_length']);
    g.input('mask', 'int64', ['batch_size', 'sequence_length']);
    const sum = g.op('Add', ['ids', 'mask']);
    const scale = g.initializer('scale', 'float32', [1], Float32Array.from([0.5]));
    const hiddenState = g.op('Mul', [g.op('Cast', [sum], { to: attr.int(1) }), scale]);
    g.node('Unsqueeze', [hiddenState, g.initializer('axes', 'int64', [1], BigInt64Array.from([2n]))], ['hidden_states.11']);
    g.output('hidden_states.11', 'float32', ['batch_size', 'sequence_length', 1]);
    const file = path.join(root, 'wrong', 'text_encoder', 'model.onnx');
    await writeModel(file, g);
    const wrong = await ort.InferenceSession.create(file, SESSION_OPTIONS);
    expect(wrong.inputNames).toEqual(['ids', 'mask']);
    const out = await wrong.run({ ids: i64([1, 2], [1, 2]), mask: i64([1, 1], [1, 2]) });
    expect([...floats(out['hidden_states.11'])]).toEqual([1, 1.5]);
    await wrong.release();
  });
});
