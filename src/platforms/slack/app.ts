// The Slack side: a Bolt app (Socket Mode or HTTP) that turns /imagine and button clicks into service calls, acks
// within 3 s, shows the queue position ephemerally, and posts results with the upload v2 flow and the same buttons.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, LogLevel, type BlockAction, type ButtonAction as SlackButton, type RespondFn, type SlashCommand } from '@slack/bolt';
import { flagUsage, parseFlags } from '../../../commands/flags.js';
import { isRefusal, type CommandContext } from '../../../commands/index.js';
import imagine from '../../../commands/imagine.js';
import imagineSettings, { describeSettings } from '../../../commands/imagine-settings.js';
import type { Job } from '../../core/jobs.js';
import { refusalText, type Refusal } from '../../core/refusal.js';
import type { PlatformAdapter, Requester, ResultDelivery, Service, StatusUpdate, Submission } from '../../core/service.js';
import type { Logger } from '../../logger.js';
import { parseButtonId } from '../button-ids.js';
import { StatusThrottle } from '../status-throttle.js';
import { escapeSlack, slackTextToPlain } from '../escape.js';
import { buttonsText, failureText, fileTitle, resultBlocks, resultComment, statusBlocks, usageText } from './blocks.js';
import { createSlackReceiver } from './receiver.js';
import { actionRequester, commandRequester } from './requester.js';

export type SlackConfig = {
  botToken: string;
  signingSecret: string;
  /** Socket Mode when set (no public URL needed); otherwise HTTP on `port` (0: any free port). */
  appToken?: string;
  port: number;
  /** HTTP mode: the address to listen on (default: every interface). */
  host?: string;
  /** Web API base (Bolt's `clientOptions.slackApiUrl`), e.g. a local fake in tests. */
  apiUrl?: string;
};

export type SlackDeps = { service: Service; logger: Logger; commandContext: (server?: { platform: 'discord' | 'slack'; guildId: string }) => CommandContext; now?: () => number };

/**
 * What a Slack job keeps in the store to report on and deliver its result. `ownsOriginal`: the response_url's
 * "original" message is this job's own status message (a slash command's ack); for a click it is the clicked message,
 * which must never be replaced or deleted.
 */
type SlackReply = { responseUrl: string; issuedAt: number; channelId: string; ownsOriginal: boolean };

/** A response_url works five times within 30 minutes; one use stays for the final delete or a failure. */
const MAX_STATUS_EDITS = 5 - 1;
const RESPONSE_URL_LIFETIME_MS = 29 * 60_000;
const STATUS_EDIT_INTERVAL_MS = 2_000;
/** Slack shares an uploaded file asynchronously; wait this long for it before posting the buttons anyway. */
const SHARE_WAIT_MS = 10_000;
const SHARE_POLL_MS = 250;

export class SlackBot implements PlatformAdapter {
  readonly app: App;
  private readonly config: SlackConfig;
  private readonly deps: SlackDeps;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly status: StatusThrottle;
  /** HTTP mode: the port Slack's requests arrive on, once started (`/slack/events`). */
  httpPort: number | undefined;

