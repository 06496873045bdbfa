// The channel policy and the prompt checks, as pure functions over a compiled policy: where images may be made
// (direct messages always), and which prompts are refused (empty ones, and the word list).

import { hasVisibleText, matchingForms } from './prompt.js';
import type { Refusal } from './refusal.js';

/** Where a request comes from, as far as the policy cares. */
export type Place = {
  /** Discord guild or Slack team; null in a Discord DM. */
  guildId: string | null;
  channelId: string;
  /** A direct message with the bot (Slack DMs have a team, so the platform says so). */
  direct?: boolean;
};

export type PolicyConfig = {
  /** Words refused in prompts (whole words, any case). */
  blockedWords: readonly string[];
  /** Channels where images may be made; empty: every channel. Direct messages are always allowed. */
  allowedChannels: readonly string[];
};

/** A policy compiled once from the settings. */
export type Policy = {
  readonly allowedChannels: ReadonlySet<string>;
  /** Matches a blocked word in a `matchingForms` reading; undefined when no words are set. */
  readonly blockedWord: RegExp | undefined;
};

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/** Escapes for inside a character class, where `-` and `^` mean something too. */
const escapeInClass = (text: string): string => text.replace(/[\\\]\[^-]/g, '\\$&');

/**
 * Digits and signs that stand for letters in simple leetspeak ("n0pe", "$3cr3t", "b@d"). "1" and "|" read as i or l,
 * so each letter of a blocked word matches any of its stand-ins rather than the text being rewritten one way.
 */
export const LEET_STAND_INS: Readonly<Record<string, string>> = {
  a: '4@^',
  b: '8',
  e: '3€',
  g: '96',
  i: '1!|',
  l: '1|',
  o: '0',
  s: '5$',
  t: '7+',
  z: '2',
};

/** Characters people put between the letters of a spelled-out word ("f.o.r.b.i.d.d.e.n", "f o r b i d"). */
const LETTER_SEPARATOR = `[\\s._*~·•:;,/\\\\'"-]+`;
/** Spelled-out words shorter than this are not looked for: "a s" is too often two ordinary words. */
const MIN_SPELLED_OUT = 3;

/** Between the words of a blocked phrase: any run of non-letters, so "bad word" also catches "bad-word" and "bad_word". */
const BETWEEN_WORDS = '[^\\p{L}\\p{N}]+';

/** What splits a blocked entry into words: spaces, hyphens, underscores and dots ("x-rated" also catches "x rated"). */
const WORD_SEPARATORS = /[\s\-_.]+/u;

function letterPattern(character: string): string {
  const standIns = LEET_STAND_INS[character];
  return standIns ? `[${escapeInClass(character + standIns)}]` : escapeRegExp(character);
}

/**
 * One blocked word or phrase as a pattern: each letter with its leet stand-ins, any run of non-letters between the
 * words of a phrase, and, when every word has three letters or more, one optional separator repeated between every
 * two letters. It is captured once and back-referenced, so "f-o-r-b-i-d-d-e-n" is caught while "it's ex" is not
 * "sex" (a back-reference to a group that took no part matches the empty string, so the plain word still matches).
 */
function wordPattern(word: string, index: number): string {
  const parts = word.split(WORD_SEPARATORS).filter(Boolean).map((part) => [...part].map(letterPattern));
  if (parts.some((letters) => letters.length < MIN_SPELLED_OUT)) return parts.map((letters) => letters.join('')).join(BETWEEN_WORDS);
  const group = `s${index}`;
  let captured = false;
  const gap = (): string => {
    if (captured) return `\\k<${group}>`;
    captured = true;
    return `(?<${group}>${LETTER_SEPARATOR})?`;
  };
  return parts.map((letters) => letters.map((letter, i) => (i === 0 ? letter : gap() + letter)).join('')).join(BETWEEN_WORDS);
}

export function createPolicy(config: PolicyConfig): Policy {
  // a word is folded like the prompts it is looked for in, so "Ｆｏｒｂｉｄｄｅｎ" in the settings works too
  const words = [...new Set(config.blockedWords.map((word) => matchingForms(word)[0].trim()).filter((word) => word.split(WORD_SEPARATORS).some(Boolean)))];
  // whole words: no letter on either side (digits may touch it, as the tokenizer splits every digit off)
  const alternatives = words.map(wordPattern).join('|');
  return {
    allowedChannels: new Set(config.allowedChannels),
    blockedWord: words.length ? new RegExp(`(?<!\\p{L})(?:${alternatives})(?!\\p{L})`, 'u') : undefined,
  };
}

export function isDirectMessage(place: Place): boolean {
  return place.direct === true || place.guildId === null;
}

/** Refuses a channel the admins did not allow; direct messages are always allowed. */
export function channelRefusal(policy: Policy, place: Place): Refusal | undefined {
  if (policy.allowedChannels.size === 0 || isDirectMessage(place) || policy.allowedChannels.has(place.channelId)) return undefined;
  return { code: 'channel_not_allowed' };
}

/** Refuses a prompt that shows nothing, or that uses a blocked word however it is disguised with invisible characters. */
export function promptRefusal(policy: Policy, prompt: string): Refusal | undefined {
  if (!hasVisibleText(prompt)) return { code: 'prompt_empty' };
  const blocked = policy.blockedWord;
  if (blocked && matchingForms(prompt).some((form) => blocked.test(form))) return { code: 'blocked_word' };
  return undefined;
}

/** Both checks, channel first; `prompt` is left out for clicks that make no new prompt. */
export function requestRefusal(policy: Policy, place: Place, prompt?: string): Refusal | undefined {
  return channelRefusal(policy, place) ?? (prompt === undefined ? undefined : promptRefusal(policy, prompt));
}
