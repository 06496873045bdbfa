// `npm start` without a usable model folder: fetch it when MODEL_AUTO_FETCH says so, ask on a terminal, else name the command.

import { createInterface } from 'node:readline/promises';
import type { Config } from '../config.js';
import { findModelFolder, ModelFolderError } from '../diffusion/model-folder.js';
import { safetyClassifierProblems } from '../diffusion/safety-files.js';
import type { Dtype } from '../model-build/convert.js';
import { describePlan, isFetchFailure, prepareFetch, runPreparedFetch, type Output } from './command.js';

export type FirstStartIo = {
  input: NodeJS.ReadableStream;
  output: Output;
  /** Whether a person is there to answer (stdin and stderr are terminals). */
  interactive: boolean;
  /** HF_ENDPOINT and HF_TOKEN. */
  endpoint?: string | undefined;
  token?: string | undefined;
  manifest?: string;
};

const defaultIo = (): FirstStartIo => ({
  input: process.stdin,
  output: process.stderr,
  interactive: process.stdin.isTTY === true && process.stderr.isTTY === true,
  endpoint: process.env.HF_ENDPOINT,
  token: process.env.HF_TOKEN,
});

/**
 * Makes sure `config.modelDir` holds a usable model folder, fetching it (`npm run models:fetch`, the default step
 * count, fp16 unless the provider is the CPU) when MODEL_AUTO_FETCH is true or the person at the terminal agrees.
 * Returns undefined when the folder is usable, else the message to stop with.
 */
export async function prepareModelFolder(config: Config, io: FirstStartIo = defaultIo()): Promise<string | undefined> {
  const problem = folderProblem(config.modelDir, config.safety.enabled);
  if (problem === undefined) return undefined;
  if (!config.modelAutoFetch && !io.interactive) {
    return `${problem}\nOr set MODEL_AUTO_FETCH=true and npm start fetches and builds it itself.`;
  }
  const dtype: Dtype = config.provider === 'cpu' ? 'fp32' : 'fp16';
  try {
    const prepared = await prepareFetch({
      modelDir: config.modelDir,
      steps: [config.defaults.steps],
      dtype,
      safety: config.safety.enabled,
      endpoint: io.endpoint,
      token: io.token,
      ...(io.manifest ? { manifest: io.manifest } : {}),
    });
    if (config.modelAutoFetch) {
      io.output.write(`${problem}\nMODEL_AUTO_FETCH=true: fetching and building it now (npm run models:fetch -- --steps ${config.defaults.steps} --dtype ${dtype}).\n`);
    } else {
      io.output.write(`${problem}\n\nnpm run models:fetch can download the official files and build it ${describePlan(prepared.plan)}\n`);
      const answer = await ask(io, 'Download and build it now? [y/N] ');
      if (!/^y(es)?$/i.test(answer.trim())) return `No model folder, so the bot cannot start. Run npm run models:fetch when you are ready (see models/README.md).`;
    }
    const summary = await runPreparedFetch(prepared, { write: (text) => io.output.write(text), isTTY: io.interactive });
    return summary.folderProblem ?? folderProblem(config.modelDir, config.safety.enabled);
  } catch (error) {
    if (isFetchFailure(error)) return `The model folder could not be fetched: ${error.message}`;
    throw error;
  }
}

/** Why the folder is not usable yet (the classifier counts when SAFETY=on), or undefined. */
function folderProblem(modelDir: string, safety: boolean): string | undefined {
  try {
    findModelFolder(modelDir);
  } catch (error) {
    if (error instanceof ModelFolderError) return error.message;
    throw error;
  }
  const problems = safety ? safetyClassifierProblems(modelDir) : [];
  if (problems.length === 0) return undefined;
  return new ModelFolderError(modelDir, [...problems, 'or set SAFETY=off to run without the image check']).message;
}

async function ask(io: FirstStartIo, question: string): Promise<string> {
  const reader = createInterface({ input: io.input, output: io.output as NodeJS.WritableStream, terminal: false });
  try {
    io.output.write(question);
    return await new Promise<string>((resolve) => {
      reader.once('line', resolve);
      reader.once('close', () => resolve(''));
    });
  } finally {
    reader.close();
  }
}
