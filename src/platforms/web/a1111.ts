// AUTOMATIC1111-compatible endpoints (modules/api/api.py and models.py of its web UI), so bots and tools written for
// an A1111 backend can use this GPU: txt2img waits for the job in the same fair queue as everyone, and answers with
// base64 PNGs and an `info` JSON string carrying the real seeds; progress, models and samplers answer as A1111 does.

import type { FastifyInstance } from 'fastify';
import { isRefusal } from '../../../commands/index.js';
import imagine from '../../../commands/imagine.js';
import { MAX_IMAGES, MAX_SEED, type GenerationRequest } from '../../core/request.js';
import type { Activity, WebContext } from './context.js';
import { fieldError, refusalError, WebError } from './errors.js';
import { cancelWhenGone, imagesBase64, nearestAspect, nearestSteps } from './compat.js';

/** The sampler SDXL-Lightning runs: Euler with "trailing" timesteps (spec/lightning.md). */
const SAMPLER = { name: 'Euler', aliases: ['k_euler', 'euler'], options: { scheduler: 'trailing' } };

const txt2imgBody = {
  type: 'object',
  // A1111 clients send many fields this server has no use for (restore_faces, tiling, scripts…): they are ignored
  additionalProperties: true,
  properties: {
    prompt: { type: 'string' },
    negative_prompt: { type: 'string' },
    steps: { type: 'integer', minimum: 1 },
    width: { type: 'integer', minimum: 1 },
    height: { type: 'integer', minimum: 1 },
    cfg_scale: { type: 'number' },
    seed: { type: 'integer', minimum: -1 },
    batch_size: { type: 'integer', minimum: 1 },
    n_iter: { type: 'integer', minimum: 1 },
    sampler_name: { type: 'string' },
    sampler_index: { type: 'string' },
    send_images: { type: 'boolean' },
    save_images: { type: 'boolean' },
  },
} as const;

type Txt2ImgBody = {
  prompt?: string;
  negative_prompt?: string;
  steps?: number;
  width?: number;
  height?: number;
  cfg_scale?: number;
  seed?: number;
  batch_size?: number;
  n_iter?: number;
  sampler_name?: string;
  send_images?: boolean;
  [field: string]: unknown;
};

/** "20240131235959", as A1111 stamps its jobs. */
const timestamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);

/** What this server does not use, said in every answer: Lightning runs without classifier-free guidance. */
function ignoredFields(body: Txt2ImgBody): string[] {
  return ['cfg_scale', 'negative_prompt', 'sampler_name'].filter((field) => body[field] !== undefined && body[field] !== '');
}

export function registerA1111(app: FastifyInstance, context: WebContext): void {
  const modelTitle = () => `${context.modelName} [Lightning ${context.service.installedSteps.join('/')} steps]`;

  app.post<{ Body: Txt2ImgBody }>('/sdapi/v1/txt2img', { schema: { body: txt2imgBody } }, async (request, reply) => {
    const body = request.body;
    const commandContext = context.commandContext();
    const batchSize = body.batch_size ?? 1;
    const iterations = body.n_iter ?? 1;
    if (batchSize * iterations > MAX_IMAGES) throw fieldError('batch_size', `such that batch_size × n_iter is at most ${MAX_IMAGES}`);
    const seed = body.seed === undefined || body.seed === -1 ? undefined : body.seed;
    if (seed !== undefined && seed > MAX_SEED) throw fieldError('seed', `-1 (random) or a whole number from 0 to ${MAX_SEED}`);
    const steps = body.steps === undefined ? commandContext.defaults.steps : nearestSteps(body.steps, commandContext.installedSteps);
    const aspect = body.width === undefined && body.height === undefined ? commandContext.defaults.aspect : nearestAspect(body.width ?? body.height!, body.height ?? body.width!);
    const parsed = imagine.parse({ prompt: body.prompt ?? '', steps, seed, aspect, count: batchSize * iterations }, commandContext);
    if (isRefusal(parsed)) throw refusalError(parsed);
    const { job } = await context.accepted(context.service.imagine(context.requester(request), parsed, { via: 'a1111' }));
    cancelWhenGone(context, request, reply, job);
    const outcome = await context.outcome(job.id);
    if ('failure' in outcome) throw new WebError(outcome.failure.code === 'cancelled' ? 409 : 500, outcome.failure.code, outcome.failure.message);
    const images = body.send_images === false ? [] : await imagesBase64(context, job, outcome.stored.seeds.length);
    return {
      images,
      parameters: { ...body, prompt: body.prompt ?? '', steps: body.steps ?? steps, batch_size: batchSize, n_iter: iterations, seed: body.seed ?? -1 },
      info: JSON.stringify(info(parsed, body, outcome.stored.seeds, outcome.stored, { jobId: job.id, createdAt: job.createdAt, model: context.modelName })),
    };
  });

  app.get<{ Querystring: { skip_current_image?: string } }>('/sdapi/v1/progress', async (request) => progress(context.activity(request.webUser!.userId), Date.now()));

  app.get('/sdapi/v1/sd-models', async () => [{ title: modelTitle(), model_name: context.modelName, hash: null, sha256: null, filename: context.modelName, config: null }]);

  app.get('/sdapi/v1/samplers', async () => [SAMPLER]);

  // clients read the checkpoint in use from here before they post; the rest of A1111's options do not apply
  app.get('/sdapi/v1/options', async () => ({ sd_model_checkpoint: modelTitle(), sd_checkpoint_hash: null, samples_format: 'png' }));
}

