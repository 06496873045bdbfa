// vitest global setup: bring dist/ up to date once, because the engine's worker process runs compiled JavaScript
// (Node 20 cannot start a .ts file). `tsc -b` compares the sources with dist/.tsbuildinfo and compiles only what
// changed, so an unchanged tree costs a fraction of a second, as for every `npm run` command.

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

export default function setup(): void {
  const require = createRequire(import.meta.url);
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-b', 'tsconfig.build.json'], { stdio: 'inherit' });
}
