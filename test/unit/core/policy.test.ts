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

  it('see through spelling: each evasion in the table is caught', () => {
    const words = createPolicy({ blockedWords: ['forbidden', 'nope', 'bad word', 'x-rated'], allowedChannels: [] });
    const evasions: Record<string, string> = {
      'zero-width space': 'a forb\u200bidden cat',
      'zero-width joiner and non-joiner': 'for\u200dbid\u200cden',
      'word joiner and BOM': 'f\u2060orbidden\ufeff',
      'soft hyphen': 'forbid\u00adden',
      'bidi marks': 'forbi\u200edden',
      'variation selector': 'forbid\ufe0fden',
      'tag characters': 'forbid\u{e0041}den',
      'full-width letters': 'ａ ｆｏｒｂｉｄｄｅｎ cat',
      'mathematical letters': '𝐟𝐨𝐫𝐛𝐢𝐝𝐝𝐞𝐧',
      'circled letters': 'ⓕⓞⓡⓑⓘⓓⓓⓔⓝ',
      'combining acute accent': 'fo\u0301rbidden',
      'precomposed accents': 'fórbìddén',
      'combining overlay': 'f\u0338o\u0338rbidden',
      zalgo: 'f\u0300\u0316\u0317o\u0301\u0358rbidden',
      'mixed case': 'FoRbIdDeN',
      'dotted capital I': 'FORBİDDEN',
      'Cyrillic look-alikes': 'nоpе',
      'Greek look-alikes': 'nορe',
      'leet digits': 'f0rb1dd3n',
      'leet signs': 'n0p3!',
      'leet 1 as l and i': 'forb1dden',
      'leet $ and @': 'b@d w0rd',
      'digits touching': 'forbidden2 and 3nope',
      'punctuation around': '(forbidden), "nope".',
      'spelled out with dots': 'f.o.r.b.i.d.d.e.n',
      'spelled out with spaces': 'n o p e',
      'spelled out with dashes and leet': 'f-0-r-b-1-d-d-3-n',
      'phrase with a hyphen': 'a bad-word',
      'phrase with underscores and leet': 'bad__w0rd',
      'hyphenated word as written': 'X-Rated',
      'hyphenated word with a space': 'x rated',
      'newline inside a phrase': 'bad\nword',
    };
    for (const [name, prompt] of Object.entries(evasions)) expect(promptRefusal(words, prompt), name).toEqual({ code: 'blocked_word' });
  });

  it('leave innocent words that contain a blocked word alone', () => {
    const words = createPolicy({ blockedWords: ['ass', 'sex', 'hell', 'nope', 'bad word', 'cock'], allowedChannels: [] });
    const innocent = [
      'a glass of water in a classroom',
      'an assassin in Essex, Sussex and Middlesex',
      'shell beach, hello there, Michelle',
      'a cocktail with a peacock',
      'nopes and unopened boxes',
      'a badword-free wordbook about bad words',
      "John's ex-wife at the sea",
      'p4ss the cl4ss',
      'h e l lo',
      'massive brass basses',
      'сосна (a Russian pine)',
      'a bass guitar',
    ];
    for (const prompt of innocent) expect(promptRefusal(words, prompt), prompt).toBeUndefined();
  });

  it('names no word in the refusal', () => {
    const refusal = promptRefusal(createPolicy({ blockedWords: ['forbidden'], allowedChannels: [] }), 'forbidden');
    expect(refusal).toEqual({ code: 'blocked_word' });
    expect(JSON.stringify(refusal)).not.toContain('forbidden');
  });

  it('takes any word as given, with signs that mean something in a pattern', () => {
    const odd = createPolicy({ blockedWords: ['a$$', 'c++', 'x]y', 'we(ird', 'back\\slash', '^caret-'], allowedChannels: [] });
    for (const prompt of ['a$$', 'c++ code', 'x]y', 'we(ird', 'back\\slash', '^caret-']) expect(promptRefusal(odd, prompt), prompt).toEqual({ code: 'blocked_word' });
    expect(promptRefusal(odd, 'plain text')).toBeUndefined();
    // an entry of separators only blocks nothing (an empty pattern would match every prompt)
    expect(createPolicy({ blockedWords: ['-', ' . ', '\u200b'], allowedChannels: [] }).blockedWord).toBeUndefined();
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
