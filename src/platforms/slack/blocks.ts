// Slack's texts and blocks for a job — status, result, buttons, failure — from the shared captions with Slack's
// escaping; button values name the job like Discord's ids.

import type { types } from '@slack/bolt';
import type { Job } from '../../core/jobs.js';
import type { Refusal } from '../../core/refusal.js';
import type { ResultDelivery, StatusUpdate } from '../../core/service.js';
import { buttonId, type ButtonAction } from '../button-ids.js';
import { failureCaption, plainPrompt, promptText, resultCaption, statusCaption, type Markup } from '../captions.js';
import { escapeSlack } from '../escape.js';

/**
 * Slack's markup. A section's text holds 3000 characters; the prompt may take 2500 of them escaped (`&` becomes
 * `&amp;`), which leaves room for the rest of a caption.
 */
export const SLACK_MARKUP: Markup = {
  escape: escapeSlack,
  bold: (escaped) => `*${escaped}*`,
  mention: (userId) => `<@${userId}>`,
  maxPromptLength: 2500,
};

/** Slack's limit on a file's title. */
const MAX_TITLE_LENGTH = 250;

function button(text: string, action: ButtonAction, style?: 'primary' | 'danger'): types.Button {
  const id = buttonId(action);
  return { type: 'button', text: { type: 'plain_text', text }, action_id: id, value: id, ...(style ? { style } : {}) };
}

const section = (text: string): types.SectionBlock => ({ type: 'section', text: { type: 'mrkdwn', text } });

export function statusBlocks(job: Job, update: StatusUpdate): { text: string; blocks: types.KnownBlock[] } {
  const text = statusCaption(job, update, SLACK_MARKUP);
  const blocks: types.KnownBlock[] = [section(text)];
  if (update.state === 'queued') blocks.push({ type: 'actions', elements: [button('Cancel', { action: 'cancel', jobId: job.id }, 'danger')] });
  return { text, blocks };
}

/** The file's comment: the caption, with the owner named. */
export function resultComment(job: Job, result: ResultDelivery): string {
  return resultCaption(job, result, SLACK_MARKUP, true);
}

/** The fallback text (notifications, screen readers) of the message that carries the buttons. */
export function buttonsText(job: Job): string {
  return `Buttons for ${promptText(job.request.prompt, SLACK_MARKUP)}`;
}

/** The uploaded file's title, plain text. */
export function fileTitle(job: Job): string {
  return plainPrompt(job.request.prompt, MAX_TITLE_LENGTH);
}

export function failureText(job: Job, refusal: Refusal): string {
  return failureCaption(job, refusal, SLACK_MARKUP, false);
}

/** The usage answer, after what was wrong if anything, escaped line by line: it names `<prompt>`, which Slack reads as a tag. */
export function usageText(usage: string, problem?: string): string {
  return (problem ? `${problem}\n${usage}` : usage).split('\n').map(escapeSlack).join('\n');
}

/** The caption, then `U1`…`Un` and `Re-roll`, then `V1`…`Vn`. */
export function resultBlocks(job: Job, result: ResultDelivery): types.KnownBlock[] {
  const indexes = result.seeds.map((_, i) => i);
  return [
    section(resultComment(job, result)),
    {
      type: 'actions',
      elements: [...indexes.map((i) => button(`U${i + 1}`, { action: 'upscale', jobId: job.id, index: i })), button('Re-roll', { action: 'reroll', jobId: job.id }, 'primary')],
    },
    { type: 'actions', elements: indexes.map((i) => button(`V${i + 1}`, { action: 'vary', jobId: job.id, index: i })) },
  ];
}
