// Runs a compiled command-line tool (`dist/src/cli/<script>`) in a clean environment and collects what it said.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PROJECT_ROOT = new URL('../../../', import.meta.url).pathname;

export type CliResult = { code: number; stdout: string; stderr: string };

/** Runs `script` with `args` in `cwd` with only PATH and `env` set; resolves with its output and exit status. */
export async function runCli(script: string, args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(PROJECT_ROOT, 'dist/src/cli', script), ...args], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? '', ...options.env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