/** The `info` string's object, as A1111's `Processed.js()` writes it, with what was really made. */
function info(
  request: GenerationRequest,
  body: Txt2ImgBody,
  seeds: number[],
  size: { width: number; height: number },
  job: { jobId: string; createdAt: number; model: string },
): Record<string, unknown> {
  const ignored = ignoredFields(body);
  const note = ignored.length ? `${ignored.join(', ')} ignored: SDXL-Lightning runs without classifier-free guidance, with its own Euler sampler` : undefined;
  const infotext = (seed: number) =>
    `${request.prompt}\nSteps: ${request.steps}, Sampler: Euler, Schedule type: trailing, CFG scale: 1, Seed: ${seed}, Size: ${size.width}x${size.height}, Model: ${job.model}` +
    (note ? `, Ignored: ${ignored.join(' ')}` : '');
  return {
    prompt: request.prompt,
    all_prompts: seeds.map(() => request.prompt),
    negative_prompt: '',
    all_negative_prompts: seeds.map(() => ''),
    seed: seeds[0],
    all_seeds: seeds,
    subseed: -1,
    all_subseeds: seeds.map(() => -1),
    subseed_strength: 0,
    width: size.width,
    height: size.height,
    sampler_name: SAMPLER.name,
    cfg_scale: 1,
    steps: request.steps,
    batch_size: seeds.length,
    restore_faces: false,
    face_restoration_model: null,
    sd_model_name: job.model,
    sd_model_hash: null,
    sd_vae_name: null,
    sd_vae_hash: null,
    seed_resize_from_w: -1,
    seed_resize_from_h: -1,
    denoising_strength: 0,
    extra_generation_params: { 'Schedule type': 'trailing', 'Job id': job.jobId, ...(note ? { Ignored: note } : {}) },
    index_of_first_image: 0,
    infotexts: seeds.map(infotext),
    styles: [],
    job_timestamp: timestamp(job.createdAt),
    clip_skip: 1,
    is_using_inpainting_conditioning: false,
    version: 'lightning-image-bot',
    // not in A1111: the fields this answer did not use, for a client that wants to know
    ignored_fields: ignored,
  };
}

/** A1111's progress: the member's running job (else their next waiting one), 0–1, with an estimate of what is left. */
function progress(activity: Activity[], now: number): Record<string, unknown> {
  const current = activity.find((entry) => entry.event.type === 'running') ?? activity[0];
  const state = {
    skipped: false,
    interrupted: false,
    stopping_generation: false,
    job: current ? current.job.id : '',
    job_count: activity.length,
    job_timestamp: current ? timestamp(current.job.createdAt) : '0',
    job_no: 0,
    sampling_step: 0,
    sampling_steps: current?.job.request.steps ?? 0,
  };
  if (!current) return { progress: 0, eta_relative: 0, state, current_image: null, textinfo: null };
  const data = current.event.data as { progress?: { stage: string; step: number; steps: number }; message?: string };
  let fraction = 0;
  if (current.event.type === 'running') {
    const stage = data.progress;
    fraction = !stage ? 0.01 : stage.stage === 'text' ? 0.05 : stage.stage === 'vae' ? 0.95 : 0.1 + (0.8 * stage.step) / Math.max(1, stage.steps);
    if (stage?.stage === 'unet') state.sampling_step = stage.step;
  }
  const elapsed = current.runningSince === undefined ? 0 : (now - current.runningSince) / 1000;
  const eta = fraction > 0 ? (elapsed / fraction) * (1 - fraction) : 0;
  return { progress: fraction, eta_relative: eta, state, current_image: null, textinfo: data.message ?? null };
}
