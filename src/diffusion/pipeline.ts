// SDXL-Lightning text-to-image on ONNX models, step by step in the order of spec/lightning.md §0.

import { relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { contractProblems, penultimateHiddenState, TEXT_ENCODER_2_CONTRACT, TEXT_ENCODER_CONTRACT, UNET_CONTRACT, VAE_DECODER_CONTRACT, type ModelContract } from './contract.js';
import { describeCudaProblem, inspectCuda } from './cuda.js';
import { findModelFolder, ModelFolderError, type ModelFolder, type UnetEntry } from './model-folder.js';
import { requestNoise } from './noise.js';
import { eulerStep, lightningSchedule, scaleModelInput, type PredictionType } from './scheduler.js';
import { OnnxModel, type ModelBytes, type ResolvedProvider } from './session.js';
import { encodePrompt, repeatEmbeddings, type TextEncoders } from './text-encoders.js';
import type { ProviderChoice } from './provider.js';
import { loadSafetyClassifier, type SafetyClassifier, type SafetyVerdict } from './safety.js';
import { ClipTokenizer } from './tokenizer.js';
import { decodeLatents, vaeDecoderWithPixels, type RgbImage, type VaeDecoder } from './vae.js';

export type PipelineOptions = {
  modelDir: string;
  /** `auto`: CUDA when its libraries load, else CPU with a warning that says why. */
  provider: ProviderChoice;
  deviceId: number;
  /** Load each step count's UNet on first use instead of at start (saves GPU memory when few are used). */
  lazyUnets?: boolean;
  /** CPU threads per session (default: every core on CPU, 1 on CUDA). */
  cpuThreads?: number;
  /** Check every image with `safety_classifier/` (SAFETY=on), flagging scores from `threshold`. */
  safety?: { threshold: number };
};

export type LogFn = (level: 'info' | 'warn' | 'error', message: string, details?: Record<string, unknown>) => void;

/**
 * How one image's starting noise is made: `torchRandn(seed)`, then slerped toward each variation seed's noise in
 * turn (a variation of a variation has two steps).
 */
export type NoiseSpec = { seed: number; variations?: readonly { seed: number; strength: number }[] };

export type PipelineRequest = {
  prompt: string;
  steps: number;
  width: number;
  height: number;
  /** One entry per image; the images run as one batch. */
  images: readonly NoiseSpec[];
};

export type StageTimings = {
  tokenizeMs: number;
  textMs: number;
  /** Making the noise here, or waiting for it when it was made elsewhere. */
  noiseMs: number;
  /** Wall time of each UNet step (scaling, the run and the Euler update). */
  unetStepMs: number[];
  vaeMs: number;
  totalMs: number;
  /**
   * Work on this thread outside onnxruntime's `run`: tokenizing, waiting for the noise (made on another thread in
   * the worker), scaling, Euler, feed conversions. The pixels are made by the VAE graph, inside its run.
   */
  hostMs: number;
  /** The safety classifier over every image, when it runs. */
  safetyMs?: number;
};

export type PipelineResult = {
  images: RgbImage[];
  timings: StageTimings;
  /** The prompt had more than 75 tokens and was cut (spec §1.1). */
  truncated: boolean;
  prediction: PredictionType;
  /** Per image, the safety classifier's verdict; absent when the check is off. */
  safety?: SafetyVerdict[];
};

export type ProgressEvent = { stage: 'text' | 'unet' | 'vae'; step: number; steps: number };

/** The model folder loaded into sessions, ready to generate. Create with `loadPipeline`; `close()` releases it. */
export type Pipeline = {
  readonly provider: ResolvedProvider;
  readonly folder: ModelFolder;
  /** Step counts with an installed UNet. */
  readonly steps: readonly number[];
  /** `noise`: the request's unit noise made elsewhere (the worker makes it on a thread while the GPU runs; see `requestNoise`). */
  generate(request: PipelineRequest, onProgress?: (event: ProgressEvent) => void, noise?: Promise<Float32Array>): Promise<PipelineResult>;
  close(): Promise<void>;
};

const MAX_BATCH = 8;

/** Reads the folder, picks the provider, creates every session once and checks each model's inputs and outputs. */
export async function loadPipeline(options: PipelineOptions, log: LogFn): Promise<Pipeline> {
  const folder = findModelFolder(options.modelDir);
  const label = (path: string): string => relative(folder.root, path);
  const tokenizer = ClipTokenizer.fromFiles(folder.tokenizer.vocab, folder.tokenizer.merges);
  const tokenizer2 = ClipTokenizer.fromFiles(folder.tokenizer2.vocab, folder.tokenizer2.merges);
  const onRunFailure = (details: Record<string, unknown>): void => log('error', 'onnxruntime run failed', details);

  const provider = await resolveProvider(options, folder.textEncoder, label(folder.textEncoder), log);
  const sessionOptions = { provider, deviceId: options.deviceId, cpuThreads: options.cpuThreads };
  const loaded: OnnxModel[] = [];
  const load = async (path: string, edited?: ModelBytes): Promise<OnnxModel> => {
    const started = performance.now();
    let model: OnnxModel;
    try {
      model = await OnnxModel.load(path, label(path), sessionOptions, onRunFailure, edited);
    } catch (error) {
      throw new ModelFolderError(folder.root, [`${label(path)}: onnxruntime cannot load it: ${(error as Error).message}`]);
    }
    loaded.push(model);
    log('info', 'model loaded', { model: model.label, provider, ms: Math.round(performance.now() - started) });
    return model;
  };
  const check = (model: OnnxModel, contract: ModelContract, problems: string[]): void => {
    problems.push(...contractProblems(model, contract));
  };

  try {
    const problems: string[] = [];
    const first = await load(folder.textEncoder);
    const second = await load(folder.textEncoder2);
    const vae = await loadVaeDecoder(folder.vaeDecoder, label(folder.vaeDecoder), load, folder.root);
    check(first, TEXT_ENCODER_CONTRACT, problems);
    check(second, TEXT_ENCODER_2_CONTRACT, problems);
    check(vae.model, VAE_DECODER_CONTRACT, problems);
    const encoders: TextEncoders = { first, second, firstHidden: '', secondHidden: '' };
    for (const [key, model] of [['firstHidden', first], ['secondHidden', second]] as const) {
      try {
        encoders[key] = penultimateHiddenState(model);
      } catch (error) {
        problems.push((error as Error).message);
      }
    }
    const unets = new Map<number, Promise<OnnxModel>>();
    const loadUnet = (entry: UnetEntry): Promise<OnnxModel> => {
      let pending = unets.get(entry.steps);
      if (!pending) {
        pending = load(entry.model).then((model) => {
          const unetProblems = contractProblems(model, UNET_CONTRACT);
          if (unetProblems.length > 0) throw new ModelFolderError(folder.root, unetProblems);
          return model;
        });
        pending.catch(() => unets.delete(entry.steps));
        unets.set(entry.steps, pending);
      }
      return pending;
    };
    if (!options.lazyUnets) {
      for (const entry of folder.unets) {
        try {
          await loadUnet(entry);
        } catch (error) {
          problems.push(...(error instanceof ModelFolderError ? error.problems : [(error as Error).message]));
        }
      }
    }
    let safety: SafetyClassifier | undefined;
    if (options.safety) {
      try {
        safety = await loadSafetyClassifier({ modelDir: folder.root, threshold: options.safety.threshold, session: sessionOptions, log });
      } catch (error) {
        problems.push(...(error instanceof ModelFolderError ? error.problems : [(error as Error).message]));
      }
    }
    if (problems.length > 0) {
      await safety?.close();
      throw new ModelFolderError(folder.root, problems);
    }

    return {
      provider,
      folder,
      steps: folder.unets.map((entry) => entry.steps),
      generate: (request, onProgress, noise) => generate({ tokenizer, tokenizer2, encoders, vae, folder, loadUnet, safety }, request, onProgress, noise),
      close: async () => {
        await Promise.allSettled([...loaded.map((model) => model.release()), ...(safety ? [safety.close()] : [])]);
      },
    };
  } catch (error) {
    await Promise.allSettled(loaded.map((model) => model.release()));
    throw error;
  }
}

/** The decoder with its pixel nodes appended in memory (vae.ts); a graph that cannot take them is a model-folder problem. */
async function loadVaeDecoder(
  path: string,
  label: string,
  load: (path: string, edited?: ModelBytes) => Promise<OnnxModel>,
  root: string,
): Promise<VaeDecoder> {
  let graph;
  try {
    graph = await vaeDecoderWithPixels(path, label);
  } catch (error) {
    throw new ModelFolderError(root, [(error as Error).message]);
  }
  return { model: await load(path, graph), pixels: graph.pixels, finiteCheck: graph.finiteCheck };
}

/**
 * `cuda` must work or start-up fails; `auto` falls back to CPU, loudly, with the reason. CUDA is only tried when
 * its provider libraries are installed and resolve: asking for it without them is what older onnxruntime-node
 * versions crashed on, and a failed attempt leaves 1.30 aborting the process if the worker is later terminated.
 */
async function resolveProvider(options: PipelineOptions, probePath: string, probeLabel: string, log: LogFn): Promise<ResolvedProvider> {
  if (options.provider === 'cpu') return 'cpu';
  const report = await inspectCuda();
  let loadError: string | undefined;
  if (report.missingProviderFiles.length === 0 && report.unresolvedLibraries.length === 0) {
    try {
      const probe = await OnnxModel.load(probePath, probeLabel, { provider: 'cuda', deviceId: options.deviceId });
      await probe.release();
      return 'cuda';
    } catch (error) {
      loadError = (error as Error).message;
    }
  }
  const reason = describeCudaProblem(report, loadError);
  if (options.provider === 'cuda') throw new Error(`EXECUTION_PROVIDER=cuda, but CUDA is not usable: ${reason}`);
  log('warn', `CUDA is not usable, so images are made on the CPU, which takes minutes per image with the real model: ${reason}`, {
    ...(loadError ? { error: loadError } : {}),
    missingProviderFiles: report.missingProviderFiles,
    unresolvedLibraries: report.unresolvedLibraries,
  });
  return 'cpu';
}

type Loaded = {
  tokenizer: ClipTokenizer;
  tokenizer2: ClipTokenizer;
  encoders: TextEncoders;
  vae: VaeDecoder;
  folder: ModelFolder;
  loadUnet: (entry: UnetEntry) => Promise<OnnxModel>;
  safety: SafetyClassifier | undefined;
};

async function generate(
  loaded: Loaded,
  request: PipelineRequest,
  onProgress: (event: ProgressEvent) => void = () => {},
  madeNoise?: Promise<Float32Array>,
): Promise<PipelineResult> {
  const started = performance.now();
  let runMs = 0;
  const ran = (model: OnnxModel): void => {
    runMs += model.lastRunMs;
  };

  // 0. Check the request against what is installed; the first event says the run has begun (a lazy UNet loads next)
  const entry = checkRequest(loaded.folder, request);
  onProgress({ stage: 'text', step: 0, steps: request.steps });
  const unet = await loaded.loadUnet(entry);
  const batch = request.images.length;
  const latentHeight = request.height / 8;
  const latentWidth = request.width / 8;

  // 1. Tokenize twice: tokenizer/ pads with eos, tokenizer_2/ with "!" (spec §1.1)
  let mark = performance.now();
  const ids1 = loaded.tokenizer.encode(request.prompt);
  const ids2 = loaded.tokenizer2.encode(request.prompt);
  const truncated = loaded.tokenizer.truncated(request.prompt);
  const tokenizeMs = performance.now() - mark;

  // 2–4. Encode once, penultimate hidden states concatenated; pooled from text_encoder_2 (spec §1.2)
  mark = performance.now();
  const embeddings = repeatEmbeddings(await encodePrompt(loaded.encoders, [ids1], [ids2]), batch);
  ran(loaded.encoders.first);
  ran(loaded.encoders.second);
  const textMs = performance.now() - mark;

  // 5. Micro-conditioning: [H, W, crop top, crop left, H, W] per image, floats (spec §2)
  const timeIds = new Float32Array(batch * 6);
  for (let b = 0; b < batch; b++) timeIds.set([request.height, request.width, 0, 0, request.height, request.width], b * 6);

  // 6. Initial latents: CPU torch.randn per image × init_noise_sigma (spec §3.3, §5)
  mark = performance.now();
  const schedule = lightningSchedule(request.steps);
  const noise = madeNoise ? await madeNoise : requestNoise(request);
  let latents: Float32Array = new Float32Array(noise.length);
  for (let i = 0; i < noise.length; i++) latents[i] = noise[i] * schedule.initNoiseSigma;
  const noiseMs = performance.now() - mark;

  // 7. Denoise: scale, UNet at timestep t (not sigma), Euler step with the checkpoint's prediction type (spec §3.4)
  const latentDims = [batch, 4, latentHeight, latentWidth];
  const unetStepMs: number[] = [];
  for (let i = 0; i < schedule.timesteps.length; i++) {
    mark = performance.now();
    const sigma = schedule.sigmas[i];
    const { out_sample: modelOutput } = await unet.run(
      {
        sample: { values: scaleModelInput(latents, sigma), dims: latentDims },
        timestep: { values: schedule.timesteps.subarray(i, i + 1), dims: [] },
        encoder_hidden_states: { values: embeddings.promptEmbeds, dims: [batch, embeddings.sequence, embeddings.width] },
        text_embeds: { values: embeddings.pooled, dims: [batch, embeddings.pooledWidth] },
        time_ids: { values: timeIds, dims: [batch, 6] },
      },
      ['out_sample'],
    );
    ran(unet);
    latents = eulerStep(latents, modelOutput.values, sigma, schedule.sigmas[i + 1], entry.prediction);
    unetStepMs.push(performance.now() - mark);
    onProgress({ stage: 'unet', step: i + 1, steps: request.steps });
  }

  // 8. Decode latents / 0.13025; the decoder graph rounds to bytes (spec §4)
  onProgress({ stage: 'vae', step: request.steps, steps: request.steps });
  mark = performance.now();
  const images = await decodeLatents(loaded.vae, latents, latentDims);
  ran(loaded.vae.model);
  const vaeMs = performance.now() - mark;

  // 9. Score every image with the safety classifier before it leaves the engine (models/README.md)
  mark = performance.now();
  const safety = await loaded.safety?.classify(images);
  const safetyMs = loaded.safety ? performance.now() - mark : undefined;

  const totalMs = performance.now() - started;
  return {
    images,
    truncated,
    prediction: entry.prediction,
    timings: { tokenizeMs, textMs, noiseMs, unetStepMs, vaeMs, totalMs, hostMs: totalMs - runMs, ...(safetyMs === undefined ? {} : { safetyMs }) },
    ...(safety ? { safety } : {}),
  };
}

/** Validates a request; returns the UNet for its step count. Every message is one sentence for the caller. */
function checkRequest(folder: ModelFolder, request: PipelineRequest): UnetEntry {
  const entry = folder.unets.find((unet) => unet.steps === request.steps);
  if (!entry) {
    throw new RangeError(`no UNet for ${request.steps} steps is installed; installed: ${folder.unets.map((u) => u.steps).join(', ')}`);
  }
  for (const [name, size] of [['width', request.width], ['height', request.height]] as const) {
    if (!Number.isInteger(size) || size < 64 || size % 8 !== 0) throw new RangeError(`${name} must be a multiple of 8 of at least 64, got ${size}`);
  }
  if (request.images.length < 1 || request.images.length > MAX_BATCH) {
    throw new RangeError(`a request makes 1 to ${MAX_BATCH} images, got ${request.images.length}`);
  }
  for (const spec of request.images) {
    if (!Number.isSafeInteger(spec.seed) || spec.seed < 0) throw new RangeError(`seeds must be integers from 0 to 2^53 − 1, got ${spec.seed}`);
    for (const { seed, strength } of spec.variations ?? []) {
      if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`variation seeds must be integers from 0 to 2^53 − 1, got ${seed}`);
      if (!(strength >= 0 && strength <= 1)) throw new RangeError(`variation strength must be between 0 and 1, got ${strength}`);
    }
  }
  if (typeof request.prompt !== 'string') throw new TypeError('the prompt must be text');
  return entry;
}
