import type { ActionExecutor } from './executor';
import { classifyFailure } from './failure';

/**
 * revokeSessions: POST revokeSignInSessions. Repeating it is harmless (it only invalidates refresh tokens issued
 * before now), so there is no state to read first; the user the worker resolved says whether it is a guest (B2B), for
 * whom the call answers 2xx and does nothing (reference/graph.md).
 */
export const revokeSessions: ActionExecutor = {
  kind: 'revokeSessions',
  apiCost: () => ({ 'graph-writes': 1 }),
  async execute(command, { directory, target }) {
    if (target.type !== 'user') return { outcome: 'failed', class: 'permanent', detail: 'revokeSessions acts on users' };
    const { user, verified } = target;
    const who = verified.upn;
    try {
      const guestNote = user.userType === 'Guest' ? ' (a guest: revocation does not reach sessions in their home tenant)' : '';
      if (command.mode === 'audit') return { outcome: 'audited', detail: `audit mode: would revoke the sign-in sessions of ${who}${guestNote}` };
      await directory.revokeSessions(verified.id);
      return { outcome: 'succeeded', alreadyDone: false, detail: `revoked the sign-in sessions of ${who}; takes effect within minutes${guestNote}` };
    } catch (error) {
      return { outcome: 'failed', ...classifyFailure(error) };
    }
  },
};
