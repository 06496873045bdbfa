// /imagine: the prompt and its options, their limits, and parsing into a GenerationRequest or a Refusal.

import { ASPECTS, isAspect, MAX_IMAGES, MAX_SEED, type GenerationRequest } from '../src/core/request.js';
import { cleanPrompt, hasVisibleText } from '../src/core/prompt.js';
import type { Refusal } from '../src/core/refusal.js';
import type { CommandContext, CommandDefinition, CommandOption, OptionValues } from './index.js';

export const MAX_PROMPT_LENGTH = 1000;

function options(context: CommandContext): readonly CommandOption[] {
  return [
    { name: 'prompt', description: 'What to draw', kind: 'string', required: true, minLength: 1, maxLength: MAX_PROMPT_LENGTH },
    {
      name: 'steps',
      description: `Denoising steps: fewer is faster (default ${context.defaults.steps})`,
      kind: 'integer',
      required: false,
      choices: context.installedSteps.map((steps) => ({ name: `${steps}`, value: steps })),
    },
    { name: 'seed', description: 'Reuse a seed to remake an image (default: random)', kind: 'integer', required: false, min: 0, max: MAX_SEED },
    {
      name: 'aspect',
      description: `Aspect ratio (default ${context.defaults.aspect})`,
      kind: 'string',
      required: false,
      aliases: ['ar'],
      choices: ASPECTS.map((aspect) => ({ name: aspect, value: aspect })),
    },
    { name: 'count', description: `How many images, 1 to ${MAX_IMAGES} (default ${context.defaults.count})`, kind: 'integer', required: false, min: 1, max: MAX_IMAGES },
  ];
}

/** A whole number from a platform value: numbers as given, text only when it is all digits. */
function whole(value: string | number | boolean | undefined): number | undefined | null {
  if (value === undefined || value === '') return undefined;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) {
    const number = Number(value.trim());
    return Number.isSafeInteger(number) ? number : null;
  }
  return null;
}

function parse(values: OptionValues, context: CommandContext): GenerationRequest | Refusal {
  const prompt = typeof values.prompt === 'string' ? cleanPrompt(values.prompt) : '';
  if (!hasVisibleText(prompt)) return { code: 'prompt_empty' };
  if (prompt.length > MAX_PROMPT_LENGTH) return { code: 'prompt_too_long', max: MAX_PROMPT_LENGTH };

  const steps = whole(values.steps) ?? (values.steps === undefined || values.steps === '' ? context.defaults.steps : null);
  if (steps === null) return { code: 'invalid_option', option: 'steps', expected: `one of ${context.installedSteps.join(', ')}` };
  if (!context.installedSteps.includes(steps)) return { code: 'steps_unavailable', steps, installed: context.installedSteps };

  const seedValue = whole(values.seed);
  if (seedValue === null || (seedValue !== undefined && (seedValue < 0 || seedValue > MAX_SEED))) {
    return { code: 'invalid_option', option: 'seed', expected: `a whole number from 0 to ${MAX_SEED}` };
  }
  const count = whole(values.count) ?? (values.count === undefined || values.count === '' ? context.defaults.count : null);
  if (count === null || count < 1 || count > MAX_IMAGES) return { code: 'invalid_option', option: 'count', expected: `a whole number from 1 to ${MAX_IMAGES}` };
  // image i uses seed + i, so the last image's seed must stay a seed too
  const seed = seedValue ?? context.randomSeed();
  if (seed > MAX_SEED - (count - 1)) return { code: 'invalid_option', option: 'seed', expected: `at most ${MAX_SEED - count + 1} for ${count} images` };

  const aspectValue = values.aspect === undefined || values.aspect === '' ? context.defaults.aspect : String(values.aspect).trim();
  if (!isAspect(aspectValue)) return { code: 'invalid_option', option: 'aspect', expected: `one of ${ASPECTS.join(', ')}` };

  return { prompt, steps, seed, aspect: aspectValue, count };
}

export default {
  name: 'imagine',
  description: 'Make images from a prompt with SDXL-Lightning',
  options,
  parse,
} satisfies CommandDefinition;
