// Environment → typed config, with one clear sentence per bad value. The bot reads `.env` too.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { PROVIDER_CHOICES, type ProviderChoice } from './diffusion/provider.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';

export type Config = {
  modelDir: string;
  provider: ProviderChoice;
  cudaDeviceId: number;
  /** Load each step count's UNet on first use instead of at start. */
  lazyUnets: boolean;
  /** CPU threads per onnxruntime session; undefined = onnxruntime's choice for the provider. */
  cpuThreads: number | undefined;
  /** How far a variation (V1–V4) moves from its parent's noise, 0–1. */
  variationStrength: number;
  dataDir: string;
  logLevel: LogLevel;
};

/** Every setting the bot reads, its default and its meaning (README and .env.example list the same). */
export const SETTINGS = {
  MODEL_DIR: { default: 'models/sdxl-lightning', help: 'the SDXL-Lightning ONNX folder (see models/README.md)' },
  EXECUTION_PROVIDER: { default: 'auto', help: `where the model runs: ${PROVIDER_CHOICES.join(', ')}` },
  CUDA_DEVICE_ID: { default: '0', help: 'which GPU (index, as nvidia-smi numbers them)' },
  LAZY_UNETS: { default: 'false', help: 'load each step count’s UNet on first use (true) or all at start (false)' },
  CPU_THREADS: { default: '', help: 'CPU threads per onnxruntime session (empty: all cores on CPU, 1 with CUDA)' },
  VARIATION_STRENGTH: { default: '0.25', help: 'how far V1–V4 variations move from their image, 0–1' },
  DATA_DIR: { default: 'data', help: 'where the bot keeps its database and image cache' },
  LOG_LEVEL: { default: 'info', help: `log detail: ${LOG_LEVELS.join(', ')}` },
} as const satisfies Record<string, { default: string; help: string }>;

type SettingName = keyof typeof SETTINGS;

/** Every bad setting at once, one sentence each. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`The configuration has ${problems.length === 1 ? 'a problem' : 'problems'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

/** Reads `.env` in the working directory into `process.env` (existing variables win), when there is one. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

/** Builds the config from `env`; throws a ConfigError listing every bad value. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const raw = (name: SettingName): string => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? SETTINGS[name].default : value;
  };
  const oneOf = <T extends string>(name: SettingName, allowed: readonly T[]): T => {
    const value = raw(name);
    if ((allowed as readonly string[]).includes(value)) return value as T;
    problems.push(`${name} must be one of ${allowed.join(', ')}; found "${value}"`);
    return SETTINGS[name].default as T;
  };
  const integer = (name: SettingName, min: number, max: number): number | undefined => {
    const value = raw(name);
    if (value === '') return undefined;
    if (/^\d+$/.test(value) && Number(value) >= min && Number(value) <= max) return Number(value);
    problems.push(`${name} must be a whole number from ${min} to ${max}; found "${value}"`);
    return undefined;
  };
  const fraction = (name: SettingName): number => {
    const value = raw(name);
    if (/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(value)) return Number(value);
    problems.push(`${name} must be a number from 0 to 1; found "${value}"`);
    return Number(SETTINGS[name].default);
  };
  const flag = (name: SettingName): boolean => oneOf(name, ['true', 'false'] as const) === 'true';

  const config: Config = {
    modelDir: resolve(raw('MODEL_DIR')),
    provider: oneOf('EXECUTION_PROVIDER', PROVIDER_CHOICES),
    cudaDeviceId: integer('CUDA_DEVICE_ID', 0, 63) ?? 0,
    lazyUnets: flag('LAZY_UNETS'),
    cpuThreads: integer('CPU_THREADS', 1, 1024),
    variationStrength: fraction('VARIATION_STRENGTH'),
    dataDir: resolve(raw('DATA_DIR')),
    logLevel: oneOf('LOG_LEVEL', LOG_LEVELS),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
