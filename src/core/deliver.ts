// The deliver step: made images become a post on the job's platform, or the member is told why not. It owns every
// job from "the engine is done" (or "the cache has it") to done or failed, retrying a platform that is down for
// minutes, and leaves a job it could not finish in the store as `delivering`, so the next start delivers it.

import type { Logger } from '../logger.js';
import { composeGrid, decodeImage, encodeForUpload, imageFileName, placeholderTile, type EncodedImage, type RgbImage } from '../render/index.js';
import { deliveryVerdict } from './delivery-error.js';
import type { ImageCache } from './image-cache.js';
import type { Job, JobStore, JobTimings } from './jobs.js';
import type { Refusal } from './refusal.js';
import { ASPECT_SIZES } from './request.js';
import { attachmentAction, decideImages, safetyNote, safetyNoteText, type ImageVerdict, type SafetyDecision, type SafetyMode } from './safety-policy.js';

/** What the deliver step hands a platform: one file (a grid or a single image) and what to say about it. */
export type ResultDelivery = {
  file: EncodedImage;
  fileName: string;
  /** Seed of each image, in order. */
  seeds: number[];
  /** Size of each image as generated (the file holds a grid of them, or one, possibly scaled to fit the upload). */
  width: number;
  height: number;
  /** Wall time from the request to the finished images. */
  elapsedMs: number;
  truncated: boolean;
  /** Served from the image cache without the GPU. */
  fromCache: boolean;
  /** The file must be blurred until clicked (its name already starts with `SPOILER_`, as Discord wants). */
  spoiler?: boolean;
  /** Says that images were blurred or hidden by the safety check; shown under the result. */
  safetyNote?: string;
};

/** The safety rule for a job: its server's mode, and whether flagged images may be posted in DMs. */
export type SafetyRule = { mode: SafetyMode; dmAllowed: boolean };

/** How long a platform that cannot be reached is tried again, doubling the wait from `firstDelayMs` up to `maxDelayMs`. */
export type DeliveryRetry = { firstDelayMs: number; maxDelayMs: number; giveUpAfterMs: number };

export const DEFAULT_DELIVERY_RETRY: DeliveryRetry = { firstDelayMs: 2_000, maxDelayMs: 60_000, giveUpAfterMs: 10 * 60_000 };

/** The part of a platform adapter the deliver step uses. */
export type DeliveryTarget = {
  maxUploadBytes(job: Job): number;
  deliverResult(job: Job, result: ResultDelivery): Promise<string | undefined>;
  deliverFailure(job: Job, refusal: Refusal): Promise<void>;
  /** The job's reply data without secrets (interaction tokens, response URLs), stored once the job is finished. */
  forgetReply?(job: Job): Record<string, unknown>;
};

export type DeliverDeps = {
  store: JobStore;
  images: ImageCache;
  logger: Logger;
  now: () => number;
  target(job: Job): DeliveryTarget | undefined;
  /** Gives back what the job took from the limits: it failed, so it does not count. */
  refund(job: Job): void;
  /** The job's images are in the cache now (or will never be): U clicks waiting on it may go on. */
  onCached?(job: Job, cached: boolean): void;
  /** The job ended failed (its owner was told, or could not be). */
  onFailed?(job: Job): void;
  /** The safety rule for the job's server; without it (SAFETY=off) images are posted unchecked and nothing is recorded. */
  safety?(job: Job): SafetyRule;
};

/** A DM: Discord's have no guild; Slack's have a team, and their channel ids start with D. */
const isDirect = (job: Job): boolean => job.guildId === null || (job.platform === 'slack' && job.channelId.startsWith('D'));

/**
 * Where image `index` of a job is cached. A U job's one image is image `parentIndex` of its parent, so it is cached
 * (and looked up) there: every U of the same image, and U on a U result, find the one copy.
 */
export function cacheKey(job: Pick<Job, 'id' | 'kind' | 'parentId' | 'parentIndex'>, index: number): [jobId: string, index: number] {
  if (job.kind === 'upscale' && job.parentId !== null && job.parentIndex !== null) return [job.parentId, job.parentIndex];
  return [job.id, index];
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown; stopped: boolean };

export class Deliverer {
  private readonly deps: DeliverDeps;
  private readonly retry: DeliveryRetry;
  private readonly logger: Logger;
  private readonly work = new Set<Promise<void>>();
  /** Wakes every retry that is waiting, so a stop does not wait for minutes. */
  private readonly sleepers = new Set<() => void>();
  private stopping = false;

  constructor(retry: DeliveryRetry, deps: DeliverDeps) {
    this.retry = retry;
    this.deps = deps;
    this.logger = deps.logger.child({ part: 'deliver' });
  }

