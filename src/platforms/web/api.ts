// The JSON API the page uses (and anyone may): the command's options, submit, a job and its events as Server-Sent
// Events, its grid and images, the buttons (re-roll, upscale, vary, cancel) and the member's history.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isRefusal } from '../../../commands/index.js';
import imagine from '../../../commands/imagine.js';
import type { Job } from '../../core/jobs.js';
import { imageFileName } from '../../render/index.js';
import type { WebContext } from './context.js';
import { fieldError, refusalError, WebError } from './errors.js';
import { FINAL_EVENTS, type WebEvent } from './events.js';
import { commandView, jobView } from './views.js';

/** Keeps proxies and browsers from closing an event stream that is quiet while a job waits. */
const HEARTBEAT_MS = 15_000;
/** How soon an EventSource reconnects after a dropped stream. */
const RETRY_MS = 2_000;
const HISTORY_PAGE = 20;
const MAX_HISTORY_PAGE = 50;

const sequence = (event: WebEvent): number => Number(event.id.split('.')[1]);

/** The reply data of a web job; nothing in it is secret. */
const WEB_REPLY = { via: 'web' };

const imagineBody = {
  type: 'object',
  required: ['prompt'],
  additionalProperties: false,
  properties: {
    prompt: { type: 'string' },
    steps: { type: 'integer' },
    seed: { type: 'integer' },
    aspect: { type: 'string' },
    count: { type: 'integer' },
  },
} as const;

const indexBody = {
  type: 'object',
  required: ['index'],
  additionalProperties: false,
  properties: { index: { type: 'integer', minimum: 0 } },
} as const;

type Params = { id: string };
type ImageParams = { id: string; image: string };

