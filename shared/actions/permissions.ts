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
  why: string;
  anyOf: string[][];
}

const USER_READ = ['User.Read.All'];

export const ACTION_PERMISSIONS: Record<ActionKind, Requirement[]> = {
  disableUser: [{ api: 'graph', why: 'disable accounts', anyOf: [['User.EnableDisableAccount.All', ...USER_READ], ['User.ReadWrite.All']] }],
  enableUser: [{ api: 'graph', why: 're-enable accounts', anyOf: [['User.EnableDisableAccount.All', ...USER_READ], ['User.ReadWrite.All']] }],
  revokeSessions: [{ api: 'graph', why: 'revoke sessions', anyOf: [['User.RevokeSessions.All', ...USER_READ], ['User.ReadWrite.All']] }],
  confirmCompromised: [{ api: 'graph', why: 'confirm users compromised', anyOf: [['IdentityRiskyUser.ReadWrite.All']] }],
  requirePimReapproval: [
    // The same permission lets the privilegeDrift sweep list the PIM requests that gave a removed role back.
    { api: 'graph', why: 'end active role assignments', anyOf: [['RoleAssignmentSchedule.ReadWrite.Directory']] },
    { api: 'graph', why: 'make permanent assignments eligible', anyOf: [['RoleEligibilitySchedule.ReadWrite.Directory']] },
    { api: 'graph', why: "read roles' approval rules", anyOf: [['RoleManagementPolicy.Read.Directory'], ['RoleManagementPolicy.ReadWrite.Directory']] },
  ],
  restorePimAssignments: [{ api: 'graph', why: 'restore role assignments', anyOf: [['RoleAssignmentSchedule.ReadWrite.Directory']] }],
  isolateDevice: [{ api: 'defender', why: 'isolate devices', anyOf: [['Machine.Isolate', 'Machine.Read.All']] }],
  unisolateDevice: [{ api: 'defender', why: 'release devices', anyOf: [['Machine.Isolate', 'Machine.Read.All']] }],
};

/** What enrichment reads; `groups` only when the policy names groups. */
export function enrichmentPermissions(groups: boolean): Requirement[] {
  return [
    { api: 'graph', why: 'read users', anyOf: [USER_READ, ['User.ReadWrite.All']] },
    { api: 'graph', why: 'read user risk', anyOf: [['IdentityRiskyUser.Read.All'], ['IdentityRiskyUser.ReadWrite.All']] },
    { api: 'graph', why: 'read active roles', anyOf: [['RoleAssignmentSchedule.Read.Directory'], ['RoleAssignmentSchedule.ReadWrite.Directory']] },
    ...(groups ? [{ api: 'graph' as const, why: 'check group membership', anyOf: [['GroupMember.Read.All'], ['Group.Read.All']] }] : []),
    { api: 'defender', why: 'read devices', anyOf: [['Machine.Read.All'], ['Machine.ReadWrite.All']] },
  ];
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
