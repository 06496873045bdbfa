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
 * Learns merges so that each word becomes one token: while BPE with the merges so far leaves a word in pieces, the
 * first two pieces are merged by a new, lowest-priority merge. Later merges never change how earlier words split,
 * since BPE always applies the lowest-ranked pair first.
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
  const ranks = new Map<string, number>();
  for (const word of words) {
    for (;;) {
      const pieces = applyMerges([...word], ranks);
      if (pieces.length === 1) break;
      const line = `${pieces[0]} ${pieces[1]}`;
      ranks.set(line, merges.length);
      merges.push(line);
      add(pieces[0] + pieces[1]);
    }
  }
  add('<|startoftext|>');
  add('<|endoftext|>');
  return { vocab, merges, bosTokenId: vocab['<|startoftext|>'], eosTokenId: vocab['<|endoftext|>'] };
}

/** Plain BPE on one word's characters (last one with `</w>`), lowest rank first. */
function applyMerges(chars: string[], ranks: ReadonlyMap<string, number>): string[] {
  let pieces = chars.map((c, i) => (i === chars.length - 1 ? `${c}</w>` : c));
  for (;;) {
    let best = -1;
    for (let i = 0; i < pieces.length - 1; i++) {
      const rank = ranks.get(`${pieces[i]} ${pieces[i + 1]}`);
      if (rank !== undefined && (best < 0 || rank < (ranks.get(`${pieces[best]} ${pieces[best + 1]}`) ?? Infinity))) best = i;
    }
    if (best < 0) return pieces;
    pieces = [...pieces.slice(0, best), pieces[best] + pieces[best + 1], ...pieces.slice(best + 2)];
  }
}

/** `merges.txt` text, with the header line transformers skips. */
export function mergesFileText(merges: readonly string[]): string {
  return `#version: 0.2\n${merges.join('\n')}\n`;
}
