// The Slack side: a Bolt app (Socket Mode or HTTP) that routes the commands in COMMANDS and button clicks to the
// service, acks before any I/O, shows the queue position ephemerally within the response_url's five uses, and posts
// results with the upload v2 flow and the same buttons; a failure reaches the member even where the bot is not.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, LogLevel, webApi, type AckFn, type BlockAction, type ButtonAction as SlackButton, type RespondArguments, type RespondFn, type SlashCommand } from '@slack/bolt';
import { flagUsage, parseFlags } from '../../../commands/flags.js';
import { COMMANDS, findCommand, isRefusal, unknownCommandText, type CommandContext, type CommandDefinition } from '../../../commands/index.js';
import imagineSettings, { describeSettings } from '../../../commands/imagine-settings.js';
import type { Job } from '../../core/jobs.js';
import { refusalText, type Refusal } from '../../core/refusal.js';
import type { PlatformAdapter, Requester, ResultDelivery, Service, StatusUpdate, Submission } from '../../core/service.js';
import type { Logger } from '../../logger.js';
import { parseButtonId } from '../button-ids.js';
import { StatusThrottle, type StatusBudget } from '../status-throttle.js';
import { escapeSlack, slackTextToPlain } from '../escape.js';
import { DELIVERY_RETRY, deliveryError, ResponseUrlError, slackFault, type SlackFault } from './faults.js';
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

export type SlackDeps = {
  service: Service;
  logger: Logger;
  /** What the commands know of this installation; a server's own defaults when it is named. */
  commandContext: (server?: { platform: 'discord' | 'slack'; guildId: string }) => CommandContext;
  now?: () => number;
  /** The commands to route (default COMMANDS); each needs a slash command of its name in the Slack app. */
  commands?: readonly CommandDefinition[];
};

/**
 * What a Slack job keeps in the store to report on and deliver its result. `ownsOriginal`: the response_url's
 * "original" message is this job's own status message (a slash command's ack); for a click it is the clicked message,
 * which must never be replaced or deleted.
 */
type SlackReply = { responseUrl: string; issuedAt: number; channelId: string; ownsOriginal: boolean };

/**
 * A response_url works five times within 30 minutes, and a command's status message is made through it: four status
 * posts (the first position, one later move, "running", one progress line), the fifth kept for the final delete or a
 * failure.
 */
export const SLACK_STATUS_BUDGET: StatusBudget = { intervalMs: 2_000, maxEdits: 4, maxQueueEdits: 2, meaningfulShare: 0.75, stalePositionMs: 5_000 };
const RESPONSE_URL_LIFETIME_MS = 29 * 60_000;
/** Slack shares an uploaded file asynchronously; wait this long for it before posting the buttons anyway. */
const SHARE_WAIT_MS = 10_000;
const SHARE_POLL_MS = 250;

/** One way to tell a member; `independent`: its failure, of any kind, says nothing about the next way. */
type Way = { name: string; send: () => Promise<unknown>; independent?: boolean };

export class SlackBot implements PlatformAdapter {
  readonly app: App;
  private readonly config: SlackConfig;
  private readonly deps: SlackDeps;
  private readonly commands: readonly CommandDefinition[];
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly status: StatusThrottle;
  /**
   * Deliveries use their own Web API client: rate limits reject with Slack's Retry-After and outages fail after two
   * quick retries, so the service schedules the next try; Bolt's client keeps its defaults for everything else.
   */
  private readonly delivery: webApi.WebClient;
  /** Files already uploaded for a job whose buttons could not be posted yet, so a retry does not upload twice. */
  private readonly uploaded = new Map<string, string>();
  /** HTTP mode: the port Slack's requests arrive on, once started (`/slack/events`). */
  httpPort: number | undefined;

