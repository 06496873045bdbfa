// Everything the fake Discord knows (guilds, channels, DMs, users, messages, commands, interactions), shared by gateway and REST.

import { randomBytes } from 'node:crypto';
import { ChangeFeed } from '../changes.js';
import { CommandStore } from './commands.js';
import {
  buttonDataJson,
  commandDataJson,
  interactionBaseJson,
  InteractionRecord,
  type ButtonClick,
  type CommandInvocation,
  type InteractionPlace,
} from './interactions.js';
import { MessageStore } from './messages.js';
import {
  dmChannelJson,
  guildChannelJson,
  INTERACTION_TYPE,
  MESSAGE_TYPE,
  type FakeChannelSpec,
  type FakeGuildSpec,
  type FakeUser,
  type JsonObject,
} from './objects.js';

export interface WorldConfig {
  applicationId: string;
  applicationFlags: number;
  bot: FakeUser;
  token: string;
  guilds: FakeGuildSpec[];
  /** Per-file byte limit for channel messages, and the default `attachment_size_limit` of interactions. */
  attachmentSizeLimit: number;
  /** A callback later than this after dispatch gets 404 10062 Unknown interaction (Discord allows 3 s). */
  ackDeadlineMs: number;
  /** Webhook calls later than this after dispatch get 401 50027 Invalid Webhook Token (Discord: 15 min). */
  tokenLifetimeMs: number;
  /** `http://127.0.0.1:PORT`, for attachment URLs. */
  fileOrigin: string;
  /** The one snowflake source, so no two objects share an id. */
  nextId: () => string;
}

export class World {
  readonly config: WorldConfig;
  readonly feed = new ChangeFeed('fake Discord');
  readonly nextId: () => string;
  readonly messages: MessageStore;
  readonly commands: CommandStore;
  /** When the bot "joined" every guild (ISO 8601). */
  readonly joinedAt = new Date().toISOString();
  readonly interactions = new Map<string, InteractionRecord>();
  readonly interactionsByToken = new Map<string, InteractionRecord>();
  private readonly users = new Map<string, FakeUser>();
  /** DM channel id → the user at the other end. */
  private readonly dmChannels = new Map<string, FakeUser>();

  constructor(config: WorldConfig) {
    this.config = config;
    this.nextId = config.nextId;
    this.messages = new MessageStore({ nextId: this.nextId, bot: config.bot, applicationId: config.applicationId, fileOrigin: config.fileOrigin });
    this.commands = new CommandStore(this.nextId, config.applicationId);
    this.users.set(config.bot.id, config.bot);
  }

  guild(guildId: string): FakeGuildSpec | undefined {
    return this.config.guilds.find((guild) => guild.id === guildId);
  }

  guildChannel(channelId: string): { guild: FakeGuildSpec; channel: FakeChannelSpec; position: number } | undefined {
    for (const guild of this.config.guilds) {
      const position = guild.channels.findIndex((channel) => channel.id === channelId);
      if (position !== -1) return { guild, channel: guild.channels[position], position };
    }
    return undefined;
  }

  /** The channel object for a guild text channel or an open DM; undefined for an id the fake does not know. */
  channelJson(channelId: string): JsonObject | undefined {
    const inGuild = this.guildChannel(channelId);
    if (inGuild) return guildChannelJson(inGuild.guild, inGuild.channel, inGuild.position);
    const recipient = this.dmChannels.get(channelId);
    return recipient ? dmChannelJson(channelId, recipient) : undefined;
  }

  /** The guild a known channel is in (null for a DM), or undefined for an unknown channel. */
  channelGuildId(channelId: string): string | null | undefined {
    const inGuild = this.guildChannel(channelId);
    if (inGuild) return inGuild.guild.id;
    return this.dmChannels.has(channelId) ? null : undefined;
  }

  user(userId: string): FakeUser | undefined {
    return this.users.get(userId);
  }

  /** The DM channel between the bot and `user`, opened on first use (with `channelId` if the test chose one). */
  openDm(user: FakeUser, channelId?: string): string {
    this.users.set(user.id, user);
    const existing = [...this.dmChannels].find(([, recipient]) => recipient.id === user.id)?.[0];
    if (existing !== undefined) {
      if (channelId !== undefined && channelId !== existing) {
        throw new Error(`fake Discord: the DM with user ${user.id} is channel ${existing}, not ${channelId}`);
      }
      return existing;
    }
    if (channelId !== undefined && this.channelGuildId(channelId) !== undefined) {
      throw new Error(`fake Discord: channel ${channelId} is a guild channel; pass guildId for a guild interaction`);
    }
    const id = channelId ?? this.nextId();
    this.dmChannels.set(id, user);
    return id;
  }

  /** Whether webhook calls with this interaction's token still work. */
  tokenAlive(record: InteractionRecord): boolean {
    return !record.expired && Date.now() - record.dispatchedAt <= this.config.tokenLifetimeMs;
  }

