// Slack's buttons and message blocks for results and queue status; button values name the job like Discord's ids.

import type { types } from '@slack/bolt';
import type { Job } from '../../core/jobs.js';
import type { ResultDelivery, StatusUpdate } from '../../core/service.js';
import { buttonId, type ButtonAction } from '../button-ids.js';

/** Slack escapes only &, < and > in mrkdwn text. */
export function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function button(text: string, action: ButtonAction, style?: 'primary' | 'danger'): types.Button {
  const id = buttonId(action);
  return { type: 'button', text: { type: 'plain_text', text }, action_id: id, value: id, ...(style ? { style } : {}) };
}

const section = (text: string): types.SectionBlock => ({ type: 'section', text: { type: 'mrkdwn', text } });

function what(job: Job): string {
  if (job.kind === 'upscale') return ` — image ${(job.parentIndex ?? 0) + 1} at full size`;
  if (job.kind === 'vary') return ` — variations of image ${(job.parentIndex ?? 0) + 1}`;
  if (job.kind === 'reroll') return ' — re-roll';
  return '';
}

export function statusBlocks(job: Job, update: StatusUpdate): { text: string; blocks: types.KnownBlock[] } {
  const text = `*${escapeText(job.request.prompt)}*${what(job)}\n${update.state === 'running' ? 'Generating…' : `Queued — position ${update.position}`}`;
  const blocks: types.KnownBlock[] = [section(text)];
  if (update.state === 'queued') blocks.push({ type: 'actions', elements: [button('Cancel', { action: 'cancel', jobId: job.id }, 'danger')] });
  return { text, blocks };
}

export function resultCaption(job: Job, result: ResultDelivery): string {
  const seeds = result.seeds.length > 1 ? `seeds ${result.seeds[0]}–${result.seeds[result.seeds.length - 1]}` : `seed ${result.seeds[0]}`;
  const time = result.fromCache ? 'from the cache' : `${(result.elapsedMs / 1000).toFixed(1)} s`;
  const lines = [`*${escapeText(job.request.prompt)}*${what(job)} — <@${job.userId}>`, `${seeds} · ${job.request.steps} steps · ${result.width}×${result.height} · ${time}`];
  if (result.truncated) lines.push('The prompt was cut to its first 75 tokens, as the model reads no more.');
  return lines.join('\n');
}

/** The caption, then `U1`…`Un` and `Re-roll`, then `V1`…`Vn`. */
export function resultBlocks(job: Job, result: ResultDelivery): types.KnownBlock[] {
  const indexes = result.seeds.map((_, i) => i);
  return [
    section(resultCaption(job, result)),
    {
      type: 'actions',
      elements: [...indexes.map((i) => button(`U${i + 1}`, { action: 'upscale', jobId: job.id, index: i })), button('Re-roll', { action: 'reroll', jobId: job.id }, 'primary')],
    },
    { type: 'actions', elements: indexes.map((i) => button(`V${i + 1}`, { action: 'vary', jobId: job.id, index: i })) },
  ];
}