  constructor(config: SlackConfig, deps: SlackDeps) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger.child({ part: 'slack' });
    this.now = deps.now ?? Date.now;
    this.status = new StatusThrottle({ intervalMs: STATUS_EDIT_INTERVAL_MS, now: this.now, show: (job, update, edits) => this.showStatus(job, update, edits) });
    this.app = new App({
      token: config.botToken,
      signingSecret: config.signingSecret,
      ...(config.appToken ? { socketMode: true, appToken: config.appToken } : { receiver: createSlackReceiver({ signingSecret: config.signingSecret, logger: this.logger }) }),
      ...(config.apiUrl ? { clientOptions: { slackApiUrl: config.apiUrl } } : {}),
      logLevel: LogLevel.ERROR,
    });
    this.app.command(`/${imagine.name}`, async ({ command, ack }) => {
      await this.onImagine(command, ack);
    });
    this.app.command(`/${imagineSettings.name}`, async ({ command, ack, respond, client }) => {
      await this.onSettings(command, ack, respond, (user) => client.users.info({ user }));
    });
    this.app.action<BlockAction<SlackButton>>(/^v1:/, async ({ action, body, ack, respond }) => {
      await ack();
      await this.onButton(action, body, respond);
    });
    this.app.error(async (error) => {
      this.logger.error({ err: error }, 'slack listener failed');
    });
  }

  async start(): Promise<void> {
    this.deps.service.registerPlatform('slack', this);
    if (this.config.appToken) {
      await this.app.start();
    } else {
      const server = (await this.app.start({ port: this.config.port, ...(this.config.host ? { host: this.config.host } : {}) })) as Server;
      this.httpPort = (server.address() as AddressInfo).port;
    }
    this.logger.info({ mode: this.config.appToken ? 'socket' : 'http', port: this.httpPort }, 'slack ready');
  }

  async close(): Promise<void> {
    this.status.close();
    await this.app.stop();
  }

  // ——— listeners ———

  private async onImagine(command: SlashCommand, ack: (response?: { response_type: 'ephemeral'; text: string; blocks?: unknown[] }) => Promise<void>): Promise<void> {
    const context = this.deps.commandContext({ platform: 'slack', guildId: command.team_id });
    const parsed = parseFlags(imagine, slackTextToPlain(command.text), context);
    if (parsed.kind !== 'values') {
      const usage = flagUsage(imagine, context);
      return ack({ response_type: 'ephemeral', text: usageText(usage, parsed.kind === 'error' ? parsed.message : undefined) });
    }
    const request = imagine.parse(parsed.values, context);
    if (isRefusal(request)) return ack({ response_type: 'ephemeral', text: refusalText(request) });
    const requester: Requester = commandRequester(command);
    let submission: Submission;
    try {
      submission = await this.deps.service.imagine(requester, request, this.replyFor(command.response_url, command.channel_id, true));
    } catch (error) {
      this.logger.error({ err: error }, 'handling /imagine failed');
      return ack({ response_type: 'ephemeral', text: refusalText({ code: 'generation_failed' }) });
    }
    if (!submission.ok) return ack({ response_type: 'ephemeral', text: refusalText(submission.refusal) });
    const update: StatusUpdate = submission.position > 0 ? { state: 'queued', position: submission.position } : { state: 'running' };
    await ack({ response_type: 'ephemeral', ...statusBlocks(submission.job, update) });
    this.status.shown(submission.job.id);
  }

  /**
   * /imagine-settings: for workspace admins and owners (users.info `is_admin` / `is_owner`), asked after the ack.
   * Channel tags stay ids (`<#C…|name>` → `C…`), so an admin can name channels by mentioning them.
   */
  private async onSettings(
    command: SlashCommand,
    ack: (response?: { response_type: 'ephemeral'; text: string }) => Promise<void>,
    respond: RespondFn,
    userInfo: (user: string) => Promise<{ user?: { is_admin?: boolean; is_owner?: boolean } }>,
  ): Promise<void> {
    const context = this.deps.commandContext();
    const text = slackTextToPlain(command.text.replace(/<#([A-Z0-9]+)(?:\|[^<>]*)?>/g, '$1')).trim();
    const flags = text === '' ? { kind: 'values' as const, values: {} } : parseFlags(imagineSettings, text, context);
    if (flags.kind !== 'values') {
      return ack({ response_type: 'ephemeral', text: usageText(flagUsage(imagineSettings, context), flags.kind === 'error' ? flags.message : undefined) });
    }
    const action = imagineSettings.parse(flags.values, context);
    if (isRefusal(action)) return ack({ response_type: 'ephemeral', text: refusalText(action) });
    await ack();
    const answer = (reply: string) => respond({ response_type: 'ephemeral', replace_original: false, text: reply });
    try {
      const { user } = await userInfo(command.user_id);
      if (user?.is_admin !== true && user?.is_owner !== true) return void (await answer(refusalText({ code: 'not_admin' })));
      const result = this.deps.service.serverSettings(commandRequester(command), action.kind === 'change' ? action.change : undefined);
      if (!result.ok) return void (await answer(refusalText(result.refusal)));
      const saved = action.kind === 'change' ? (result.changed.length > 0 ? 'Saved; this applies to the next request here.\n' : 'Nothing changed.\n') : '';
      await answer(`${saved}${describeSettings(result.settings, { escape: escapeSlack, channel: (id) => `<#${id}>` })}`);
    } catch (error) {
      this.logger.error({ err: error, user: command.user_id }, 'handling /imagine-settings failed');
      await answer(refusalText({ code: 'generation_failed' })).catch(() => undefined);
    }
  }

  private async onButton(action: SlackButton, body: BlockAction, respond: RespondFn): Promise<void> {
    const refuse = (refusal: Refusal) => respond({ response_type: 'ephemeral', replace_original: false, text: refusalText(refusal) });
    try {
      const button = parseButtonId(action.value ?? action.action_id);
      if (!button) return void (await refuse({ code: 'unknown_job' }));
      const requester: Requester = actionRequester(body);
      if (button.action === 'cancel') {
        const result = this.deps.service.cancel(requester, button.jobId);
        if (!result.ok) return void (await refuse(result.refusal));
        this.status.finish(button.jobId);
        await respond({ response_type: 'ephemeral', replace_original: true, text: 'Cancelled.' });
        return;
      }
      const reply = this.replyFor(body.response_url, requester.channelId, false);
      const submission =
        button.action === 'reroll'
          ? await this.deps.service.reroll(requester, button.jobId, reply)
          : button.action === 'upscale'
            ? await this.deps.service.upscale(requester, button.jobId, button.index, reply)
            : await this.deps.service.vary(requester, button.jobId, button.index, reply);
      if (!submission.ok) return void (await refuse(submission.refusal));
      const update: StatusUpdate = submission.position > 0 ? { state: 'queued', position: submission.position } : { state: 'running' };
      await respond({ response_type: 'ephemeral', replace_original: false, ...statusBlocks(submission.job, update) });
    } catch (error) {
      this.logger.error({ err: error }, 'handling a Slack button failed');
      await refuse({ code: 'generation_failed' }).catch(() => undefined);
    }
  }

  private replyFor(responseUrl: string, channelId: string, ownsOriginal: boolean): SlackReply {
    return { responseUrl, issuedAt: this.now(), channelId, ownsOriginal };
  }

  // ——— the service's side ———

  maxUploadBytes(): number {
    // Slack takes files up to 1 GB; a lossless PNG grid is far below that
    return 64 * 2 ** 20;
  }

  onStatus(job: Job, update: StatusUpdate): void {
    this.status.update(job, update);
  }

  /** Replaces the member's ephemeral status message; a click's status is a message of its own, left as it is. */
  private async showStatus(job: Job, update: StatusUpdate, edits: number): Promise<void> {
    if (edits >= MAX_STATUS_EDITS || !this.ownsStatusMessage(job)) return;
    try {
      await this.respondTo(job, { replace_original: true, ...statusBlocks(job, update) });
    } catch (error) {
      this.logger.warn({ err: error, job: job.id }, 'could not update a queue position');
    }
  }

  async deliverResult(job: Job, result: ResultDelivery): Promise<string | undefined> {
    this.status.finish(job.id);
    const reply = job.reply as SlackReply;
    const client = this.app.client;
    const upload = (await client.filesUploadV2({
      channel_id: reply.channelId,
      file: result.file.data,
      filename: result.fileName,
      title: fileTitle(job),
      initial_comment: resultComment(job, result),
    })) as { files?: { files?: { id?: string }[] }[] };
    const fileId = upload.files?.[0]?.files?.[0]?.id;
    if (fileId) await this.waitUntilShared(fileId, reply.channelId);
    const posted = await client.chat.postMessage({
      channel: reply.channelId,
      text: buttonsText(job),
      blocks: resultBlocks(job, result),
    });
    // the status message has done its work; the result is in the channel for everyone
    if (this.ownsStatusMessage(job)) await this.respondTo(job, { delete_original: true }).catch(() => undefined);
    return posted.ts;
  }

  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.status.finish(job.id);
    const text = failureText(job, refusal);
    if (this.responseUrlUsable(job)) {
      try {
        await this.respondTo(job, { replace_original: this.ownsStatusMessage(job), text });
        return;
      } catch (error) {
        this.logger.warn({ err: error, job: job.id }, 'could not answer through the response_url; posting an ephemeral message');
      }
    }
    await this.app.client.chat.postEphemeral({ channel: job.channelId, user: job.userId, text });
  }

  /**
   * Slack finishes an upload asynchronously and does not return the message; the buttons follow the image only once
   * files.info shows it shared in the channel (bounded wait, then they are posted anyway).
   */
  private async waitUntilShared(fileId: string, channelId: string): Promise<void> {
    const deadline = this.now() + SHARE_WAIT_MS;
    while (this.now() < deadline) {
      try {
        const info = (await this.app.client.files.info({ file: fileId })) as { file?: { channels?: string[]; groups?: string[]; ims?: string[]; shares?: Record<string, Record<string, unknown>> } };
        const file = info.file;
        const shared = [...(file?.channels ?? []), ...(file?.groups ?? []), ...(file?.ims ?? [])].includes(channelId) || Object.values(file?.shares ?? {}).some((byChannel) => channelId in byChannel);
        if (shared) return;
      } catch (error) {
        this.logger.warn({ err: error, file: fileId }, 'files.info failed while waiting for an upload');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, SHARE_POLL_MS));
    }
    this.logger.warn({ file: fileId }, 'the upload was not shared in time; posting the buttons anyway');
  }

  private async respondTo(job: Job, message: Record<string, unknown>): Promise<void> {
    const reply = job.reply as SlackReply;
    const response = await fetch(reply.responseUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ response_type: 'ephemeral', ...message }) });
    if (!response.ok) throw new Error(`response_url answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  }

  private responseUrlUsable(job: Job): boolean {
    const reply = job.reply as SlackReply;
    return Boolean(reply.responseUrl) && this.now() - reply.issuedAt < RESPONSE_URL_LIFETIME_MS;
  }

  /** The job's status message can be edited or removed through its response_url. */
  private ownsStatusMessage(job: Job): boolean {
    return (job.reply as SlackReply).ownsOriginal && this.responseUrlUsable(job);
  }
}

export function createSlack(config: SlackConfig, deps: SlackDeps): SlackBot {
  return new SlackBot(config, deps);
}
