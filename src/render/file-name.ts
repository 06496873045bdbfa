// File names for uploaded images: ASCII only, so Discord and Slack keep them as given.

import type { ImageExtension } from './encode.js';

/** Longest job-id part kept in a file name; ids are far shorter, this only bounds a surprise. */
const MAX_ID_LENGTH = 64;

/**
 * `lightning-<job>.<extension>`, or `lightning-<job>-<imageNumber>.<extension>` for one image of a grid, where
 * `imageNumber` counts from 1 as the U1–U4 buttons do. Characters of `jobId` outside `A–Z a–z 0–9 _ -` become `-`.
 */
export function imageFileName(jobId: string, extension: ImageExtension, imageNumber?: number): string {
  const id = jobId
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_ID_LENGTH);
  if (id === '') throw new RangeError(`jobId must contain a letter, digit, "_" or "-", got ${JSON.stringify(jobId)}`);
  if (imageNumber === undefined) return `lightning-${id}.${extension}`;
  if (!Number.isSafeInteger(imageNumber) || imageNumber < 1) {
    throw new RangeError(`imageNumber counts from 1, got ${imageNumber}`);
  }
  return `lightning-${id}-${imageNumber}.${extension}`;
}
