import { existsSync, readFileSync } from 'node:fs';
import { parseJson } from '../shared/json';

/** Read local.settings.json "Values" as Core Tools does, without overriding what the environment already sets. */
export function loadLocalSettings(env: NodeJS.ProcessEnv = process.env, file = 'local.settings.json'): void {
  if (!existsSync(file)) return;
  // parseJson: a byte order mark (Windows editors write one) is ignored, and a syntax error names the file.
  const settings = parseJson(readFileSync(file, 'utf8'), file) as { Values?: Record<string, string> } | null;
  for (const [name, value] of Object.entries(settings?.Values ?? {})) if (env[name] === undefined) env[name] = String(value);
}
