import { existsSync, readFileSync } from 'node:fs';

/** Read local.settings.json "Values" as Core Tools does, without overriding what the environment already sets. */
export function loadLocalSettings(env: NodeJS.ProcessEnv = process.env): void {
  if (!existsSync('local.settings.json')) return;
  const values = (JSON.parse(readFileSync('local.settings.json', 'utf8')) as { Values?: Record<string, string> }).Values ?? {};
  for (const [name, value] of Object.entries(values)) if (env[name] === undefined) env[name] = String(value);
}