  /** Images fresh from the engine: cached for U buttons, composed, encoded and posted. */
  generated(job: Job, images: readonly RgbImage[], result: { truncated: boolean; timings: JobTimings; worker?: string; safety?: readonly ImageVerdict[] }): void {
    this.deps.store.markDelivering(job.id, result.timings, result.worker ?? null);
    // decided and recorded before anything is posted, so a restart posts the same way
    const decisions = this.decide(job, images.length, result.safety);
    this.track(
      this.cache(job, images).then((cached) => this.deps.onCached?.(job, cached)),
      job,
    );
    this.track(
      (async () => {
        // let the caller go on first, so the engine gets its next job before the grid is composed on this thread
        await new Promise((resolve) => setImmediate(resolve));
        const shown = this.hideFlagged(job, images, decisions);
        await this.post(job, () => (shown.length === 1 ? shown[0] : composeGrid([...shown])), {
          truncated: result.truncated,
          fromCache: false,
          timings: result.timings,
          decisions,
        });
      })(),
      job,
    );
  }

  /** Images from the cache (a U click whose image is there, or a job made before a restart): posted as they are. */
  fromCache(job: Job, pngs: readonly Buffer[], options: { fromCache: boolean; truncated?: boolean }): void {
    const decisions = this.decide(job, pngs.length, this.recordedVerdicts(job));
    const hidden = (i: number): boolean => decisions?.[i]?.action === 'hide';
    this.track(
      this.post(
        job,
        async () => {
          const { width, height } = ASPECT_SIZES[job.request.aspect];
          if (pngs.length === 1 && !hidden(0)) return { data: pngs[0], format: 'png', contentType: 'image/png', extension: 'png', width, height } satisfies EncodedImage;
          const images = await Promise.all(pngs.map((png, i) => (hidden(i) ? placeholderTile(width, height) : decodeImage(png))));
          return images.length === 1 ? images[0] : composeGrid(images);
        },
        { truncated: options.truncated ?? false, fromCache: options.fromCache, decisions },
      ),
      job,
    );
  }

  /**
   * Decides and records what happens to each image (SAFETY=on): by the verdicts, the server's mode and the place.
   * Images without a verdict (a runner that does not check) count as flagged and are recorded as not checked.
   */
  private decide(job: Job, count: number, verdicts: readonly (ImageVerdict | undefined)[] | undefined): SafetyDecision[] | undefined {
    const rule = this.deps.safety?.(job);
    if (!rule) return undefined;
    const place = { platform: job.platform, nsfwChannel: job.nsfwChannel, direct: isDirect(job), dmAllowed: rule.dmAllowed };
    const decisions = decideImages(rule.mode, place, Array.from({ length: count }, (_, i) => verdicts?.[i]));
    this.deps.store.setSafety(job.id, decisions);
    if (decisions.some((d) => d.flagged !== false)) this.logger.info({ job: job.id, decisions }, 'the safety check flagged images, or could not check them');
    return decisions;
  }

  /**
   * The verdicts a job from the cache was posted with: its own record (made before a restart), else, for a U, those
   * of the grid image it shows, so U on a flagged image follows the same rule.
   */
  private recordedVerdicts(job: Job): (ImageVerdict | undefined)[] | undefined {
    const toVerdict = (d: SafetyDecision | undefined): ImageVerdict | undefined => (d && d.flagged !== null && d.score !== null ? { flagged: d.flagged, score: d.score } : undefined);
    const own = this.deps.store.get(job.id)?.safety ?? job.safety;
    if (own) return own.map(toVerdict);
    if (job.kind !== 'upscale' || job.parentId === null || job.parentIndex === null) return undefined;
    const [gridId, index] = cacheKey(job, 0);
    return [toVerdict(this.deps.store.get(gridId)?.safety?.[index])];
  }

  /** The images as they are shown: a placeholder tile in place of each hidden one. */
  private hideFlagged(job: Job, images: readonly RgbImage[], decisions: readonly SafetyDecision[] | undefined): readonly RgbImage[] {
    if (!decisions?.some((d) => d.action === 'hide')) return images;
    return images.map((image, i) => (decisions[i]?.action === 'hide' ? placeholderTile(image.width, image.height) : image));
  }

  /** Tells the member the job failed and marks it failed; `error` is the admin's detail for the record. */
  fail(job: Job, refusal: Refusal, error: string): void {
    this.track(this.tell(job, refusal, error), job);
  }

  /** Stops retrying (jobs not posted yet stay `delivering` for the next start) and waits for posts under way. */
  async close(timeoutMs: number): Promise<boolean> {
    this.stop();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const finished = (async () => {
      while (this.work.size > 0) await Promise.allSettled([...this.work]);
      return true;
    })();
    const done = await Promise.race([finished, timeout]);
    clearTimeout(timer);
    return done;
  }

  /** Stop accepting retries but keep going with what runs (called when the service starts stopping). */
  stop(): void {
    this.stopping = true;
    for (const wake of this.sleepers) wake();
  }

  private track(work: Promise<void>, job: Job): void {
    const tracked = work
      .catch((error: unknown) => this.logger.error({ err: error, job: job.id }, 'delivery work failed'))
      .finally(() => this.work.delete(tracked));
    this.work.add(tracked);
  }