export function registerApi(app: FastifyInstance, context: WebContext): void {
  const { service, results } = context;

  app.get('/api/command', async () => commandView(imagine, context.commandContext()));

  app.get('/api/session', async (request) => ({ userId: request.webUser!.userId, login: context.loginRequired }));

  app.post<{ Body: Record<string, string | number> }>('/api/imagine', { schema: { body: imagineBody } }, async (request, reply) => {
    const parsed = imagine.parse(request.body, context.commandContext());
    if (isRefusal(parsed)) throw refusalError(parsed);
    const { job, position } = await context.accepted(service.imagine(context.requester(request), parsed, WEB_REPLY));
    return reply.code(202).send({ job: jobView(job, undefined), position });
  });

  app.get<{ Params: Params }>('/api/jobs/:id', async (request) => {
    const job = context.ownJob(request, request.params.id);
    return { job: jobView(job, await results.get(job.id)) };
  });

  app.get<{ Params: Params }>('/api/jobs/:id/events', async (request, reply) => {
    const job = context.ownJob(request, request.params.id);
    await streamEvents(context, job, request, reply);
  });

  app.get<{ Params: Params; Querystring: { download?: string } }>('/api/jobs/:id/grid', async (request, reply) => {
    const job = context.ownJob(request, request.params.id);
    const file = await results.file(job.id);
    if (!file) throw new WebError(404, 'no_result', 'This job has no image yet, or it is no longer kept.');
    const disposition = request.query.download !== undefined ? 'attachment' : 'inline';
    return reply
      .type(file.stored.contentType)
      .header('Content-Disposition', `${disposition}; filename="${file.stored.fileName}"`)
      .header('Cache-Control', 'private, max-age=31536000, immutable')
      .send(file.data);
  });

  app.get<{ Params: ImageParams }>('/api/jobs/:id/images/:image', async (request, reply) => {
    const job = context.ownJob(request, request.params.id);
    const match = /^(\d)(?:\.png)?$/.exec(request.params.image);
    const index = match ? Number(match[1]) : -1;
    if (index < 0 || index >= job.request.count) throw fieldError('image', `an image number from 0 to ${job.request.count - 1}, optionally ending in .png`);
    const png = await results.image(job, index);
    if (!png) throw new WebError(404, 'no_result', 'This job has no image yet, or it is no longer kept.');
    return reply
      .type('image/png')
      .header('Content-Disposition', `attachment; filename="${imageFileName(job.id, 'png', index + 1)}"`)
      .header('Cache-Control', 'private, max-age=31536000, immutable')
      .send(png);
  });

  app.post<{ Params: Params }>('/api/jobs/:id/reroll', async (request, reply) => {
    const parent = context.ownJob(request, request.params.id);
    const { job, position } = await context.accepted(service.reroll(context.requester(request), parent.id, WEB_REPLY));
    return reply.code(202).send({ job: jobView(job, undefined), position });
  });

  for (const action of ['upscale', 'vary'] as const) {
    app.post<{ Params: Params; Body: { index: number } }>(`/api/jobs/:id/${action}`, { schema: { body: indexBody } }, async (request, reply) => {
      const parent = context.ownJob(request, request.params.id);
      const { index } = request.body;
      if (index >= parent.request.count) throw fieldError('index', `an image number from 0 to ${parent.request.count - 1}`);
      const requester = context.requester(request);
      const submission = action === 'upscale' ? service.upscale(requester, parent.id, index, WEB_REPLY) : service.vary(requester, parent.id, index, WEB_REPLY);
      const { job, position } = await context.accepted(submission);
      return reply.code(202).send({ job: jobView(job, undefined), position });
    });
  }

  app.post<{ Params: Params }>('/api/jobs/:id/cancel', async (request) => {
    const job = context.ownJob(request, request.params.id);
    const result = service.cancel(context.requester(request), job.id);
    if (!result.ok) throw refusalError(result.refusal);
    context.cancelled(job);
    return { job: jobView(service.job(job.id) ?? job, undefined) };
  });

  app.get<{ Querystring: { limit?: string; before?: string } }>('/api/history', async (request) => {
    const { limit, before } = request.query;
    if (limit !== undefined && !(/^\d+$/.test(limit) && Number(limit) >= 1 && Number(limit) <= MAX_HISTORY_PAGE)) {
      throw fieldError('limit', `a whole number from 1 to ${MAX_HISTORY_PAGE}`);
    }
    if (before !== undefined && !/^\d{1,15}$/.test(before)) throw fieldError('before', 'a time in milliseconds (a job’s createdAt)');
    const size = limit === undefined ? HISTORY_PAGE : Number(limit);
    const jobs = context.store.recentFor('web', request.webUser!.userId, { limit: size, before: before === undefined ? undefined : Number(before) });
    const views = await Promise.all(jobs.map(async (job) => jobView(job, await results.get(job.id))));
    return { jobs: views, next: jobs.length === size ? jobs[jobs.length - 1].createdAt : null };
  });
}

/**
 * The job's events as `text/event-stream`: what the stream missed when it comes back with Last-Event-ID and this
 * process still has it, else where the job stands now; then each new event, until a final one ends the stream.
 */
async function streamEvents(context: WebContext, job: Job, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const lastEventId = request.headers['last-event-id'];
  const missed = context.events.since(job.id, typeof lastEventId === 'string' ? lastEventId : undefined);
  const current = missed ? undefined : await context.currentEvent(job);
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-store',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
    'X-Content-Type-Options': 'nosniff',
  });
  raw.write(`retry: ${RETRY_MS}\n\n`);
  let open = true;
  let heartbeat: NodeJS.Timeout | undefined;
  let unsubscribe = (): void => {};
  const end = (): void => {
    if (!open) return;
    open = false;
    clearInterval(heartbeat);
    unsubscribe();
    raw.end();
  };
  const send = (event: WebEvent): void => {
    if (!open) return;
    raw.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`);
    if (FINAL_EVENTS.has(event.type)) end();
  };
  // from here on all is synchronous until the listener is in, so no event falls between the replay and the live ones
  const backlog = missed ?? [current!];
  unsubscribe = context.events.subscribe(job.id, send);
  // an event published while the current state was read from disk comes after it
  const latest = context.events.latest(job.id);
  if (current && latest && latest.id !== current.id && sequence(latest) > sequence(current)) backlog.push(latest);
  raw.on('close', end);
  for (const event of backlog) send(event);
  if (open) {
    heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
  }
}
