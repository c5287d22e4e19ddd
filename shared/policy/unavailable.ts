import type { AccountEntity, EntityData, HostEntity } from '../signals/signal';
import { entityLabel } from './score';

/**
 * What a verdict reads and cannot have yet: entity data enrichment could not read for now (a spent budget, a 429, a
 * 5xx, no answer). A verdict that lacks data waits for it; data unknown for good (not in the directory, a 404, a
 * malformed answer) is no lack: it never satisfies a rule's condition and always satisfies a guardrail's, as ever.
 */
export interface Lack {
  data: EntityData[];
  /** Whose data, and what its read met: `wks-042.contoso.com: paced by the engine: the defender budget … is spent`. */
  why: string[];
  /** When all of it may be readable, where the failures said. */
  retryAfterMs?: number;
}

/** How a decision names the data it waits for. */
export const DATA_NAMES: Record<EntityData, string> = {
  identity: "the directory's record",
  userRisk: 'user risk',
  privileged: 'privilege',
  groups: 'group membership',
  deviceRisk: 'device risk',
  deviceTags: 'device tags',
};

/** The entity's value for `data`: undefined when unknown (for now or for good). */
function valueOf(entity: AccountEntity | HostEntity, data: EntityData): unknown {
  if (data === 'identity') return entity.verified;
  if (entity.kind === 'account')
    return data === 'userRisk' ? entity.userRisk : data === 'privileged' ? entity.privileged : data === 'groups' ? entity.groupIds : undefined;
  return data === 'deviceRisk' ? entity.deviceRisk : data === 'deviceTags' ? (entity.verified?.tags ?? entity.tags) : undefined;
}

/** What `entity` lacks to say `data`: undefined when the data is known, or unknown for good. */
export function lackOf(entity: AccountEntity | HostEntity, data: EntityData): Lack | undefined {
  if (valueOf(entity, data) !== undefined || entity.unavailable === undefined) return undefined;
  for (const gap of entity.unavailable) {
    if (gap.data !== data) continue;
    return { data: [data], why: [`${entityLabel(entity)}: ${gap.why}`], ...(gap.retryAfterMs !== undefined && { retryAfterMs: gap.retryAfterMs }) };
  }
  return undefined;
}

/** Two lacks as one: the verdict waits for both. */
export function bothLacks(a: Lack | undefined, b: Lack): Lack {
  if (a === undefined) return b;
  const retryAfterMs = Math.max(a.retryAfterMs ?? 0, b.retryAfterMs ?? 0);
  return {
    data: [...new Set([...a.data, ...b.data])],
    why: [...new Set([...a.why, ...b.why])],
    ...(retryAfterMs > 0 && { retryAfterMs }),
  };
}

/** The lack's data by name: `device risk and device tags`. */
export function lackedData(lack: Pick<Lack, 'data'>): string {
  const names = lack.data.map((data) => DATA_NAMES[data]);
  return names.length < 2 ? (names[0] ?? 'data') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

const WHYS_SHOWN = 3;

/** The lack's reasons on one line: the first few, then how many more (an incident of 200 devices stays readable). */
export function lackReasons(lack: Pick<Lack, 'why'>): string {
  const shown = lack.why.slice(0, WHYS_SHOWN).join('; ');
  return lack.why.length > WHYS_SHOWN ? `${shown}; and ${lack.why.length - WHYS_SHOWN} more` : shown;
}

/**
 * Why an action that waited is held for a human: on the engine's last look at the signal (`evaluations` of them), or at
 * once when the signal cannot be looked at again (no incident to read, an analyst's request).
 */
export function heldForLack(lack: Lack, evaluations: number): string {
  const when = evaluations > 1 ? `still unavailable after ${evaluations} evaluations` : 'unavailable, and this signal is not evaluated again';
  return `${lackedData(lack)} ${when} (${lackReasons(lack)}): held for a human`;
}
