// What the A1111 and OpenAI endpoints share: mapping their free numbers onto what Lightning has (installed step
// counts, SDXL buckets), reading a finished job's images, and letting go of a job whose client hung up.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Job } from '../../core/jobs.js';
import { ASPECT_SIZES, ASPECTS, type Aspect } from '../../core/request.js';
import type { WebContext } from './context.js';

/** The installed step count nearest to `steps`; a tie goes to the fewer steps (the faster). */
export function nearestSteps(steps: number, installed: readonly number[]): number {
  if (installed.length === 0) return steps;
  return [...installed].sort((a, b) => Math.abs(a - steps) - Math.abs(b - steps) || a - b)[0];
}

/** The SDXL bucket whose shape is nearest `width`×`height`, by ratio (|log|, so 2:1 and 1:2 are as far from 1:1). */
export function nearestAspect(width: number, height: number): Aspect {
  const wanted = Math.log(width / height);
  const distance = (aspect: Aspect) => Math.abs(Math.log(ASPECT_SIZES[aspect].width / ASPECT_SIZES[aspect].height) - wanted);
  return ASPECTS.reduce((best, aspect) => (distance(aspect) < distance(best) - 1e-12 ? aspect : best));
}

/** Each image of a finished job as base64 PNG, in order. */
export async function imagesBase64(context: WebContext, job: Job, count: number): Promise<string[]> {
  const images = await Promise.all(Array.from({ length: count }, (_, index) => context.results.image(job, index)));
  return images.map((png, index) => {
    if (!png) throw new Error(`image ${index} of job ${job.id} is missing from the results`);
    return png.toString('base64');
  });
}

/**
 * A client that hangs up while its job still waits no longer wants it: the job is cancelled and its place refunded,
 * as the Cancel button would. A job already running finishes and stays in the member's history.
 */
export function cancelWhenGone(context: WebContext, request: FastifyRequest, reply: FastifyReply, job: Job): void {
  reply.raw.once('close', () => {
    if (reply.raw.writableFinished) return;
    const result = context.service.cancel(context.requester(request), job.id);
    if (!result.ok) return;
    context.cancelled(job);
    context.logger.info({ job: job.id }, 'the client left before its job ran; cancelled');
  });
}
