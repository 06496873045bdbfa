// What the web's JSON says about a job, its events and the command: the same words as the chat platforms (captions,
// status lines, refusal sentences), with the URLs of the job's files.

import type { CommandContext, CommandDefinition } from '../../../commands/index.js';
import type { Job } from '../../core/jobs.js';
import { refusalText, type Refusal } from '../../core/refusal.js';
import { ASPECT_SIZES, imageNoise } from '../../core/request.js';
import type { StatusUpdate } from '../../core/service.js';
import { detailsText, jobLabel, seedText, statusLine, TRUNCATED_NOTE } from '../captions.js';
import type { StoredResult } from './results.js';

export const jobPath = (jobId: string): string => `/api/jobs/${jobId}`;
export const gridPath = (jobId: string): string => `${jobPath(jobId)}/grid`;
export const imagePath = (jobId: string, index: number): string => `${jobPath(jobId)}/images/${index}.png`;

export type ResultView = {
  grid: string;
  images: string[];
  seeds: number[];
  width: number;
  height: number;
  elapsedMs: number;
  truncated: boolean;
  fromCache: boolean;
  /** "seeds 42–45 · 2 steps · 1024×1024 · 1.3 s", as the chat platforms caption it. */
  details: string;
  note: string | null;
};

export type JobView = {
  id: string;
  kind: Job['kind'];
  /** "Image 2 at full size", "Variations of image 1", "Re-roll", or empty for a prompt of its own. */
  label: string;
  status: string;
  prompt: string;
  steps: number;
  seed: number;
  aspect: string;
  count: number;
  width: number;
  height: number;
  seeds: number[];
  seedText: string;
  parentId: string | null;
  parentIndex: number | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  result: ResultView | null;
  error: { code: string; message: string } | null;
};

export function resultView(job: Job, stored: StoredResult): ResultView {
  return {
    grid: gridPath(job.id),
    images: stored.seeds.map((_, index) => imagePath(job.id, index)),
    seeds: stored.seeds,
    width: stored.width,
    height: stored.height,
    elapsedMs: stored.elapsedMs,
    truncated: stored.truncated,
    fromCache: stored.fromCache,
    details: detailsText(job.request, stored),
    note: [stored.truncated ? TRUNCATED_NOTE : '', stored.safetyNote ?? ''].filter(Boolean).join(' ') || null,
  };
}

/** A failed job's refusal: the store keeps the admin's detail, the member gets the sentence. */
export function failureOf(job: Job): Refusal {
  return job.error?.startsWith('delivery failed') ? { code: 'delivery_failed' } : { code: 'generation_failed' };
}

/**
 * `stored`: the job's delivered result, when kept. A kept result means the job is done even while the store still
 * says otherwise: the service marks a job done just after its platform has taken the result.
 */
export function jobView(job: Job, stored: StoredResult | undefined): JobView {
  const { width, height } = ASPECT_SIZES[job.request.aspect];
  const failed = job.status === 'failed' ? failureOf(job) : undefined;
  const status = stored && job.status !== 'failed' && job.status !== 'cancelled' ? 'done' : job.status;
  return {
    id: job.id,
    kind: job.kind,
    label: jobLabel(job),
    status,
    prompt: job.request.prompt,
    steps: job.request.steps,
    seed: job.request.seed,
    aspect: job.request.aspect,
    count: job.request.count,
    width,
    height,
    seeds: imageNoise(job.request).map((_, i) => job.request.seed + i),
    seedText: seedText(job.request),
    parentId: job.parentId,
    parentIndex: job.parentIndex,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    result: status === 'done' && stored ? resultView(job, stored) : null,
    error: failed ? { code: failed.code, message: refusalText(failed) } : null,
  };
}

/** The data of a queued, waiting or running event: the update as it came, and the status line every platform shows. */
export function statusEventData(update: StatusUpdate): Record<string, unknown> {
  return { ...update, message: statusLine(update) };
}

export function refusalEventData(refusal: Refusal): { code: string; message: string } {
  return { code: refusal.code, message: refusalText(refusal) };
}

/** The command definition as JSON, for the page to build its form from: each option with its limits and default. */
export function commandView(definition: CommandDefinition, context: CommandContext): Record<string, unknown> {
  const defaults: Record<string, unknown> = context.defaults;
  return {
    name: definition.name,
    description: definition.description,
    options: definition.options(context).map((option) => ({
      name: option.name,
      description: option.description,
      kind: option.kind,
      required: option.required,
      ...(option.minLength !== undefined ? { minLength: option.minLength } : {}),
      ...(option.maxLength !== undefined ? { maxLength: option.maxLength } : {}),
      ...(option.min !== undefined ? { min: option.min } : {}),
      ...(option.max !== undefined ? { max: option.max } : {}),
      ...(option.choices ? { choices: option.choices } : {}),
      default: defaults[option.name] ?? null,
    })),
  };
}
