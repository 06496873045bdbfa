// What the service needs of whatever runs the model: the engine in this process, GPU workers joined through Redis,
// or both. The fair queue decides the order; the engine only says whether it can take a job now, and runs it.

import type { EngineAvailability, EngineInfo, GenerationOutput, PipelineRequest, ProgressEvent } from '../diffusion/index.js';

export type { EngineAvailability };

/** A request as the service hands it over: the pipeline request and the job it belongs to. */
export type EngineRequest = PipelineRequest & { jobId?: string };

/** What a run returns: the images, and which worker made them (for the job record and the logs). */
export type EngineOutput = GenerationOutput & { worker?: string };

/**
 * The error codes with which `generate` rejects when the job itself is fine and may run again: the worker died or
 * froze under it, or the engine went away. Any other rejection means the job failed for good.
 */
export const RETRYABLE_ENGINE_CODES = ['crashed', 'timeout', 'unavailable', 'closed'] as const;

export interface GenerationEngine {
  /** The union of what the runners have installed; undefined until the engine has started. */
  readonly info: EngineInfo | undefined;
  /**
   * Whether a job of this many steps can be handed over now: some runner that has those steps installed has a free
   * slot (a runner may hold one job committed ahead of the running one, never more).
   */
  canTake(steps: number): boolean;
  /** Whether jobs of this many steps can run at all now, or why not. */
  availability(steps: number): EngineAvailability;
  /** Runs one request. Progress events come from the runner; the first one means it has started. */
  generate(request: EngineRequest, onProgress?: (event: ProgressEvent) => void): Promise<EngineOutput>;
  /** Calls `listener` whenever `canTake` or `availability` may have changed; returns the way to stop. */
  onChange(listener: () => void): () => void;
}

/** Whether an error from `generate` leaves the job fit to run again. */
export function isRetryableEngineError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (RETRYABLE_ENGINE_CODES as readonly string[]).includes(code);
}
