// Discord API v10 constants and the JSON of users, members, guilds, channels and the application (Resources › User, Guild, Channel, Application).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A person who runs commands; `username` is the unique name, `globalName` the display name. */
export interface FakeUser {
  id: string;
  username: string;
  globalName?: string;
}

/** A guild text channel (type 0). */
export interface FakeChannelSpec {
  id: string;
  name: string;
  type?: 0;
  nsfw?: boolean;
  topic?: string;
}

export interface FakeGuildSpec {
  id: string;
  name: string;
  channels: FakeChannelSpec[];
  /** The bot's permissions in every channel of this guild (decimal bitfield); default `DEFAULT_BOT_PERMISSIONS`. */
  botPermissions?: string;
  /** Guild locale (`guild_locale` on interactions); default 'en-US'. */
  locale?: string;
}

export const CHANNEL_TYPE = { guildText: 0, dm: 1 } as const;
export const INTERACTION_TYPE = { applicationCommand: 2, messageComponent: 3 } as const;
export const COMPONENT_TYPE = { actionRow: 1, button: 2 } as const;
export const BUTTON_STYLE_LINK = 5;
export const INTERACTION_CONTEXT = { guild: 0, botDm: 1 } as const;
/** Interaction callback types (Interactions › Receiving and Responding › Interaction Callback Type). */
export const CALLBACK_TYPE = {
  channelMessageWithSource: 4,
  deferredChannelMessageWithSource: 5,
  deferredUpdateMessage: 6,
  updateMessage: 7,
} as const;
export const MESSAGE_FLAG = {
  suppressEmbeds: 1 << 2,
  ephemeral: 1 << 6,
  loading: 1 << 7,
  suppressNotifications: 1 << 12,
  isComponentsV2: 1 << 15,
} as const;
/** Message types used here: DEFAULT, and CHAT_INPUT_COMMAND for the first response to a slash command. */
export const MESSAGE_TYPE = { default: 0, chatInputCommand: 20 } as const;

const PERMISSION = {
  viewChannel: 1n << 10n,
  sendMessages: 1n << 11n,
  embedLinks: 1n << 14n,
  attachFiles: 1n << 15n,
  readMessageHistory: 1n << 16n,
  mentionEveryone: 1n << 17n,
  useExternalEmojis: 1n << 18n,
  useApplicationCommands: 1n << 31n,
} as const;

/** What an image bot needs in a channel: view, send, embed links, attach files, read history, use commands. */
export const DEFAULT_BOT_PERMISSIONS = (
  PERMISSION.viewChannel |
  PERMISSION.sendMessages |
  PERMISSION.embedLinks |
  PERMISSION.attachFiles |
  PERMISSION.readMessageHistory |
  PERMISSION.useApplicationCommands
).toString();

/** `app_permissions` in DMs, as the Interaction object docs list them. */
export const DM_APP_PERMISSIONS = (
  PERMISSION.attachFiles |
  PERMISSION.embedLinks |
  PERMISSION.mentionEveryone |
  PERMISSION.useExternalEmojis
).toString();

/** 10 MiB: the default per-file `attachment_size_limit` (Reference › Uploading Files). */
export const DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024;

const DISCORD_EPOCH = 1_420_070_400_000n;

/** Makes snowflakes (Reference › Snowflakes): milliseconds since 2015 in the top bits, a counter in the low 12. */
export function createSnowflakes(): () => string {
  let increment = 0n;
  return () => {
    increment = (increment + 1n) & 0xfffn;
    return (((BigInt(Date.now()) - DISCORD_EPOCH) << 22n) | increment).toString();
  };
}

export function userJson(user: FakeUser, bot = false): JsonObject {
  return {
    id: user.id,
    username: user.username,
    global_name: user.globalName ?? null,
    discriminator: bot ? '0001' : '0',
    avatar: null,
    banner: null,
    accent_color: null,
    avatar_decoration_data: null,
    public_flags: 0,
    flags: 0,
    ...(bot ? { bot: true } : {}),
  };
}

export function memberJson(user: FakeUser, joinedAt: string, permissions: string | null, bot = false): JsonObject {
  return {
    user: userJson(user, bot),
    nick: null,
    avatar: null,
    banner: null,
    roles: [],
    joined_at: joinedAt,
    premium_since: null,
    deaf: false,
    mute: false,
    flags: 0,
    pending: false,
    communication_disabled_until: null,
    ...(permissions === null ? {} : { permissions }),
  };
}

export function guildChannelJson(guild: FakeGuildSpec, channel: FakeChannelSpec, position: number): JsonObject {
  return {
    id: channel.id,
    type: CHANNEL_TYPE.guildText,
    guild_id: guild.id,
    name: channel.name,
    position,
    permission_overwrites: [],
    parent_id: null,
    topic: channel.topic ?? null,
    nsfw: channel.nsfw ?? false,
    last_message_id: null,
    rate_limit_per_user: 0,
    flags: 0,
  };
}

export function dmChannelJson(id: string, recipient: FakeUser): JsonObject {
  return { id, type: CHANNEL_TYPE.dm, recipients: [userJson(recipient)], last_message_id: null, flags: 0 };
}

/**
 * The GUILD_CREATE payload: the guild with its channels, an @everyone role carrying the bot's permissions, and the
 * bot as a member, so `channel.permissionsFor(client.user)` answers as it would in production.
 */
export function guildJson(guild: FakeGuildSpec, bot: FakeUser, joinedAt: string): JsonObject {
  return {
    id: guild.id,
    name: guild.name,
    icon: null,
    splash: null,
    discovery_splash: null,
    banner: null,
    description: null,
    owner_id: '1',
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 0,
    default_message_notifications: 1,
    explicit_content_filter: 0,
    mfa_level: 0,
    nsfw_level: 0,
    premium_tier: 0,
    premium_subscription_count: 0,
    premium_progress_bar_enabled: false,
    preferred_locale: guild.locale ?? 'en-US',
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    public_updates_channel_id: null,
    safety_alerts_channel_id: null,
    vanity_url_code: null,
    max_members: 500_000,
    max_video_channel_users: 25,
    features: [],
    roles: [
      {
        id: guild.id,
        name: '@everyone',
        color: 0,
        colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
        hoist: false,
        icon: null,
        unicode_emoji: null,
        position: 0,
        permissions: guild.botPermissions ?? DEFAULT_BOT_PERMISSIONS,
        managed: false,
        mentionable: false,
        flags: 0,
      },
    ],
    emojis: [],
    stickers: [],
    joined_at: joinedAt,
    large: false,
    unavailable: false,
    member_count: 2,
    members: [memberJson(bot, joinedAt, null, true)],
    channels: guild.channels.map((channel, position) => {
      const json = guildChannelJson(guild, channel, position);
      delete json.guild_id; // GUILD_CREATE's channels leave it out; discord.js fills it in
      return json;
    }),
    threads: [],
    presences: [],
    voice_states: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}

export function applicationJson(applicationId: string, bot: FakeUser, flags: number): JsonObject {
  return {
    id: applicationId,
    name: bot.username,
    icon: null,
    description: '',
    summary: '',
    type: null,
    bot_public: false,
    bot_require_code_grant: false,
    verify_key: '0'.repeat(64),
    flags,
    team: null,
    owner: userJson({ id: '1', username: 'owner' }),
    bot: userJson(bot, true),
    approximate_guild_count: 1,
    install_params: null,
    integration_types_config: { '0': {} },
    tags: [],
    redirect_uris: [],
    interactions_endpoint_url: null,
  };
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
