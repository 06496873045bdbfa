import { describe, expect, it } from 'vitest';
import { escapeDiscord, escapeSlack, slackTextToPlain, visibleText } from '../../../src/platforms/escape.js';
import { readDiscord, readSlack } from '../../support/markup.js';

const HOSTILE = [
  '[free nitro](https://evil.example)',
  '[a](https://one.example) and [b](https://two.example)',
  '@everyone @here <@200000000000000001> <@!200000000000000001> <#100000000000000002> <@&300000000000000001>',
  '</imagine:123> <t:1700000000:R> <:blob:400000000000000001> <a:dance:400000000000000002>',
  '**bold** *it* _it_ __under__ ~~strike~~ ||spoiler|| `code` ```block```',
  '> quote', '# heading', '-# subtext', '- item', '* item', '1. item',
  'https://plain.example/path_with_underscores',
  'back\\slash \\*not escaped\\*',
  'steam://run/1 and HTTPS://EVIL.EXAMPLE',
];

describe('visibleText', () => {
  it('shows C0 controls as Control Pictures, and C1, bidi reordering and lone surrogates as U+FFFD', () => {
    expect(visibleText('a\u0000b\u001b[31mc\u007fd')).toBe('a␀b␛[31mc␡d');
    expect(visibleText('x\u0085y\u009bz')).toBe('x y\ufffdz');
    expect(visibleText('gpj.\u202eexe\u2066x\u2069')).toBe('gpj.\ufffdexe\ufffdx\ufffd');
    expect(visibleText('lone \ud800 surrogate, 😀 pair')).toBe('lone \ufffd surrogate, 😀 pair');
    expect(visibleText('two\nlines\tand\r\u2028more')).toBe('two lines and  more');
  });

  it('leaves ordinary text, emoji sequences and right-to-left text alone', () => {
    for (const text of ['a lighthouse at dusk', '👩‍💻 coder', 'שלום עולם', 'e\u0301 café', 'ﬁne ｆｕｌｌ']) expect(visibleText(text)).toBe(text);
  });
});

describe('escapeDiscord', () => {
  it('shows every hostile prompt exactly as typed, with no markdown, link or mention left to act', () => {
    for (const text of HOSTILE) {
      const reading = readDiscord(escapeDiscord(text));
      expect(reading.active, text).toEqual([]);
      expect(reading.shown, text).toBe(text);
    }
  });

  it('is needed: unescaped, each of them would act or show differently', () => {
    for (const text of HOSTILE) {
      const raw = readDiscord(text);
      expect(raw.active.length > 0 || raw.shown !== text, text).toBe(true);
    }
  });

  it('turns a masked link into its literal text', () => {
    expect(escapeDiscord('[free nitro](https://evil.example)')).toBe('\\[free nitro\\](https\\://evil.example)');
  });

  it('makes NUL and ESC visible before escaping', () => {
    expect(readDiscord(escapeDiscord('x\u0000\u001b[2Jy')).shown).toBe('x␀␛[2Jy');
  });

  it('escapes only what would act, so ordinary prompts read the same when copied', () => {
    expect(escapeDiscord('a sci-fi city at 16:9, f/2.8 (cinematic) #1 - by @alice')).toBe('a sci-fi city at 16:9, f/2.8 (cinematic) #1 - by @alice');
    expect(escapeDiscord('- a list? # a heading? > a quote? 1. a list?')).toBe('\\- a list? # a heading? > a quote? 1. a list?');
  });
});

describe('escapeSlack', () => {
  it('encodes &, < and > so no tag survives, in text and fallback text alike', () => {
    const text = '<!channel> <!here> <@U0000000001> <#C0000000001|general> <https://evil.example|free nitro> R&D';
    const escaped = escapeSlack(text);
    expect(escaped).toBe('&lt;!channel&gt; &lt;!here&gt; &lt;@U0000000001&gt; &lt;#C0000000001|general&gt; &lt;https://evil.example|free nitro&gt; R&amp;D');
    expect(readSlack(escaped)).toEqual({ shown: text, tags: [] });
  });

  it('does not decode what was typed as an entity', () => {
    expect(readSlack(escapeSlack('&lt;!channel&gt;')).shown).toBe('&lt;!channel&gt;');
  });

  it('makes control characters visible', () => {
    expect(escapeSlack('a\u0000\u001bb\u202e')).toBe('a␀␛b\ufffd');
  });
});

describe('slackTextToPlain', () => {
  it('decodes the entities Slack puts in slash command text', () => {
    expect(slackTextToPlain('salt &amp; pepper, x &lt; y &gt; z')).toBe('salt & pepper, x < y > z');
    // decoded once: "&amp;lt;" is what Slack sends for a typed "&lt;"
    expect(slackTextToPlain('&amp;lt;b&amp;gt;')).toBe('&lt;b&gt;');
    expect(slackTextToPlain('&lt;!channel&gt;')).toBe('<!channel>');
  });

  it("reads Slack's own tags back as the member saw them", () => {
    expect(slackTextToPlain('<@U0000000001|alice> and <@U0000000002> in <#C0000000001|general>')).toBe('@alice and @U0000000002 in #general');
    expect(slackTextToPlain('<!here> <!channel> <!subteam^S0000000001|@design> <!date^1700000000^{date}|Nov 14>')).toBe('@here @channel @design Nov 14');
    expect(slackTextToPlain('<https://example.com|example.com> <https://bare.example> <mailto:a@b.example|a@b.example>')).toBe('example.com https://bare.example a@b.example');
    expect(slackTextToPlain('<https://x.example?a=1&amp;b=2|R&amp;D>')).toBe('R&D');
  });
});
