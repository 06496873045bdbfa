// Command-line values the model commands share: step lists and dtypes, each refused with one sentence.

import { DTYPES, type Dtype } from '../model-build/convert.js';
import { fail } from './output.js';

/** `4` or `1,2,4,8`; anything else ends the command with a usage error. */
export function parseSteps(text: string, flag = '--steps'): number[] {
  if (!/^\d+(,\d+)*$/.test(text) || text.split(',').some((s) => Number(s) < 1 || Number(s) > 50)) {
    fail(`${flag} must be step counts from 1 to 50 separated by commas, e.g. 4 or 1,2,4,8; got "${text}".`, 2);
  }
  return text.split(',').map(Number);
}

export function parseDtype(text: string): Dtype {
  if (!(DTYPES as readonly string[]).includes(text)) fail(`--dtype must be ${DTYPES.join(' or ')}; got "${text}".`, 2);
  return text as Dtype;
}
