// The fair GPU queue: round-robin over users, recent usage first among equals, one slot of slack for a warm UNet.

/** A job waiting for the GPU. `userKey` is "platform:userId"; `enqueuedAt` is epoch ms. */
export type QueuedJob = {
  jobId: string;
  userKey: string;
  steps: number;
  images: number;
  enqueuedAt: number;
};

export type FairQueueOptions = {
  /** The clock recent usage decays by (ms); Date.now by default. */
  now?: () => number;
  /** Recent usage halves every this many ms; 10 minutes by default. */
  usageHalfLifeMs?: number;
};

/**
 * Which waiting job runs next on the one engine.
 *
 * Every job is given a round when it arrives: the current round, or the round after its user's previous job,
 * whichever is later. Rounds run in order, so a user's second job waits behind everyone else's first, and a
 * newcomer joins the round under way. Within a round, users with less decayed recent usage go first, then the
 * earlier arrival. Usage decays by the same factor for everyone, so the order never changes with time alone:
 * it changes only on push, remove, take and recordUsage, and positions() is exactly the order of later takes.
 */
export type FairQueue = {
  /** Adds a job; a jobId already waiting is an error. */
  push(job: QueuedJob): void;
  /** Drops a waiting job (cancelled); its user's later jobs move up into its round. False when not waiting. */
  remove(jobId: string): boolean;
  /**
   * The job to run now, or undefined when none waits. `warmSteps` (default: the steps of the job taken last, the
   * UNet the engine has loaded) lets the fair second pick run first when it has those steps and the fair first
   * does not; a job is skipped this way at most once, and never for a later job of its own user. `runnable`: only
   * jobs whose steps it accepts are candidates (no free runner has the others installed); they keep their place.
   */
  take(options?: { warmSteps?: number; runnable?: (steps: number) => boolean }): QueuedJob | undefined;
  /** Charges GPU work to a user after it ran (images × steps, or ms of GPU: one unit for every user). */
  recordUsage(userKey: string, cost: number): void;
  /** jobId → position, 1 = runs next; what successive take() calls return while nothing else changes. */
  positions(): Map<string, number>;
  /** The waiting jobs in the order they will run (same simulation as positions()). */
  waiting(): readonly QueuedJob[];
  /** The round a waiting job runs in (each user has at most one job per round); for logs and tests. */
  roundOf(jobId: string): number | undefined;
  readonly size: number;
  countFor(userKey: string): number;
  has(jobId: string): boolean;
};

const DEFAULT_USAGE_HALF_LIFE_MS = 10 * 60_000;
/** A user with nothing waiting whose usage decayed below this is forgotten (about 20 half-lives after 1 unit). */
const FORGET_USAGE_BELOW = 1e-6;

type Entry = { job: QueuedJob; round: number; seq: number };
type Usage = { value: number; at: number };

