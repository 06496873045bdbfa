// The words the Discord bot shows: status lines and result captions (refusal sentences come from core/refusal.ts).

import { escapeMarkdown } from 'discord.js';
import type { Job } from '../../core/jobs.js';
import type { ResultDelivery, StatusUpdate } from '../../core/service.js';

const quote = (prompt: string): string => `**${escapeMarkdown(prompt)}**`;

function what(job: Job): string {
  const index = job.parentIndex === null ? '' : ` of image ${job.parentIndex + 1}`;
  switch (job.kind) {
    case 'upscale':
      return `Image${index.replace(' of image', '')} at full size`;
    case 'vary':
      return `Variations${index}`;
    case 'reroll':
      return 'Re-roll';
    default:
      return '';
  }
}

export function statusText(job: Job, update: StatusUpdate): string {
  const head = [quote(job.request.prompt), what(job)].filter(Boolean).join(' — ');
  return update.state === 'running' ? `${head}\nGenerating…` : `${head}\nQueued — position ${update.position}`;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

export function resultText(job: Job, result: ResultDelivery, mention: boolean): string {
  const { request } = job;
  const seeds = result.seeds.length > 1 ? `seeds ${result.seeds[0]}–${result.seeds[result.seeds.length - 1]}` : `seed ${result.seeds[0]}`;
  const size = `${request.aspect === '1:1' ? '' : `${request.aspect} `}${result.width}×${result.height}`;
  const details = [seeds, `${request.steps} ${request.steps === 1 ? 'step' : 'steps'}`, size, result.fromCache ? 'from the cache' : seconds(result.elapsedMs)];
  const lines = [
    [quote(request.prompt), what(job), mention ? `<@${job.userId}>` : ''].filter(Boolean).join(' — '),
    details.join(' · '),
  ];
  if (result.truncated) lines.push('The prompt was cut to its first 75 tokens, as the model reads no more.');
  return lines.join('\n');
}
