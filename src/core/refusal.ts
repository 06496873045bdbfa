// Refusals: why a request or click is turned down, as data, and the one table of sentences Discord and Slack share.

/** Every reason the bot says no; each carries what its sentence needs. */
export type Refusal =
  | { code: 'rate_limited'; retryAfterMs: number }
  | { code: 'too_many_queued'; limit: number }
  | { code: 'queue_full' }
  | { code: 'daily_quota'; limit: number; retryAfterMs: number }
  | { code: 'banned' }
  | { code: 'blocked_word' }
  | { code: 'channel_not_allowed' }
  | { code: 'prompt_empty' }
  | { code: 'prompt_too_long'; max: number }
  | { code: 'invalid_option'; option: string; expected: string }
  | { code: 'steps_unavailable'; steps: number; installed: readonly number[] }
  | { code: 'unknown_job' }
  | { code: 'foreign_job' }
  | { code: 'not_owner' }
  | { code: 'not_cancellable' }
  | { code: 'generation_failed' }
  | { code: 'delivery_failed' }
  | { code: 'not_admin' }
  | { code: 'no_server' }
  | { code: 'shutting_down' };

export type RefusalCode = Refusal['code'];

/** A whole number of seconds (at least 1) or minutes/hours for long waits: "40 s", "3 min", "5 h". */
export function formatWait(ms: number): string {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  return `${Math.ceil(minutes / 60)} h`;
}

const list = (values: readonly number[]): string =>
  values.length <= 1 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`;

/** One short sentence per code, saying what to do. */
export const REFUSAL_SENTENCES = {
  rate_limited: (r) => `You can imagine again in ${formatWait(r.retryAfterMs)}.`,
  too_many_queued: (r) => `You already have ${r.limit} ${r.limit === 1 ? 'image' : 'images'} waiting; try again when one is done.`,
  queue_full: () => 'The queue is full right now; try again in a minute.',
  daily_quota: (r) => `This server has used its ${r.limit} images for today; try again in ${formatWait(r.retryAfterMs)}.`,
  banned: () => 'You cannot use this bot here; ask a server admin if you think that is a mistake.',
  blocked_word: () => 'That prompt uses a word this server blocks; please rephrase it.',
  channel_not_allowed: () => 'Images cannot be made in this channel; try one of the channels the admins allowed.',
  prompt_empty: () => 'Describe the image you want after /imagine.',
  prompt_too_long: (r) => `Keep the prompt under ${r.max} characters.`,
  invalid_option: (r) => `${r.option.charAt(0).toUpperCase()}${r.option.slice(1)} must be ${r.expected}.`,
  steps_unavailable: (r) => `${r.steps}-step images are not available here; choose ${list(r.installed)} steps.`,
  unknown_job: () => 'I no longer know that image; start a new one with /imagine.',
  foreign_job: () => 'That image belongs to another server; use /imagine here instead.',
  not_owner: () => 'Only the person who asked for this image can cancel it.',
  not_cancellable: () => 'That image is already being made or is done, so it cannot be cancelled.',
  generation_failed: () => 'Generation failed, try again; the admin has the details.',
  delivery_failed: () => 'Your image was made but could not be posted; check that the bot may post here, then use /imagine again.',
  shutting_down: () => 'The bot is restarting; try again in a minute.',
  not_admin: () => 'Only the admins of this server can change its image settings.',
  no_server: () => 'Settings belong to a server; use /imagine-settings in one of its channels.',
} as const satisfies { [C in RefusalCode]: (refusal: Extract<Refusal, { code: C }>) => string };

/** The sentence for a refusal. */
export function refusalText(refusal: Refusal): string {
  const sentence = REFUSAL_SENTENCES[refusal.code] as (r: Refusal) => string;
  return sentence(refusal);
}

/** A refusal raised where returning it is awkward; the service turns it back into data. */
export class RefusalError extends Error {
  override readonly name = 'RefusalError';
  readonly refusal: Refusal;
  constructor(refusal: Refusal) {
    super(refusalText(refusal));
    this.refusal = refusal;
  }
}