  constructor(config: SlackConfig, deps: SlackDeps) {
    this.config = config;
    this.deps = deps;
    this.commands = deps.commands ?? COMMANDS;
    this.logger = deps.logger.child({ part: 'slack' });
    this.now = deps.now ?? Date.now;
    this.status = new StatusThrottle({ budget: SLACK_STATUS_BUDGET, now: this.now, show: (job, update, edits) => this.showStatus(job, update, edits) });
    this.app = new App({
      token: config.botToken,
      signingSecret: config.signingSecret,
      ...(config.appToken ? { socketMode: true, appToken: config.appToken } : { receiver: createSlackReceiver({ signingSecret: config.signingSecret, logger: this.logger }) }),
      ...(config.apiUrl ? { clientOptions: { slackApiUrl: config.apiUrl } } : {}),
      logLevel: LogLevel.ERROR,
    });
    this.delivery = new webApi.WebClient(config.botToken, {
      ...(config.apiUrl ? { slackApiUrl: config.apiUrl } : {}),
      retryConfig: DELIVERY_RETRY,
      rejectRateLimitedCalls: true,
      logLevel: LogLevel.ERROR,
    });
    // one listener per interaction kind: every slash command, every button
    this.app.command(/^\/.+/, async ({ command, ack, respond, client }) => {
      if (command.command.toLowerCase() === `/${imagineSettings.name}`) await this.onSettings(command, ack, respond, (user) => client.users.info({ user }));
      else await this.onCommand(command, ack);
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

  // ——— listeners: nothing before the ack but checks in memory ———

  private async onCommand(command: SlashCommand, ack: AckFn<string | RespondArguments>): Promise<void> {
    const refuse = (text: string) => ack({ response_type: 'ephemeral', text });
    const definition = findCommand(this.commands, command.command);
    if (!definition) return refuse(unknownCommandText(command.command, this.commands));
    const context = this.deps.commandContext({ platform: 'slack', guildId: command.team_id });
    const parsed = parseFlags(definition, slackTextToPlain(command.text), context);
    if (parsed.kind !== 'values') return refuse(usageText(flagUsage(definition, context), parsed.kind === 'error' ? parsed.message : undefined));
    const request = definition.parse(parsed.values, context);
    if (isRefusal(request)) return refuse(refusalText(request));
    const requester: Requester = commandRequester(command);
    const early = this.deps.service.precheck(requester, request.prompt);
    if (early) return refuse(refusalText(early));
    await ack();
    const reply = this.replyFor(command.response_url, command.channel_id, true);
    let submission: Submission;
    try {
      submission = await this.deps.service.imagine(requester, request, reply);
    } catch (error) {
      this.logger.error({ err: error }, `handling ${command.command} failed`);
      submission = { ok: false, refusal: { code: 'generation_failed' } };
    }
    if (!submission.ok) {
      // the ack showed nothing, so the refusal is the member's first answer
      await this.respond(reply, { text: refusalText(submission.refusal) }).catch((error: unknown) => this.logger.warn({ err: error }, 'could not answer a refusal'));
      return;
    }
    const { job, position } = submission;
    if (!this.status.seen(job.id) && !this.status.finished(job.id)) this.onStatus(job, position > 0 ? { state: 'queued', position } : { state: 'running' });
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

  /** The reply without its response_url, for the store once the job is over. */
  forgetReply(job: Job): Record<string, unknown> {
    const { responseUrl: _responseUrl, ...rest } = job.reply as SlackReply;
    return rest;
  }

  /**
   * A command's status is an ephemeral message of its own, made by the first status post and replaced by the next;
   * a click's status is a message of its own, posted once and left as it is.
   */
  private async showStatus(job: Job, update: StatusUpdate, edits: number): Promise<void> {
    if (!this.ownsStatusMessage(job)) return;
    try {
      await this.respond(job.reply as SlackReply, { replace_original: edits > 0, ...statusBlocks(job, update) });
    } catch (error) {
      this.logger.warn({ err: error, job: job.id }, 'could not update a status message');
    }
  }

  async deliverResult(job: Job, result: ResultDelivery): Promise<string | undefined> {
    this.status.finish(job.id);
    const reply = job.reply as SlackReply;
    let posted: string | undefined;
    try {
      let fileId = this.uploaded.get(job.id);
      if (!fileId) {
        const upload = (await this.delivery.filesUploadV2({
          channel_id: reply.channelId,
          file: result.file.data,
          filename: result.fileName,
          title: fileTitle(job),
          initial_comment: resultComment(job, result),
        })) as { files?: { files?: { id?: string }[] }[] };
        fileId = upload.files?.[0]?.files?.[0]?.id;
        if (fileId) {
          this.uploaded.set(job.id, fileId);
          await this.waitUntilShared(fileId, reply.channelId);
        }
      }
      const message = await this.delivery.chat.postMessage({ channel: reply.channelId, text: buttonsText(job), blocks: resultBlocks(job, result) });
      posted = message.ts;
      this.uploaded.delete(job.id);
    } catch (error) {
      const fault = slackFault(error);
      this.logger.warn({ err: error, job: job.id, channel: reply.channelId, retryable: fault.retryable }, 'could not post a result');
      if (!fault.retryable) this.uploaded.delete(job.id);
      throw deliveryError(fault, 'deliver the result', error);
    }
    // the status message has done its work; the result is in the channel for everyone
    if (this.ownsStatusMessage(job)) await this.respond(reply, { delete_original: true }).catch(() => undefined);
    return posted;
  }

  /**
   * Tells the member, trying each way in turn: the response_url (ephemeral, works even where the bot is not a member,
   * within its 30 minutes), an ephemeral message in the channel, then a direct message. A way that can never work
   * passes to the next; a Slack outage stops here for the service to try again later.
   */
  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.status.finish(job.id);
    const reply = job.reply as SlackReply;
    const text = failureText(job, refusal);
    const ways: Way[] = [];
    // the response_url is served apart from the Web API: whatever stops it, the next way may work
    if (this.responseUrlUsable(job)) ways.push({ name: 'the response_url', independent: true, send: () => this.respond(reply, { replace_original: this.ownsStatusMessage(job), text }) });
    ways.push(
      { name: 'an ephemeral message', send: () => this.delivery.chat.postEphemeral({ channel: job.channelId, user: job.userId, text }) },
      {
        name: 'a direct message',
        send: async () => {
          const opened = await this.delivery.conversations.open({ users: job.userId });
          const channel = opened.channel?.id;
          if (!channel) throw new Error('conversations.open returned no channel');
          await this.delivery.chat.postMessage({ channel, text });
        },
      },
    );
    let last: { fault: SlackFault; error: unknown } | undefined;
    for (const way of ways) {
      try {
        await way.send();
        return;
      } catch (error) {
        const fault = slackFault(error);
        this.logger.warn({ err: error, job: job.id, way: way.name, retryable: fault.retryable }, `could not report a failure through ${way.name}`);
        if (fault.retryable && !way.independent) throw deliveryError(fault, 'report a failure', error);
        last = { fault, error };
      }
    }
    throw deliveryError({ retryable: false, reason: last?.fault.reason ?? 'no way' }, 'report a failure', last?.error);
  }

  /**
   * Slack finishes an upload asynchronously and does not return the message; the buttons follow the image only once
   * files.info shows it shared in the channel (bounded wait, then they are posted anyway).
   */
  private async waitUntilShared(fileId: string, channelId: string): Promise<void> {
    const deadline = this.now() + SHARE_WAIT_MS;
    while (this.now() < deadline) {
      try {
        const info = (await this.delivery.files.info({ file: fileId })) as { file?: { channels?: string[]; groups?: string[]; ims?: string[]; shares?: Record<string, Record<string, unknown>> } };
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

  private async respond(reply: SlackReply, message: Record<string, unknown>): Promise<void> {
    const response = await fetch(reply.responseUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ response_type: 'ephemeral', ...message }) });
    if (!response.ok) throw new ResponseUrlError(response.status, (await response.text()).slice(0, 200));
  }

  private responseUrlUsable(job: Job): boolean {
    const reply = job.reply as Partial<SlackReply>;
    return Boolean(reply.responseUrl) && this.now() - (reply.issuedAt ?? 0) < RESPONSE_URL_LIFETIME_MS;
  }

  /** The job's status message can be edited or removed through its response_url. */
  private ownsStatusMessage(job: Job): boolean {
    return (job.reply as SlackReply).ownsOriginal && this.responseUrlUsable(job);
  }
}

export function createSlack(config: SlackConfig, deps: SlackDeps): SlackBot {
  return new SlackBot(config, deps);
}
