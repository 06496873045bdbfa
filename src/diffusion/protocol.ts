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

/**
 * How pixels come back: `shared-file` writes them to a file in the engine's folder (pixel-transfer.ts) and sends its
 * name; `message` sends the bytes inside the IPC message (the way before, kept for the benchmark's ratio and as the
 * fallback when the file cannot be written).
 */
export type PixelTransferMode = 'shared-file' | 'message';

export type ToWorker =
  | { type: 'start'; options: PipelineOptions; pixelFolder: string; pixelTransfer: PixelTransferMode }
  | { type: 'generate'; id: number; request: PipelineRequest }
  | { type: 'close' };

/** HWC RGB bytes of one image, as the engine hands it on. */
export type WorkerImage = { width: number; height: number; data: Uint8Array };

/** A file of every image's bytes, one after another, that the engine reads once and deletes. */
export type PixelRef = { file: string; bytes: number };

export type ResultMessage = {
  type: 'result';
  id: number;
  /** Each image's size, in the order its bytes follow one another. */
  shapes: { width: number; height: number }[];
  pixels: { ref: PixelRef } | { inline: Uint8Array[] };
  /** When the worker had the pixels (epoch ms, `performance.timeOrigin + now()`), for the transfer time. */
  readyAt: number;
  timings: StageTimings;
  truncated: boolean;
  prediction: PredictionType;
  /** Per image, the safety classifier's verdict; absent when the check is off. */
  safety?: SafetyVerdict[];
};

export type FromWorker =
  | { type: 'ready'; provider: ResolvedProvider; steps: number[]; modelDir: string }
  | { type: 'start-failed'; error: SerializedError }
  | { type: 'progress'; id: number; event: ProgressEvent }
  | ResultMessage
  | { type: 'failed'; id: number; error: SerializedError }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string; details?: Record<string, unknown> }
  | { type: 'closed' };
