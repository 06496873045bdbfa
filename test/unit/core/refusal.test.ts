import { describe, expect, it } from 'vitest';
import { formatWait, REFUSAL_SENTENCES, refusalText, type Refusal } from '../../../src/core/refusal.js';

describe('refusal sentences', () => {
  it('has one sentence per code, each a single sentence that ends with a full stop', () => {
    const samples: Refusal[] = [
      { code: 'rate_limited', retryAfterMs: 40_000 },
      { code: 'too_many_queued', limit: 2 },
      { code: 'queue_full' },
      { code: 'daily_quota', limit: 200, retryAfterMs: 5 * 3_600_000 },
      { code: 'banned' },
      { code: 'blocked_word' },
      { code: 'channel_not_allowed' },
      { code: 'prompt_empty' },
      { code: 'prompt_too_long', max: 1000 },
      { code: 'invalid_option', option: 'seed', expected: 'a whole number' },
      { code: 'steps_unavailable', steps: 8, installed: [4] },
      { code: 'unknown_job' },
      { code: 'foreign_job' },
      { code: 'not_owner' },
      { code: 'not_cancellable' },
      { code: 'generation_failed' },
      { code: 'delivery_failed' },
      { code: 'shutting_down' },
      { code: 'not_admin' },
      { code: 'no_server' },
    ];
    expect(new Set(samples.map((sample) => sample.code))).toEqual(new Set(Object.keys(REFUSAL_SENTENCES)));
    for (const sample of samples) {
      const text = refusalText(sample);
      expect(text).toMatch(/^[A-Z0-9].*\.$/);
      expect(text.split(/[.!?] /).length).toBe(1);
    }
    expect(refusalText(samples[0])).toBe('You can imagine again in 40 s.');
    expect(refusalText(samples[3])).toBe('This server has used its 200 images for today; try again in 5 h.');
    expect(refusalText(samples[15])).toBe('Generation failed, try again; the admin has the details.');
  });

  it('rounds waits up and switches units for long ones', () => {
    expect([formatWait(1), formatWait(41_200), formatWait(119_000), formatWait(125_000), formatWait(3 * 3_600_000)]).toEqual(['1 s', '42 s', '119 s', '3 min', '3 h']);
  });
});
