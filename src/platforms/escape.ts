// Showing what a member typed exactly as typed: control characters made visible, and each platform's markup made
// literal (Discord markdown, mentions and links; Slack's mrkdwn entities); and Slack's encoded text read back as typed.

const LINE_BREAKS_AND_TABS = /[\t\n\v\f\r\u0085\u2028\u2029]/g;
const C0_AND_DEL = /[\u0000-\u001f\u007f]/g;
/** C1 controls, bidi embeddings, overrides and isolates (they reorder the text after them), lone surrogates. */
const UNSHOWABLE = /[\u0080-\u009f\u202a-\u202e\u2066-\u2069]|\p{Cs}/gu;

/**
 * One line with nothing hidden: line breaks and tabs become spaces, C0 controls their Control Pictures (NUL "␀",
 * ESC "␛", DEL "␡"), and C1 controls, bidi reordering characters and lone surrogates U+FFFD. Character by character,
 * so it can be applied to any slice of a text.
 */
export function visibleText(text: string): string {
  return text
    .replace(LINE_BREAKS_AND_TABS, ' ')
    .replace(C0_AND_DEL, (control) => (control === '\u007f' ? '\u2421' : String.fromCharCode(0x2400 + control.charCodeAt(0))))
    .replace(UNSHOWABLE, '\ufffd');
}

/** Characters that format, quote code, hide (spoilers), open a masked link (`[text](url)`) or a `<…>` tag anywhere. */
const DISCORD_INLINE = /[\\*_~|`[\]<]/g;

/**
 * User text for Discord message content: shown literally, never formatting, a masked link, a mention or an
 * autolinked URL (with its embed). Discord shows a backslash-escaped punctuation character as itself; only what would
 * act is escaped, so the text stays readable when copied: the inline markdown characters, the `:` of `://`, the `@`
 * of `@everyone` and `@here`, and a quote, heading or list marker at the start.
 */
export function escapeDiscord(text: string): string {
  return visibleText(text)
    .replace(DISCORD_INLINE, '\\$&')
    .replace(/:(?=\/\/)/g, '\\:')
    .replace(/@(?=everyone|here)/gi, '\\@')
    .replace(/^( *)([>#-])/, '$1\\$2')
    .replace(/^( *\d+)\./, '$1\\.');
}

const SLACK_ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };

/**
 * User text for Slack mrkdwn and fallback `text` fields: `&`, `<` and `>` as entities, the only escaping Slack
 * defines, so `<!channel>`, `<@U…>` and `<url|label>` show as typed and never act.
 */
export function escapeSlack(text: string): string {
  return visibleText(text).replace(/[&<>]/g, (character) => SLACK_ENTITIES[character]);
}

const SLACK_DECODED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>' };

/** One `<…>` of Slack's markup as the member saw it. */
function readableSlackTag(inner: string): string {
  const bar = inner.indexOf('|');
  const [target, label] = bar === -1 ? [inner, ''] : [inner.slice(0, bar), inner.slice(bar + 1)];
  if (target.startsWith('@')) return `@${label || target.slice(1)}`;
  if (target.startsWith('#')) return `#${label || target.slice(1)}`;
  if (target.startsWith('!')) {
    const special = target.slice(1);
    if (special === 'here' || special === 'channel' || special === 'everyone') return `@${special}`;
    return label || special.split('^')[0];
  }
  return label || target;
}

/**
 * A slash command's text as the member typed it. Slack sends `&`, `<` and `>` as `&amp;`, `&lt;` and `&gt;`, and,
 * when the command escapes users, channels and links, its own `<@U…|name>`, `<#C…|name>`, `<!here>` and
 * `<url|label>` tags, which read back as `@name`, `#name`, `@here` and the label.
 */
export function slackTextToPlain(text: string): string {
  return text.replace(/<([^<>]*)>/g, (_, inner: string) => readableSlackTag(inner)).replace(/&(amp|lt|gt);/g, (_, name: string) => SLACK_DECODED[name]);
}
