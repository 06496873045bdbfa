import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../../src/diffusion/index.js';
import { buildSmallVocabulary, mergesFileText } from '../../../models/tiny/vocabulary.js';

const small = buildSmallVocabulary();
const id = (token: string): number => {
  const value = small.vocab[token];
  if (value === undefined) throw new Error(`test vocabulary lacks ${token}`);
  return value;
};
const tokenizer = new ClipTokenizer(small.vocab, small.merges);
const tokenizer2 = new ClipTokenizer(small.vocab, small.merges, { padTokenId: 0 });

describe('ClipTokenizer on a vocabulary built in code', () => {
  it('merges known words into one token carrying </w>', () => {
    expect(tokenizer.tokenize('a photo of a cat')).toEqual(['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>'].map(id));
  });

  it('falls back to byte symbols for unknown words and marks only the last one with </w>', () => {
    expect(tokenizer.tokenize('zq')).toEqual([id('z'), id('q</w>')]);
  });

  it('frames 77 ids: bos, tokens, eos, then the pad id', () => {
    const ids = tokenizer.encode('a cat');
    expect(ids).toHaveLength(77);
    expect(ids.slice(0, 4)).toEqual([small.bosTokenId, id('a</w>'), id('cat</w>'), small.eosTokenId]);
    expect(new Set(ids.slice(4))).toEqual(new Set([small.eosTokenId]));
    const ids2 = tokenizer2.encode('a cat');
    expect(ids2.slice(0, 4)).toEqual(ids.slice(0, 4));
    expect(new Set(ids2.slice(4))).toEqual(new Set([0]));
  });

  it('keeps 75 tokens and says when it cut the prompt', () => {
    const prompt75 = Array.from({ length: 75 }, () => 'cat').join(' ');
    const prompt80 = Array.from({ length: 80 }, () => 'cat').join(' ');
    expect(tokenizer.truncated(prompt75)).toBe(false);
    expect(tokenizer.truncated(prompt80)).toBe(true);
    expect(tokenizer.tokenize(prompt80)).toHaveLength(80);
    const ids = tokenizer.encode(prompt80);
    expect(ids).toHaveLength(77);
    expect(ids[76]).toBe(small.eosTokenId);
    expect(ids.slice(1, 76)).toEqual(Array.from({ length: 75 }, () => id('cat</w>')));
    expect(tokenizer.encode(prompt75)).toEqual(ids);
  });

  it('makes every "!" the pad id when the pad token is "!" (tokenizer_2), and a BPE token otherwise', () => {
    expect(tokenizer.tokenize('cat!')).toEqual([id('cat</w>'), id('!</w>')]);
    expect(tokenizer2.tokenize('cat!')).toEqual([id('cat</w>'), 0]);
    expect(tokenizer.tokenize('cat!!')).toEqual([id('cat</w>'), id('!'), id('!</w>')]);
    expect(tokenizer2.tokenize('cat!!')).toEqual([id('cat</w>'), 0, 0]);
    // the segments around a "!" are tokenized apart, so "cat" before it ends a word
    expect(tokenizer2.tokenize('cat!dog')).toEqual([id('cat</w>'), 0, id('dog</w>')]);
  });

  it('lowercases, collapses whitespace and drops control characters', () => {
    const expected = tokenizer.tokenize('a red cat');
    expect(tokenizer.tokenize('  A\tRED\n\r  Cat  ')).toEqual(expected);
    expect(tokenizer.tokenize('a\u0000 red\u200b cat\ufffd')).toEqual(expected);
    expect(tokenizer.tokenize('a\u00a0red\u3000cat')).toEqual(expected);
    // vertical tab and form feed are control characters to the BERT cleaner: removed, not spaces
    expect(tokenizer.tokenize('re\u000bd')).toEqual(tokenizer.tokenize('red'));
  });

  it('splits digits, contractions and punctuation like the CLIP pattern', () => {
    expect(tokenizer.tokenize('42')).toEqual([id('4</w>'), id('2</w>')]);
    expect(tokenizer.tokenize("cat's")).toEqual([id('cat</w>'), id("'"), id('s</w>')]);
    expect(tokenizer.tokenize('cat,dog')).toEqual([id('cat</w>'), id(',</w>'), id('dog</w>')]);
  });

  it('normalises to NFC and encodes non-ASCII letters as UTF-8 byte symbols', () => {
    // "é" composed and decomposed give the same ids
    expect(tokenizer.tokenize('caf\u00e9')).toEqual(tokenizer.tokenize('cafe\u0301'));
    expect(tokenizer.tokenize('\u00e9')).toEqual([id('Ã'), id('©</w>')]);
  });

  it('puts spaces around CJK ideographs but not around kana', () => {
    expect(tokenizer.tokenize('東京')).toEqual([...tokenizer.tokenize('東'), ...tokenizer.tokenize('京')]);
    expect(tokenizer.tokenize('のの')).not.toEqual([...tokenizer.tokenize('の'), ...tokenizer.tokenize('の')]);
  });

  it('maps literal special tokens to their ids and unknown symbols to eos', () => {
    expect(tokenizer.tokenize('cat<|endoftext|>')).toEqual([id('cat</w>'), small.eosTokenId]);
    expect(tokenizer.tokenize('<|STARTOFTEXT|>')).toEqual([small.bosTokenId]);
    const noZ = { ...small.vocab };
    delete noZ['z</w>'];
    expect(new ClipTokenizer(noZ, small.merges).tokenize('z')).toEqual([small.eosTokenId]);
  });

  it('returns the same ids on a second call (cache) and for an empty prompt frames only bos and eos', () => {
    expect(tokenizer.tokenize('lighthouse at dusk')).toEqual(tokenizer.tokenize('lighthouse at dusk'));
    expect(tokenizer.tokenize('')).toEqual([]);
    expect(tokenizer.encode('').slice(0, 3)).toEqual([small.bosTokenId, small.eosTokenId, small.eosTokenId]);
  });

  it('refuses a vocabulary without the special tokens', () => {
    const broken = { ...small.vocab };
    delete broken['<|endoftext|>'];
    expect(() => new ClipTokenizer(broken, small.merges)).toThrow(/no "<\|endoftext\|>"/);
  });
});

