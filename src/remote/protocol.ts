// The names and shapes the bot and its GPU workers share through Redis: queues, registry keys, job data, results.

import type { PipelineRequest, StageTimings } from '../diffusion/pipeline.js';
import type { ResolvedProvider } from '../diffusion/session.js';
import type { PredictionType } from '../diffusion/scheduler.js';
import type { SafetyVerdict } from '../diffusion/safety.js';

/** BullMQ's key prefix for our queues; the registry and results sit under the same word. Limits use `b_…` keys. */
export const KEY_PREFIX = 'lightning';

/**
 * One queue per step count, so a worker listens only to the step counts it has installed and a 4-step-only worker
 * can never take an 8-step job (BullMQ's open-source workers cannot skip jobs they do not like).
 */
export function queueName(steps: number): string {
  return `steps-${steps}`;
}

/** The ids of live workers; each id's announcement is in `workerKey(id)`, which expires when its heartbeat stops. */
export const WORKER_SET_KEY = `${KEY_PREFIX}:workers`;
export const workerKey = (id: string): string => `${KEY_PREFIX}:workers:${id}`;
/** Each step count any worker has announced, with when it last did (epoch ms): what the bot offers while workers are away. */
export const KNOWN_STEPS_KEY = `${KEY_PREFIX}:steps-seen`;
/** Workers publish their id here when they join, leave, or go busy or idle, so the bot need not wait for its poll. */
export const WORKER_CHANNEL = `${KEY_PREFIX}:workers:changed`;
/** Where a finished job's pixels wait for the bot, out of BullMQ's event stream. */
export const resultKey = (jobId: string): string => `${KEY_PREFIX}:results:${jobId}`;

/** How long an unread result stays: long enough for a bot restart to pick it up, short enough not to pile up. */
export const RESULT_TTL_SECONDS = 3600;
/** How long BullMQ keeps finished jobs (their return value points at the result); matches RESULT_TTL_SECONDS. */
export const KEEP_COMPLETED = { age: RESULT_TTL_SECONDS, count: 1000 } as const;
export const KEEP_FAILED = { age: 24 * 3600, count: 1000 } as const;
/**
 * The most RGB bytes one result may hold: eight 1024² images (the pipeline's largest batch) are 24 MiB; anything
 * past this is refused by the worker before writing and by the bot before reading.
 */
export const MAX_RESULT_BYTES = 8 * 1024 * 1024 * 3;

/** A job as it travels in BullMQ: the pipeline request, and our job id for the logs. */
export type RemoteJobData = { request: PipelineRequest; jobId: string };

export type RemoteImageMeta = { width: number; height: number };

/** The job's BullMQ return value: where the pixels are and what the worker measured; never the pixels. */
export type RemoteJobResult = {
  resultKey: string;
  worker: string;
  images: RemoteImageMeta[];
  timings: StageTimings;
  truncated: boolean;
  prediction: PredictionType;
  /** Per image, the worker's safety classifier verdict; absent when its SAFETY is off. */
  safety?: SafetyVerdict[];
};

/** What a worker puts in `job.updateProgress`: its id once it starts, then the pipeline's stage. */
export type RemoteProgress = { worker: string; stage?: 'text' | 'unet' | 'vae'; step?: number; steps?: number };

/** What a worker announces in the registry (and `npm run doctor` lists). Times are epoch ms. */
export type WorkerAnnouncement = {
  id: string;
  /** A fresh value per process: tells a restarted worker from the one before it, and two processes with one id apart. */
  instance: string;
  host: string;
  /** The process id on `host`: a restarted worker takes over its id when the process before it is gone. */
  pid: number;
  /** `cuda:0` or `cpu`. */
  device: string;
  provider: ResolvedProvider;
  steps: number[];
  state: 'idle' | 'busy';
  /** The job it runs while busy. */
  job?: string;
  startedAt: number;
  lastSeen: number;
};

/**
 * A failed job's reason, as BullMQ stores it (a string): `[code] message`. The code is the engine's error code, so
 * the bot can tell a request the model refused from a worker that crashed under it.
 */
export function encodeFailure(code: string, message: string): string {
  return `[${code}] ${message}`;
}

export function decodeFailure(reason: string | undefined): { code: string; message: string } {
  const match = /^\[([a-z_]+)\] ([\s\S]*)$/.exec(reason ?? '');
  return match ? { code: match[1], message: match[2] } : { code: 'internal', message: reason || 'the worker gave no reason' };
}

/** Parses one announcement; undefined when the value is not one (an older or foreign writer). */
export function parseAnnouncement(text: string | null): WorkerAnnouncement | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<WorkerAnnouncement>;
    if (typeof value.id !== 'string' || !Array.isArray(value.steps) || (value.state !== 'idle' && value.state !== 'busy')) return undefined;
    return value as WorkerAnnouncement;
  } catch {
    return undefined;
  }
}
