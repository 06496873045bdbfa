// The fake Discord, tested with the real discord.js Client logged into it and with raw HTTP and WebSocket clients.

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { constants, createInflate } from 'node:zlib';
import {
  ActionRowBuilder,
  AttachmentBuilder,
  ButtonBuilder,
  ButtonStyle,
  Client,
  DiscordAPIError,
  Events,
  GatewayIntentBits,
  InteractionContextType,
  MessageFlags,
  Routes,
  SlashCommandBuilder,
  type ChatInputCommandInteraction,
  type ButtonInteraction,
} from 'discord.js';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeDiscord, type FakeDiscord, type FakeInteraction, type JsonObject } from './discord/index.js';

const GUILD_ID = '1100000000000000001';
const CHANNEL_ID = '1100000000000000002';
const APPLICATION_ID = '1100000000000000003';
const alice = { id: '1100000000000000004', username: 'alice', globalName: 'Alice' };
const bob = { id: '1100000000000000005', username: 'bob' };
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Random bytes behind a PNG signature (so discord.js labels them image/png), with a multipart-looking line inside. */
function pngLike(size: number): Buffer {
  const data = randomBytes(size);
  PNG_SIGNATURE.copy(data);
  Buffer.from('\r\n------formdata-undici-0\r\n\r\n').copy(data, 64);
  return data;
}

/** TCP sockets and servers open in this process. */
function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name.startsWith('TCP')).length;
}

function nextChatInput(client: Client): Promise<ChatInputCommandInteraction> {
  return once(client, Events.InteractionCreate).then(([interaction]) => {
    if (!interaction.isChatInputCommand()) throw new Error(`expected a chat input command, got type ${interaction.type}`);
    return interaction;
  });
}

function nextButton(client: Client): Promise<ButtonInteraction> {
  return once(client, Events.InteractionCreate).then(([interaction]) => {
    if (!interaction.isButton()) throw new Error(`expected a button interaction, got type ${interaction.type}`);
    return interaction;
  });
}

function imagine(prompt: string): { name: string; options: { name: string; type: number; value: string }[] } {
  return { name: 'imagine', options: [{ name: 'prompt', type: 3, value: prompt }] };
}

