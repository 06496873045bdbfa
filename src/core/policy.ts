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

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function createPolicy(config: PolicyConfig): Policy {
  // a word is folded like the prompts it is looked for in, so "Ｆｏｒｂｉｄｄｅｎ" in the settings works too
  const words = [...new Set(config.blockedWords.map((word) => matchingForms(word.trim())[0]).filter(Boolean))];
  return {
    allowedChannels: new Set(config.allowedChannels),
    blockedWord: words.length ? new RegExp(`(?<![\\p{L}\\p{N}])(?:${words.map(escapeRegExp).join('|')})(?![\\p{L}\\p{N}])`, 'u') : undefined,
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
