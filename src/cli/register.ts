// `npm run register`: puts the slash commands on Discord now (globally, or to DISCORD_GUILD_ID) and says what changed.

import { ADMIN_COMMANDS, COMMANDS } from '../../commands/index.js';
import { defaultSteps } from '../app.js';
import { randomSeed } from '../core/request.js';
import { findModelFolder, ModelFolderError } from '../diffusion/index.js';
import { commandJson } from '../platforms/discord/command-json.js';
import { describeRegistration, registerCommands } from '../platforms/discord/register.js';
import { redactText } from '../redact.js';
import { checkDiscordAccess, StartError } from '../start-checks.js';
import { fail, loadConfigOrFail } from './output.js';

const config = loadConfigOrFail();
if (!config.discord) fail('Set DISCORD_TOKEN and DISCORD_APPLICATION_ID to register the Discord commands (see .env.example).');
let installedSteps: number[];
try {
  // the steps option lists the installed step counts
  installedSteps = findModelFolder(config.modelDir).unets.map((unet) => unet.steps);
} catch (error) {
  if (error instanceof ModelFolderError) fail(`${error.message}\nThe /imagine command offers the installed step counts, so it needs the model folder.`);
  throw error;
}
try {
  await checkDiscordAccess(config.discord);
} catch (error) {
  if (error instanceof StartError) fail(error.message);
  throw error;
}
const scope = config.discord.guildId ? 'guild' : 'global';
const context = { installedSteps, defaults: { ...config.defaults, steps: defaultSteps(config.defaults.steps, installedSteps) }, randomSeed };
try {
  const result = await registerCommands(
    [...COMMANDS, ...ADMIN_COMMANDS].map((definition) => commandJson(definition, context, scope)),
    { token: config.discord.token, applicationId: config.discord.applicationId, guildId: config.discord.guildId, apiUrl: config.discord.apiUrl },
  );
  process.stdout.write(`${describeRegistration(result)}\n`);
} catch (error) {
  fail(`Registering the commands failed: ${redactText((error as Error).message, [config.discord.token])}`);
}
