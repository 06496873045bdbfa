// Button ids that name the job (`v1:reroll:<job>`, `v1:upscale:<job>:<i>`, `v1:vary:<job>:<i>`, `v1:cancel:<job>`), so
// a click is understood from the store alone, after any restart; Discord's custom ids and Slack's action ids alike.

import { JOB_ID_PATTERN } from '../core/jobs.js';
import { MAX_IMAGES } from '../core/request.js';

export type ButtonAction =
  | { action: 'reroll'; jobId: string }
  | { action: 'upscale'; jobId: string; index: number }
  | { action: 'vary'; jobId: string; index: number }
  | { action: 'cancel'; jobId: string };

const VERSION = 'v1';
/** Discord's limit on custom ids (Slack allows 255 for action ids). */
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

