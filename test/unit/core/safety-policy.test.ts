import { describe, expect, it } from 'vitest';
import { attachmentAction, decideImage, decideImages, safetyNote, safetyNoteText, type SafetyPlace } from '../../../src/core/safety-policy.js';

const place = (overrides: Partial<SafetyPlace> = {}): SafetyPlace => ({ platform: 'discord', nsfwChannel: false, direct: false, dmAllowed: false, ...overrides });
const flagged = { flagged: true, score: 0.93 };
const safe = { flagged: false, score: 0.04 };

describe('the safety rule', () => {
  it('posts safe images everywhere, and treats an unchecked one as flagged', () => {
    expect(decideImage('hide', place(), safe)).toEqual({ action: 'post', reason: 'safe', flagged: false, score: 0.04 });
    expect(decideImage('hide', place(), undefined)).toEqual({ action: 'hide', reason: 'not_checked', flagged: null, score: null });
    expect(decideImage('spoiler', place({ platform: 'slack' }), undefined)).toMatchObject({ action: 'hide', reason: 'not_checked' });
    expect(decideImage('spoiler', place({ nsfwChannel: true }), undefined)).toMatchObject({ action: 'post', reason: 'nsfw_channel' });
  });

  it('posts a flagged image as it is in an age-restricted Discord channel, an allowed DM, or with the check off', () => {
    expect(decideImage('hide', place({ nsfwChannel: true }), flagged)).toMatchObject({ action: 'post', reason: 'nsfw_channel' });
    expect(decideImage('spoiler', place({ direct: true, dmAllowed: true }), flagged)).toMatchObject({ action: 'post', reason: 'allowed_dm' });
    expect(decideImage('off', place(), flagged)).toMatchObject({ action: 'post', reason: 'mode_off' });
  });

  it('blurs or hides a flagged image elsewhere, by the server mode', () => {
    expect(decideImage('spoiler', place(), flagged)).toEqual({ action: 'spoiler', reason: 'server_mode', flagged: true, score: 0.93 });
    expect(decideImage('hide', place(), flagged)).toMatchObject({ action: 'hide', reason: 'server_mode' });
    // a DM that is not allowed is like any other place
    expect(decideImage('spoiler', place({ direct: true }), flagged)).toMatchObject({ action: 'spoiler' });
  });

  it('follows the server mode on Slack and the web, which have no age-restricted channels and cannot blur', () => {
    expect(decideImage('spoiler', place({ platform: 'web' }), flagged)).toEqual({ action: 'hide', reason: 'cannot_blur', flagged: true, score: 0.93 });
    expect(decideImage('spoiler', place({ platform: 'slack' }), flagged)).toEqual({ action: 'hide', reason: 'cannot_blur', flagged: true, score: 0.93 });
    expect(decideImage('hide', place({ platform: 'slack', nsfwChannel: true }), flagged)).toMatchObject({ action: 'hide' });
    expect(decideImage('off', place({ platform: 'slack' }), flagged)).toMatchObject({ action: 'post' });
  });

  it('blurs a whole grid for one spoiler cell, and counts what the note says', () => {
    const spoilered = decideImages('spoiler', place(), [safe, flagged, safe, flagged]);
    expect(attachmentAction(spoilered)).toBe('spoiler');
    expect(safetyNote(spoilered)).toEqual({ spoiler: 2, hidden: 0 });
    const hidden = decideImages('hide', place(), [safe, flagged, safe, safe]);
    expect(attachmentAction(hidden)).toBe('post');
    expect(safetyNote(hidden)).toEqual({ spoiler: 0, hidden: 1 });
    expect(safetyNote(decideImages('hide', place(), [safe, safe]))).toBeUndefined();
  });

  it('words the note for one image and for a grid', () => {
    expect(safetyNoteText({ spoiler: 1, hidden: 0 }, 1)).toMatchInlineSnapshot(`"This image may not suit everyone, so it is blurred until clicked."`);
    expect(safetyNoteText({ spoiler: 2, hidden: 0 }, 4)).toMatchInlineSnapshot(`"2 images may not suit everyone, so the file is blurred until clicked."`);
    expect(safetyNoteText({ spoiler: 0, hidden: 1 }, 1)).toMatchInlineSnapshot(`"This image was hidden by this server's safety setting."`);
    expect(safetyNoteText({ spoiler: 0, hidden: 3 }, 4)).toMatchInlineSnapshot(`"3 images were hidden by this server's safety setting."`);
  });
});
