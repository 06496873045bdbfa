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
