import type { ActionCommand } from './command';
import type { ActionExecutor, ExecutionOutcome, TargetedContext } from './executor';
import { classifyFailure } from './failure';

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
  execute: (command, context) => setEnabled(command, context, false),
};

/** enableUser: the rollback of disableUser only, and only when the snapshot says the account was enabled before. */
export const enableUser: ActionExecutor = {
  kind: 'enableUser',
  apiCost: () => ({ 'graph-writes': 1 }),
  async execute(command, context) {
    if ((context.snapshot as AccountSnapshot | undefined)?.wasEnabled !== true) {
      return { outcome: 'failed', class: 'permanent', detail: 'refused: only an account the engine itself disabled (snapshot wasEnabled=true) is re-enabled' };
    }
    return setEnabled(command, context, true);
  },
};

async function setEnabled(command: ActionCommand, { directory, target }: TargetedContext, enabled: boolean): Promise<ExecutionOutcome> {
  if (target.type !== 'user') return { outcome: 'failed', class: 'permanent', detail: `${command.kind} acts on users` };
  // The account as the directory answered for it moments ago: the state before, and the identity acted on.
  const { user: before, verified } = target;
  const who = verified.upn;
  const verb = enabled ? 'enable' : 'disable';
  try {
    const rollback: AccountSnapshot = { wasEnabled: before.accountEnabled };
    if (before.accountEnabled === enabled) {
      return { outcome: 'succeeded', alreadyDone: true, rollback, detail: `${who} was already ${enabled ? 'enabled' : 'disabled'}: nothing written` };
    }
    if (command.mode === 'audit')
      return { outcome: 'audited', detail: `audit mode: would ${verb} ${who} (currently ${before.accountEnabled ? 'enabled' : 'disabled'})` };
    await directory.setAccountEnabled(verified.id, enabled);
    const after = await directory.getUser(verified.id);
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
