import type { Mode } from '../policy/schema';
import type { ActionKind } from './catalogue';

/**
 * The application permissions each capability needs, least privilege first (reference/graph.md, defender.md). Each
 * requirement lists alternatives: any one complete set satisfies it (a broader permission also covers a narrow one).
 * Sentinel comments need the Azure role Microsoft Sentinel Responder, which Azure RBAC checks at call time: it is not
 * in the token, so the preflight cannot see it and says so.
 */
export type PermissionApi = 'graph' | 'defender';

export interface Requirement {
  api: PermissionApi;
  /**
   * `read`: called in audit and enforce mode alike — the worker resolves every target before it acts, and each
   * executor reads the state it would change before it returns `audited`. `write`: called in enforce mode only.
   */
  need: 'read' | 'write';
  why: string;
  anyOf: string[][];
}

const READ_USERS: Requirement = { api: 'graph', need: 'read', why: 'read users', anyOf: [['User.Read.All'], ['User.ReadWrite.All']] };
const READ_ACTIVE_ROLES: Requirement = {
  api: 'graph',
  need: 'read',
  why: 'read active roles',
  anyOf: [['RoleAssignmentSchedule.Read.Directory'], ['RoleAssignmentSchedule.ReadWrite.Directory']],
};
const READ_MACHINES: Requirement = {
  api: 'defender',
  need: 'read',
  why: 'read devices and their machine actions',
  anyOf: [['Machine.Read.All'], ['Machine.ReadWrite.All']],
};

export const ACTION_PERMISSIONS: Record<ActionKind, Requirement[]> = {
  // Graph documents accountEnabled as User.EnableDisableAccount.All together with User.Read.All, which the read holds.
  disableUser: [READ_USERS, { api: 'graph', need: 'write', why: 'disable accounts', anyOf: [['User.EnableDisableAccount.All'], ['User.ReadWrite.All']] }],
  enableUser: [READ_USERS, { api: 'graph', need: 'write', why: 're-enable accounts', anyOf: [['User.EnableDisableAccount.All'], ['User.ReadWrite.All']] }],
  revokeSessions: [READ_USERS, { api: 'graph', need: 'write', why: 'revoke sessions', anyOf: [['User.RevokeSessions.All'], ['User.ReadWrite.All']] }],
  confirmCompromised: [
    READ_USERS,
    { api: 'graph', need: 'read', why: 'read user risk', anyOf: [['IdentityRiskyUser.Read.All'], ['IdentityRiskyUser.ReadWrite.All']] },
    { api: 'graph', need: 'write', why: 'confirm users compromised', anyOf: [['IdentityRiskyUser.ReadWrite.All']] },
  ],
  requirePimReapproval: [
    READ_USERS,
    READ_ACTIVE_ROLES,
    {
      api: 'graph',
      need: 'read',
      why: "read roles' approval rules",
      anyOf: [['RoleManagementPolicy.Read.Directory'], ['RoleManagementPolicy.ReadWrite.Directory']],
    },
    // The same permission lets the privilegeDrift sweep list the PIM requests that gave a removed role back.
    { api: 'graph', need: 'write', why: 'end active role assignments', anyOf: [['RoleAssignmentSchedule.ReadWrite.Directory']] },
    // It also reads the eligible roles, which only enforce mode does (before making a permanent assignment eligible).
    { api: 'graph', need: 'write', why: 'make permanent assignments eligible', anyOf: [['RoleEligibilitySchedule.ReadWrite.Directory']] },
  ],
  restorePimAssignments: [
    READ_USERS,
    READ_ACTIVE_ROLES,
    { api: 'graph', need: 'write', why: 'restore role assignments', anyOf: [['RoleAssignmentSchedule.ReadWrite.Directory']] },
  ],
  isolateDevice: [READ_MACHINES, { api: 'defender', need: 'write', why: 'isolate devices', anyOf: [['Machine.Isolate']] }],
  unisolateDevice: [READ_MACHINES, { api: 'defender', need: 'write', why: 'release devices', anyOf: [['Machine.Isolate']] }],
};

/** What enrichment reads; `groups` only when the policy names groups (the worker's protection check reads them too). */
export function enrichmentPermissions(groups: boolean): Requirement[] {
  return [
    READ_USERS,
    { api: 'graph', need: 'read', why: 'read user risk', anyOf: [['IdentityRiskyUser.Read.All'], ['IdentityRiskyUser.ReadWrite.All']] },
    READ_ACTIVE_ROLES,
    ...(groups ? [{ api: 'graph' as const, need: 'read' as const, why: 'check group membership', anyOf: [['GroupMember.Read.All'], ['Group.Read.All']] }] : []),
    { api: 'defender', need: 'read', why: 'read devices', anyOf: [['Machine.Read.All'], ['Machine.ReadWrite.All']] },
  ];
}

/** The requirements that are called in `mode`: the reads in audit mode, everything in enforce mode. */
export function neededIn(mode: Mode, requirements: readonly Requirement[]): Requirement[] {
  return mode === 'enforce' ? [...requirements] : requirements.filter((r) => r.need === 'read');
}

/** What `kind` calls in `mode`, least privilege first, for a person: `graph User.Read.All (to read users); …`. */
export function permissionsText(kind: ActionKind, mode: Mode): string {
  return neededIn(mode, ACTION_PERMISSIONS[kind])
    .map((r) => `${r.api} ${(r.anyOf[0] ?? []).join(' + ')} (to ${r.why})`)
    .join('; ');
}

/** The permissions of a requirement that are missing from `granted` (empty when some alternative is complete). */
export function missingFor(requirement: Requirement, granted: ReadonlySet<string>): string[] {
  let best: string[] | undefined;
  for (const set of requirement.anyOf) {
    const missing = set.filter((p) => !granted.has(p));
    if (missing.length === 0) return [];
    if (!best || missing.length < best.length) best = missing;
  }
  return best ?? [];
}
