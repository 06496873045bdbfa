// The typed messages between the bot's engine handle and the worker process that runs the pipeline.

import type { PipelineOptions, PipelineRequest, ProgressEvent, StageTimings } from './pipeline.js';
import type { ResolvedProvider } from './session.js';
import type { SafetyVerdict } from './safety.js';
import type { PredictionType } from './scheduler.js';

/**
 * Why a request or start-up failed: `invalid_request` is the caller's input (the message is for the user),
 * `model` a model-folder problem (for the admin), `internal` anything else (logged; the user hears "try again").
 */
export type FailureKind = 'invalid_request' | 'model' | 'internal';

export type SerializedError = { kind: FailureKind; name: string; message: string; stack?: string; problems?: readonly string[] };

export type ToWorker =
  | { type: 'start'; options: PipelineOptions }
  | { type: 'generate'; id: number; request: PipelineRequest }
  | { type: 'close' };

/** HWC RGB bytes of one image, as the worker sends it back. */
export type WorkerImage = { width: number; height: number; data: Uint8Array };

export type FromWorker =
  | { type: 'ready'; provider: ResolvedProvider; steps: number[]; modelDir: string }
  | { type: 'start-failed'; error: SerializedError }
  | { type: 'progress'; id: number; event: ProgressEvent }
  | { type: 'result'; id: number; images: WorkerImage[]; timings: StageTimings; truncated: boolean; prediction: PredictionType; safety?: SafetyVerdict[] }
  | { type: 'failed'; id: number; error: SerializedError }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string; details?: Record<string, unknown> }
  | { type: 'closed' };
