// The Discord side: a discord.js client that routes the commands in COMMANDS and button clicks to the service,
// acknowledges before any I/O, keeps a "Queued — position N" message current within a budget of edits, and delivers
// results with Re-roll, U1–U4 and V1–V4 by the interaction reply, else the channel, else a DM.

import {
  Client,
  Events,
  GatewayIntentBits,
  MessageFlags,
  PermissionFlagsBits,
  REST,
  Routes,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
  type RepliableInteraction,
} from 'discord.js';
import { ADMIN_COMMANDS, COMMANDS, findCommand, isRefusal, unknownCommandText, type CommandContext, type CommandDefinition } from '../../../commands/index.js';
import imagineSettings, { describeSettings } from '../../../commands/imagine-settings.js';
import { escapeDiscord } from '../escape.js';
import type { Job } from '../../core/jobs.js';
import { refusalText, type Refusal } from '../../core/refusal.js';
import type { PlatformAdapter, Requester, ResultDelivery, Service, StatusUpdate, Submission } from '../../core/service.js';
import type { Logger } from '../../logger.js';
import { parseButtonId } from '../button-ids.js';
import { DISCORD_STATUS_BUDGET, StatusThrottle } from '../status-throttle.js';
import { cancelRow, resultRows } from './buttons.js';
import { commandJson } from './command-json.js';
import { deliveryError, rejectLongRateLimits, routeFault, type RouteFault } from './faults.js';
import { cancelledText, failureText, resultText, statusText } from './messages.js';
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

export type DiscordDeps = {
  service: Service;
  logger: Logger;
  /** What the commands know of this installation; a server's own defaults when it is named. */
  commandContext: (server?: { platform: 'discord' | 'slack'; guildId: string }) => CommandContext;
  now?: () => number;
  /** The commands to register and route (default COMMANDS). */
  commands?: readonly CommandDefinition[];
};

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

type OutgoingFile = { name: string; data: Buffer; contentType: string };
type Route<T> = { name: string; send: () => Promise<T> };

export class DiscordBot implements PlatformAdapter {
  readonly client: Client;
  private readonly config: DiscordConfig;
  private readonly deps: DiscordDeps;
  private readonly commands: readonly CommandDefinition[];
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly status: StatusThrottle;
  /**
   * Interaction-webhook calls (status edits, results by the reply) go through a REST client that holds no bot token:
   * @discordjs/rest drops its token on any 401 of a request sent with it (`handleErrors` → `setToken(null)`), and an
   * expired interaction token answers 401, which would leave every later channel or DM post failing with "Expected
   * token to be set". Here a 401 has no token to drop, and the bot token is never sent to a webhook route.
   */
  private readonly webhooks: REST;
  /** Interactions acknowledged with `deferReply`, whose "thinking…" reply a later refusal removes. */
  private readonly deferredReplies = new WeakSet<RepliableInteraction>();

