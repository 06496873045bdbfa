import { describe, expect, it } from 'vitest';
import { flagUsage, parseFlags } from '../../../commands/flags.js';
import imagine from '../../../commands/imagine.js';
import type { CommandContext } from '../../../commands/index.js';

const context: CommandContext = { installedSteps: [1, 2, 4, 8], defaults: { steps: 4, count: 4, aspect: '1:1' }, randomSeed: () => 1 };

describe('text flags for /imagine', () => {
  it('takes the free text as the prompt and --flags as options, aliases included', () => {
    expect(parseFlags(imagine, 'a lighthouse at dusk --steps 2 --seed 42 --ar 16:9 --count 4', context)).toEqual({
      kind: 'values',
      values: { prompt: 'a lighthouse at dusk', steps: '2', seed: '42', aspect: '16:9', count: '4' },
    });
    expect(parseFlags(imagine, '--count=1 a red   cat', context)).toEqual({ kind: 'values', values: { prompt: 'a red cat', count: '1' } });
  });

  it('reads flags typed with an en or em dash, as autocorrect makes of "--"', () => {
    expect(parseFlags(imagine, 'a cat —steps 2 –seed 5 —ar=16:9 ——count 1 −aspect 4:3', context)).toEqual({ kind: 'error', message: '--aspect is given twice.' });
    expect(parseFlags(imagine, 'a cat —steps 2 –seed 5 —ar=16:9 ——count 1', context)).toEqual({
      kind: 'values',
      values: { prompt: 'a cat', steps: '2', seed: '5', aspect: '16:9', count: '1' },
    });
    expect(parseFlags(imagine, '—help', context)).toEqual({ kind: 'help' });
    expect(parseFlags(imagine, 'a cat —steps —seed 5', context)).toEqual({ kind: 'error', message: '--steps needs a value.' });
    expect(parseFlags(imagine, 'a cat —style anime', context)).toEqual({ kind: 'error', message: 'Unknown option --style.' });
  });

  it('leaves dashes inside the prompt alone', () => {
    expect(parseFlags(imagine, 'sunset — watercolor, sci-fi–noir —— 1990s', context)).toEqual({ kind: 'values', values: { prompt: 'sunset — watercolor, sci-fi–noir —— 1990s' } });
  });

  it('gives parse() values it can check like Discord numbers', () => {
    const parsed = parseFlags(imagine, 'a cat --steps 2 --aspect 9:16', context);
    if (parsed.kind !== 'values') throw new Error(parsed.kind);
    expect(imagine.parse(parsed.values, context)).toMatchObject({ prompt: 'a cat', steps: 2, aspect: '9:16', count: 4 });
  });

  it('asks for help on empty text or help, and names a malformed flag', () => {
    expect(parseFlags(imagine, '  ', context)).toEqual({ kind: 'help' });
    expect(parseFlags(imagine, 'help', context)).toEqual({ kind: 'help' });
    expect(parseFlags(imagine, 'a cat --style anime', context)).toEqual({ kind: 'error', message: 'Unknown option --style.' });
    expect(parseFlags(imagine, 'a cat --steps', context)).toEqual({ kind: 'error', message: '--steps needs a value.' });
    expect(parseFlags(imagine, 'a cat --seed 1 --seed 2', context)).toEqual({ kind: 'error', message: '--seed is given twice.' });
  });

  it('writes the usage from the same definition', () => {
    expect(flagUsage(imagine, context)).toMatchInlineSnapshot(`
      "Usage: /imagine <prompt> [--steps …] [--seed …] [--ar …] [--count …]
        --steps: Denoising steps: fewer is faster (default 4) (1, 2, 4, 8)
        --seed: Reuse a seed to remake an image (default: random) (0–9007199254740991)
        --aspect, --ar: Aspect ratio (default 1:1) (1:1, 4:3, 3:4, 3:2, 2:3, 16:9, 9:16, 21:9, 9:21)
        --count: How many images, 1 to 4 (default 4) (1–4)
      Example: /imagine a lighthouse at dusk --steps 4 --ar 16:9 --count 4"
    `);
  });
});
