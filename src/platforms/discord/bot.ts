// The Discord side: a discord.js client that turns /imagine and button clicks into service calls, acknowledges within
// 3 s, keeps a "Queued — position N" message current and delivers results with Re-roll, U1–U4 and V1–V4.

import {
  Client,
  Events,
  GatewayIntentBits,
  MessageFlags,
  PermissionFlagsBits,
  Routes,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
  type RepliableInteraction,
} from 'discord.js';
import { COMMANDS, isRefusal, type CommandContext } from '../../../commands/index.js';
import imagine from '../../../commands/imagine.js';
import imagineSettings, { describeSettings } from '../../../commands/imagine-settings.js';
import { escapeDiscord } from '../escape.js';
import type { Job } from '../../core/jobs.js';
import { refusalText, type Refusal } from '../../core/refusal.js';
import type { PlatformAdapter, Requester, ResultDelivery, Service, StatusUpdate, Submission } from '../../core/service.js';
import type { Logger } from '../../logger.js';
import { parseButtonId } from '../button-ids.js';
import { cancelRow, resultRows } from './buttons.js';
import { commandJson } from './command-json.js';
import { cancelledText, failureText, resultText, statusText } from './messages.js';
import { StatusThrottle } from '../status-throttle.js';
import { describeRegistration, registerCommands } from './register.js';

export type DiscordConfig = {
  token: string;
  applicationId: string;
  /** Register commands to this guild (instant) instead of globally. */
  guildId?: string;
  /** REST base, e.g. a proxy or a local fake; discord.js learns the gateway from `GET /gateway/bot` there. */
  apiUrl?: string;
  /** Register the commands at start when they differ from Discord's (default true). */
  registerCommands?: boolean;
};

export type DiscordDeps = { service: Service; logger: Logger; commandContext: (server?: { platform: 'discord' | 'slack'; guildId: string }) => CommandContext; now?: () => number };

/** What a Discord job keeps in the store to deliver its result, even after a restart. */
type DiscordReply = {
  applicationId: string;
  token: string;
  issuedAt: number;
  channelId: string;
  /** The interaction's attachment limit in bytes. */
  sizeLimit: number;
};

/** Interaction tokens live 15 minutes; stop using one a minute early. */
const TOKEN_LIFETIME_MS = 14 * 60_000;
/** Discord's documented default when an interaction does not say. */
const DEFAULT_ATTACHMENT_LIMIT = 10 * 2 ** 20;
/** Status edits per job at most this often (positions can change many times a second). */
const STATUS_EDIT_INTERVAL_MS = 2_000;

export class DiscordBot implements PlatformAdapter {
  readonly client: Client;
  private readonly config: DiscordConfig;
  private readonly deps: DiscordDeps;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly status: StatusThrottle;
  /**
   * Settles when the interaction with this token has been acknowledged. Created before the service is called, since
   * the service may report on (or, from the image cache, finish) a job before the acknowledgement is back.
   */
  private readonly acks = new Map<string, Promise<void>>();

