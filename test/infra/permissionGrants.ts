import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ACTIONS, PLANNABLE_ACTIONS, type ActionKind } from '../../shared/actions/catalogue';
import { ACTION_PERMISSIONS, enrichmentPermissions, type PermissionApi, type Requirement } from '../../shared/actions/permissions';
import { format, resolveConfig } from 'prettier';
import { INFRA } from './bicep';

/**
 * infra/permissions.json, derived from shared/actions/permissions.ts: the one list of application permissions the
 * deployment grants (infra/modules/entra.bicep and infra/scripts/grant-permissions.sh both read it). Each capability
 * an operator can enable gets the least privileged alternative of each of its requirements (the first one), as two
 * lists: `read`, granted always (audit mode calls them), and `write`, granted only when the engine may enforce. A
 * plannable action carries its rollback's permissions, since every containment must be reversible.
 */

export const PERMISSIONS_JSON = join(INFRA, 'permissions.json');

/** The resource applications, by the app id that is the same in every tenant (reference/infra.md). */
export const API_APP_IDS: Record<PermissionApi, string> = {
  graph: '00000003-0000-0000-c000-000000000000',
  defender: 'fc780465-2017-40d4-a0c5-307022471b92',
};

/** Permissions per API. */
export type ApiPermissions = Record<PermissionApi, string[]>;

export interface CapabilityGrant {
  /** What enabling it covers: the action and its rollback, or what enrichment reads. */
  covers: string[];
  /** Called in audit and enforce mode alike. */
  read: ApiPermissions;
  /** Called in enforce mode only. */
  write: ApiPermissions;
}

export interface PermissionsDocument {
  $comment: string;
  apis: Record<PermissionApi, string>;
  capabilities: Record<string, CapabilityGrant>;
}

/** Enrichment reads; `groupMembership` only when the policy names groups (enrichmentPermissions(true) adds it). */
export const ENRICHMENT_CAPABILITIES = ['enrichment', 'groupMembership'] as const;

export function permissionsDocument(): PermissionsDocument {
  const capabilities: Record<string, CapabilityGrant> = {};
  const withoutGroups = enrichmentPermissions(false);
  const groupsOnly = enrichmentPermissions(true).filter((r) => !withoutGroups.some((w) => w.why === r.why));
  capabilities.enrichment = grant(['enrichment'], withoutGroups);
  capabilities.groupMembership = grant(['enrichment of policies that name groups'], groupsOnly);
  for (const kind of PLANNABLE_ACTIONS) {
    const covers: ActionKind[] = [kind, ...(ACTIONS[kind].rollback ? [ACTIONS[kind].rollback] : [])];
    capabilities[kind] = grant(
      covers,
      covers.flatMap((k) => ACTION_PERMISSIONS[k]),
    );
  }
  return {
    $comment:
      'Generated from shared/actions/permissions.ts by test/infra/permissions.test.ts: do not edit. Regenerate with ' +
      'RESPONDER_WRITE_PERMISSIONS_JSON=1 npx vitest run test/infra/permissions.test.ts',
    apis: API_APP_IDS,
    capabilities,
  };
}

function grant(covers: string[], requirements: Requirement[]): CapabilityGrant {
  const least = (need: Requirement['need'], api: PermissionApi) =>
    [...new Set(requirements.filter((r) => r.need === need && r.api === api).flatMap((r) => r.anyOf[0] ?? []))].sort();
  const lists = (need: Requirement['need']) => ({ graph: least(need, 'graph'), defender: least(need, 'defender') });
  return { covers, read: lists('read'), write: lists('write') };
}

/** The file's text, formatted as the repository's prettier formats it (so that `prettier --check` and this agree). */
export async function permissionsJsonText(): Promise<string> {
  const options = (await resolveConfig(PERMISSIONS_JSON)) ?? {};
  return format(JSON.stringify(permissionsDocument(), null, 2), { ...options, filepath: PERMISSIONS_JSON });
}

export function readPermissionsJson(): string {
  return readFileSync(PERMISSIONS_JSON, 'utf8');
}

export async function writePermissionsJson(): Promise<void> {
  writeFileSync(PERMISSIONS_JSON, await permissionsJsonText());
}

/** The permissions granted for these capabilities in `mode` (audit: the reads; enforce: reads and writes), per API, each once. */
export function grantsFor(capabilities: readonly string[], mode: 'audit' | 'enforce' = 'enforce'): ApiPermissions {
  const doc = permissionsDocument();
  const needs = mode === 'enforce' ? (['read', 'write'] as const) : (['read'] as const);
  const pick = (api: PermissionApi) => [...new Set(capabilities.flatMap((c) => needs.flatMap((need) => doc.capabilities[c]?.[need][api] ?? [])))].sort();
  return { graph: pick('graph'), defender: pick('defender') };
}
