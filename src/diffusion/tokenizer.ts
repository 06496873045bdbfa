// CLIP BPE tokenizer as diffusers runs it for SDXL: transformers' CLIPTokenizer without ftfy (spec/lightning.md §1.1).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Tokens in a prompt window: bos + 75 + eos. */
export const CLIP_MAX_LENGTH = 77;
const MAX_PROMPT_TOKENS = CLIP_MAX_LENGTH - 2;
const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';
/** transformers reads merges 1…48,894 (49152 − 256 − 2 lines after the version header). */
const MERGE_LIMIT = 49152 - 256 - 2;
/** Distinct words cached per tokenizer; prompts come from users, so the cache is bounded. */
const CACHE_LIMIT = 20_000;

export type ClipTokenizerOptions = {
  /** Id used to pad to 77. Default: the folder's special_tokens_map.json / tokenizer_config.json, else eos. */
  padTokenId?: number;
};

/** CLIP pre-tokenisation regex (transformers `CLIPTokenizer.pat`); the text is lowercased first. */
const PIECE_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
const SPACE_SEPARATOR = /^\p{Zs}$/u;
const OTHER_CATEGORY = /^\p{C}$/u;

/** GPT-2 `bytes_to_unicode`: printable bytes map to themselves, the other 68 to U+0100 onwards in order. */
function byteToUnicodeTable(): string[] {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
}
const BYTE_TO_UNICODE = byteToUnicodeTable();

/** BERT's `_is_chinese_char`: the CJK ideograph blocks that get spaces around them. */
function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/**
 * transformers' `BasicTokenizer(strip_accents=False, do_split_on_punc=False)`: drop NUL, U+FFFD and control
 * characters, map whitespace to spaces, put spaces around CJK ideographs, NFC, lowercase, single spaces.
 */