  constructor(config: DiscordConfig, deps: DiscordDeps) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger.child({ part: 'discord' });
    this.now = deps.now ?? Date.now;
    this.status = new StatusThrottle({ intervalMs: STATUS_EDIT_INTERVAL_MS, now: this.now, show: (job, update) => this.showStatus(job, update) });
    this.client = new Client({ intents: [GatewayIntentBits.Guilds], ...(config.apiUrl ? { rest: { api: config.apiUrl } } : {}) });
    this.client.on(Events.InteractionCreate, (interaction) => void this.onInteraction(interaction));
    this.client.on(Events.Error, (error) => this.logger.error({ err: error }, 'discord client error'));
  }

  /** Logs in, waits until the gateway is ready, and registers the commands when they changed. */
  async start(): Promise<void> {
    this.deps.service.registerPlatform('discord', this);
    const ready = new Promise<void>((resolve) => this.client.once(Events.ClientReady, () => resolve()));
    await this.client.login(this.config.token);
    await ready;
    this.logger.info({ user: this.client.user?.tag }, 'discord ready');
    if (this.config.registerCommands !== false) {
      try {
        const scope = this.config.guildId ? 'guild' : 'global';
        const result = await registerCommands(
          COMMANDS.map((definition) => commandJson(definition, this.deps.commandContext(), scope)),
          { token: this.config.token, applicationId: this.config.applicationId, guildId: this.config.guildId, apiUrl: this.config.apiUrl },
        );
        this.logger.info({ ...result }, describeRegistration(result));
      } catch (error) {
        this.logger.error({ err: error }, 'could not register the Discord commands; /imagine may be missing or outdated');
      }
    }
  }

  async close(): Promise<void> {
    this.status.close();
    await this.client.destroy();
  }

  // ——— interactions ———

  private async onInteraction(interaction: Interaction): Promise<void> {
    try {
      if (interaction.isChatInputCommand() && interaction.commandName === imagine.name) await this.onImagine(interaction);
      else if (interaction.isChatInputCommand() && interaction.commandName === imagineSettings.name) await this.onSettings(interaction);
      else if (interaction.isButton()) await this.onButton(interaction);
    } catch (error) {
      this.logger.error({ err: error, interaction: interaction.id }, 'handling an interaction failed');
      if (interaction.isRepliable()) await this.refuse(interaction, { code: 'generation_failed' }).catch(() => undefined);
    }
  }

  private requester(interaction: Interaction): Requester {
    // an age-restricted channel (`nsfw`) is where members asked for flagged images; channels come cached with their guild
    const channel = interaction.channel;
    const nsfwChannel = channel !== null && 'nsfw' in channel && channel.nsfw === true;
    return { platform: 'discord', userId: interaction.user.id, guildId: interaction.guildId, channelId: interaction.channelId ?? interaction.user.id, nsfwChannel };
  }

  private replyFor(interaction: RepliableInteraction): DiscordReply {
    return {
      applicationId: interaction.applicationId,
      token: interaction.token,
      issuedAt: interaction.createdTimestamp,
      channelId: interaction.channelId ?? '',
      sizeLimit: interaction.attachmentSizeLimit || DEFAULT_ATTACHMENT_LIMIT,
    };
  }

  private async onImagine(interaction: ChatInputCommandInteraction): Promise<void> {
    const values = Object.fromEntries(interaction.options.data.map((option) => [option.name, option.value]));
    const parsed = imagine.parse(values, this.deps.commandContext(interaction.guildId ? { platform: 'discord', guildId: interaction.guildId } : undefined));
    if (isRefusal(parsed)) return this.refuse(interaction, parsed);
    await this.acknowledge(interaction, (reply) => this.deps.service.imagine(this.requester(interaction), parsed, reply));
  }

  /**
   * /imagine-settings: Discord shows it to Manage Server only, but a server can give the command to others, so the
   * member's permission is checked here too. Acknowledged (ephemeral) before the settings are read or written.
   */
  private async onSettings(interaction: ChatInputCommandInteraction): Promise<void> {
    if (!interaction.inGuild()) return this.refuse(interaction, { code: 'no_server' });
    if (!interaction.memberPermissions.has(PermissionFlagsBits.ManageGuild)) return this.refuse(interaction, { code: 'not_admin' });
    const values = Object.fromEntries(interaction.options.data.map((option) => [option.name, option.value]));
    const parsed = imagineSettings.parse(values, this.deps.commandContext());
    if (isRefusal(parsed)) return this.refuse(interaction, parsed);
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    const result = this.deps.service.serverSettings(this.requester(interaction), parsed.kind === 'change' ? parsed.change : undefined);
    const content = result.ok
      ? `${parsed.kind === 'change' ? (result.changed.length > 0 ? 'Saved; this applies to the next request here.\n' : 'Nothing changed.\n') : ''}${describeSettings(result.settings, { escape: escapeDiscord, channel: (id) => `<#${id}>` })}`
      : refusalText(result.refusal);
    await interaction.editReply({ content, allowedMentions: { parse: [] } });
  }

  private async onButton(interaction: ButtonInteraction): Promise<void> {
    const button = parseButtonId(interaction.customId);
    if (!button) return this.refuse(interaction, { code: 'unknown_job' });
    const requester = this.requester(interaction);
    if (button.action === 'cancel') {
      const result = this.deps.service.cancel(requester, button.jobId);
      if (!result.ok) return this.refuse(interaction, result.refusal);
      this.status.finish(button.jobId);
      const job = this.deps.service.job(button.jobId);
      await interaction.update({ content: cancelledText(job), components: [], allowedMentions: { parse: [] } });
      return;
    }
    await this.acknowledge(interaction, (reply) =>
      button.action === 'reroll'
        ? this.deps.service.reroll(requester, button.jobId, reply)
        : button.action === 'upscale'
          ? this.deps.service.upscale(requester, button.jobId, button.index, reply)
          : this.deps.service.vary(requester, button.jobId, button.index, reply),
    );
  }

  /**
   * Submits through the service, then acknowledges: a refusal as an ephemeral reply, an accepted job with
   * `deferReply` (the 3-second ack); status edits and the result wait for that acknowledgement.
   */
  private async acknowledge(interaction: RepliableInteraction, submit: (reply: DiscordReply) => Promise<Submission>): Promise<void> {
    const reply = this.replyFor(interaction);
    let settle!: () => void;
    this.acks.set(reply.token, new Promise((resolve) => (settle = resolve)));
    setTimeout(() => this.acks.delete(reply.token), TOKEN_LIFETIME_MS).unref();
    try {
      const submission = await submit(reply);
      if (!submission.ok) return await this.refuse(interaction, submission.refusal);
      await interaction.deferReply();
      settle();
      const { job, position } = submission;
      if (position > 0 && !this.status.finished(job.id) && !this.status.pending(job.id)) this.onStatus(job, { state: 'queued', position });
    } finally {
      settle();
    }
  }

  private acked(job: Job): Promise<void> {
    return this.acks.get((job.reply as DiscordReply).token) ?? Promise.resolve();
  }

  private async refuse(interaction: RepliableInteraction, refusal: Refusal): Promise<void> {
    const content = refusalText(refusal);
    if (interaction.deferred || interaction.replied) {
      await interaction.followUp({ content, flags: MessageFlags.Ephemeral });
    } else {
      await interaction.reply({ content, flags: MessageFlags.Ephemeral });
    }
  }

  // ——— the service's side ———

  maxUploadBytes(job: Job): number {
    return (job.reply as DiscordReply).sizeLimit || DEFAULT_ATTACHMENT_LIMIT;
  }

  onStatus(job: Job, update: StatusUpdate): void {
    this.status.update(job, update);
  }

  private async showStatus(job: Job, update: StatusUpdate): Promise<void> {
    await this.acked(job);
    if (this.status.finished(job.id) || !this.tokenUsable(job)) return;
    const reply = job.reply as DiscordReply;
    try {
      await this.client.rest.patch(Routes.webhookMessage(reply.applicationId, reply.token), {
        auth: false,
        body: { content: statusText(job, update), components: update.state === 'queued' ? [cancelRow(job.id).toJSON()] : [], allowed_mentions: { parse: [] } },
      });
    } catch (error) {
      this.logger.warn({ err: error, job: job.id }, 'could not update a queue position');
    }
  }

  async deliverResult(job: Job, result: ResultDelivery): Promise<string | undefined> {
    this.status.finish(job.id);
    await this.acked(job);
    const reply = job.reply as DiscordReply;
    const files = [{ name: result.fileName, data: result.file.data, contentType: result.file.contentType }];
    const components = resultRows(job.id, result.seeds.length).map((row) => row.toJSON());
    if (this.tokenUsable(job)) {
      try {
        const message = (await this.client.rest.patch(Routes.webhookMessage(reply.applicationId, reply.token), {
          auth: false,
          files,
          body: { content: resultText(job, result, false), components, attachments: [{ id: 0, filename: result.fileName }], allowed_mentions: { parse: [] } },
        })) as { id: string };
        return message.id;
      } catch (error) {
        this.logger.warn({ err: error, job: job.id }, 'could not edit the interaction reply; posting in the channel instead');
      }
    }
    return this.postToUser(job, { content: resultText(job, result, true), components, files });
  }

  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.status.finish(job.id);
    await this.acked(job);
    const reply = job.reply as DiscordReply;
    if (this.tokenUsable(job)) {
      try {
        await this.client.rest.patch(Routes.webhookMessage(reply.applicationId, reply.token), {
          auth: false,
          body: { content: failureText(job, refusal, false), components: [], allowed_mentions: { parse: [] } },
        });
        return;
      } catch (error) {
        this.logger.warn({ err: error, job: job.id }, 'could not edit the interaction reply with a failure; posting in the channel instead');
      }
    }
    await this.postToUser(job, { content: failureText(job, refusal, true), components: [], files: [] });
  }

  /** A normal bot message in the job's channel (the interaction token is gone), else in a DM to its owner. */
  private async postToUser(
    job: Job,
    message: { content: string; components: unknown[]; files: { name: string; data: Buffer; contentType: string }[] },
  ): Promise<string> {
    const body = (attachments: boolean) => ({
      content: message.content,
      components: message.components,
      allowed_mentions: { users: [job.userId] },
      ...(attachments ? { attachments: message.files.map((file, id) => ({ id, filename: file.name })) } : {}),
    });
    const send = async (channelId: string): Promise<string> => {
      const sent = (await this.client.rest.post(Routes.channelMessages(channelId), { files: message.files, body: body(message.files.length > 0) })) as { id: string };
      return sent.id;
    };
    try {
      return await send(job.channelId);
    } catch (error) {
      this.logger.warn({ err: error, job: job.id, channel: job.channelId }, 'could not post in the channel; sending a direct message');
      const dm = (await this.client.rest.post(Routes.userChannels(), { body: { recipient_id: job.userId } })) as { id: string };
      return send(dm.id);
    }
  }

  private tokenUsable(job: Job): boolean {
    const reply = job.reply as DiscordReply;
    return Boolean(reply.token) && this.now() - reply.issuedAt < TOKEN_LIFETIME_MS;
  }
}

export function createDiscord(config: DiscordConfig, deps: DiscordDeps): DiscordBot {
  return new DiscordBot(config, deps);
}
