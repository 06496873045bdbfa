import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyHubRepos } from '../../../models/tiny/hub-repos.js';
import { loadConfig } from '../../../src/config.js';
import { findModelFolder } from '../../../src/diffusion/model-folder.js';
import { safetyClassifierProblems } from '../../../src/diffusion/safety-files.js';
import { prepareModelFolder, type FirstStartIo } from '../../../src/models-fetch/first-start.js';
import { startFakeHub, type FakeHub } from '../../fakes/hub.js';

const root = mkdtempSync(join(tmpdir(), 'first-start-'));
let hub: FakeHub;

beforeAll(async () => {
  hub = await startFakeHub((await writeTinyHubRepos(join(root, 'hub'), [4])).repos);
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

function io(interactive: boolean, answer = ''): FirstStartIo & { text(): string } {
  let written = '';
  return {
    input: Readable.from([answer]),
    output: { write: (text: string) => (written += text) },
    interactive,
    endpoint: hub.endpoint,
    text: () => written,
  };
}

describe('npm start without a model folder', () => {
  it('without a terminal or MODEL_AUTO_FETCH, names the command and the setting and fetches nothing', async () => {
    const before = hub.requests.length;
    const modelDir = join(root, 'none');
    const message = await prepareModelFolder(loadConfig({ MODEL_DIR: modelDir }), io(false));
    expect(message).toMatch(/^The model folder .*none is not usable:\n {2}- the folder does not exist\nGet it with `npm run models:fetch`, which downloads .*\nOr set MODEL_AUTO_FETCH=true and npm start fetches and builds it itself\.$/);
    expect(hub.requests.length).toBe(before);
  });

  it('on a terminal, says what it would download and build and stops on "no"', async () => {
    const terminal = io(true, 'n\n');
    const message = await prepareModelFolder(loadConfig({ MODEL_DIR: join(root, 'declined') }), terminal);
    expect(message).toBe('No model folder, so the bot cannot start. Run npm run models:fetch when you are ready (see models/README.md).');
    expect(terminal.text()).toMatch(/npm run models:fetch can download the official files and build it into .*declined:\ndownload:\n/);
    expect(terminal.text()).toContain('  unet_4step/  0.00 GB fp16');
    expect(terminal.text()).toMatch(/Download and build it now\? \[y\/N\] $/);
  });

  it('on a terminal, "y" fetches and builds the default step count', async () => {
    const modelDir = join(root, 'accepted');
    const terminal = io(true, 'y\n');
    expect(await prepareModelFolder(loadConfig({ MODEL_DIR: modelDir }), terminal)).toBeUndefined();
    expect(findModelFolder(modelDir).unets.map((u) => u.steps)).toEqual([4]);
  });

  it('with MODEL_AUTO_FETCH=true, fetches without asking (fp32 for the CPU provider), logging each phase', async () => {
    const modelDir = join(root, 'auto');
    const log = io(false);
    expect(await prepareModelFolder(loadConfig({ MODEL_DIR: modelDir, MODEL_AUTO_FETCH: 'true', EXECUTION_PROVIDER: 'cpu' }), log)).toBeUndefined();
    expect(log.text()).toContain('MODEL_AUTO_FETCH=true: fetching and building it now (npm run models:fetch -- --steps 4 --dtype fp32).');
    expect(log.text()).toMatch(/\[\d+\/\d+\] download tokenizer\/vocab\.json/);
    expect(log.text()).toMatch(/write unet_4step\/ \(fp32, /);
    expect(log.text()).toMatch(/unet_4step\/: written \(/);
    expect(findModelFolder(modelDir).unets.map((u) => [u.steps, u.prediction])).toEqual([[4, 'epsilon']]);
    // an existing folder is used as it is
    const before = hub.requests.length;
    expect(await prepareModelFolder(loadConfig({ MODEL_DIR: modelDir, MODEL_AUTO_FETCH: 'true' }), io(false))).toBeUndefined();
    expect(hub.requests.length).toBe(before);
  });

  it('with SAFETY=on, a folder without the classifier is fetched again for it; with SAFETY=off it is used as it is', async () => {
    const modelDir = join(root, 'auto');
    rmSync(join(modelDir, 'safety_classifier'), { recursive: true, force: true });
    expect(await prepareModelFolder(loadConfig({ MODEL_DIR: modelDir, SAFETY: 'off' }), io(false))).toBeUndefined();
    const refused = await prepareModelFolder(loadConfig({ MODEL_DIR: modelDir }), io(false));
    expect(refused).toContain('safety_classifier/: missing (SAFETY=on checks every image with it)');
    expect(refused).toContain('or set SAFETY=off to run without the image check');
    const log = io(false);
    expect(await prepareModelFolder(loadConfig({ MODEL_DIR: modelDir, MODEL_AUTO_FETCH: 'true', EXECUTION_PROVIDER: 'cpu' }), log)).toBeUndefined();
    expect(log.text()).toMatch(/download safety_classifier\/model\.onnx/);
    expect(safetyClassifierProblems(modelDir)).toEqual([]);
  });
});
