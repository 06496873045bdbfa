import { describe, expect, it } from 'vitest';
import imagine from '../../../commands/imagine.js';
import { COMMANDS, type CommandContext } from '../../../commands/index.js';
import { refusalText } from '../../../src/core/refusal.js';
import type { GenerationRequest } from '../../../src/core/request.js';

const context: CommandContext = { installedSteps: [1, 2, 4], defaults: { steps: 4, count: 4, aspect: '1:1' }, randomSeed: () => 123 };

describe('/imagine options', () => {
  it('names its options prompt, steps, seed, aspect, count and offers the installed steps', () => {
    const options = imagine.options(context);
    expect(options.map((option) => option.name)).toEqual(['prompt', 'steps', 'seed', 'aspect', 'count']);
    expect(options[1].choices?.map((choice) => choice.value)).toEqual([1, 2, 4]);
    expect(options[0]).toMatchObject({ required: true, minLength: 1, maxLength: 1000 });
    expect(options[4]).toMatchObject({ min: 1, max: 4 });
    expect(COMMANDS.map((command) => command.name)).toEqual(['imagine']);
  });
});

describe('/imagine parse', () => {
  const parse = (values: Record<string, string | number | undefined>) => imagine.parse(values, context);

  it('fills defaults and a random seed', () => {
    expect(parse({ prompt: '  a  lighthouse\nat dusk ' })).toEqual({ prompt: 'a lighthouse at dusk', steps: 4, seed: 123, aspect: '1:1', count: 4 } satisfies GenerationRequest);
  });

  it('refuses a prompt of only zero-width or format characters as empty', () => {
    for (const prompt of ['\u200b', '\u200c\u200d', '\u2060 \ufeff', '\u00ad\u200e\u200f', '\u202e\u2066', '\u0000\u001b', '\u3164\ufe0f']) {
      expect(parse({ prompt }), JSON.stringify(prompt)).toEqual({ code: 'prompt_empty' });
    }
  });

  it('stores the prompt without control or bidi reordering characters', () => {
    expect(parse({ prompt: 'a\u0000 cat\u001b[0m \u202eright' })).toMatchObject({ prompt: 'a cat[0m right' });
  });

  it('takes numbers from Discord and digit strings from text flags alike', () => {
    const expected = { prompt: 'cat', steps: 2, seed: 42, aspect: '16:9', count: 1 };
    expect(parse({ prompt: 'cat', steps: 2, seed: 42, aspect: '16:9', count: 1 })).toEqual(expected);
    expect(parse({ prompt: 'cat', steps: '2', seed: '42', aspect: '16:9', count: '1' })).toEqual(expected);
  });

  it('refuses bad values with one sentence each', () => {
    const sentences = [
      parse({ prompt: '   ' }),
      parse({ prompt: 'x'.repeat(1001) }),
      parse({ prompt: 'cat', steps: 8 }),
      parse({ prompt: 'cat', steps: 'four' }),
      parse({ prompt: 'cat', seed: '1e3' }),
      parse({ prompt: 'cat', seed: -1 }),
      parse({ prompt: 'cat', count: 5 }),
      parse({ prompt: 'cat', aspect: '5:4' }),
      parse({ prompt: 'cat', seed: Number.MAX_SAFE_INTEGER, count: 2 }),
    ].map((result) => ('code' in result ? refusalText(result) : 'accepted'));
    expect(sentences).toMatchInlineSnapshot(`
      [
        "Describe the image you want after /imagine.",
        "Keep the prompt under 1000 characters.",
        "8-step images are not available here; choose 1, 2 or 4 steps.",
        "Steps must be one of 1, 2, 4.",
        "Seed must be a whole number from 0 to 9007199254740991.",
        "Seed must be a whole number from 0 to 9007199254740991.",
        "Count must be a whole number from 1 to 4.",
        "Aspect must be one of 1:1, 4:3, 3:4, 3:2, 2:3, 16:9, 9:16, 21:9, 9:21.",
        "Seed must be at most 9007199254740990 for 2 images.",
      ]
    `);
  });
});
