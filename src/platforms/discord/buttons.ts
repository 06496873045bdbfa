// Button ids that name the job (`v1:reroll:<job>`, `v1:upscale:<job>:<i>`, `v1:vary:<job>:<i>`, `v1:cancel:<job>`),
// so a click is understood from the store alone, after any restart; and the rows of buttons under a result.

import { ActionRowBuilder, ButtonBuilder, ButtonStyle } from 'discord.js';
import { JOB_ID_PATTERN } from '../../core/jobs.js';
import { MAX_IMAGES } from '../../core/request.js';

export type ButtonAction =
  | { action: 'reroll'; jobId: string }
  | { action: 'upscale'; jobId: string; index: number }
  | { action: 'vary'; jobId: string; index: number }
  | { action: 'cancel'; jobId: string };

const VERSION = 'v1';
/** Discord's limit on custom ids. */
export const MAX_CUSTOM_ID = 100;

export function buttonId(button: ButtonAction): string {
  const id = 'index' in button ? `${VERSION}:${button.action}:${button.jobId}:${button.index}` : `${VERSION}:${button.action}:${button.jobId}`;
  if (id.length > MAX_CUSTOM_ID) throw new RangeError(`button id over ${MAX_CUSTOM_ID} characters: ${id}`);
  return id;
}

/** Reads a custom id; anything malformed or forged is undefined. */
export function parseButtonId(customId: string): ButtonAction | undefined {
  const parts = customId.split(':');
  if (parts[0] !== VERSION || !JOB_ID_PATTERN.test(parts[2] ?? '')) return undefined;
  const jobId = parts[2];
  if ((parts[1] === 'reroll' || parts[1] === 'cancel') && parts.length === 3) return { action: parts[1], jobId };
  if ((parts[1] === 'upscale' || parts[1] === 'vary') && parts.length === 4 && /^[0-9]$/.test(parts[3])) {
    const index = Number(parts[3]);
    return index < MAX_IMAGES ? { action: parts[1], jobId, index } : undefined;
  }
  return undefined;
}

/** `U1`…`Un` and `Re-roll` in the first row, `V1`…`Vn` in the second (n = images in the result). */
export function resultRows(jobId: string, images: number): ActionRowBuilder<ButtonBuilder>[] {
  const button = (label: string, action: ButtonAction, style = ButtonStyle.Secondary) =>
    new ButtonBuilder().setCustomId(buttonId(action)).setLabel(label).setStyle(style);
  const indexes = Array.from({ length: images }, (_, i) => i);
  return [
    new ActionRowBuilder<ButtonBuilder>().addComponents(
      ...indexes.map((i) => button(`U${i + 1}`, { action: 'upscale', jobId, index: i })),
      button('Re-roll', { action: 'reroll', jobId }, ButtonStyle.Primary),
    ),
    new ActionRowBuilder<ButtonBuilder>().addComponents(...indexes.map((i) => button(`V${i + 1}`, { action: 'vary', jobId, index: i }))),
  ];
}

/** The `Cancel` button shown while a job waits. */
export function cancelRow(jobId: string): ActionRowBuilder<ButtonBuilder> {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(
    new ButtonBuilder().setCustomId(buttonId({ action: 'cancel', jobId })).setLabel('Cancel').setStyle(ButtonStyle.Danger),
  );
}
