// The fetch manifest (models/manifest.json): files downloaded as they are, the base graphs, and the weights the builder puts into them.

import { readFile } from 'node:fs/promises';

export const PREDICTIONS = ['epsilon', 'sample'] as const;
export type Prediction = (typeof PREDICTIONS)[number];

/** A file in a hub repo. */
export type HubRef = { repo: string; revision: string; path: string };

/** One file downloaded as it is: `path` in `repo` at `revision` is saved as `target`, relative to the model folder. */
export type FilePart = HubRef & { target: string; why: string };

/**
 * The SDXL base repo's graphs and, for the self-check, the same base weights twice: the graph's external data (fp32,
 * ONNX names) and the diffusers safetensors (fp16, state-dict keys). The VAE decoder's weights are inline in its graph.
 */
export type BaseParts = {
  repo: string;
  revision: string;
  unet: { graph: string; data: string; weights: string };
  vae: { graph: string; weights: string };
};

/** A Lightning UNet for `steps` steps: diffusers safetensors built into `unet_<steps>step/`. */
export type UnetWeights = HubRef & { steps: number; prediction: Prediction; why: string };

/** `safety`: the image safety classifier's files, downloaded as they are when SAFETY=on (none in older manifests). */
export type Manifest = { files: FilePart[]; base: BaseParts; unets: UnetWeights[]; vaeFp16: HubRef & { why: string }; safety: FilePart[] };

export class ManifestError extends Error {
  override name = 'ManifestError';
}

const TARGET = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[\w.\-/]+$/;

/** Reads and checks a manifest file; every problem is one sentence naming the entry. */
export async function loadManifest(file: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ManifestError(`${file}: cannot read the manifest (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(`${file}: not valid JSON (${(error as Error).message}).`);
  }
  return parseManifest(raw, file);
}

/** Checks a parsed manifest; `source` names it in messages. */
export function parseManifest(raw: unknown, source: string): Manifest {
  const problems: string[] = [];
  const object = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!object(raw)) throw new ManifestError(`${source}: expected a JSON object with "files", "base", "unets" and "vaeFp16".`);
  const text = (entry: Record<string, unknown>, key: string, where: string): string => {
    const value = entry[key];
    if (typeof value === 'string' && value.trim() !== '') return value;
    problems.push(`${where}: "${key}" must be a non-empty string, found ${JSON.stringify(value)}.`);
    return '';
  };
  const section = (key: string, where = source, from: Record<string, unknown> = raw): Record<string, unknown> => {
    const value = from[key];
    if (object(value)) return value;
    problems.push(`${where}: "${key}" must be an object.`);
    return {};
  };
  const list = (key: string, optional = false): unknown[] => {
    const value = raw[key];
    if (Array.isArray(value)) return value;
    if (optional && value === undefined) return [];
    problems.push(`${source}: "${key}" must be a list.`);
    return [];
  };
  const ref = (entry: Record<string, unknown>, where: string): HubRef => ({ repo: text(entry, 'repo', where), revision: text(entry, 'revision', where), path: text(entry, 'path', where) });

  const fileParts = (key: string, optional = false): FilePart[] =>
    list(key, optional).map((entry, i): FilePart => {
      const where = `${source}: ${key}[${i}]`;
      if (!object(entry)) return void problems.push(`${where}: expected an object.`) as never;
      const target = text(entry, 'target', where);
      if (target && !TARGET.test(target)) problems.push(`${where}: target "${target}" must be a relative path inside the model folder.`);
      return { ...ref(entry, where), target, why: text(entry, 'why', where) };
    });
  const files = fileParts('files');
  const safety = fileParts('safety', true);
  const baseRaw = section('base');
  const unetRaw = section('unet', `${source}: base`, baseRaw);
  const vaeRaw = section('vae', `${source}: base`, baseRaw);
  const base: BaseParts = {
    repo: text(baseRaw, 'repo', `${source}: base`),
    revision: text(baseRaw, 'revision', `${source}: base`),
    unet: { graph: text(unetRaw, 'graph', `${source}: base.unet`), data: text(unetRaw, 'data', `${source}: base.unet`), weights: text(unetRaw, 'weights', `${source}: base.unet`) },
    vae: { graph: text(vaeRaw, 'graph', `${source}: base.vae`), weights: text(vaeRaw, 'weights', `${source}: base.vae`) },
  };
  const unets = list('unets').map((entry, i): UnetWeights => {
    const where = `${source}: unets[${i}]`;
    if (!object(entry)) return void problems.push(`${where}: expected an object.`) as never;
    const steps = entry.steps;
    if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1 || steps > 50) problems.push(`${where}: "steps" must be a whole number from 1 to 50, found ${JSON.stringify(steps)}.`);
    const prediction = entry.prediction;
    if (!PREDICTIONS.includes(prediction as Prediction)) problems.push(`${where}: "prediction" must be ${PREDICTIONS.map((p) => `"${p}"`).join(' or ')}, found ${JSON.stringify(prediction)}.`);
    return { ...ref(entry, where), steps: steps as number, prediction: prediction as Prediction, why: text(entry, 'why', where) };
  });
  const seen = new Set<number>();
  for (const unet of unets) {
    if (unet && seen.has(unet.steps)) problems.push(`${source}: two unets for ${unet.steps} steps.`);
    if (unet) seen.add(unet.steps);
  }
  const vaeEntry = section('vaeFp16');
  const vaeFp16 = { ...ref(vaeEntry, `${source}: vaeFp16`), why: text(vaeEntry, 'why', `${source}: vaeFp16`) };
  if (problems.length > 0) throw new ManifestError(problems.join('\n'));
  return { files, base, unets, vaeFp16, safety };
}
