// The words the Discord bot shows for a job — status, result, failure and cancel lines — from the shared captions with
// Discord's markdown escaping (refusal sentences come from core/refusal.ts).

import type { Job } from '../../core/jobs.js';
import type { Refusal } from '../../core/refusal.js';
import type { ResultDelivery, StatusUpdate } from '../../core/service.js';
import { cancelledCaption, failureCaption, resultCaption, statusCaption, type Markup } from '../captions.js';
import { escapeDiscord } from '../escape.js';

/**
 * Discord's markup. Content holds 2000 characters; the prompt may take 1400 of them escaped (every character of a
 * 1000-character prompt could need a backslash), which leaves room for the longest label, mention and seed recipe.
 */
export const DISCORD_MARKUP: Markup = {
  escape: escapeDiscord,
  bold: (escaped) => `**${escaped}**`,
  mention: (userId) => `<@${userId}>`,
  maxPromptLength: 1400,
};

/** Discord's limit on a message's content. */
export const MAX_CONTENT_LENGTH = 2000;

export function statusText(job: Job, update: StatusUpdate): string {
  return statusCaption(job, update, DISCORD_MARKUP);
}

/** `mention`: name the owner, for a result posted as a normal message rather than as the reply to their command. */
export function resultText(job: Job, result: ResultDelivery, mention: boolean): string {
  return resultCaption(job, result, DISCORD_MARKUP, mention);
}

export function failureText(job: Job, refusal: Refusal, mention: boolean): string {
  return failureCaption(job, refusal, DISCORD_MARKUP, mention);
}

export function cancelledText(job: Job | undefined): string {
  return cancelledCaption(job, DISCORD_MARKUP);
}
