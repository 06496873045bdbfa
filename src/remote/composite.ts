// ENGINE=both: this process's GPU and the remote workers behind one engine port; a job goes to whichever can take it.

import type { EngineOutput, EngineRequest, GenerationEngine } from '../core/engine-port.js';
import type { EngineAvailability, EngineInfo, ProgressEvent } from '../diffusion/index.js';
import { RemoteEngineError } from './remote-engine.js';

export type StartableEngine = GenerationEngine & {
  start(): Promise<unknown>;
  close(): Promise<void>;
  /** Whether this part already runs the job (handed over before a restart), so it is not run twice. */
  runs?(jobId: string): boolean;
};

/**
 * The parts in order of preference (the local engine first: no network between it and the bot). `canTake` is true
 * when any part can take the job now, and `generate` gives it to the first such part, so the service's fair queue
 * still decides the order over every GPU.
 */
export class CompositeEngine implements GenerationEngine {
  private readonly parts: readonly StartableEngine[];

  constructor(parts: readonly StartableEngine[]) {
    if (parts.length === 0) throw new Error('a composite engine needs at least one part');
    this.parts = parts;
  }

  /** The union of the parts' step counts; the first started part's provider and folder. */
  get info(): EngineInfo | undefined {
    const infos = this.parts.map((part) => part.info).filter((info): info is EngineInfo => info !== undefined);
    if (infos.length === 0) return undefined;
    return { ...infos[0], steps: [...new Set(infos.flatMap((info) => info.steps))].sort((a, b) => a - b) };
  }

  async start(): Promise<EngineInfo> {
    await Promise.all(this.parts.map((part) => part.start()));
    return this.info!;
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((part) => part.close()));
  }

  canTake(steps: number): boolean {
    return this.parts.some((part) => part.canTake(steps));
  }

  /** Ready when a part that has the steps is ready; else `restarting` when one that has them restarts, else `no_worker`. */
  availability(steps: number): EngineAvailability {
    const answers = this.parts.map((part) => ({ part, availability: part.availability(steps), has: part.info?.steps.includes(steps) ?? false }));
    if (answers.some(({ availability, has }) => availability.state === 'ready' && has)) return { state: 'ready' };
    const restarting = answers.find(({ availability }) => availability.state === 'unavailable' && availability.reason === 'restarting');
    if (restarting) return restarting.availability;
    const details = answers.map(({ availability, has }) => (availability.state === 'unavailable' ? availability.detail : has ? 'ready' : `no ${steps}-step UNet`));
    return { state: 'unavailable', reason: 'no_worker', detail: details.join('; ') };
  }

  generate(request: EngineRequest, onProgress?: (event: ProgressEvent) => void): Promise<EngineOutput> {
    const { jobId } = request;
    const part =
      (jobId === undefined ? undefined : this.parts.find((candidate) => candidate.runs?.(jobId))) ??
      this.parts.find((candidate) => candidate.canTake(request.steps)) ??
      this.parts.find((candidate) => candidate.availability(request.steps).state === 'ready' && candidate.info?.steps.includes(request.steps));
    if (!part) return Promise.reject(new RemoteEngineError('unavailable', `no engine can run ${request.steps} steps now`));
    return part.generate(request, onProgress);
  }

  onChange(listener: () => void): () => void {
    const stops = this.parts.map((part) => part.onChange(listener));
    return () => stops.forEach((stop) => stop());
  }
}

export function createCompositeEngine(parts: readonly StartableEngine[]): CompositeEngine {
  return new CompositeEngine(parts);
}
