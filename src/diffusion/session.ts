// onnxruntime-node sessions: created once by path on one execution provider, fed from each model's declared inputs.

import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { float16ToFloat32, float32ToFloat16 } from './fp16.js';

/** Where the sessions run once `auto` is resolved. */
export type ResolvedProvider = 'cuda' | 'cpu';

/** Tensor element types the pipeline can feed and read (spec §6.3: exporters differ, so read them per model). */
export const FEED_TYPES = ['float32', 'float16', 'int64', 'int32'] as const;
export type FeedType = (typeof FEED_TYPES)[number];

/** A declared input or output: name, element type and shape (numbers are fixed, strings are symbolic). */
export type ValueSpec = { name: string; type: string; shape: readonly (number | string)[] };

/**
 * A value for one input, before conversion to the input's declared type: floats as float32 (converted to float16
 * when the model wants it), integers as Int32Array (widened to int64 when the model wants it). Feeds are never
 * changed after they are given: a float16 conversion is kept per array and reused (the prompt embeddings are fed
 * to every UNet step).
 */
export type Feed = { values: Float32Array | Int32Array; dims: readonly number[] };

/** A model edited in memory: its bytes, and the external data files it names, by the location the graph gives. */
export type ModelBytes = { bytes: Uint8Array; externalData: readonly { path: string; data: Uint8Array }[] };

/** An output read back as float32 (float16 outputs are converted). */
export type Output = { values: Float32Array; dims: readonly number[] };

export type SessionOptions = {
  provider: ResolvedProvider;
  /** GPU index for CUDA (the only CUDA option onnxruntime-node passes on). */
  deviceId: number;
  /** CPU threads per session (default: all cores for CPU, 1 for CUDA). */
  cpuThreads?: number;
};

/** Failure of the caller's feed, found before `run`: a missing, unknown or misshapen input. */
export class FeedError extends Error {
  override readonly name = 'FeedError';
}

/** A loaded ONNX model. Create with `OnnxModel.load`; call `release()` when done. */
export class OnnxModel {
  readonly label: string;
  readonly path: string;
  readonly inputs: ReadonlyMap<string, ValueSpec>;
  readonly outputs: ReadonlyMap<string, ValueSpec>;
  /** Milliseconds the last `run` spent inside onnxruntime (feed conversion and checks excluded). */
  lastRunMs = 0;
  private readonly session: ort.InferenceSession;
  private readonly halfCache = new WeakMap<Float32Array | Int32Array, Uint16Array>();
  /** Called with each input's name, type and dims (never data) when `run` fails. */
  private readonly onRunFailure: (details: Record<string, unknown>) => void;

  private constructor(label: string, path: string, session: ort.InferenceSession, onRunFailure: (details: Record<string, unknown>) => void) {
    this.label = label;
    this.path = path;
    this.session = session;
    this.onRunFailure = onRunFailure;
    this.inputs = new Map(session.inputMetadata.map((meta) => [meta.name, describe(meta)]));
    this.outputs = new Map(session.outputMetadata.map((meta) => [meta.name, describe(meta)]));
  }

  /**
   * Creates a session from a file path, so external data (`model.onnx_data`) beside it resolves, or from `edited`
   * bytes made from that file. Rejects when the provider cannot be created (onnxruntime-node never falls back from
   * CUDA to CPU by itself).
   */
  static async load(
    path: string,
    label: string,
    options: SessionOptions,
    onRunFailure: (details: Record<string, unknown>) => void = () => {},
    edited?: ModelBytes,
  ): Promise<OnnxModel> {
    const session = edited
      ? await ort.InferenceSession.create(edited.bytes, { ...sessionOptions(options), externalData: [...edited.externalData] })
      : await ort.InferenceSession.create(path, sessionOptions(options));
    return new OnnxModel(label, path, session, onRunFailure);
  }

  /** Runs the model and returns the named outputs (only those are copied back), float outputs as float32. */
  async run(feeds: Readonly<Record<string, Feed>>, outputNames: readonly string[]): Promise<Record<string, Output>> {
    const results = await this.runTensors(feeds, outputNames);
    const outputs: Record<string, Output> = {};
    for (const name of outputNames) outputs[name] = { values: toFloat32(results[name], this.label), dims: results[name].dims };
    return outputs;
  }