describe('fake Discord with the discord.js Client', () => {
  let discord: FakeDiscord;
  let client: Client;
  let tcpBefore: number;
  let resultMessageId: string;

  beforeAll(async () => {
    tcpBefore = tcpHandles();
    discord = await startFakeDiscord({
      applicationId: APPLICATION_ID,
      guilds: [{ id: GUILD_ID, name: 'Test guild', channels: [{ id: CHANNEL_ID, name: 'general' }] }],
    });
    client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: discord.baseUrl } });
    const ready = once(client, Events.ClientReady);
    await client.login(discord.token);
    await ready;
  });

  afterAll(async () => {
    await client.destroy();
    await discord.close();
  });

  it('logs in through GET /gateway/bot and an uncompressed JSON gateway, with guilds and channels cached', async () => {
    expect(client.user?.id).toBe(discord.botUser.id);
    expect(client.application?.id).toBe(APPLICATION_ID);
    expect(client.guilds.cache.get(GUILD_ID)?.channels.cache.get(CHANNEL_ID)?.name).toBe('general');
    expect(discord.identifies).toHaveLength(1);
    expect(discord.identifies[0]).toMatchObject({
      intents: GatewayIntentBits.Guilds,
      shard: [0, 1],
      compress: false,
      query: { v: '10', encoding: 'json', compress: null },
    });
    expect(discord.requests[0]).toMatchObject({ method: 'GET', path: '/gateway/bot', auth: `Bot ${discord.token}`, status: 200 });

    const wrongToken = await fetch(`${discord.baseUrl}/v10/users/@me`, { headers: { authorization: 'Bot not-the-token' } });
    expect(wrongToken.status).toBe(401);
  });

  it('delivers a slash command and takes deferReply then editReply with a file and buttons, bytes intact', async () => {
    const received = nextChatInput(client);
    const invocation = discord.sendCommand({
      ...imagine('a cat in a hat'),
      options: [...imagine('a cat in a hat').options, { name: 'steps', type: 4, value: 4 }],
      user: alice,
      guildId: GUILD_ID,
      channelId: CHANNEL_ID,
    });
    const interaction = await received;
    expect({
      id: interaction.id,
      name: interaction.commandName,
      prompt: interaction.options.getString('prompt'),
      steps: interaction.options.getInteger('steps'),
      channel: interaction.channel?.id,
      guild: interaction.guild?.name,
      member: interaction.member?.user.id,
      user: interaction.user.globalName,
      context: interaction.context,
      attachmentSizeLimit: interaction.attachmentSizeLimit,
      canAttach: interaction.appPermissions.has('AttachFiles'),
      cached: interaction.inCachedGuild(),
    }).toEqual({
      id: invocation.id,
      name: 'imagine',
      prompt: 'a cat in a hat',
      steps: 4,
      channel: CHANNEL_ID,
      guild: 'Test guild',
      member: alice.id,
      user: 'Alice',
      context: InteractionContextType.Guild,
      attachmentSizeLimit: 10 * 1024 * 1024,
      canAttach: true,
      cached: true,
    });

    await interaction.deferReply();
    const callback = await invocation.waitForCallback();
    expect(callback).toMatchObject({ type: 5, withResponse: false, files: [] });
    expect(callback.elapsedMs).toBeLessThan(3000);
    expect(invocation.original).toMatchObject({ loading: true, content: '' });

    const image = pngLike(256 * 1024);
    const row = new ActionRowBuilder<ButtonBuilder>().addComponents(
      new ButtonBuilder().setCustomId('v1:upscale:job1:0').setLabel('U1').setStyle(ButtonStyle.Secondary),
      new ButtonBuilder().setCustomId('v1:reroll:job1').setLabel('Re-roll').setStyle(ButtonStyle.Primary),
    );
    const reply = await interaction.editReply({
      content: '**a cat in a hat** · seed 42',
      files: [new AttachmentBuilder(image, { name: 'grid.png' })],
      components: [row],
    });
    expect(reply.attachments.first()).toMatchObject({ name: 'grid.png', size: image.length, contentType: 'image/png' });

    const original = await invocation.waitForOriginal();
    expect(original).toMatchObject({
      id: reply.id,
      content: '**a cat in a hat** · seed 42',
      loading: false,
      ephemeral: false,
      origin: 'interaction',
      interactionId: invocation.id,
    });
    expect(original.buttons.map((button) => button.customId)).toEqual(['v1:upscale:job1:0', 'v1:reroll:job1']);
    expect(original.attachments).toHaveLength(1);
    expect(original.attachments[0]).toMatchObject({ filename: 'grid.png', contentType: 'image/png', size: image.length });
    expect(original.attachments[0].data.equals(image)).toBe(true);
    expect(invocation.edits).toHaveLength(1);
    const served = Buffer.from(await (await fetch(original.attachments[0].url)).arrayBuffer());
    expect(served.equals(image)).toBe(true);
    resultMessageId = original.id;
  });

  it('delivers a button click on that message, takes an ephemeral reply, and refuses a second acknowledgement', async () => {
    const received = nextButton(client);
    const click = discord.clickButton({ customId: 'v1:upscale:job1:0', messageId: resultMessageId, user: alice });
    const interaction = await received;
    expect({
      customId: interaction.customId,
      message: interaction.message.id,
      attachments: interaction.message.attachments.size,
      channel: interaction.channelId,
      guild: interaction.guildId,
    }).toEqual({ customId: 'v1:upscale:job1:0', message: resultMessageId, attachments: 1, channel: CHANNEL_ID, guild: GUILD_ID });

    await interaction.reply({ content: 'Upscaling image 1…', flags: MessageFlags.Ephemeral });
    const callback = await click.waitForCallback();
    expect(callback).toMatchObject({ type: 4, data: { content: 'Upscaling image 1…', flags: MessageFlags.Ephemeral } });
    expect(click.original).toMatchObject({ content: 'Upscaling image 1…', ephemeral: true });

    const again = await fetch(`${discord.baseUrl}/v10/interactions/${click.id}/${click.token}/callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 4, data: { content: 'twice' } }),
    });
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ code: 40060 });
    expect(() => discord.clickButton({ customId: 'v1:missing', messageId: resultMessageId, user: alice })).toThrow(/no enabled button "v1:missing"/);
  });

  it('lets a button edit the message it sits on (update; deferUpdate, then editReply)', async () => {
    const receivedFirst = nextButton(client);
    const first = discord.clickButton({ customId: 'v1:reroll:job1', messageId: resultMessageId, user: alice });
    const row = new ActionRowBuilder<ButtonBuilder>().addComponents(
      new ButtonBuilder().setCustomId('v1:confirm:job1').setLabel('Sure?').setStyle(ButtonStyle.Danger),
    );
    await (await receivedFirst).update({ content: 'Re-roll this one?', components: [row] });
    expect((await first.waitForCallback()).type).toBe(7);
    expect(first.original).toMatchObject({ id: resultMessageId, content: 'Re-roll this one?', buttons: [{ customId: 'v1:confirm:job1' }] });

    const receivedSecond = nextButton(client);
    const second = discord.clickButton({ customId: 'v1:confirm:job1', messageId: resultMessageId, user: alice });
    const interaction = await receivedSecond;
    await interaction.deferUpdate();
    await interaction.editReply({ content: 'Re-rolled', components: [] });
    expect((await second.waitForCallback()).type).toBe(6);
    expect(discord.message(resultMessageId)).toMatchObject({ content: 'Re-rolled', buttons: [], editedAt: expect.any(Number) });
    expect(discord.message(resultMessageId)?.attachments.map((attachment) => attachment.filename)).toEqual(['grid.png']);
  });

  it('takes channel.send with files through the bot token, after waiting out an injected 429', async () => {
    const channel = await client.channels.fetch(CHANNEL_ID);
    if (!channel?.isSendable()) throw new Error('general should be sendable');
    const image = pngLike(4096);
    discord.failNext({ method: 'POST', path: `/channels/${CHANNEL_ID}/messages` }, { status: 429, retryAfterSeconds: 0.05 });
    const rateLimited = once(client.rest, 'rateLimited');
    const sent = await channel.send({ content: 'Your image is ready', files: [new AttachmentBuilder(image, { name: 'late.png' })] });
    expect((await rateLimited)[0]).toMatchObject({ retryAfter: expect.any(Number), route: '/channels/:id/messages' });
    const posted = discord.channelMessages(CHANNEL_ID);
    expect(posted).toHaveLength(1);
    expect(posted[0]).toMatchObject({ id: sent.id, content: 'Your image is ready', origin: 'channel' });
    expect(posted[0].attachments[0].data.equals(image)).toBe(true);
  });

  it('delivers a command from a DM (context BOT_DM, no member) and takes replies, followups and a DM', async () => {
    const received = nextChatInput(client);
    const invocation = discord.sendCommand({ ...imagine('a dog'), user: bob });
    const interaction = await received;
    const dmChannelId = discord.dmChannelId(bob);
    expect({
      guild: interaction.guildId,
      member: interaction.member,
      user: interaction.user.username,
      context: interaction.context,
      channel: interaction.channelId,
      inGuild: interaction.inGuild(),
    }).toEqual({ guild: null, member: null, user: 'bob', context: InteractionContextType.BotDM, channel: dmChannelId, inGuild: false });

    const sketch = pngLike(1500);
    const response = await interaction.reply({ content: 'Working on it', files: [new AttachmentBuilder(sketch, { name: 'sketch.png' })], withResponse: true });
    expect(response.resource?.message?.content).toBe('Working on it');
    expect((await invocation.waitForCallback()).files.map((file) => [file.field, file.name, file.data.equals(sketch)])).toEqual([['files[0]', 'sketch.png', true]]);
    expect(await invocation.waitForOriginal()).toMatchObject({ id: response.interaction.responseMessageId, content: 'Working on it', channelId: dmChannelId });
    expect((await interaction.fetchReply()).id).toBe(response.interaction.responseMessageId);
    const extra = pngLike(1024);
    await interaction.followUp({ content: 'One more', files: [new AttachmentBuilder(extra, { name: 'extra.png' })], flags: MessageFlags.Ephemeral });
    const followup = await invocation.waitForFollowup();
    expect(followup).toMatchObject({ content: 'One more', ephemeral: true });
    expect(followup.attachments[0].data.equals(extra)).toBe(true);

    const dm = await interaction.user.send({ content: 'Delivered by DM' });
    expect(discord.channelMessages(dmChannelId)).toMatchObject([{ id: dm.id, content: 'Delivered by DM' }]);
  });

  it('refuses a file over attachment_size_limit with 413 40005, and an expired token with 401 50027', async () => {
    const received = nextChatInput(client);
    const invocation = discord.sendCommand({ ...imagine('a big one'), user: alice, guildId: GUILD_ID, channelId: CHANNEL_ID, attachmentSizeLimit: 1024 });
    const interaction = await received;
    expect(interaction.attachmentSizeLimit).toBe(1024);
    await interaction.deferReply();
    await expect(interaction.editReply({ files: [new AttachmentBuilder(pngLike(2048), { name: 'big.png' })] })).rejects.toMatchObject({ status: 413, code: 40005 });

    discord.expireToken(invocation.token);
    const error: unknown = await interaction.editReply({ content: 'too late' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DiscordAPIError);
    expect(error).toMatchObject({ status: 401, code: 50027, message: 'Invalid Webhook Token' });
  });

  it('registers commands (application.commands.set, REST PUT per guild) and sends their ids', async () => {
    const definition = new SlashCommandBuilder()
      .setName('imagine')
      .setDescription('Make an image')
      .addStringOption((option) => option.setName('prompt').setDescription('What to draw').setRequired(true).setMaxLength(1000));
    const globalCommands = await client.application?.commands.set([definition]);
    expect(discord.commands).toMatchObject([{ id: globalCommands?.first()?.id, name: 'imagine', application_id: APPLICATION_ID, type: 1 }]);

    await client.rest.put(Routes.applicationGuildCommands(APPLICATION_ID, GUILD_ID), { body: [definition.toJSON()] });
    const [guildCommand] = discord.guildCommands(GUILD_ID);
    expect(guildCommand).toMatchObject({ name: 'imagine', guild_id: GUILD_ID, id: expect.any(String) });

    const received = nextChatInput(client);
    discord.sendCommand({ ...imagine('registered'), user: alice, guildId: GUILD_ID, channelId: CHANNEL_ID });
    const interaction = await received;
    expect({ id: interaction.commandId, guild: interaction.commandGuildId }).toEqual({ id: guildCommand.id, guild: GUILD_ID });

    await expect(client.rest.put(Routes.applicationCommands(APPLICATION_ID), { body: [{ name: 'Bad Name', description: '' }] })).rejects.toMatchObject({ code: 50035 });
  });

  it('drops the gateway: discord.js resumes and gets the interaction sent while it was away', async () => {
    const resumed = once(client, Events.ShardResume);
    discord.disconnectGateway();
    const received = nextChatInput(client);
    const invocation = discord.sendCommand({ ...imagine('while away'), user: alice, guildId: GUILD_ID, channelId: CHANNEL_ID });
    await discord.waitForResume();
    await resumed;
    const interaction = await received;
    expect(interaction.id).toBe(invocation.id);
    await interaction.reply({ content: 'back' });
    expect((await invocation.waitForCallback()).type).toBe(4);
    expect(discord.identifies).toHaveLength(1);
  });

  it('leaves no socket or server open after client.destroy() and close()', async () => {
    const idPattern = /\d{17,}|[A-Za-z0-9_-]{60,}/g;
    const failures = discord.requests
      .filter((request) => request.status >= 400)
      .map((request) => `${request.method} ${request.path.replace(idPattern, ':id')} ${request.status}`);
    expect(failures).toEqual([
      'GET /users/@me 401',
      'POST /interactions/:id/:id/callback 400',
      'POST /channels/:id/messages 429',
      'PATCH /webhooks/:id/:id/messages/@original 413',
      'PATCH /webhooks/:id/:id/messages/@original 401',
      'PUT /applications/:id/commands 400',
    ]);

    await client.destroy();
    await discord.close();
    await expect(fetch(`${discord.baseUrl}/v10/gateway`)).rejects.toThrow();
    for (let tries = 0; tcpHandles() > tcpBefore && tries < 50; tries += 1) await delay(20);
    expect(tcpHandles()).toBeLessThanOrEqual(tcpBefore);
  });
});

/** A bare gateway client: collects payloads (inflating a zlib-stream), and hands them out in order. */
function rawGateway(url: string): { send(payload: JsonObject): void; next(): Promise<JsonObject>; closed: Promise<number>; close(): void } {
  const socket = new WebSocket(url);
  const inflate = url.includes('compress=zlib-stream') ? createInflate() : null;
  const queue: JsonObject[] = [];
  const waiting: ((payload: JsonObject) => void)[] = [];
  const deliver = (text: string): void => {
    const payload = JSON.parse(text) as JsonObject;
    const waiter = waiting.shift();
    if (waiter) waiter(payload);
    else queue.push(payload);
  };
  let decoding = Promise.resolve();
  socket.on('message', (data: Buffer) => {
    if (inflate === null) {
      deliver(data.toString('utf8'));
      return;
    }
    decoding = decoding.then(
      () =>
        new Promise<void>((resolve) => {
          const chunks: Buffer[] = [];
          const collect = (chunk: Buffer): void => {
            chunks.push(chunk);
          };
          inflate.on('data', collect);
          inflate.write(data);
          inflate.flush(constants.Z_SYNC_FLUSH, () => {
            inflate.off('data', collect);
            deliver(Buffer.concat(chunks).toString('utf8'));
            resolve();
          });
        }),
    );
  });
  const opened = once(socket, 'open');
  return {
    send: (payload) => void opened.then(() => socket.send(JSON.stringify(payload))),
    next: () => {
      const queued = queue.shift();
      return queued ? Promise.resolve(queued) : new Promise((resolve) => waiting.push(resolve));
    },
    closed: once(socket, 'close').then(([code]) => Number(code)),
    close: () => {
      socket.close();
      inflate?.close();
    },
  };
}

function postCallback(discord: FakeDiscord, interaction: FakeInteraction, body: JsonObject, query = ''): Promise<Response> {
  return fetch(`${discord.baseUrl}/v10/interactions/${interaction.id}/${interaction.token}/callback${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('fake Discord protocol, with raw clients', () => {
  it('speaks zlib-stream, acks heartbeats, refuses a bad token, an unknown RESUME and a late callback', async () => {
    const discord = await startFakeDiscord({ guilds: [{ id: GUILD_ID, name: 'Raw', channels: [{ id: CHANNEL_ID, name: 'general' }] }], ackDeadlineMs: 100 });
    try {
      const gateway = rawGateway(`${discord.gatewayUrl}?v=10&encoding=json&compress=zlib-stream`);
      expect(await gateway.next()).toEqual({ op: 10, d: { heartbeat_interval: 41_250 }, s: null, t: null });
      gateway.send({ op: 1, d: null });
      expect(await gateway.next()).toMatchObject({ op: 11 });
      gateway.send({ op: 2, d: { token: discord.token, intents: 1, properties: { os: 'linux' }, shard: [0, 1] } });
      expect(await gateway.next()).toMatchObject({
        op: 0,
        t: 'READY',
        s: 1,
        d: { application: { id: discord.applicationId }, guilds: [{ id: GUILD_ID, unavailable: true }] },
      });
      expect(await gateway.next()).toMatchObject({ t: 'GUILD_CREATE', s: 2, d: { id: GUILD_ID, channels: [{ id: CHANNEL_ID, name: 'general' }] } });

      const invocation = discord.sendCommand({ ...imagine('raw'), user: alice, guildId: GUILD_ID });
      expect(await gateway.next()).toMatchObject({ t: 'INTERACTION_CREATE', s: 3, d: { id: invocation.id, type: 2, context: 0, channel_id: CHANNEL_ID } });
      await delay(150);
      const late = await postCallback(discord, invocation, { type: 5 });
      expect(late.status).toBe(404);
      expect(await late.json()).toMatchObject({ code: 10062 });
      gateway.close();

      const stranger = rawGateway(`${discord.gatewayUrl}?v=10&encoding=json`);
      await stranger.next();
      stranger.send({ op: 6, d: { token: discord.token, session_id: 'unknown', seq: 0 } });
      expect(await stranger.next()).toEqual({ op: 9, d: false, s: null, t: null });
      stranger.send({ op: 2, d: { token: 'wrong', intents: 0, properties: {} } });
      expect(await stranger.closed).toBe(4004);
    } finally {
      await discord.close();
    }
  });

  it('answers with_response=true callbacks with the callback response, and expires tokens after tokenLifetimeMs', async () => {
    const discord = await startFakeDiscord({ guilds: [{ id: GUILD_ID, name: 'Raw', channels: [{ id: CHANNEL_ID, name: 'general' }] }], tokenLifetimeMs: 800 });
    try {
      const gateway = rawGateway(`${discord.gatewayUrl}?v=10&encoding=json`);
      gateway.send({ op: 2, d: { token: discord.token, intents: 0, properties: {} } });
      await discord.waitForIdentify();
      const invocation = discord.sendCommand({ ...imagine('raw'), user: alice, guildId: GUILD_ID });

      const early = await fetch(`${discord.baseUrl}/v10/webhooks/${discord.applicationId}/${invocation.token}/messages/@original`);
      expect(early.status).toBe(404);
      const deferred = await postCallback(discord, invocation, { type: 5, data: { flags: 64 } }, '?with_response=true');
      expect(deferred.status).toBe(200);
      const response = (await deferred.json()) as { interaction: JsonObject; resource: JsonObject };
      expect(response).toMatchObject({
        interaction: { id: invocation.id, type: 2, response_message_loading: true, response_message_ephemeral: true },
        resource: { type: 5 },
      });

      const edit = (content: string): Promise<Response> =>
        fetch(`${discord.baseUrl}/v10/webhooks/${discord.applicationId}/${invocation.token}/messages/@original`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ content }),
        });
      expect((await edit('in time')).status).toBe(200);
      expect(invocation.original).toMatchObject({ id: response.interaction.response_message_id, content: 'in time', ephemeral: true, loading: false });
      await delay(850);
      const late = await edit('too late');
      expect(late.status).toBe(401);
      expect(await late.json()).toEqual({ message: 'Invalid Webhook Token', code: 50027 });
      gateway.close();
    } finally {
      await discord.close();
    }
  });

  it('fails matching routes for a time window, with 5xx or a reset connection, then answers again', async () => {
    const discord = await startFakeDiscord({ guilds: [{ id: GUILD_ID, name: 'Raw', channels: [{ id: CHANNEL_ID, name: 'general' }] }] });
    try {
      const post = () =>
        fetch(`${discord.baseUrl}/v10/channels/${CHANNEL_ID}/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bot ${discord.token}` },
          body: JSON.stringify({ content: 'hello' }),
        });
      discord.failFor({ method: 'POST', path: /^\/channels\// }, { status: 503, message: 'Service Unavailable' }, 300);
      expect((await post()).status).toBe(503);
      expect((await post()).status).toBe(503);
      await delay(350);
      expect((await post()).status).toBe(200);
      discord.failFor({ path: /^\/channels\// }, { status: 0, reset: true }, 60_000);
      await expect(post()).rejects.toThrow(/fetch failed/);
      expect(discord.requests.at(-1)?.status).toBe(-1);
      discord.clearFailures();
      expect((await post()).status).toBe(200);
      expect(discord.channelMessages(CHANNEL_ID)).toHaveLength(2);
    } finally {
      await discord.close();
    }
  });
});