export function createFairQueue(options: FairQueueOptions = {}): FairQueue {
  const now = options.now ?? (() => Date.now());
  const halfLifeMs = options.usageHalfLifeMs ?? DEFAULT_USAGE_HALF_LIFE_MS;
  if (!(halfLifeMs > 0)) throw new RangeError(`usageHalfLifeMs must be above 0; found ${halfLifeMs}`);

  const lines = new Map<string, Entry[]>(); // userKey → that user's waiting jobs, oldest first
  const entries = new Map<string, Entry>(); // jobId → entry
  const usage = new Map<string, Usage>();
  const lastTakenRound = new Map<string, number>();
  const skipped = new Set<string>(); // jobIds a warm pick already ran ahead of
  let headRound = 0;
  let lastSteps: number | undefined;
  let seq = 0;

  const decayedUsage = (userKey: string, at: number): number => {
    const recorded = usage.get(userKey);
    return recorded ? recorded.value * 2 ** (-(at - recorded.at) / halfLifeMs) : 0;
  };

  const lastRound = (userKey: string): number => {
    const line = lines.get(userKey);
    if (line && line.length > 0) return line[line.length - 1].round;
    return lastTakenRound.get(userKey) ?? -1;
  };

  /** Every waiting job in fair order: round, then the user's decayed usage, then arrival. */
  const fairOrder = (): Entry[] => {
    const at = now();
    const usageOf = new Map<string, number>();
    for (const userKey of lines.keys()) usageOf.set(userKey, decayedUsage(userKey, at));
    return [...entries.values()].sort(
      (a, b) =>
        a.round - b.round ||
        usageOf.get(a.job.userKey)! - usageOf.get(b.job.userKey)! ||
        a.job.enqueuedAt - b.job.enqueuedAt ||
        a.seq - b.seq,
    );
  };

  /** Index of the job to run in `order` (0 or 1): the one rule both take() and the simulation use. */
  const pickIndex = (order: readonly Entry[], warmSteps: number | undefined, alreadySkipped: ReadonlySet<string>): 0 | 1 => {
    if (warmSteps === undefined || order.length < 2) return 0;
    const [first, second] = order;
    const warmSecond =
      first.job.steps !== warmSteps &&
      second.job.steps === warmSteps &&
      second.job.userKey !== first.job.userKey &&
      !alreadySkipped.has(first.job.jobId);
    return warmSecond ? 1 : 0;
  };

  const simulate = (): QueuedJob[] => {
    const order = fairOrder();
    const simulatedSkips = new Set(skipped);
    const result: QueuedJob[] = [];
    let warm = lastSteps;
    while (order.length > 0) {
      const index = pickIndex(order, warm, simulatedSkips);
      if (index === 1) simulatedSkips.add(order[0].job.jobId);
      const [picked] = order.splice(index, 1);
      result.push(picked.job);
      warm = picked.job.steps;
    }
    return result;
  };

  const detach = (entry: Entry): void => {
    const line = lines.get(entry.job.userKey)!;
    line.splice(line.indexOf(entry), 1);
    if (line.length === 0) lines.delete(entry.job.userKey);
    entries.delete(entry.job.jobId);
    skipped.delete(entry.job.jobId);
  };

  /** Drops bookkeeping that can no longer change an order: old rounds and faded usage of absent users. */
  const forget = (at: number): void => {
    for (const [userKey, round] of lastTakenRound) {
      if (round + 1 <= headRound && !lines.has(userKey)) lastTakenRound.delete(userKey);
    }
    for (const userKey of usage.keys()) {
      if (!lines.has(userKey) && decayedUsage(userKey, at) < FORGET_USAGE_BELOW) usage.delete(userKey);
    }
  };

  return {
    push(job) {
      if (entries.has(job.jobId)) throw new Error(`job ${job.jobId} is already waiting`);
      const entry: Entry = { job, round: Math.max(headRound, lastRound(job.userKey) + 1), seq: seq++ };
      const line = lines.get(job.userKey);
      if (line) line.push(entry);
      else lines.set(job.userKey, [entry]);
      entries.set(job.jobId, entry);
    },

    remove(jobId) {
      const entry = entries.get(jobId);
      if (!entry) return false;
      const line = lines.get(entry.job.userKey)!;
      // Later jobs of this user each take the round of the one before, so cancelling does not cost them a round.
      let freedRound = entry.round;
      for (const later of line.slice(line.indexOf(entry) + 1)) [later.round, freedRound] = [freedRound, later.round];
      detach(entry);
      return true;
    },

    take(options = {}) {
      const runnable = options.runnable;
      const order = runnable ? fairOrder().filter((entry) => runnable(entry.job.steps)) : fairOrder();
      if (order.length === 0) return undefined;
      const index = pickIndex(order, options.warmSteps ?? lastSteps, skipped);
      if (index === 1) skipped.add(order[0].job.jobId);
      const picked = order[index];
      headRound = order[0].round;
      detach(picked);
      lastTakenRound.set(picked.job.userKey, picked.round);
      lastSteps = picked.job.steps;
      forget(now());
      return picked.job;
    },

    recordUsage(userKey, cost) {
      if (!(cost >= 0) || !Number.isFinite(cost)) throw new RangeError(`usage cost must be a finite number ≥ 0; found ${cost}`);
      const at = now();
      usage.set(userKey, { value: decayedUsage(userKey, at) + cost, at });
    },

    positions() {
      return new Map(simulate().map((job, index) => [job.jobId, index + 1]));
    },

    waiting() {
      return simulate();
    },

    roundOf(jobId) {
      return entries.get(jobId)?.round;
    },

    get size() {
      return entries.size;
    },

    countFor(userKey) {
      return lines.get(userKey)?.length ?? 0;
    },

    has(jobId) {
      return entries.has(jobId);
    },
  };
}
