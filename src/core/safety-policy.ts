// What happens to an image the safety classifier flagged: posted, posted blurred (a spoiler), or left out behind a
// placeholder, by the server's safety mode and the place it is posted in. Pure functions; the job record keeps each
// decision.

/** A server's safety mode: `off` posts every image; `spoiler` blurs flagged ones until clicked; `hide` leaves them out. */
export type SafetyMode = 'off' | 'spoiler' | 'hide';
export const SAFETY_MODES = ['off', 'spoiler', 'hide'] as const satisfies readonly SafetyMode[];

/** What is done with one image. */
export type ImageAction = 'post' | 'spoiler' | 'hide';

/** Where the result is posted, as far as the safety rule cares. */
export type SafetyPlace = {
  /** The platform's name: Discord can blur an image until clicked; Slack and the web page cannot, so they hide instead. */
  platform: string;
  /** A Discord channel marked age-restricted (`nsfw`); always false elsewhere. */
  nsfwChannel: boolean;
  /** A direct message with the bot. */
  direct: boolean;
  /** Flagged images may be posted as they are in direct messages (SAFETY_DM_ALLOWED). */
  dmAllowed: boolean;
};

/** The classifier's answer for one image; undefined when the image was not checked (SAFETY=off). */
export type ImageVerdict = { flagged: boolean; score: number };

/** Why an image got its action, for the job record and the admin. */
export type SafetyReason = 'not_checked' | 'safe' | 'mode_off' | 'nsfw_channel' | 'allowed_dm' | 'server_mode' | 'cannot_blur';

/** One image's decision as the job record keeps it. */
export type SafetyDecision = { action: ImageAction; reason: SafetyReason; flagged: boolean | null; score: number | null };

/** Platforms whose attachments can be blurred until clicked (Discord's `SPOILER_` file names). */
const CAN_BLUR: ReadonlySet<string> = new Set(['discord']);

/**
 * The rule: a safe image is posted; so is a flagged one where members asked for such images (an age-restricted
 * Discord channel, or a DM when DMs are allowed) or when the server turned the check off; anywhere else it follows
 * the server's mode, and a spoiler where the platform cannot blur becomes a placeholder. An image that was not
 * checked (a runner without the classifier) is treated as flagged: with SAFETY=on nothing unchecked is posted openly.
 */
export function decideImage(mode: SafetyMode, place: SafetyPlace, verdict: ImageVerdict | undefined): SafetyDecision {
  const record = (action: ImageAction, reason: SafetyReason): SafetyDecision => ({ action, reason, flagged: verdict?.flagged ?? null, score: verdict?.score ?? null });
  if (verdict && !verdict.flagged) return record('post', 'safe');
  if (mode === 'off') return record('post', 'mode_off');
  if (place.nsfwChannel && place.platform === 'discord') return record('post', 'nsfw_channel');
  if (place.direct && place.dmAllowed) return record('post', 'allowed_dm');
  const action: ImageAction = mode === 'spoiler' && !CAN_BLUR.has(place.platform) ? 'hide' : mode;
  if (!verdict) return record(action, 'not_checked');
  return record(action, action === mode ? 'server_mode' : 'cannot_blur');
}

/** Every image of a result, in order. */
export function decideImages(mode: SafetyMode, place: SafetyPlace, verdicts: readonly (ImageVerdict | undefined)[]): SafetyDecision[] {
  return verdicts.map((verdict) => decideImage(mode, place, verdict));
}

/**
 * How one attachment holding these images is sent: a grid is one file, so one spoiler cell blurs the whole file
 * (hidden cells are already placeholders in it and need no blur).
 */
export function attachmentAction(decisions: readonly SafetyDecision[]): 'post' | 'spoiler' {
  return decisions.some((decision) => decision.action === 'spoiler') ? 'spoiler' : 'post';
}

/** How many images were blurred or left out, for the note under the result; undefined when none. */
export function safetyNote(decisions: readonly SafetyDecision[]): { spoiler: number; hidden: number } | undefined {
  const spoiler = decisions.filter((d) => d.action === 'spoiler').length;
  const hidden = decisions.filter((d) => d.action === 'hide').length;
  return spoiler + hidden === 0 ? undefined : { spoiler, hidden };
}

/** The note's words, shared by every platform: it says what was done and never why in more detail than that. */
export function safetyNoteText(note: { spoiler: number; hidden: number }, total: number): string {
  const images = (n: number): string => (total === 1 ? 'This image' : n === 1 ? '1 image' : `${n} images`);
  const parts: string[] = [];
  if (note.spoiler > 0) parts.push(`${images(note.spoiler)} may not suit everyone, so ${total === 1 ? 'it is' : 'the file is'} blurred until clicked`);
  if (note.hidden > 0) parts.push(`${images(note.hidden)} ${total === 1 || note.hidden === 1 ? 'was' : 'were'} hidden by this server's safety setting`);
  return `${parts.join('; ')}.`;
}