describe('ClipTokenizer.fromFiles', () => {
  const root = mkdtempSync(join(tmpdir(), 'tokenizer-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const writeFolder = (name: string, files: Record<string, unknown>): string => {
    const dir = join(root, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(small.vocab));
    writeFileSync(join(dir, 'merges.txt'), mergesFileText(small.merges));
    for (const [file, content] of Object.entries(files)) {
      writeFileSync(join(dir, file), typeof content === 'string' ? content : JSON.stringify(content));
    }
    return dir;
  };

  it('pads with eos when no special-token file sits beside the vocabulary', () => {
    const dir = writeFolder('plain', {});
    expect(ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt')).padTokenId).toBe(small.eosTokenId);
  });

  it('reads the pad token from special_tokens_map.json, as a string or an added-token object', () => {
    const asString = writeFolder('map-string', { 'special_tokens_map.json': { pad_token: '!' } });
    const t = ClipTokenizer.fromFiles(join(asString, 'vocab.json'), join(asString, 'merges.txt'));
    expect(t.padTokenId).toBe(0);
    expect(t.tokenize('cat!')).toEqual([id('cat</w>'), 0]);
    const asObject = writeFolder('map-object', {
      'special_tokens_map.json': { pad_token: { content: '<|endoftext|>', lstrip: false, rstrip: false } },
    });
    expect(ClipTokenizer.fromFiles(join(asObject, 'vocab.json'), join(asObject, 'merges.txt')).padTokenId).toBe(small.eosTokenId);
  });

  it('falls back to tokenizer_config.json, and an explicit padTokenId wins over both', () => {
    const dir = writeFolder('config', { 'tokenizer_config.json': { pad_token: '!' } });
    expect(ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt')).padTokenId).toBe(0);
    expect(ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt'), { padTokenId: small.eosTokenId }).padTokenId).toBe(
      small.eosTokenId,
    );
  });

  it('reads merges with or without the #version header the same way', () => {
    const dir = writeFolder('no-header', { 'merges.txt': `${small.merges.join('\n')}\n` });
    const withoutHeader = ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt'));
    expect(withoutHeader.tokenize('a lighthouse at dusk')).toEqual(tokenizer.tokenize('a lighthouse at dusk'));
  });

  it('names the file when it is missing or broken', () => {
    const dir = writeFolder('broken', { 'special_tokens_map.json': '{ not json' });
    expect(() => ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt'))).toThrow(/special_tokens_map\.json: not valid JSON/);
    expect(() => ClipTokenizer.fromFiles(join(dir, 'missing.json'), join(dir, 'merges.txt'))).toThrow(/missing\.json: cannot read the tokenizer vocabulary/);
    expect(() => ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'none.txt'))).toThrow(/none\.txt: cannot read the tokenizer merges/);
  });
});
