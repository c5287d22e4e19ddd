import { ApiError } from '../clients/apiError';
import type { ActiveRole, Directory } from '../clients/graph';
import type { ActionExecutor, ExecutionOutcome } from './executor';
import { classifyFailure } from './failure';

/** At most this many role removals are made by one action (each is kept in its rollback snapshot). */
export const MAX_RECORDED_ROLES = 100;

/** What requirePimReapproval removed, for the record and for restorePimAssignments. */
export interface PimSnapshot {
  principalId: string;
  removed: Array<{ roleDefinitionId: string; directoryScopeId: string; assignmentType: string }>;
  /** Roles whose activation needs no approval: removal alone does not force a human to approve the next one. */
  policyGaps: string[];
}

/**
 * requirePimReapproval (reference/graph.md, "PIM"). There is no per-user "reapprove" switch, and an app cannot change
 * a role's approval rule; requiring reapproval means ending the user's active privileged access so that getting it
 * back needs a fresh PIM activation, which the role's policy gates with approval:
 * 1. read the active assignments (direct ones: a group-based assignment is not removable per user, and is reported);
 * 2. check each role's approval rule and report a policy gap where activation needs none;
 * 3. a permanent assignment is first made eligible (so the user can still request the role, with approval);
 * 4. adminRemove each active assignment; RoleAssignmentDoesNotExist means re-read (often already removed);
 *    ActiveDurationTooShort (within ~5 minutes of activation) is transient, retried after the floor;
 * 5. verify. Everything is read first, so a redelivery after a crash never posts a request twice.
 * Sessions are revoked by the revokeSessions action the policy plans next to it: one place per idea.
 */
export const requirePimReapproval: ActionExecutor = {
  kind: 'requirePimReapproval',
  // Its writes depend on the roles it finds: it reserves them once it has read them, before the first write.
  apiCost: () => ({}),
  async execute(command, { directory, target, reserve }) {
    if (target.type !== 'user') return { outcome: 'failed', class: 'permanent', detail: 'requirePimReapproval acts on users' };
    const { id: principalId, upn: who } = target.verified;
    try {
      const active = await directory.listActiveRoles(principalId);
      const direct = active.filter((r) => r.memberType !== 'Group');
      const viaGroups = active.length - direct.length;
      const groupNote = viaGroups ? `; ${viaGroups} role(s) held through a group are not removable per user: remove the user from the group` : '';
      if (direct.length === 0) {
        return {
          outcome: 'succeeded',
          alreadyDone: true,
          rollback: { principalId, removed: [], policyGaps: [] } satisfies PimSnapshot,
          detail: `${who} holds no direct active privileged role${groupNote}`,
        };
      }
      // Every removal is recorded for the rollback, in one ledger property: past this many, the record could not hold it,
      // and roles the engine removed without recording them could not be given back.
      if (direct.length > MAX_RECORDED_ROLES)
        return {
          outcome: 'held',
          detail: `${who} holds ${direct.length} direct active roles, more than the ${MAX_RECORDED_ROLES} the engine can record for a rollback: a human must end them`,
        };
      const policyGaps: string[] = [];
      for (const roleId of new Set(direct.map((r) => r.roleDefinitionId))) if (!(await directory.activationNeedsApproval(roleId))) policyGaps.push(roleId);
      const gapNote = policyGaps.length
        ? `; POLICY GAP: activating ${policyGaps.join(', ')} needs no approval, so the user can re-activate alone — require approval in PIM`
        : '';
      const roles = direct.map((r) => `${r.roleDefinitionId} (${r.assignmentType})`).join(', ');
      if (command.mode === 'audit') return { outcome: 'audited', detail: `audit mode: would end ${roles} for ${who}${gapNote}${groupNote}` };

      const justification = `Sentinel Responder ${command.idempotencyKey}: ${command.reason}`.slice(0, 500);
      const eligible = await directory.listEligibleRoles(principalId);
      await reserve({ 'graph-writes': direct.reduce((writes, role) => writes + (needsEligibility(role, eligible) ? 2 : 1), 0) });
      for (const role of direct) await endAssignment(directory, principalId, role, eligible, justification);

      const remaining = (await directory.listActiveRoles(principalId)).filter((r) => r.memberType !== 'Group' && direct.some((d) => same(d, r)));
      if (remaining.length)
        return {
          outcome: 'failed',
          class: 'transient',
          detail: `PIM accepted the removal but ${who} still holds ${remaining.map((r) => r.roleDefinitionId).join(', ')}`,
        };
      const snapshot: PimSnapshot = {
        principalId,
        removed: direct.map(({ roleDefinitionId, directoryScopeId, assignmentType }) => ({ roleDefinitionId, directoryScopeId, assignmentType })),
        policyGaps,
      };
      return {
        outcome: 'succeeded',
        alreadyDone: false,
        rollback: snapshot,
        detail: `ended ${roles} for ${who}; getting them back needs a PIM activation${gapNote}${groupNote}`,
      };
    } catch (error) {
      return failed(error);
    }
  },
};