function cleanText(text: string): string {
  let cleaned = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || SPACE_SEPARATOR.test(ch)) cleaned += ' ';
    else if (cp === 0 || cp === 0xfffd || OTHER_CATEGORY.test(ch)) continue;
    else if (isCjkIdeograph(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  return cleaned
    .normalize('NFC')
    .split(/\s+/u)
    .filter((word) => word.length > 0)
    .map((word) => word.toLowerCase())
    .join(' ');
}

function readPadToken(folder: string): string | undefined {
  for (const file of ['special_tokens_map.json', 'tokenizer_config.json']) {
    const path = join(folder, file);
    if (!existsSync(path)) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
    }
    const pad = (parsed as { pad_token?: unknown }).pad_token;
    if (typeof pad === 'string') return pad;
    if (pad && typeof pad === 'object' && typeof (pad as { content?: unknown }).content === 'string') {
      return (pad as { content: string }).content;
    }
  }
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A CLIP tokenizer for one of SDXL's two text encoders. Pure after construction; reuse one instance. */
export class ClipTokenizer {
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  private readonly vocab: Map<string, number>;
  private readonly mergeRanks: Map<string, number>;
  /** Special tokens taken out of the text before BPE (transformers' added-token split), with their ids. */
  private readonly specialTokens: Map<string, number>;
  private readonly specialPattern: RegExp;
  private readonly cache = new Map<string, number[]>();

  /**
   * @param vocab token → id, as in `vocab.json`
   * @param merges merge lines `"a b"` in rank order, without the `#version` header
   */
  constructor(vocab: Record<string, number>, merges: readonly string[], options: ClipTokenizerOptions & { padToken?: string } = {}) {
    this.vocab = new Map(Object.entries(vocab));
    this.mergeRanks = new Map();
    merges.slice(0, MERGE_LIMIT).forEach((line, rank) => {
      const parts = line.split(/\s+/).filter(Boolean);
      if (parts.length === 2) this.mergeRanks.set(`${parts[0]} ${parts[1]}`, rank);
    });
    this.bosTokenId = this.requireId(BOS, 'the start token');
    this.eosTokenId = this.requireId(EOS, 'the end token');
    if (options.padTokenId !== undefined) {
      if (!Number.isInteger(options.padTokenId) || options.padTokenId < 0) {
        throw new RangeError(`padTokenId must be a non-negative integer, got ${options.padTokenId}`);
      }
      this.padTokenId = options.padTokenId;
    } else {
      this.padTokenId = options.padToken === undefined ? this.eosTokenId : this.requireId(options.padToken, 'the pad token');
    }
    this.specialTokens = new Map([
      [BOS, this.bosTokenId],
      [EOS, this.eosTokenId],
    ]);
    // A pad token that is not bos/eos (tokenizer_2's "!") is an added special token: every occurrence in the
    // prompt becomes the pad id, exactly what diffusers feeds text_encoder_2.
    const padToken = [...this.vocab].find(([, id]) => id === this.padTokenId)?.[0];
    if (padToken !== undefined && !this.specialTokens.has(padToken)) this.specialTokens.set(padToken, this.padTokenId);
    const alternatives = [...this.specialTokens.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.specialPattern = new RegExp(`(${alternatives.join('|')})`, 'u');
  }

  /**
   * Reads `vocab.json` and `merges.txt`. The pad id comes from `options.padTokenId`, else from the
   * `special_tokens_map.json` or `tokenizer_config.json` beside the vocabulary (tokenizer_2 pads with "!" = 0),
   * else eos (49407).
   */
  static fromFiles(vocabJsonPath: string, mergesTxtPath: string, options: ClipTokenizerOptions = {}): ClipTokenizer {
    let vocab: Record<string, number>;
    try {
      vocab = JSON.parse(readFileSync(vocabJsonPath, 'utf8')) as Record<string, number>;
    } catch (error) {
      throw new Error(`${vocabJsonPath}: cannot read the tokenizer vocabulary (${(error as Error).message})`);
    }
    let mergesText: string;
    try {
      mergesText = readFileSync(mergesTxtPath, 'utf8');
    } catch (error) {
      throw new Error(`${mergesTxtPath}: cannot read the tokenizer merges (${(error as Error).message})`);
    }
    const lines = mergesText.trim().split('\n');
    const merges = lines[0]?.startsWith('#version') ? lines.slice(1) : lines;
    const padToken = options.padTokenId === undefined ? readPadToken(dirname(vocabJsonPath)) : undefined;
    return new ClipTokenizer(vocab, merges, { ...options, padToken });
  }

  /** Exactly 77 ids: bos, the first 75 tokens, eos, then padding. */
  encode(text: string): number[] {
    const ids = [this.bosTokenId, ...this.tokenize(text).slice(0, MAX_PROMPT_TOKENS), this.eosTokenId];
    while (ids.length < CLIP_MAX_LENGTH) ids.push(this.padTokenId);
    return ids;
  }

  /** The prompt's BPE ids with no bos, eos or padding, and no truncation. */
  tokenize(text: string): number[] {
    const ids: number[] = [];
    for (const segment of text.split(this.specialPattern)) {
      const special = this.specialTokens.get(segment);
      if (special !== undefined) {
        ids.push(special);
        continue;
      }
      for (const [piece] of cleanText(segment).matchAll(PIECE_PATTERN)) ids.push(...this.pieceIds(piece));
    }
    return ids;
  }

  /** Whether `encode` drops tokens: the prompt has more than 75. */
  truncated(text: string): boolean {
    return this.tokenize(text).length > MAX_PROMPT_TOKENS;
  }

  private requireId(token: string, what: string): number {
    const id = this.vocab.get(token);
    if (id === undefined) throw new Error(`the tokenizer vocabulary has no ${JSON.stringify(token)} (${what})`);
    return id;
  }

  private pieceIds(piece: string): number[] {
    const special = this.specialTokens.get(piece);
    if (special !== undefined && (piece === BOS || piece === EOS)) return [special];
    const cached = this.cache.get(piece);
    if (cached) return cached;
    let mapped = '';
    for (const byte of Buffer.from(piece, 'utf8')) mapped += BYTE_TO_UNICODE[byte];
    const ids = this.bpe(mapped).map((symbol) => this.vocab.get(symbol) ?? this.eosTokenId);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids);
    return ids;
  }

  /** Merge adjacent symbols by rank until no pair has one; the last symbol carries `</w>`. */
  private bpe(word: string): string[] {
    let symbols = [...word];
    symbols[symbols.length - 1] += '</w>';
    while (symbols.length > 1) {
      let bestRank = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i < symbols.length - 1; i++) {
        const rank = this.mergeRanks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          first = symbols[i];
          second = symbols[i + 1];
        }
      }
      if (bestRank === Infinity) break;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i < symbols.length - 1 && symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(symbols[i]);
        }
      }
      symbols = merged;
    }
    return symbols;
  }
}
