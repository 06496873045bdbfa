// How Discord and Slack would read a message's text, for tests: what a reader sees, and which markup would act
// (a link, a mention, formatting) — a model of the platforms' parsers reduced to what escaping has to defeat.

/** Characters Discord's markdown gives a meaning to anywhere in a line, where not backslash-escaped. */
const DISCORD_INLINE = new Set([...'*_~|`[]<']);

export type DiscordReading = {
  /** The text as Discord shows it (escapes removed). */
  shown: string;
  /** Markup that would act: inline markdown characters, `@everyone`/`@here`, autolinked URLs, line-start markers. */
  active: string[];
};

/**
 * Reads Discord content the way its markdown does for escapes: a backslash before a character that is neither a
 * letter, a digit nor whitespace shows that character literally (simple-markdown's `escape` rule).
 */
export function readDiscord(content: string): DiscordReading {
  const characters: { character: string; escaped: boolean }[] = [];
  const input = [...content];
  for (let i = 0; i < input.length; i++) {
    const next = input[i + 1];
    if (input[i] === '\\' && next !== undefined && /[^0-9A-Za-z\s]/u.test(next)) {
      characters.push({ character: next, escaped: true });
      i++;
    } else characters.push({ character: input[i], escaped: false });
  }
  const shown = characters.map((c) => c.character).join('');
  const active: string[] = [];
  characters.forEach(({ character, escaped }, i) => {
    if (!escaped && DISCORD_INLINE.has(character)) active.push(`${character} at ${i}`);
  });
  // "@everyone" highlights (and pings unless allowed_mentions forbids), "scheme://" links and embeds; at a line's
  // start, ">" quotes, "#" and "-#" head, "-" and "1." list
  const plain = characters.map((c) => (c.escaped ? '\u0000' : c.character)).join('');
  for (const match of plain.matchAll(/@(everyone|here)|[a-z][a-z0-9+.-]*:\/\/|^ *(?:[>#-]|\d+\.)/gim)) active.push(match[0]);
  return { shown, active };
}

/** The bold prompt at the start of a caption (`**…**`, the closing stars unescaped), as Discord reads it. */
export function discordBoldPrompt(content: string): DiscordReading {
  if (!content.startsWith('**')) throw new Error(`content does not start with bold: ${content.slice(0, 40)}`);
  let end = 2;
  while (end < content.length) {
    if (content[end] === '\\') end += 2;
    else if (content.startsWith('**', end)) break;
    else end++;
  }
  return readDiscord(content.slice(2, end));
}

export type SlackReading = {
  /** The text as Slack shows it: entities decoded, tags as they would render. */
  shown: string;
  /** Every `<…>` tag Slack would act on (mentions, links, `<!channel>`). */
  tags: string[];
};

/** Reads Slack mrkdwn: raw `<…>` are tags, `&amp;`, `&lt;` and `&gt;` show as `&`, `<` and `>`. */
export function readSlack(text: string): SlackReading {
  const tags = [...text.matchAll(/<[^<>]*>/g)].map((match) => match[0]);
  const shown = text.replace(/&(amp|lt|gt);/g, (_, name: string) => ({ amp: '&', lt: '<', gt: '>' })[name as 'amp' | 'lt' | 'gt']);
  return { shown, tags };
}
