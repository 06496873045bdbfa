// The public exports of the diffusion package: the math core, and (as it grows) the engine.

export { ClipTokenizer, CLIP_MAX_LENGTH, type ClipTokenizerOptions } from './tokenizer.js';
export {
  lightningSchedule,
  scaleModelInput,
  eulerStep,
  trainingSigmas,
  PREDICTION_TYPES,
  type LightningSchedule,
  type PredictionType,
} from './scheduler.js';
export { torchRandn, slerpNoise, Mt19937 } from './noise.js';
export { float32ToFloat16, float16ToFloat32 } from './fp16.js';
export { PROVIDER_CHOICES, type ProviderChoice } from './provider.js';
export { createEngine, Engine, EngineError, type EngineOptions, type EngineInfo, type GenerationOutput, type EngineErrorCode, type EngineAvailability } from './engine.js';
export type { PipelineRequest, NoiseSpec, StageTimings, ProgressEvent } from './pipeline.js';
export type { RgbImage } from './vae.js';
export type { SafetyVerdict } from './safety.js';
export { findModelFolder, ModelFolderError, MODEL_HELP, type ModelFolder, type UnetEntry } from './model-folder.js';
export { inspectCuda, describeCudaProblem, onnxruntimeBindingDir, type CudaReport } from './cuda.js';
