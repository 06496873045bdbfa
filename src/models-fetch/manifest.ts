// The download manifest (models/manifest.json): which hub file becomes which file of the model folder, and which parts have no source.

import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';

export const PREDICTIONS = ['epsilon', 'sample'] as const;
export type Prediction = (typeof PREDICTIONS)[number];

/** One file: `path` in `repo` at `revision` is saved as `target`, relative to the model folder. */
export type FilePart = { target: string; repo: string; revision: string; path: string; why: string };

/**
 * A Lightning UNet for `steps` steps, saved into `target` (e.g. `unet_4step`): each of `files` (repo paths) keeps its
 * file name there, and the fetcher writes `config.json` with `lightning_steps` and `prediction_type` itself.
 */
export type UnetPart = { steps: number; target: string; repo: string; revision: string; files: string[]; prediction: Prediction; why: string };

/** A part with no trustworthy published source; `why` says what to do instead. */
export type MissingPart = { target: string; steps?: number; why: string };

export type Manifest = { files: FilePart[]; unets: UnetPart[]; missing: MissingPart[] };

export class ManifestError extends Error {
  override name = 'ManifestError';
}

const TARGET = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[\w.\-/]+$/;
const STEP_FOLDER = /^unet_(\d+)step$/;

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
  const list = (key: string): unknown[] => {
    if (!object(raw)) return [];
    const value = raw[key];
    if (value === undefined) return [];
    if (Array.isArray(value)) return value;
    problems.push(`${source}: "${key}" must be a list.`);
    return [];
  };
  if (!object(raw)) throw new ManifestError(`${source}: expected a JSON object with "files", "unets" and "missing".`);
  const text = (entry: Record<string, unknown>, key: string, where: string): string => {
    const value = entry[key];
    if (typeof value === 'string' && value.trim() !== '') return value;
    problems.push(`${where}: "${key}" must be a non-empty string, found ${JSON.stringify(value)}.`);
    return '';
  };
  const target = (entry: Record<string, unknown>, where: string): string => {
    const value = text(entry, 'target', where);
    if (value && !TARGET.test(value)) problems.push(`${where}: target "${value}" must be a relative path inside the model folder.`);
    return value;
  };
  const steps = (entry: Record<string, unknown>, where: string, folder: string): number => {
    const value = entry.steps;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      problems.push(`${where}: "steps" must be a positive whole number, found ${JSON.stringify(value)}.`);
      return 0;
    }
    const match = STEP_FOLDER.exec(folder);
    if (folder && (!match || Number(match[1]) !== value)) problems.push(`${where}: target must be "unet_${value}step" for ${value} steps, found "${folder}".`);
    return value;
  };

  const files = list('files').map((entry, i): FilePart => {
    const where = `${source}: files[${i}]`;
    if (!object(entry)) return void problems.push(`${where}: expected an object.`) as never;
    return { target: target(entry, where), repo: text(entry, 'repo', where), revision: text(entry, 'revision', where), path: text(entry, 'path', where), why: text(entry, 'why', where) };
  });
  const unets = list('unets').map((entry, i): UnetPart => {
    const where = `${source}: unets[${i}]`;
    if (!object(entry)) return void problems.push(`${where}: expected an object.`) as never;
    const folder = target(entry, where);
    const paths = Array.isArray(entry.files) && entry.files.every((f) => typeof f === 'string' && f !== '') ? (entry.files as string[]) : [];
    if (paths.length === 0) problems.push(`${where}: "files" must be a non-empty list of repo paths.`);
    if (!paths.some((p) => posix.basename(p) === 'model.onnx')) problems.push(`${where}: "files" must include a model.onnx.`);
    if (paths.some((p) => posix.basename(p) === 'config.json')) problems.push(`${where}: leave config.json out of "files"; the fetcher writes it from "steps" and "prediction".`);
    const prediction = entry.prediction;
    if (!PREDICTIONS.includes(prediction as Prediction)) problems.push(`${where}: "prediction" must be ${PREDICTIONS.map((p) => `"${p}"`).join(' or ')}, found ${JSON.stringify(prediction)}.`);
    return {
      steps: steps(entry, where, folder),
      target: folder,
      repo: text(entry, 'repo', where),
      revision: text(entry, 'revision', where),
      files: paths,
      prediction: prediction as Prediction,
      why: text(entry, 'why', where),
    };
  });
  const missing = list('missing').map((entry, i): MissingPart => {
    const where = `${source}: missing[${i}]`;
    if (!object(entry)) return void problems.push(`${where}: expected an object.`) as never;
    const folder = target(entry, where);
    const part: MissingPart = { target: folder, why: text(entry, 'why', where) };
    if (entry.steps !== undefined) part.steps = steps(entry, where, folder);
    return part;
  });
  const targets = [...files.map((f) => f?.target), ...unets.flatMap((u) => (u ? u.files.map((p) => `${u.target}/${posix.basename(p)}`) : []))];
  const seen = new Set<string>();
  for (const t of targets) {
    if (t && seen.has(t)) problems.push(`${source}: two entries write ${t}.`);
    seen.add(t);
  }
  if (problems.length > 0) throw new ManifestError(problems.join('\n'));
  return { files, unets, missing };
}
