// A second command for the dispatch tests: both platforms must route it from the command list alone.

import type { CommandDefinition } from '../../commands/index.js';
import imagine from '../../commands/imagine.js';

/** /imagine's options without steps, always one step. */
export const sketch: CommandDefinition = {
  name: 'sketch',
  description: 'A quick one-step sketch',
  options: (context) => imagine.options(context).filter((option) => option.name !== 'steps'),
  parse: (values, context) => imagine.parse({ ...values, steps: 1 }, context),
};
