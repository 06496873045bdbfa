// `npm run doctor`: checks the box the bot runs on — Node, onnxruntime-node, CUDA (and exactly why not), the GPU,
// the chat platforms' tokens, the model folder and the image safety classifier. Exits 1 when the configured setup cannot work.

import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { relative } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describeCudaProblem, findModelFolder, inspectCuda, ModelFolderError, PROVIDER_CHOICES, type ModelFolder } from '../diffusion/index.js';
import { loadPipeline } from '../diffusion/pipeline.js';
import { findSafetyClassifier, loadSafetyClassifier, readSafetyConfig, safetyClassifierProblems } from '../diffusion/safety.js';
import { createGraph, encodeModel } from '../../models/tiny/onnx-writer.js';
import { CUDA_INSTALL_COMMAND } from '../install/cuda-provider.js';
import type { Config } from '../config.js';
import { inspectWorkers } from '../remote/doctor.js';
import { fail, loadConfigOrFail, parseArgsOrUsage } from './output.js';

const USAGE = `usage: npm run doctor -- [--load] [--model-dir DIR] [--provider ${PROVIDER_CHOICES.join('|')}]
  --load       also load every model (the safety classifier too) with the provider and check its inputs and outputs
  --model-dir  the model folder to check (default: MODEL_DIR, else models/sdxl-lightning)
  --provider   the execution provider to check for (default: EXECUTION_PROVIDER, else auto)`;

const ok = (text: string): void => void process.stdout.write(`  ok    ${text}\n`);
const warn = (text: string): void => void process.stdout.write(`  warn  ${text}\n`);
const bad = (text: string): void => void process.stdout.write(`  FAIL  ${text}\n`);
const section = (title: string): void => void process.stdout.write(`\n${title}\n`);

/** A one-node model in memory, to learn whether a provider can create a session at all. */
function probeModel(): Uint8Array {
  const graph = createGraph('probe');
  graph.input('x', 'float32', [1]);
  graph.node('Identity', ['x'], ['y']);
  graph.output('y', 'float32', [1]);
  return encodeModel(graph).model;
}

/** A file's size in readable units, or undefined when it does not exist. */
function fileSize(path: string): string | undefined {
  let bytes: number;
  try {
    bytes = statSync(path).size;
  } catch {
    return undefined;
  }
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let unit = 0;
  while (bytes >= 1024 && unit < units.length - 1) {
    bytes /= 1024;
    unit++;
  }
  return `${unit === 0 ? bytes : bytes.toFixed(1)} ${units[unit]}`;
}

/** `model.onnx (size + external data size)`. */
function describeModel(root: string, path: string): string {
  const data = fileSize(`${path}_data`);
  return `${relative(root, path)} (${fileSize(path) ?? '?'}${data ? ` + ${data} external data` : ''})`;
}

type Options = { load: boolean; modelDir: string | undefined; provider: string | undefined };

