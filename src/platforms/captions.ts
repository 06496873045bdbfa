// The words every platform shows for a job — the prompt as typed, what kind of job it is, the seeds that remake each
// image, and the status, result, failure and cancel lines — with each platform's escaping and markup plugged in.

import type { Job } from '../core/jobs.js';
import { refusalText, type Refusal } from '../core/refusal.js';
import { imageNoise, type GenerationRequest, type NoiseStep, type Seed } from '../core/request.js';
import type { ResultDelivery, StatusUpdate } from '../core/service.js';
import { visibleText } from './escape.js';

/** How a platform marks up text, and how much of a prompt one of its messages may show. */
export type Markup = {
  /** Makes user text literal: nothing in it renders as formatting, a link or a mention. */
  escape(text: string): string;
  /** Wraps text that is already escaped. */
  bold(escaped: string): string;
  mention(userId: string): string;
  /** The most characters an escaped prompt may take in one message; a longer one is cut and ends with "…". */
  maxPromptLength: number;
};

const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

/**
 * The longest start of `text`, whole graphemes only, whose rendering fits `max` with a closing "…". Each candidate
 * start is rendered as a whole (an escape may depend on what follows a character), and a longer start never renders
 * shorter, so a binary search finds it.
 */
function cut(text: string, render: (text: string) => string, max: number): string {
  const whole = render(text);
  if (whole.length <= max) return whole;
  const ends = [...graphemes.segment(text)].map(({ index, segment }) => index + segment.length);
  let [fits, tooLong] = [0, ends.length];
  while (tooLong - fits > 1) {
    const middle = (fits + tooLong) >> 1;
    if (render(text.slice(0, ends[middle - 1])).length + 1 <= max) fits = middle;
    else tooLong = middle;
  }
  return `${fits === 0 ? '' : render(text.slice(0, ends[fits - 1]))}…`;
}

/** The prompt escaped for the platform, cut to its budget. */
export function promptText(prompt: string, markup: Markup): string {
  return cut(prompt, markup.escape, markup.maxPromptLength);
}

/** The prompt without markup, for plain-text fields (a file title): nothing hidden, at most `max` characters. */
export function plainPrompt(prompt: string, max: number): string {
  return cut(prompt, visibleText, max);
}

/** What a click made: "Image 2 at full size", "Variations of image 1", "Re-roll"; nothing for a command. */
export function jobLabel(job: Pick<Job, 'kind' | 'parentIndex'>): string {
  const image = (job.parentIndex ?? 0) + 1;
  switch (job.kind) {
    case 'upscale':
      return `Image ${image} at full size`;
    case 'vary':
      return `Variations of image ${image}`;
    case 'reroll':
      return 'Re-roll';
    default:
      return '';
  }
}

/** "seed 42", "seeds 42–45" for consecutive seeds, else "seeds 42, 7, 9". */
function seedList(seeds: readonly Seed[]): string {
  if (seeds.length === 1) return `seed ${seeds[0]}`;
  const consecutive = seeds.every((seed, i) => seed === seeds[0] + i);
  return consecutive ? `seeds ${seeds[0]}–${seeds[seeds.length - 1]}` : `seeds ${seeds.join(', ')}`;
}

const strengthText = (strength: number): string => `${Number(strength.toFixed(3))}`;
/** Longer variation histories show their first and last steps. */
const MAX_STEPS_SHOWN = 5;

/**
 * What remakes each image, read from the same noise recipes the engine is given (`imageNoise`): "seeds 42–45" (image
 * i from seed 42 + i), or for variations the seed they started from and each slerp toward another seed's noise at a
 * strength — "variations of seed 42 (+ seeds 9001–9004 at 0.25)", image i going toward seed 9001 + i.
 */
export function seedText(request: GenerationRequest): string {
  const recipes = imageNoise(request);
  const first = recipes[0];
  const history = first.variations ?? [];
  if (history.length === 0) return seedList(recipes.map((recipe) => recipe.seed));
  const step = (seeds: readonly Seed[], strength: number) => `+ ${seedList(seeds)} at ${strengthText(strength)}`;
  const steps = history.map((noise: NoiseStep, index) =>
    index < history.length - 1 ? step([noise.seed], noise.strength) : step(recipes.map((recipe) => recipe.variations![index].seed), noise.strength),
  );
  const shown = steps.length > MAX_STEPS_SHOWN ? [...steps.slice(0, 2), `… ${steps.length - 4} more`, ...steps.slice(-2)] : steps;
  return `${recipes.length > 1 ? 'variations' : 'variation'} of seed ${first.seed} (${shown.join(', then ')})`;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/** "seeds 42–45 · 2 steps · 16:9 1344×768 · 1.3 s" */
export function detailsText(request: GenerationRequest, result: Pick<ResultDelivery, 'width' | 'height' | 'elapsedMs' | 'fromCache'>): string {
  const size = `${request.aspect === '1:1' ? '' : `${request.aspect} `}${result.width}×${result.height}`;
  return [seedText(request), `${request.steps} ${request.steps === 1 ? 'step' : 'steps'}`, size, result.fromCache ? 'from the cache' : seconds(result.elapsedMs)].join(' · ');
}

/** The first line of every message about a job: the prompt in bold, what made it, and optionally its owner. */
export function headline(job: Job, markup: Markup, mention = false): string {
  return [markup.bold(promptText(job.request.prompt, markup)), jobLabel(job), mention ? markup.mention(job.userId) : ''].filter(Boolean).join(' — ');
}

export const TRUNCATED_NOTE = 'The prompt was cut to its first 75 tokens, as the model reads no more.';

/** The status line alone, the same words on every platform. */
export function statusLine(update: StatusUpdate): string {
  switch (update.state) {
    case 'queued':
      return `Queued — position ${update.position}`;
    case 'waiting':
      return update.reason === 'restarting'
        ? `The GPU is restarting; your image is queued (position ${update.position}).`
        : `No GPU that can make this image is connected right now; your image is queued (position ${update.position}).`;
    case 'running': {
      const progress = update.progress;
      if (!progress) return 'Generating…';
      if (progress.stage === 'text') return 'Generating… reading the prompt';
      if (progress.stage === 'vae') return 'Generating… decoding the image';
      return `Generating… step ${progress.step} of ${progress.steps}`;
    }
  }
}

export function statusCaption(job: Job, update: StatusUpdate, markup: Markup): string {
  return `${headline(job, markup)}\n${statusLine(update)}`;
}

export function resultCaption(job: Job, result: ResultDelivery, markup: Markup, mention: boolean): string {
  const lines = [headline(job, markup, mention), detailsText(job.request, result)];
  if (result.truncated) lines.push(TRUNCATED_NOTE);
  if (result.safetyNote) lines.push(markup.escape(result.safetyNote));
  return lines.join('\n');
}

export function failureCaption(job: Job, refusal: Refusal, markup: Markup, mention: boolean): string {
  return `${headline(job, markup, mention)}\n${refusalText(refusal)}`;
}

/** A cancelled job's message; without the job (gone from the store), only the word. */
export function cancelledCaption(job: Job | undefined, markup: Markup): string {
  return job ? `${headline(job, markup)}\nCancelled.` : 'Cancelled.';
}
