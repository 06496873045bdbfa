import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, SETTINGS } from '../../src/config.js';

describe('loadConfig', () => {
  it('has defaults for everything', () => {
    expect(loadConfig({})).toEqual({
      modelDir: resolve('models/sdxl-lightning'),
      provider: 'auto',
      cudaDeviceId: 0,
      lazyUnets: false,
      cpuThreads: undefined,
      variationStrength: 0.25,
      dataDir: resolve('data'),
      logLevel: 'info',
    });
  });

  it('reads every setting', () => {
    const config = loadConfig({
      MODEL_DIR: '/models/lightning',
      EXECUTION_PROVIDER: 'cuda',
      CUDA_DEVICE_ID: '1',
      LAZY_UNETS: 'true',
      CPU_THREADS: '4',
      VARIATION_STRENGTH: '0.5',
      DATA_DIR: '/var/lib/bot',
      LOG_LEVEL: 'debug',
    });
    expect(config).toEqual({
      modelDir: '/models/lightning',
      provider: 'cuda',
      cudaDeviceId: 1,
      lazyUnets: true,
      cpuThreads: 4,
      variationStrength: 0.5,
      dataDir: '/var/lib/bot',
      logLevel: 'debug',
    });
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ EXECUTION_PROVIDER: '', CUDA_DEVICE_ID: ' ' }).provider).toBe('auto');
  });

  it('lists every bad value in one error, one sentence each', () => {
    let error: unknown;
    try {
      loadConfig({ EXECUTION_PROVIDER: 'gpu', CUDA_DEVICE_ID: '1e3', VARIATION_STRENGTH: '1.5', LAZY_UNETS: 'yes', CPU_THREADS: '0' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'EXECUTION_PROVIDER must be one of auto, cuda, cpu; found "gpu"',
      'CUDA_DEVICE_ID must be a whole number from 0 to 63; found "1e3"',
      'LAZY_UNETS must be one of true, false; found "yes"',
      'CPU_THREADS must be a whole number from 1 to 1024; found "0"',
      'VARIATION_STRENGTH must be a number from 0 to 1; found "1.5"',
    ]);
  });

  it('documents every setting it reads in .env.example', async () => {
    const { readFileSync } = await import('node:fs');
    const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    for (const name of Object.keys(SETTINGS)) expect(example).toContain(`${name}=`);
  });
});