  constructor(config: DiscordConfig, deps: DiscordDeps) {
    this.config = config;
    this.deps = deps;
    this.commands = deps.commands ?? COMMANDS;
    this.logger = deps.logger.child({ part: 'discord' });
    this.now = deps.now ?? Date.now;
    this.status = new StatusThrottle({ budget: DISCORD_STATUS_BUDGET, now: this.now, show: (job, update) => this.showStatus(job, update) });
    const rest = { ...(config.apiUrl ? { api: config.apiUrl } : {}), rejectOnRateLimit: rejectLongRateLimits };
    this.webhooks = new REST(rest);
    this.client = new Client({ intents: [GatewayIntentBits.Guilds], rest });
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
          [...this.commands, ...ADMIN_COMMANDS].map((definition) => commandJson(definition, this.deps.commandContext(), scope)),
          { token: this.config.token, applicationId: this.config.applicationId, guildId: this.config.guildId, apiUrl: this.config.apiUrl },
        );
        this.logger.info({ ...result }, describeRegistration(result));
      } catch (error) {
        this.logger.error({ err: error }, 'could not register the Discord commands; they may be missing or outdated');
      }
    }
  }

  async close(): Promise<void> {
    this.status.close();
    this.webhooks.clearHashSweeper();
    this.webhooks.clearHandlerSweeper();
    await this.client.destroy();
  }

  // ——— interactions: one listener per kind; nothing before the acknowledgement but checks in memory ———

  private async onInteraction(interaction: Interaction): Promise<void> {
    try {
      if (interaction.isChatInputCommand() && interaction.commandName === imagineSettings.name) await this.onSettings(interaction);
      else if (interaction.isChatInputCommand()) await this.onCommand(interaction);
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

  /** Any command in the list: its definition parses the options; every one makes a request for the service. */
  private async onCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    const definition = findCommand(this.commands, interaction.commandName);
    if (!definition) return this.tell(interaction, unknownCommandText(interaction.commandName, this.commands));
    const values = Object.fromEntries(interaction.options.data.map((option) => [option.name, option.value]));
    const request = definition.parse(values, this.deps.commandContext(interaction.guildId ? { platform: 'discord', guildId: interaction.guildId } : undefined));
    if (isRefusal(request)) return this.refuse(interaction, request);
    const requester = this.requester(interaction);
    const early = this.deps.service.precheck(requester, request.prompt);
    if (early) return this.refuse(interaction, early);
    await this.deferReply(interaction);
    this.submitted(interaction, await this.deps.service.imagine(requester, request, this.replyFor(interaction)));
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
    const early = this.deps.service.precheck(requester);
    if (early) return this.refuse(interaction, early);
    if (button.action === 'cancel') {
      // the ack leaves the status message as it is; the job store is read and written after it
      await interaction.deferUpdate();
      const result = this.deps.service.cancel(requester, button.jobId);
      if (!result.ok) return this.refuse(interaction, result.refusal);
      this.status.finish(button.jobId);
      await interaction.editReply({ content: cancelledText(this.deps.service.job(button.jobId)), components: [], allowedMentions: { parse: [] } });
      return;
    }
    await this.deferReply(interaction);
    const reply = this.replyFor(interaction);
    const submission =
      button.action === 'reroll'
        ? await this.deps.service.reroll(requester, button.jobId, reply)
        : button.action === 'upscale'
          ? await this.deps.service.upscale(requester, button.jobId, button.index, reply)
          : await this.deps.service.vary(requester, button.jobId, button.index, reply);
    this.submitted(interaction, submission);
  }

  /** After the ack: a refusal replaces the deferred reply; an accepted job shows its place unless a status already did. */
  private submitted(interaction: RepliableInteraction, submission: Submission): void {
    if (!submission.ok) {
      void this.refuse(interaction, submission.refusal).catch((error: unknown) => this.logger.warn({ err: error, interaction: interaction.id }, 'could not answer a refusal'));
      return;
    }
    const { job, position } = submission;
    if (position > 0 && !this.status.seen(job.id) && !this.status.finished(job.id)) this.onStatus(job, { state: 'queued', position });
  }

  private refuse(interaction: RepliableInteraction, refusal: Refusal): Promise<void> {
    return this.tell(interaction, refusalText(refusal));
  }

  /**
   * An answer only the member sees. Before the ack it is the ack; after `deferReply` the public "thinking…" reply is
   * removed and the answer follows ephemerally (the first response decides whether a reply is ephemeral); after
   * `deferUpdate` it simply follows.
   */
  private async tell(interaction: RepliableInteraction, content: string): Promise<void> {
    const message = { content, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } } as const;
    if (!interaction.deferred && !interaction.replied) {
      await interaction.reply(message);
      return;
    }
    if (this.deferredReplies.has(interaction)) {
      await interaction.deleteReply().catch((error: unknown) => this.logger.warn({ err: error, interaction: interaction.id }, 'could not remove a deferred reply'));
    }
    await interaction.followUp(message);
  }

  /** The ack that shows "thinking…" as the job's own reply, to be edited with its status and result. */
  private async deferReply(interaction: RepliableInteraction): Promise<void> {
    await interaction.deferReply();
    this.deferredReplies.add(interaction);
  }

  // ——— the service's side ———

  maxUploadBytes(job: Job): number {
    return (job.reply as DiscordReply).sizeLimit || DEFAULT_ATTACHMENT_LIMIT;
  }

  onStatus(job: Job, update: StatusUpdate): void {
    this.status.update(job, update);
  }

  /** The reply without its interaction token, for the store once the job is over. */
  forgetReply(job: Job): Record<string, unknown> {
    const { token: _token, ...rest } = job.reply as DiscordReply;
    return rest;
  }

  private async showStatus(job: Job, update: StatusUpdate): Promise<void> {
    if (this.status.finished(job.id) || !this.tokenUsable(job)) return;
    const reply = job.reply as DiscordReply;
    try {
      await this.webhooks.patch(Routes.webhookMessage(reply.applicationId, reply.token), {
        auth: false,
        body: { content: statusText(job, update), components: update.state === 'queued' ? [cancelRow(job.id).toJSON()] : [], allowed_mentions: { parse: [] } },
      });
    } catch (error) {
      this.logger.warn({ err: error, job: job.id }, 'could not update a status message');
    }
  }

  async deliverResult(job: Job, result: ResultDelivery): Promise<string | undefined> {
    this.status.finish(job.id);
    const reply = job.reply as DiscordReply;
    const files = [{ name: result.fileName, data: result.file.data, contentType: result.file.contentType }];
    const components = resultRows(job.id, result.seeds.length).map((row) => row.toJSON());
    const routes: Route<string>[] = [];
    if (this.tokenUsable(job)) {
      routes.push({
        name: 'the interaction reply',
        send: async () => {
          const message = (await this.webhooks.patch(Routes.webhookMessage(reply.applicationId, reply.token), {
            auth: false,
            files,
            body: { content: resultText(job, result, false), components, attachments: [{ id: 0, filename: result.fileName }], allowed_mentions: { parse: [] } },
          })) as { id: string };
          return message.id;
        },
      });
    }
    routes.push(...this.postRoutes(job, { content: resultText(job, result, true), components, files }));
    return this.firstThatWorks(job, 'deliver the result', routes);
  }

  async deliverFailure(job: Job, refusal: Refusal): Promise<void> {
    this.status.finish(job.id);
    const reply = job.reply as DiscordReply;
    const routes: Route<unknown>[] = [];
    if (this.tokenUsable(job)) {
      const body = { content: failureText(job, refusal, false), components: [], allowed_mentions: { parse: [] } };
      routes.push(
        { name: 'the interaction reply', send: () => this.webhooks.patch(Routes.webhookMessage(reply.applicationId, reply.token), { auth: false, body }) },
        // the reply may be gone (deleted by the member) while its token still works
        { name: 'an ephemeral followup', send: () => this.webhooks.post(Routes.webhook(reply.applicationId, reply.token), { auth: false, body: { ...body, flags: MessageFlags.Ephemeral } }) },
      );
    }
    routes.push(...this.postRoutes(job, { content: failureText(job, refusal, true), components: [], files: [] }));
    await this.firstThatWorks(job, 'report a failure', routes);
  }

  /**
   * Tries each route in turn. A route that can never work (expired token, no access, unknown channel) passes to the
   * next; an outage or rate limit stops here, for the service to try again later; when none is left, the service
   * learns that no retry can help.
   */
  private async firstThatWorks<T>(job: Job, what: string, routes: Route<T>[]): Promise<T> {
    let last: { fault: RouteFault; error: unknown } | undefined;
    for (const route of routes) {
      try {
        return await route.send();
      } catch (error) {
        const fault = routeFault(error);
        this.logger.warn({ err: error, job: job.id, route: route.name, retryable: fault.retryable }, `could not ${what} through ${route.name}`);
        if (fault.retryable) throw deliveryError(fault, what, error);
        last = { fault, error };
      }
    }
    throw deliveryError(last?.fault ?? { retryable: false, reason: 'no route' }, what, last?.error);
  }

  /** A normal bot message in the job's channel (the interaction token is gone), else in a DM to its owner. */
  private postRoutes(job: Job, message: { content: string; components: unknown[]; files: OutgoingFile[] }): Route<string>[] {
    const body = {
      content: message.content,
      components: message.components,
      allowed_mentions: { users: [job.userId] },
      ...(message.files.length > 0 ? { attachments: message.files.map((file, id) => ({ id, filename: file.name })) } : {}),
    };
    const send = async (channelId: string): Promise<string> => {
      const sent = (await this.client.rest.post(Routes.channelMessages(channelId), { files: message.files, body })) as { id: string };
      return sent.id;
    };
    return [
      { name: 'the channel', send: () => send(job.channelId) },
      {
        name: 'a direct message',
        send: async () => {
          const dm = (await this.client.rest.post(Routes.userChannels(), { body: { recipient_id: job.userId } })) as { id: string };
          return send(dm.id);
        },
      },
    ];
  }

  private tokenUsable(job: Job): boolean {
    const reply = job.reply as Partial<DiscordReply>;
    return Boolean(reply.token) && this.now() - (reply.issuedAt ?? 0) < TOKEN_LIFETIME_MS;
  }
}

export function createDiscord(config: DiscordConfig, deps: DiscordDeps): DiscordBot {
  return new DiscordBot(config, deps);
}