function parseOptions(argv: string[]): Options {
  const parsed = parseArgsOrUsage(
    {
      args: argv,
      options: {
        load: { type: 'boolean', default: false },
        'model-dir': { type: 'string' },
        provider: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    },
    USAGE,
  );
  const { provider } = parsed.values;
  if (provider !== undefined && !(PROVIDER_CHOICES as readonly string[]).includes(provider)) fail(`--provider must be one of ${PROVIDER_CHOICES.join(', ')}; got "${provider}".`, 2);
  return { load: parsed.values.load, modelDir: parsed.values['model-dir'], provider };
}

/** Asks each configured platform whether it accepts its tokens; false when one does not. */
async function checkPlatforms(config: Config): Promise<boolean> {
  section('Chat platforms');
  if (!config.discord && !config.slack) {
    warn('none configured: set DISCORD_TOKEN and DISCORD_APPLICATION_ID, or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (see .env.example)');
    return true;
  }
  // discord.js and Bolt load only when there is something to check
  const checks = await import('../start-checks.js');
  let healthy = true;
  const report = async (check: Promise<void>, good: string): Promise<void> => {
    try {
      await check;
      ok(good);
    } catch (error) {
      if (!(error instanceof checks.StartError)) throw error;
      bad(error.message);
      healthy = false;
    }
  };
  if (config.discord) await report(checks.checkDiscordAccess(config.discord), `Discord accepts DISCORD_TOKEN for the application ${config.discord.applicationId}`);
  if (config.slack) {
    const mode = config.slack.appToken ? ' and SLACK_APP_TOKEN (Socket Mode)' : ` (HTTP mode on port ${config.slack.port})`;
    await report(checks.checkSlackAccess(config.slack), `Slack accepts SLACK_BOT_TOKEN${mode}`);
  }
  return healthy;
}

/** The image safety classifier: its files, and with --load whether it loads and scores an image. False when SAFETY=on cannot work. */
async function checkSafety(config: Config, load: boolean, cudaWorks: boolean): Promise<boolean> {
  section(`Image safety check (SAFETY=${config.safety.enabled ? 'on' : 'off'})`);
  if (!config.safety.enabled) {
    warn('SAFETY=off: images are posted without an image check (the word list still applies)');
    return true;
  }
  const problems = safetyClassifierProblems(config.modelDir);
  if (problems.length > 0) {
    for (const problem of problems) bad(problem);
    warn('get it with `npm run models:fetch` (it downloads only what is missing), or set SAFETY=off');
    return false;
  }
  const files = findSafetyClassifier(config.modelDir)!;
  const { preprocess, labels } = readSafetyConfig(files, config.modelDir);
  ok(`classifier: ${describeModel(config.modelDir, files.model)}, labels ${labels.join('/')}, ${preprocess.width}×${preprocess.height} ${preprocess.filter}; flagged from a score of ${config.safety.threshold}`);
  ok(`flagged images outside age-restricted channels: ${config.safety.mode} (servers may choose their own); in DMs: ${config.safety.dmAllowed ? 'posted as they are' : `as elsewhere`}`);
  if (!load) {
    process.stdout.write('  (run `npm run doctor -- --load` to load the classifier and score a test image)\n');
    return true;
  }
  const provider = config.provider === 'cpu' || !cudaWorks ? 'cpu' : 'cuda';
  const started = performance.now();
  try {
    const classifier = await loadSafetyClassifier({ modelDir: config.modelDir, threshold: config.safety.threshold, session: { provider, deviceId: config.cudaDeviceId, cpuThreads: config.cpuThreads } });
    try {
      const grey = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(128) };
      const [verdict] = await classifier.classify([grey]);
      ok(`the classifier is loaded on ${provider} and scores a plain grey test image ${verdict.score.toFixed(3)} (${Math.round(performance.now() - started)} ms)`);
    } finally {
      await classifier.close();
    }
    return true;
  } catch (error) {
    for (const problem of error instanceof ModelFolderError ? error.problems : [(error as Error).message]) bad(problem);
    return false;
  }
}

