// CommandDefinition → Discord's application command JSON (option types, limits, choices, contexts).

import { ApplicationCommandOptionType, ApplicationCommandType, ApplicationIntegrationType, InteractionContextType, PermissionFlagsBits, type RESTPostAPIChatInputApplicationCommandsJSONBody } from 'discord.js';
import type { CommandContext, CommandDefinition, CommandOption } from '../../../commands/index.js';

export type CommandJson = RESTPostAPIChatInputApplicationCommandsJSONBody;

function optionJson(option: CommandOption) {
  const base = { name: option.name, description: option.description, required: option.required };
  if (option.kind === 'string') {
    return {
      ...base,
      type: ApplicationCommandOptionType.String as const,
      ...(option.choices ? { choices: option.choices.map((c) => ({ name: c.name, value: String(c.value) })) } : {}),
      ...(option.minLength !== undefined ? { min_length: option.minLength } : {}),
      ...(option.maxLength !== undefined ? { max_length: option.maxLength } : {}),
    };
  }
  return {
    ...base,
    type: ApplicationCommandOptionType.Integer as const,
    ...(option.choices ? { choices: option.choices.map((c) => ({ name: c.name, value: Number(c.value) })) } : {}),
    ...(option.min !== undefined ? { min_value: option.min } : {}),
    ...(option.max !== undefined ? { max_value: option.max } : {}),
  };
}

/**
 * The JSON Discord stores for a command. Global commands work in servers, in the bot's DMs and, for user installs,
 * in other DMs; guild commands cannot name the DM contexts, so they leave both lists out.
 */
export function commandJson(definition: CommandDefinition<unknown>, context: CommandContext, scope: 'global' | 'guild'): CommandJson {
  const admin = definition.requiredPermission === 'manage_guild';
  return {
    name: definition.name,
    description: definition.description,
    type: ApplicationCommandType.ChatInput,
    options: definition.options(context).map(optionJson),
    // an admin command is seen by members with Manage Server, and only in servers
    ...(admin ? { default_member_permissions: String(PermissionFlagsBits.ManageGuild) } : {}),
    ...(admin && scope === 'global'
      ? { contexts: [InteractionContextType.Guild], integration_types: [ApplicationIntegrationType.GuildInstall] }
      : scope === 'global'
      ? {
          contexts: [InteractionContextType.Guild, InteractionContextType.BotDM, InteractionContextType.PrivateChannel],
          integration_types: [ApplicationIntegrationType.GuildInstall, ApplicationIntegrationType.UserInstall],
        }
      : {}),
  };
}
