import { missedIncidents } from './missedIncidents';
import { falsePositives } from './falsePositives';
import { privilegeDrift } from './privilegeDrift';
import { riskyUsers } from './riskyUsers';
import { stuckActions } from './stuckActions';
import type { SweepDefinition } from './sweep';

/** Every sweep, by the name it is run by (`responder sweep <name>`, POST /api/sweeps/{name}, its timer). */
export const SWEEPS = { riskyUsers, stuckActions, missedIncidents, falsePositives, privilegeDrift } satisfies Record<string, SweepDefinition>;
export type SweepName = keyof typeof SWEEPS;
export const SWEEP_NAMES = Object.keys(SWEEPS) as SweepName[];

/** When `name` runs: its app setting, else its default. */
export function sweepSchedule(name: SweepName, env: NodeJS.ProcessEnv = process.env): string {
  const { setting, schedule } = SWEEPS[name];
  return env[setting]?.trim() || schedule;
}

/** The sweep a caller names (any case), or undefined. */
export function sweepNamed(text: string | undefined): SweepName | undefined {
  return SWEEP_NAMES.find((name) => name.toLowerCase() === text?.toLowerCase());
}