async function main(): Promise<void> {
  const values = parseOptions(process.argv.slice(2));
  // the options stand for their settings, so a bad value gets the setting's own sentence
  const config = loadConfigOrFail({
    ...(values.modelDir !== undefined ? { MODEL_DIR: values.modelDir } : {}),
    ...(values.provider !== undefined ? { EXECUTION_PROVIDER: values.provider } : {}),
  });
  let healthy = true;
  const require = createRequire(import.meta.url);
  const ortVersion = (require('onnxruntime-node/package.json') as { version: string }).version;

  section('Runtime');
  ok(`Node ${process.versions.node} on ${process.platform}-${process.arch}`);
  ok(`onnxruntime-node ${ortVersion}; backends: ${ort.listSupportedBackends().map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`).join(', ')}`);

  section('CUDA');
  const report = await inspectCuda();
  if (report.missingProviderFiles.length === 0) ok(`provider libraries present in ${report.bindingDir}`);
  else warn(`provider libraries missing: ${report.missingProviderFiles.join(', ')} (in ${report.bindingDir}); add them with \`${CUDA_INSTALL_COMMAND}\``);
  if (report.unresolvedLibraries.length > 0) warn(`ldd cannot resolve: ${report.unresolvedLibraries.join(', ')}`);
  else if (report.missingProviderFiles.length === 0) ok('ldd resolves every library the CUDA provider needs');
  if (report.gpus.length > 0) for (const gpu of report.gpus) ok(`GPU ${gpu}`);
  else warn(`no GPU: ${report.gpuError ?? 'nvidia-smi listed none'}`);
  let cudaWorks = false;
  let cudaError: string | undefined;
  if (report.missingProviderFiles.length === 0 && report.unresolvedLibraries.length === 0) {
    try {
      const session = await ort.InferenceSession.create(probeModel(), { executionProviders: [{ name: 'cuda', deviceId: config.cudaDeviceId }] });
      await session.release();
      cudaWorks = true;
      ok(`a CUDA session opens on device ${config.cudaDeviceId}`);
    } catch (error) {
      cudaError = (error as Error).message;
      bad(`a CUDA session does not open: ${cudaError}`);
    }
  }
  if (!cudaWorks) {
    const why = describeCudaProblem(report, cudaError);
    if (config.provider === 'cuda') {
      bad(`EXECUTION_PROVIDER=cuda cannot work: ${why}`);
      healthy = false;
    } else if (config.provider === 'auto') {
      warn(`EXECUTION_PROVIDER=auto will use the CPU (minutes per image with the real model): ${why}`);
    }
  }

  if (!(await checkPlatforms(config))) healthy = false;

  section(`GPU workers (ENGINE=${config.engine})`);
  const workers = await inspectWorkers(config.limits.redisUrl, config.engine);
  for (const line of workers.lines) ({ ok, warn, bad })[line.level](line.text);
  if (!workers.healthy) healthy = false;

  section(`Model folder (MODEL_DIR=${config.modelDir})`);
  let folder: ModelFolder | undefined;
  try {
    folder = findModelFolder(config.modelDir);
    for (const [name, path] of [['text_encoder', folder.textEncoder], ['text_encoder_2', folder.textEncoder2], ['vae_decoder', folder.vaeDecoder]] as const) {
      ok(`${name}: ${describeModel(folder.root, path)}`);
    }
    for (const unet of folder.unets) {
      ok(`${unet.steps}-step UNet (${unet.prediction}): ${describeModel(folder.root, unet.model)}`);
    }
  } catch (error) {
    if (!(error instanceof ModelFolderError)) throw error;
    // with ENGINE=remote the bot loads no model; a worker host needs one
    for (const problem of error.problems) (config.engine === 'remote' ? warn : bad)(problem);
    warn(`get it with \`npm run models:fetch\` (models/README.md)${config.engine === 'remote' ? '; ENGINE=remote needs it only on the hosts that run `npm run worker`' : ''}`);
    if (config.engine !== 'remote') healthy = false;
  }
  if (folder && values.load) {
    const started = performance.now();
    try {
      const pipeline = await loadPipeline(
        { modelDir: config.modelDir, provider: config.provider, deviceId: config.cudaDeviceId, cpuThreads: config.cpuThreads },
        (level, message) => (level === 'info' ? undefined : warn(message)),
      );
      ok(`every session loads on ${pipeline.provider} and has the inputs and outputs the pipeline needs (${Math.round(performance.now() - started)} ms)`);
      await pipeline.close();
    } catch (error) {
      for (const problem of error instanceof ModelFolderError ? error.problems : [(error as Error).message]) bad(problem);
      healthy = false;
    }
  } else if (folder) {
    process.stdout.write('  (run `npm run doctor -- --load` to load every model and check its inputs and outputs)\n');
  }

  if (!(await checkSafety(config, values.load, cudaWorks))) healthy = false;

  process.stdout.write(`\n${healthy ? 'The bot can run with this setup.' : 'The bot cannot run with this setup yet: fix the FAIL lines above.'}\n`);
  process.exit(healthy ? 0 : 1);
}

await main();
