import { describe, expect, it } from 'vitest';
import { channelRefusal, createPolicy, isDirectMessage, promptRefusal, requestRefusal } from '../../../src/core/policy.js';

describe('the channel policy', () => {
  const policy = createPolicy({ blockedWords: [], allowedChannels: ['C1'] });

  it('allows only the listed channels, and every direct message', () => {
    expect(channelRefusal(policy, { guildId: 'G', channelId: 'C1' })).toBeUndefined();
    expect(channelRefusal(policy, { guildId: 'G', channelId: 'C2' })).toEqual({ code: 'channel_not_allowed' });
    // a Discord DM has no guild; a Slack DM has a team, so the platform marks it
    expect(channelRefusal(policy, { guildId: null, channelId: 'D1' })).toBeUndefined();
    expect(channelRefusal(policy, { guildId: 'T1', channelId: 'D1', direct: true })).toBeUndefined();
    expect(channelRefusal(policy, { guildId: 'T1', channelId: 'D1', direct: false })).toEqual({ code: 'channel_not_allowed' });
    expect(isDirectMessage({ guildId: 'T1', channelId: 'D1' })).toBe(false);
  });

  it('allows every channel when none is listed', () => {
    expect(channelRefusal(createPolicy({ blockedWords: [], allowedChannels: [] }), { guildId: 'G', channelId: 'C9' })).toBeUndefined();
  });
});

describe('the prompt checks', () => {
  const policy = createPolicy({ blockedWords: [' Forbidden ', 'bad word', 'ＮＯＰＥ', ''], allowedChannels: [] });

  it('refuse a blocked word as a whole word, in any case', () => {
    expect(promptRefusal(policy, 'a FORBIDDEN thing')).toEqual({ code: 'blocked_word' });
    expect(promptRefusal(policy, 'a bad word here')).toEqual({ code: 'blocked_word' });
    expect(promptRefusal(policy, 'nope.')).toEqual({ code: 'blocked_word' });
    expect(promptRefusal(policy, 'unforbiddenly badwords')).toBeUndefined();
  });

  it('see through zero-width characters, soft hyphens and full-width letters', () => {
    for (const prompt of ['forb\u200bidden', 'for\u00adbid\u2060den', 'ｆｏｒｂｉｄｄｅｎ', 'a\u200bforbidden', 'bad\u200dword', 'bad\u200b word']) {
      expect(promptRefusal(policy, prompt), prompt).toEqual({ code: 'blocked_word' });
    }
  });

  it('refuse a prompt that shows nothing as empty', () => {
    expect(promptRefusal(policy, '\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f')).toEqual({ code: 'prompt_empty' });
  });

  it('check the channel first, and the prompt only when there is one', () => {
    const strict = createPolicy({ blockedWords: ['forbidden'], allowedChannels: ['C1'] });
    expect(requestRefusal(strict, { guildId: 'G', channelId: 'C2' }, 'forbidden')).toEqual({ code: 'channel_not_allowed' });
    expect(requestRefusal(strict, { guildId: 'G', channelId: 'C1' }, 'forbidden')).toEqual({ code: 'blocked_word' });
    expect(requestRefusal(strict, { guildId: 'G', channelId: 'C1' })).toBeUndefined();
  });
});
