import type { Directory, DirectoryUser } from '../clients/graph';
import type { ActionCommand } from './command';
import type { ActionExecutor, ExecutionOutcome } from './executor';
import { classifyFailure } from './failure';
import { targetLabel, userReference } from './target';

/** What disableUser records so that its rollback can tell whether the account was enabled before. */
export interface AccountSnapshot {
  wasEnabled: boolean;
}

/**
 * disableUser: PATCH accountEnabled=false (reference/graph.md). Reads the account first: an account that is already
 * disabled is left alone and its snapshot says so, so the rollback never re-enables an account someone else — an
 * admin, Defender's attack disruption — disabled. Graph's 403 on a privileged admin is `blocked`, never retried: that
 * is a job for requirePimReapproval and a human.
 */
export const disableUser: ActionExecutor = {
  kind: 'disableUser',
  apiCost: () => ({ 'graph-writes': 1 }),
  execute: (command, { directory }) => setEnabled(command, directory, false),
};

/** enableUser: the rollback of disableUser only, and only when the snapshot says the account was enabled before. */
export const enableUser: ActionExecutor = {
  kind: 'enableUser',
  apiCost: () => ({ 'graph-writes': 1 }),
  async execute(command, { directory, snapshot }) {
    if ((snapshot as AccountSnapshot | undefined)?.wasEnabled !== true) {
      return { outcome: 'failed', class: 'permanent', detail: 'refused: only an account the engine itself disabled (snapshot wasEnabled=true) is re-enabled' };
    }
    return setEnabled(command, directory, true);
  },
};

async function setEnabled(command: ActionCommand, directory: Directory, enabled: boolean): Promise<ExecutionOutcome> {
  const who = targetLabel(command.target);
  const verb = enabled ? 'enable' : 'disable';
  const id = userReference(command.target);
  if (id === undefined) return { outcome: 'failed', class: 'permanent', detail: `${command.kind} needs a user object id or UPN` };
  try {
    const before: DirectoryUser | undefined = await directory.getUser(id);
    if (!before) return { outcome: 'failed', class: 'permanent', status: 404, detail: `user ${who} does not exist` };
    const rollback: AccountSnapshot = { wasEnabled: before.accountEnabled };
    if (before.accountEnabled === enabled) {
      return { outcome: 'succeeded', alreadyDone: true, rollback, detail: `${who} was already ${enabled ? 'enabled' : 'disabled'}: nothing written` };
    }
    if (command.mode === 'audit')
      return { outcome: 'audited', detail: `audit mode: would ${verb} ${who} (currently ${before.accountEnabled ? 'enabled' : 'disabled'})` };
    await directory.setAccountEnabled(before.id, enabled);
    const after = await directory.getUser(before.id);
    if (after?.accountEnabled !== enabled) {
      return { outcome: 'failed', class: 'transient', detail: `Graph accepted the change but ${who} still reads accountEnabled=${after?.accountEnabled}` };
    }
    return { outcome: 'succeeded', alreadyDone: false, rollback, detail: `${verb}d ${who}` };
  } catch (error) {
    const failure = classifyFailure(error);
    if (failure.class === 'blocked' && !enabled)
      failure.detail = `${failure.detail} — Graph refuses app-only disabling of privileged accounts: route to requirePimReapproval and a human`;
    return { outcome: 'failed', ...failure };
  }
}
