// Prompt text rules: how a typed prompt is cleaned before it is stored, when it says nothing, and the form word lists
// are matched against (what the model reads, with invisible characters gone and look-alike letters folded).

/** Runs of whitespace, NEL (U+0085, a C1 line break) and the line and paragraph separators included. */
const WHITESPACE = /[\s\u0085]+/gu;
/** Control characters (C0, DEL, C1). The text encoders' tokenizer drops them, so they only matter where a prompt is shown. */
const CONTROL = /\p{Cc}/gu;
/** Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): they reorder the text that follows them. */
const BIDI_REORDERING = /[\u202a-\u202e\u2066-\u2069]/gu;
const LONE_SURROGATE = /\p{Cs}/gu;
/**
 * Whatever shows nothing by itself: whitespace, other (control, format, private-use, unassigned) characters,
 * default-ignorable ones (zero-width spaces and joiners, variation selectors, Hangul fillers, soft hyphens), combining
 * marks without a base, and the blank Braille pattern.
 */
const INVISIBLE = /[\s\p{C}\p{M}\p{Default_Ignorable_Code_Point}\u2800]/u;
/** Characters the tokenizer drops (spec: BERT-style cleanup removes the Unicode "other" categories and U+FFFD). */
const DROPPED_BY_TOKENIZER = /[\p{C}\p{Default_Ignorable_Code_Point}\ufffd]/gu;
const COMBINING_MARK = /\p{M}/gu;

/**
 * Letters of other scripts that look like Latin ones, and Latin letters with strokes that no decomposition takes
 * apart, as their lowercase Latin look-alike: "сat" with a Cyrillic с reads "cat" to a member, so it reads "cat" to the
 * word list too. Only whole look-alikes; the lowercase forms, since the text is lowercased first.
 */
const LOOK_ALIKES: Readonly<Record<string, string>> = {
  // Cyrillic
  а: 'a', в: 'b', е: 'e', һ: 'h', і: 'i', ј: 'j', к: 'k', м: 'm', н: 'h', о: 'o', р: 'p', с: 'c', т: 't', у: 'y', х: 'x', ѕ: 's', ԁ: 'd', ԛ: 'q', ԝ: 'w', ӏ: 'l',
  // Greek
  α: 'a', β: 'b', γ: 'y', ε: 'e', η: 'n', ι: 'i', κ: 'k', ν: 'v', ο: 'o', ρ: 'p', τ: 't', υ: 'u', χ: 'x', ω: 'w',
  // Latin letters with strokes or other forms (NFD leaves them whole)
  ı: 'i', ȷ: 'j', ł: 'l', ø: 'o', đ: 'd', ħ: 'h', ŧ: 't', ƀ: 'b', ɨ: 'i', ɡ: 'g', ɑ: 'a', ß: 'ss', æ: 'ae', œ: 'oe',
};
const LOOK_ALIKE = new RegExp(`[${Object.keys(LOOK_ALIKES).join('')}]`, 'gu');

/**
 * The text folded for word matching: NFKC (full-width and other compatibility letters become plain ones), lowercase
 * as the tokenizer does, accents and other combining marks removed ("fórbidden", "f̸orbidden" and zalgo text read
 * "forbidden"), and look-alike letters of other scripts read as the Latin ones.
 */
export function foldForMatching(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .normalize('NFD')
    .replace(COMBINING_MARK, '')
    .normalize('NFC')
    .replace(LOOK_ALIKE, (letter) => LOOK_ALIKES[letter]);
}

/**
 * The prompt as it is stored and sent to the model: single spaces, no control characters or bidi reordering
 * characters, lone surrogates replaced by U+FFFD, trimmed. Zero-width joiners and the like stay (emoji and some
 * scripts need them to display; the tokenizer drops them).
 */
export function cleanPrompt(raw: string): string {
  return raw
    .replace(LONE_SURROGATE, '\ufffd')
    .replace(WHITESPACE, ' ')
    .replace(CONTROL, '')
    .replace(BIDI_REORDERING, '')
    .replace(/ {2,}/g, ' ')
    .trim();
}

/** Whether the text has at least one character that shows: a prompt of only zero-width or format characters has none. */
export function hasVisibleText(text: string): boolean {
  for (const character of text) if (!INVISIBLE.test(character)) return true;
  return false;
}

/**
 * The forms a word list is matched against, folded by {@link foldForMatching}: invisible characters removed, as the
 * tokenizer removes them ("forb\u200Bidden" reads "forbidden"), and the same characters read as spaces, so that
 * neither a joined nor a split reading slips through.
 */
export function matchingForms(text: string): [joined: string, spaced: string] {
  return [foldForMatching(text.replace(DROPPED_BY_TOKENIZER, '')), foldForMatching(text.replace(DROPPED_BY_TOKENIZER, ' '))];
}
