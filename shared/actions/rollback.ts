import type { LedgerEntry } from '../ledger/ledger';
import { ACTIONS, type ActionKind } from './catalogue';
import type { AccountSnapshot } from './disableUser';
import type { IsolationSnapshot } from './isolateDevice';
import type { PimSnapshot } from './requirePimReapproval';

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