  /** Runs the model and returns the named outputs as onnxruntime made them, in their own element types. */
  async runTensors(feeds: Readonly<Record<string, Feed>>, outputNames: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const tensors = this.toTensors(feeds);
    for (const name of outputNames) {
      if (!this.outputs.has(name)) throw new FeedError(`${this.label}: has no output named "${name}"`);
    }
    let results: ort.InferenceSession.OnnxValueMapType;
    const started = performance.now();
    try {
      results = await this.session.run(tensors, [...outputNames]);
      this.lastRunMs = performance.now() - started;
    } catch (error) {
      this.onRunFailure({
        model: this.label,
        inputs: Object.entries(tensors).map(([name, tensor]) => ({ name, type: tensor.type, dims: tensor.dims })),
        error: (error as Error).message,
      });
      throw new Error(`${this.label}: run failed: ${(error as Error).message}`, { cause: error });
    }
    return Object.fromEntries(outputNames.map((name) => [name, results[name] as ort.Tensor]));
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** Checks every feed against the declared inputs, then converts it to the declared type. */
  private toTensors(feeds: Readonly<Record<string, Feed>>): Record<string, ort.Tensor> {
    for (const name of Object.keys(feeds)) {
      if (!this.inputs.has(name)) {
        throw new FeedError(`${this.label}: has no input named "${name}" (inputs: ${[...this.inputs.keys()].join(', ')})`);
      }
    }
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, spec] of this.inputs) {
      const feed = feeds[name];
      if (!feed) throw new FeedError(`${this.label}: input "${name}" was not given`);
      const dims = fitDims(feed, spec, this.label);
      tensors[name] = spec.type === 'float16' ? new ort.Tensor('float16', this.toHalf(feed.values), dims) : toTensor(feed.values, spec, dims, this.label);
    }
    return tensors;
  }

  private toHalf(values: Float32Array | Int32Array): Uint16Array {
    let half = this.halfCache.get(values);
    if (!half) {
      half = float32ToFloat16(values instanceof Float32Array ? values : Float32Array.from(values));
      this.halfCache.set(values, half);
    }
    return half;
  }
}

function describe(meta: ort.InferenceSession.ValueMetadata): ValueSpec {
  return meta.isTensor ? { name: meta.name, type: meta.type, shape: [...meta.shape] } : { name: meta.name, type: 'non-tensor', shape: [] };
}

function sessionOptions(options: SessionOptions): ort.InferenceSession.SessionOptions {
  const cpu = options.provider === 'cpu';
  return {
    executionProviders: cpu ? ['cpu'] : [{ name: 'cuda', deviceId: options.deviceId }],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: options.cpuThreads ?? (cpu ? availableParallelism() : 1),
    // idle onnxruntime threads must not spin on the cores the bot's main thread needs
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    logSeverityLevel: 3,
  };
}

/**
 * The dims to feed: the caller's, except that a one-value feed takes the declared rank, so a timestep fed as a
 * scalar fits a model that declares `[1]` and the other way round (spec §6.3). Fixed declared sizes must match.
 */
function fitDims(feed: Feed, spec: ValueSpec, label: string): readonly number[] {
  let dims = feed.dims;
  if (feed.values.length === 1 && spec.shape.length !== dims.length) dims = spec.shape.map(() => 1);
  const count = dims.reduce((product, size) => product * size, 1);
  if (count !== feed.values.length) {
    throw new FeedError(`${label}: input "${spec.name}" has ${feed.values.length} values for dims [${dims.join(', ')}]`);
  }
  const mismatch =
    spec.shape.length > 0 &&
    (spec.shape.length !== dims.length || spec.shape.some((size, i) => typeof size === 'number' && size >= 0 && size !== dims[i]));
  if (mismatch) {
    throw new FeedError(`${label}: input "${spec.name}" expects shape [${spec.shape.join(', ')}], got [${dims.join(', ')}]`);
  }
  return dims;
}

function toTensor(values: Float32Array | Int32Array, spec: ValueSpec, dims: readonly number[], label: string): ort.Tensor {
  switch (spec.type) {
    case 'float32':
      return new ort.Tensor('float32', values instanceof Float32Array ? values : Float32Array.from(values), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(Math.round(v))), dims);
    case 'int32':
      return new ort.Tensor('int32', values instanceof Int32Array ? values : Int32Array.from(values, Math.round), dims);
    default:
      throw new FeedError(`${label}: input "${spec.name}" has type ${spec.type}; supported: ${FEED_TYPES.join(', ')}`);
  }
}

function toFloat32(tensor: ort.Tensor, label: string): Float32Array {
  if (tensor.type === 'float32') return tensor.data as Float32Array;
  if (tensor.type === 'float16') return float16ToFloat32(tensor.data as Uint16Array);
  throw new Error(`${label}: output has type ${tensor.type}; expected float32 or float16`);
}
