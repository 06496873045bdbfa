import { describe, expect, it } from 'vitest';
import { buttonId, MAX_CUSTOM_ID, parseButtonId } from '../../../src/platforms/button-ids.js';
import { resultRows } from '../../../src/platforms/discord/buttons.js';
import { newJobId } from '../../../src/core/jobs.js';

describe('Discord button ids', () => {
  const jobId = newJobId();

  it('round-trip every action and stay within 100 characters', () => {
    for (const action of [
      { action: 'reroll', jobId },
      { action: 'cancel', jobId },
      { action: 'upscale', jobId, index: 3 },
      { action: 'vary', jobId, index: 0 },
    ] as const) {
      const id = buttonId(action);
      expect(id.length).toBeLessThanOrEqual(MAX_CUSTOM_ID);
      expect(parseButtonId(id)).toEqual(action);
    }
    expect(buttonId({ action: 'upscale', jobId, index: 1 })).toBe(`v1:upscale:${jobId}:1`);
  });

  it('rejects forged or malformed ids', () => {
    for (const forged of [
      '',
      'reroll',
      `v2:reroll:${jobId}`,
      `v1:delete:${jobId}`,
      'v1:reroll:../../etc',
      `v1:upscale:${jobId}`,
      `v1:upscale:${jobId}:4`,
      `v1:vary:${jobId}:-1`,
      `v1:reroll:${jobId}:1`,
      `v1:reroll:${jobId.toUpperCase()}`,
    ]) {
      expect(parseButtonId(forged)).toBeUndefined();
    }
  });

  it('lays out U1–Un with Re-roll, then V1–Vn, only as many as images', () => {
    const labels = (images: number) => resultRows(jobId, images).map((row) => row.toJSON().components.map((c) => ('label' in c ? c.label : '')));
    expect(labels(4)).toEqual([
      ['U1', 'U2', 'U3', 'U4', 'Re-roll'],
      ['V1', 'V2', 'V3', 'V4'],
    ]);
    expect(labels(2)).toEqual([
      ['U1', 'U2', 'Re-roll'],
      ['V1', 'V2'],
    ]);
  });
});
