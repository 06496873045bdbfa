import { describe, expect, it } from 'vitest';
import { imageFileName } from '../../../src/render/index.js';

describe('imageFileName', () => {
  it('names a grid and a numbered image', () => {
    expect(imageFileName('01JABCDEF', 'png')).toBe('lightning-01JABCDEF.png');
    expect(imageFileName('01JABCDEF', 'webp', 2)).toBe('lightning-01JABCDEF-2.webp');
    expect(imageFileName('job_7', 'jpg', 4)).toBe('lightning-job_7-4.jpg');
  });

  it('keeps names ASCII and short', () => {
    expect(imageFileName('a/b c:é…', 'png')).toBe('lightning-a-b-c.png');
    expect(imageFileName('x'.repeat(200), 'png')).toBe(`lightning-${'x'.repeat(64)}.png`);
  });

  it('refuses an id with nothing usable and image numbers below 1', () => {
    expect(() => imageFileName('ééé', 'png')).toThrow('jobId must contain a letter, digit, "_" or "-", got "ééé"');
    expect(() => imageFileName('job', 'png', 0)).toThrow('imageNumber counts from 1, got 0');
    expect(() => imageFileName('job', 'png', 1.5)).toThrow(RangeError);
  });
});