/**
 * restorePimAssignments: the rollback. Permanent assignments the engine removed are assigned again; just-in-time
 * activations are not recreated — the user asks PIM again, which is the point of requiring reapproval.
 */
export const restorePimAssignments: ActionExecutor = {
  kind: 'restorePimAssignments',
  // One write per role to give back, reserved once it has read which are missing.
  apiCost: () => ({}),
  async execute(command, { directory, snapshot, target, reserve }) {
    const removed = snapshot as PimSnapshot | undefined;
    if (!removed?.removed) return { outcome: 'failed', class: 'permanent', detail: 'refused: nothing to restore (no requirePimReapproval snapshot)' };
    if (target.verified.id !== removed.principalId)
      return { outcome: 'failed', class: 'permanent', detail: `refused: the snapshot is of ${removed.principalId}, the target is ${target.verified.id}` };
    const permanent = removed.removed.filter((r) => r.assignmentType === 'Assigned');
    const note = removed.removed.length > permanent.length ? '; activations are not recreated: the user requests them in PIM' : '';
    try {
      const active = await directory.listActiveRoles(removed.principalId);
      const missing = permanent.filter((r) => !active.some((a) => same(a, r)));
      if (missing.length === 0) return { outcome: 'succeeded', alreadyDone: true, detail: `nothing to restore${note}` };
      if (command.mode === 'audit')
        return { outcome: 'audited', detail: `audit mode: would restore ${missing.map((r) => r.roleDefinitionId).join(', ')}${note}` };
      await reserve({ 'graph-writes': missing.length });
      for (const role of missing) {
        await directory.requestRoleChange({
          schedule: 'assignment',
          action: 'adminAssign',
          principalId: removed.principalId,
          roleDefinitionId: role.roleDefinitionId,
          directoryScopeId: role.directoryScopeId,
          justification: `Sentinel Responder rollback ${command.idempotencyKey}`,
        });
      }
      return { outcome: 'succeeded', alreadyDone: false, detail: `restored ${missing.map((r) => r.roleDefinitionId).join(', ')}${note}` };
    } catch (error) {
      return failed(error);
    }
  },
};

async function endAssignment(
  directory: Directory,
  principalId: string,
  role: ActiveRole,
  eligible: Array<{ roleDefinitionId: string; directoryScopeId: string }>,
  justification: string,
): Promise<void> {
  const scope = { principalId, roleDefinitionId: role.roleDefinitionId, directoryScopeId: role.directoryScopeId, justification };
  if (needsEligibility(role, eligible)) {
    await tolerate(['RoleAssignmentExists'], () => directory.requestRoleChange({ schedule: 'eligibility', action: 'adminAssign', ...scope }));
  }
  await tolerate(['RoleAssignmentDoesNotExist'], () => directory.requestRoleChange({ schedule: 'assignment', action: 'adminRemove', ...scope }));
}

/** A permanent assignment is made eligible before it is removed, unless it already is. */
function needsEligibility(role: ActiveRole, eligible: Array<{ roleDefinitionId: string; directoryScopeId: string }>): boolean {
  return role.assignmentType === 'Assigned' && !eligible.some((e) => same(e, role));
}

/** Codes that mean "already in the wanted state": the verification re-read settles it. */
async function tolerate(codes: string[], request: () => Promise<void>): Promise<void> {
  try {
    await request();
  } catch (error) {
    if (!(error instanceof ApiError && error.code !== undefined && codes.includes(error.code))) throw error;
  }
}

const same = (a: { roleDefinitionId: string; directoryScopeId: string }, b: { roleDefinitionId: string; directoryScopeId: string }): boolean =>
  a.roleDefinitionId === b.roleDefinitionId && a.directoryScopeId === b.directoryScopeId;

function failed(error: unknown): ExecutionOutcome {
  return { outcome: 'failed', ...classifyFailure(error) };
}
