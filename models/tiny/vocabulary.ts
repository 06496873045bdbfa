// A small CLIP-style BPE vocabulary built in code, laid out like the real one: bytes, bytes with </w>, merges, specials.

/** GPT-2 `bytes_to_unicode` symbols in byte order (the order of the real vocabulary's first 256 ids). */
export function byteSymbols(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const symbols = printable.map((b) => String.fromCharCode(b));
  let next = 256;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) symbols.push(String.fromCharCode(next++));
  return symbols;
}

/** The words whose merges the small vocabulary knows, enough for readable test prompts. */
export const SMALL_VOCABULARY_WORDS = [
  'a', 'an', 'the', 'of', 'on', 'at', 'in', 'photo', 'cat', 'cats', 'dog', 'dogs', 'lighthouse', 'dusk', 'red',
  'blue', 'sky', 'sea', 'horse', 'riding', 'astronaut', 'mars', 'painting', 'castle', 'hill', 'sunset',
] as const;

export type SmallVocabulary = {
  /** token → id: ids 0–255 are the byte symbols ("!" is 0), 256–511 the same with `</w>`, then merges, then bos, eos */
  vocab: Record<string, number>;
  /** merge lines `"a b"` in rank order (no `#version` header) */
  merges: string[];
  bosTokenId: number;
  eosTokenId: number;
};

/**
 * Merges that spell each word left to right (`c a`, `ca t</w>`), each new symbol also a vocabulary entry.
 * Words are processed in the given order, so shared prefixes reuse earlier merges.
 */
export function buildSmallVocabulary(words: readonly string[] = SMALL_VOCABULARY_WORDS): SmallVocabulary {
  const symbols = byteSymbols();
  const vocab: Record<string, number> = {};
  const add = (token: string): void => {
    if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  };
  for (const s of symbols) add(s);
  for (const s of symbols) add(`${s}</w>`);
  const merges: string[] = [];
  const seen = new Set<string>();
  for (const word of words) {
    const chars = [...word];
    let left = chars[0];
    for (let i = 1; i < chars.length; i++) {
      const right = i === chars.length - 1 ? `${chars[i]}</w>` : chars[i];
      const line = `${left} ${right}`;
      if (!seen.has(line)) {
        seen.add(line);
        merges.push(line);
        add(left + right);
      }
      left += right;
    }
  }
  add('<|startoftext|>');
  add('<|endoftext|>');
  return { vocab, merges, bosTokenId: vocab['<|startoftext|>'], eosTokenId: vocab['<|endoftext|>'] };
}

/** `merges.txt` text, with the header line transformers skips. */
export function mergesFileText(merges: readonly string[]): string {
  return `#version: 0.2\n${merges.join('\n')}\n`;
}
