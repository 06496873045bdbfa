// OpenAI-compatible image generation (`POST /v1/images/generations`, as in OpenAI's API reference): the prompt goes
// through the same command, limits and fair queue as everyone's; the answer waits for the images and carries them as
// base64 or as URLs of this server.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isRefusal } from '../../../commands/index.js';
import imagine from '../../../commands/imagine.js';
import { MAX_IMAGES } from '../../core/request.js';
import type { WebContext } from './context.js';
import { fieldError, refusalError, WebError } from './errors.js';
import { cancelWhenGone, imagesBase64, nearestAspect } from './compat.js';
import { imagePath } from './views.js';

const generationsBody = {
  type: 'object',
  required: ['prompt'],
  // model, quality, style, user, background… are accepted: there is one model, and it has no such settings
  additionalProperties: true,
  properties: {
    prompt: { type: 'string' },
    model: { type: 'string' },
    n: { type: 'integer' },
    size: { type: 'string' },
    response_format: { type: 'string', enum: ['url', 'b64_json'] },
    user: { type: 'string' },
  },
} as const;

type GenerationsBody = { prompt: string; model?: string; n?: number; size?: string; response_format?: 'url' | 'b64_json' };

/** This server's own address as the client reached it, for image URLs. */
function origin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

export function registerOpenAi(app: FastifyInstance, context: WebContext): void {
  app.post<{ Body: GenerationsBody }>('/v1/images/generations', { schema: { body: generationsBody } }, async (request, reply) => {
    const body = request.body;
    const n = body.n ?? 1;
    if (n < 1 || n > MAX_IMAGES) throw fieldError('n', `a whole number from 1 to ${MAX_IMAGES} here`);
    const size = body.size ?? 'auto';
    const dimensions = /^([1-9]\d{0,4})x([1-9]\d{0,4})$/.exec(size);
    if (size !== 'auto' && !dimensions) throw fieldError('size', '"auto" or a size such as "1024x1024"');
    const commandContext = context.commandContext();
    const aspect = dimensions ? nearestAspect(Number(dimensions[1]), Number(dimensions[2])) : commandContext.defaults.aspect;
    const parsed = imagine.parse({ prompt: body.prompt, aspect, count: n }, commandContext);
    if (isRefusal(parsed)) throw refusalError(parsed);
    const { job } = await context.accepted(context.service.imagine(context.requester(request), parsed, { via: 'openai' }));
    cancelWhenGone(context, request, reply, job);
    const outcome = await context.outcome(job.id);
    if ('failure' in outcome) throw new WebError(outcome.failure.code === 'cancelled' ? 409 : 500, outcome.failure.code, outcome.failure.message);
    const { stored } = outcome;
    const count = stored.seeds.length;
    const data =
      body.response_format === 'b64_json'
        ? (await imagesBase64(context, job, count)).map((b64) => ({ b64_json: b64, revised_prompt: parsed.prompt }))
        : Array.from({ length: count }, (_, index) => ({ url: `${origin(request)}${imagePath(job.id, index)}`, revised_prompt: parsed.prompt }));
    return {
      created: Math.floor(job.createdAt / 1000),
      data,
      size: `${stored.width}x${stored.height}`,
      output_format: 'png',
    };
  });
}
