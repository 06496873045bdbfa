// The rows of Discord buttons under a result (and the Cancel button while waiting); their ids come from button-ids.ts.

import { ActionRowBuilder, ButtonBuilder, ButtonStyle } from 'discord.js';
import { buttonId, type ButtonAction } from '../button-ids.js';

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
