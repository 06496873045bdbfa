// Who sends a Slack command or click, and where: the requester the service checks, with direct messages marked, since
// a Slack DM has a team and `ALLOWED_CHANNELS` must still let DMs through.

import type { BlockAction, SlashCommand } from '@slack/bolt';
import type { Requester } from '../../core/service.js';

/**
 * A direct message with the bot: Slack gives IM conversations ids that start with "D", and names them
 * "directmessage" in slash commands.
 */
export function isDirectConversation(channelId: string | undefined, channelName: string | undefined): boolean {
  return (channelId?.startsWith('D') ?? false) || channelName === 'directmessage';
}

export function commandRequester(command: Pick<SlashCommand, 'user_id' | 'team_id' | 'channel_id' | 'channel_name'>): Requester {
  return {
    platform: 'slack',
    userId: command.user_id,
    guildId: command.team_id,
    channelId: command.channel_id,
    direct: isDirectConversation(command.channel_id, command.channel_name),
  };
}

export function actionRequester(body: Pick<BlockAction, 'user' | 'team' | 'channel'>): Requester {
  return {
    platform: 'slack',
    userId: body.user.id,
    guildId: body.team?.id ?? null,
    channelId: body.channel?.id ?? body.user.id,
    direct: isDirectConversation(body.channel?.id, body.channel?.name),
  };
}