  private async cache(job: Job, images: readonly RgbImage[]): Promise<boolean> {
    try {
      for (const [index, image] of images.entries()) await this.deps.images.put(...cacheKey(job, index), image);
      return true;
    } catch (error) {
      this.logger.warn({ err: error, job: job.id }, 'could not cache an image; U buttons will make it again');
      return false;
    }
  }

  /** Encodes within the platform's limit and posts; every way this ends is done, told, or left for the next start. */
  private async post(
    job: Job,
    image: () => RgbImage | EncodedImage | Promise<RgbImage | EncodedImage>,
    details: { truncated: boolean; fromCache: boolean; timings?: JobTimings; decisions?: readonly SafetyDecision[] },
  ): Promise<void> {
    const target = this.deps.target(job);
    if (!target) {
      this.logger.warn({ job: job.id, platform: job.platform }, 'no platform to deliver to; the job waits in the store for a start with that platform');
      return;
    }
    let file: EncodedImage;
    try {
      const made = await image();
      const maxBytes = target.maxUploadBytes(job);
      file = 'contentType' in made && made.data.length <= maxBytes ? made : await encodeForUpload('contentType' in made ? await decodeImage(made.data) : made, maxBytes);
    } catch (error) {
      this.logger.error({ err: error, job: job.id }, 'could not encode the images');
      return this.tell(job, { code: 'generation_failed' }, `encoding failed: ${(error as Error).message}`);
    }
    const spoiler = details.decisions !== undefined && attachmentAction(details.decisions) === 'spoiler';
    const note = details.decisions && safetyNote(details.decisions);
    const result: ResultDelivery = {
      file,
      // Discord blurs an attachment whose name starts with SPOILER_ until it is clicked
      fileName: `${spoiler ? 'SPOILER_' : ''}${imageFileName(job.id, file.extension)}`,
      ...(spoiler ? { spoiler } : {}),
      ...(note ? { safetyNote: safetyNoteText(note, details.decisions!.length) } : {}),
      seeds: Array.from({ length: job.request.count }, (_, i) => job.request.seed + i),
      ...ASPECT_SIZES[job.request.aspect],
      elapsedMs: this.deps.now() - job.createdAt,
      truncated: details.truncated,
      fromCache: details.fromCache,
    };
    const posted = await this.withRetries(job, 'post the result', () => target.deliverResult(job, result));
    if (posted.ok) {
      if (posted.value) this.deps.store.setResultMessage(job.id, posted.value);
      this.deps.store.markDone(job.id, details.timings);
      this.forget(job, target);
      return;
    }
    if (posted.stopped) return;
    this.logger.error({ err: posted.error, job: job.id }, 'could not deliver a result; telling the member');
    await this.tell(job, { code: 'delivery_failed' }, `delivery failed: ${(posted.error as Error)?.message ?? String(posted.error)}`);
  }

  private async tell(job: Job, refusal: Refusal, error: string): Promise<void> {
    const target = this.deps.target(job);
    const told = target ? await this.withRetries(job, 'tell the member', () => target.deliverFailure(job, refusal)) : undefined;
    if (told && !told.ok && told.stopped) return;
    if (!told?.ok) this.logger.error({ err: told?.error, job: job.id, refusal: refusal.code }, 'could not tell the member that the job failed');
    this.deps.store.markFailed(job.id, error);
    this.deps.refund(job);
    this.deps.onFailed?.(job);
    if (target) this.forget(job, target);
  }

  private forget(job: Job, target: DeliveryTarget): void {
    if (!target.forgetReply) return;
    try {
      this.deps.store.pruneReply(job.id, target.forgetReply(job));
    } catch (error) {
      this.logger.warn({ err: error, job: job.id }, 'could not drop the reply data of a finished job');
    }
  }

  /**
   * Runs `attempt` until it works, the platform says it never will, `giveUpAfterMs` has passed, or the service
   * stops. Waits double from `firstDelayMs` to `maxDelayMs`, never shorter than the platform's Retry-After.
   */
  private async withRetries<T>(job: Job, what: string, attempt: () => Promise<T>): Promise<Outcome<T>> {
    const started = this.deps.now();
    let delay = this.retry.firstDelayMs;
    for (let tries = 1; ; tries++) {
      try {
        return { ok: true, value: await attempt() };
      } catch (error) {
        const verdict = deliveryVerdict(error);
        const wait = Math.max(delay, verdict.retryAfterMs ?? 0);
        if (!verdict.retryable || this.deps.now() - started + wait > this.retry.giveUpAfterMs) return { ok: false, error, stopped: false };
        if (this.stopping) return { ok: false, error, stopped: true };
        this.logger.warn({ err: error, job: job.id, tries, retryInMs: wait }, `could not ${what}; trying again`);
        await this.sleep(wait);
        if (this.stopping) {
          this.logger.info({ job: job.id }, `stopping before the job could ${what}; it is delivered at the next start`);
          return { ok: false, error, stopped: true };
        }
        delay = Math.min(delay * 2, this.retry.maxDelayMs);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}
