import { describe, expect, it } from 'vitest';
import { cleanPrompt, hasVisibleText, matchingForms } from '../../../src/core/prompt.js';

/** Characters that show nothing by themselves. */
const INVISIBLE = {
  'zero-width space': '\u200b',
  'zero-width non-joiner': '\u200c',
  'zero-width joiner': '\u200d',
  'word joiner': '\u2060',
  'byte order mark': '\ufeff',
  'soft hyphen': '\u00ad',
  'left-to-right mark': '\u200e',
  'right-to-left mark': '\u200f',
  'Arabic letter mark': '\u061c',
  'right-to-left override': '\u202e',
  'first strong isolate': '\u2068',
  'variation selector 16': '\ufe0f',
  'Hangul filler': '\u3164',
  'combining grapheme joiner': '\u034f',
  'combining acute accent': '\u0301',
  'Braille blank': '\u2800',
  'tag space': '\u{e0020}',
  'private use': '\ue000',
  'no-break space': '\u00a0',
  'ideographic space': '\u3000',
  NUL: '\u0000',
  ESC: '\u001b',
  'C1 CSI': '\u009b',
} as const;

describe('prompt text', () => {
  it('finds nothing visible in a prompt made only of zero-width, format, control or blank characters', () => {
    for (const [name, character] of Object.entries(INVISIBLE)) {
      expect(hasVisibleText(character.repeat(3)), name).toBe(false);
      expect(hasVisibleText(cleanPrompt(` ${character} ${character}`)), name).toBe(false);
    }
    expect(hasVisibleText(Object.values(INVISIBLE).join(''))).toBe(false);
  });

  it('finds text in any script, and in emoji', () => {
    for (const text of ['a', '猫', 'سلام', '👩‍💻', '1', '!', 'é']) expect(hasVisibleText(text), text).toBe(true);
  });

  it('cleans controls and bidi reordering out of the stored prompt, and keeps joiners that emoji need', () => {
    expect(cleanPrompt('  a\u0000 red\u001b[31m  cat\n\tat\u0085dusk ')).toBe('a red[31m cat at dusk');
    expect(cleanPrompt('file\u202egpj.exe and \u2066isolated\u2069')).toBe('filegpj.exe and isolated');
    expect(cleanPrompt('👩‍💻 at work \ud800')).toBe('👩‍💻 at work \ufffd');
    expect(cleanPrompt('שלום\u200f world')).toBe('שלום\u200f world');
  });

  it('reads word-list forms as the tokenizer does, and split at invisible characters', () => {
    expect(matchingForms('Forb\u200bidden')).toEqual(['forbidden', 'forb idden']);
    expect(matchingForms('ＦＯＲＢＩＤＤＥＮ thing')[0]).toBe('forbidden thing');
    expect(matchingForms('a\u00adforbidden')).toEqual(['aforbidden', 'a forbidden']);
  });
});
