// What the web's route modules share: the service and store, the member behind a request, their jobs, and the
// waits and events of those jobs. Made once by the web platform.

import type { FastifyRequest } from 'fastify';
import type { CommandContext } from '../../../commands/index.js';
import type { Job, JobStore } from '../../core/jobs.js';
import type { Requester, Service, Submission } from '../../core/service.js';
import type { Logger } from '../../logger.js';
import type { WebUser } from './auth.js';
import type { JobEvents, WebEvent } from './events.js';
import type { StoredResult, WebResults } from './results.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The member, set by the authentication hook before any route runs. */
    webUser: WebUser | undefined;
  }
}

/** How a finished job ended, for the APIs that wait for it. */
export type Outcome = { job: Job; stored: StoredResult } | { job: Job; failure: { code: string; message: string } };

/** What one member's running or waiting job is doing, for A1111's progress endpoint. */
export type Activity = { job: Job; event: WebEvent; runningSince: number | undefined };

export type WebContext = {
  service: Service;
  store: JobStore;
  results: WebResults;
  events: JobEvents;
  logger: Logger;
  commandContext: () => CommandContext;
  /** The model folder's name, for clients that list models. */
  modelName: string;
  /** Whether members log in with a token (else the page has no log-out). */
  loginRequired: boolean;
  /** The most bytes a request body may have. */
  maxBodyBytes: number;
  requester(request: FastifyRequest): Requester;
  /** The member's own web job, or a WebError (404) for any other id: another member's jobs do not exist for them. */
  ownJob(request: FastifyRequest, jobId: string): Job;
  /** Awaits a submission; a refusal becomes its WebError. */
  accepted(submission: Promise<Submission>): Promise<{ job: Job; position: number }>;
  /** Tells a cancelled job's listeners and waiters (after `service.cancel` said yes). */
  cancelled(job: Job): void;
  /** Settles when the job is done, failed or cancelled. */
  outcome(jobId: string): Promise<Outcome>;
  /** The event that says where a job stands now: its latest event in memory, else one made from the store. */
  currentEvent(job: Job): Promise<WebEvent>;
  /** The member's jobs that are waiting or running, oldest first. */
  activity(userId: string): Activity[];
};
