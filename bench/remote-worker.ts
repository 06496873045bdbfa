// One GPU worker process for `npm run bench:load -- --workers N`: the real worker (BullMQ, registry, results in
// Redis) around the real engine handle, whose model process is the timed stand-in (bench/standin-worker.ts).
// Run: node dist/bench/remote-worker.js --redis-url URL --id NAME -- <stand-in flags>

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine } from '../src/diffusion/index.js';
import { createLogger } from '../src/logger.js';
import { createRemoteWorker } from '../src/remote/worker.js';

const { values, positionals } = parseArgs({ args: process.argv.slice(2), allowPositionals: true, options: { 'redis-url': { type: 'string' }, id: { type: 'string' } } });
const redisUrl = values['redis-url'];
const id = values.id;
if (!redisUrl || !id) throw new Error('remote-worker: --redis-url and --id are required');

const standIn = fileURLToPath(new URL('./standin-worker.js', import.meta.url));
const logger = createLogger({ level: 'warn', name: 'bench-worker' });
const engine = createEngine(
  { modelDir: '(stand-in)', provider: 'cuda', deviceId: 0 },
  { logger, startWorker: () => fork(standIn, positionals, { serialization: 'advanced', execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }) },
);
const worker = createRemoteWorker({ redisUrl, workerId: id, lockMs: 30_000, heartbeatMs: 1_000 }, { engine, logger });
process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
// Ctrl-C signals the whole process group; the bench stops this worker itself once it has stopped the load
process.on('SIGINT', () => {});
await worker.start();
process.stdout.write('ready\n');
