// vitest global setup: compile the project into dist/ once, because the engine's worker thread runs compiled
// JavaScript (Node 20 cannot start a .ts worker). Incremental, so an unchanged tree costs about a second.

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

export default function setup(): void {
  const require = createRequire(import.meta.url);
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
