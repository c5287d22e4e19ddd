import type { LedgerEntry } from '../ledger/ledger';
import { isRecord } from '../signals/fields';
import { ACTIONS, isRollbackKind, type ActionKind } from './catalogue';
import type { ActionCommand } from './command';
import type { AccountSnapshot } from './disableUser';
import type { IsolationSnapshot } from './isolateDevice';
import type { PimSnapshot } from './requirePimReapproval';
import { sameTarget, targetLabel } from './target';

/** What asking to undo an action comes to: the kind that undoes it, or why it cannot be undone (409). */
export type RollbackStep = { step: 'undo'; kind: ActionKind } | { step: 'refuse'; code: string; why: string };

/**
 * Whether an action can be undone now, as a pure function: only a succeeded action the engine carried out itself
 * (its snapshot says what it changed), of a kind that has an undo. An account someone else had disabled, a device
 * someone else had isolated, a rehearsal in audit mode: there is nothing of the engine's to undo.
 */
export function rollbackStep(original: LedgerEntry): RollbackStep {
  const kind = ACTIONS[original.kind].rollback;
  if (kind === undefined) return { step: 'refuse', code: 'Irreversible', why: `${original.kind} cannot be undone: ${irreversible(original.kind)}` };
  if (original.state === 'rolled-back') return { step: 'refuse', code: 'AlreadyRolledBack', why: `action ${original.key} was already rolled back` };
  if (original.state !== 'succeeded')
    return { step: 'refuse', code: 'NotSucceeded', why: `action ${original.key} is ${original.state}: only a succeeded action can be rolled back` };
  if (original.mode === 'audit' || original.attempts.at(-1)?.outcome === 'audited') {
    return { step: 'refuse', code: 'NothingToUndo', why: `action ${original.key} ran in audit mode: nothing was changed` };
  }
  const undone = whatTheEngineDid(original);
  if (undone !== undefined) return { step: 'refuse', code: 'NothingToUndo', why: `action ${original.key} changed nothing the engine can undo: ${undone}` };
  return { step: 'undo', kind };
}

/**
 * Why `rollback` must not run against `original`, the ledger's entry for the action it names (`source.rollbackOf`), or
 * undefined when it may: a rollback kind undoes only a succeeded action of the kind it undoes that the engine changed
 * something by (rollbackStep), on the same principal, and a PIM restore only by a snapshot of roles removed from the
 * principal that action acted on. Any other kind names nothing to undo.
 */
export function rollbackRefusal(rollback: Pick<ActionCommand, 'kind' | 'target' | 'source'>, original: LedgerEntry | undefined): string | undefined {
  const { kind, target } = rollback;
  const key = rollback.source.rollbackOf;
  if (!isRollbackKind(kind)) return key === undefined ? undefined : `${kind} undoes nothing, yet names ${key} to undo`;
  if (key === undefined) return `${kind} is a rollback and names no action to undo`;
  if (!original) return `the action it undoes, ${key}, is not in the ledger`;
  const step = rollbackStep(original);
  if (step.step === 'refuse') return step.why;
  if (step.kind !== kind) return `action ${original.key} is a ${original.kind}, undone by ${step.kind}, not ${kind}`;
  if (!sameTarget(original.target, target)) return `action ${original.key} acted on ${targetLabel(original.target)}, not ${targetLabel(target)}`;
  return original.kind === 'requirePimReapproval' ? pimSnapshotProblem(original) : undefined;
}

/** Why a requirePimReapproval's snapshot cannot say what to give back to whom it acted on, or undefined. */
function pimSnapshotProblem(original: LedgerEntry): string | undefined {
  const snapshot = original.rollback as Partial<PimSnapshot>;
  const text = (value: unknown) => typeof value === 'string';
  const readable =
    text(snapshot.principalId) &&
    Array.isArray(snapshot.removed) &&
    snapshot.removed.every((role: unknown) => isRecord(role) && text(role.roleDefinitionId) && text(role.directoryScopeId) && text(role.assignmentType));
  if (!readable) return 'its snapshot does not read as roles requirePimReapproval removed';
  const actedOn = original.target.id;
  if (actedOn !== undefined && snapshot.principalId?.toLowerCase() !== actedOn.toLowerCase())
    return `its snapshot names roles removed from ${snapshot.principalId}, not from ${actedOn}, whom action ${original.key} acted on`;
  return undefined;
}

function irreversible(kind: ActionKind): string {
  if (kind === 'revokeSessions') return 'revoked sessions stay revoked; the user signs in again';
  if (kind === 'confirmCompromised') return "ID Protection's confirmation is dismissed in ID Protection by an analyst";
  return 'it has no undo';
}

/** Why the snapshot shows nothing the engine changed, or undefined when it did change something. */
function whatTheEngineDid(original: LedgerEntry): string | undefined {
  const snapshot = original.rollback as Partial<AccountSnapshot & IsolationSnapshot & PimSnapshot> | undefined;
  switch (original.kind) {
    case 'disableUser':
      return snapshot?.wasEnabled === true ? undefined : 'the account was already disabled (by someone else)';
    case 'isolateDevice':
      return snapshot?.isolationActionId ? undefined : 'the device was already isolated (by someone else)';
    case 'requirePimReapproval':
      return snapshot?.removed && snapshot.removed.length > 0 ? undefined : 'no role was removed';
    default:
      return undefined;
  }
}