  createCommandInteraction(invocation: CommandInvocation): InteractionRecord {
    const place = this.place(invocation, invocation.channelId);
    const command = this.commands.findByName(invocation.name, place.guild?.id ?? null);
    const commandId = typeof command?.id === 'string' ? command.id : this.nextId();
    const commandGuildId = typeof command?.guild_id === 'string' ? command.guild_id : null;
    const id = this.nextId();
    const token = interactionToken(id);
    const payload = {
      ...interactionBaseJson(id, token, INTERACTION_TYPE.applicationCommand, place),
      data: commandDataJson(commandId, commandGuildId, invocation),
    };
    return this.register(new InteractionRecord({
      id,
      token,
      kind: 'command',
      payload,
      channelId: String(place.channel.id),
      guildId: place.guild?.id ?? null,
      attachmentSizeLimit: place.attachmentSizeLimit,
      clickedMessageId: null,
      label: `interaction ${id} (/${invocation.name})`,
      messages: this.messages,
      feed: this.feed,
    }));
  }

  /**
   * A click on a button of a message the fake holds (it must carry an enabled button with that custom id, as only
   * such a click can happen), or on a message the test names by id, which is made up with just that button.
   */
  createButtonInteraction(click: ButtonClick): InteractionRecord {
    let message = this.messages.get(click.messageId);
    if (message) {
      const snapshot = this.messages.snapshot(message);
      const button = snapshot.buttons.find((candidate) => candidate.customId === click.customId);
      if (!button || button.disabled) {
        const found = snapshot.buttons.map((candidate) => `${candidate.customId}${candidate.disabled ? ' (disabled)' : ''}`);
        throw new Error(`fake Discord: message ${message.id} has no enabled button "${click.customId}"; it has ${JSON.stringify(found)}`);
      }
      if (click.channelId !== undefined && click.channelId !== message.channelId) {
        throw new Error(`fake Discord: message ${message.id} is in channel ${message.channelId}, not ${click.channelId}`);
      }
    }
    const channelId = click.channelId ?? message?.channelId;
    const guildId = click.guildId ?? (channelId === undefined ? undefined : (this.channelGuildId(channelId) ?? undefined));
    const place = this.place({ ...click, guildId }, channelId);
    if (!message) {
      message = {
        id: click.messageId,
        channelId: String(place.channel.id),
        guildId: place.guild?.id ?? null,
        type: MESSAGE_TYPE.default,
        content: '',
        embeds: [],
        components: [{ type: 1, components: [{ type: 2, style: 1, label: click.customId.slice(0, 80), custom_id: click.customId }] }],
        flags: 0,
        attachments: [],
        origin: 'seeded',
        interactionId: null,
        interactionMetadata: null,
        createdAt: Date.now(),
        editedAt: null,
        deleted: false,
      };
      this.messages.seed(message);
    }
    const id = this.nextId();
    const token = interactionToken(id);
    const payload = {
      ...interactionBaseJson(id, token, INTERACTION_TYPE.messageComponent, place),
      data: buttonDataJson(click.customId),
      message: this.messages.json(message),
    };
    return this.register(new InteractionRecord({
      id,
      token,
      kind: 'component',
      payload,
      channelId: String(place.channel.id),
      guildId: place.guild?.id ?? null,
      attachmentSizeLimit: place.attachmentSizeLimit,
      clickedMessageId: message.id,
      label: `interaction ${id} (button "${click.customId}")`,
      messages: this.messages,
      feed: this.feed,
    }));
  }

  private register(record: InteractionRecord): InteractionRecord {
    this.interactions.set(record.id, record);
    this.interactionsByToken.set(record.token, record);
    return record;
  }

  private place(source: Omit<CommandInvocation, 'name' | 'options' | 'channelId'>, channelId: string | undefined): InteractionPlace {
    const { user } = source;
    this.users.set(user.id, user);
    const common = {
      applicationId: this.config.applicationId,
      user,
      joinedAt: this.joinedAt,
      attachmentSizeLimit: source.attachmentSizeLimit ?? this.config.attachmentSizeLimit,
      locale: source.locale ?? 'en-US',
      memberPermissions: source.memberPermissions ?? null,
    };
    if (source.guildId === undefined) {
      const dmId = this.openDm(user, channelId);
      return { ...common, guild: null, channel: dmChannelJson(dmId, user) };
    }
    const guild = this.guild(source.guildId);
    if (!guild) {
      throw new Error(`fake Discord: no guild ${source.guildId}; declared: ${this.config.guilds.map((candidate) => candidate.id).join(', ') || 'none'}`);
    }
    const id = channelId ?? guild.channels[0]?.id;
    const position = guild.channels.findIndex((channel) => channel.id === id);
    if (position === -1) {
      throw new Error(`fake Discord: guild ${guild.id} has no channel ${String(id)}; it has ${guild.channels.map((channel) => channel.id).join(', ') || 'none'}`);
    }
    return { ...common, guild, channel: guildChannelJson(guild, guild.channels[position], position) };
  }
}

/** Interaction tokens look like Discord's: long, URL-safe, unguessable. */
function interactionToken(interactionId: string): string {
  return Buffer.from(`interaction:${interactionId}:${randomBytes(32).toString('hex')}`).toString('base64url');
}
