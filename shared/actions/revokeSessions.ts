import type { ActionExecutor } from './executor';
import { classifyFailure } from './failure';
import { targetLabel, userReference } from './target';

/**
 * revokeSessions: POST revokeSignInSessions. Repeating it is harmless (it only invalidates refresh tokens issued
 * before now), so there is no state to read first, but the user is read anyway: to fail clearly on a missing user and
 * to say that for guests (B2B) the call answers 2xx and does nothing (reference/graph.md).
 */
export const revokeSessions: ActionExecutor = {
  kind: 'revokeSessions',
  apiCost: () => ({ 'graph-writes': 1 }),
  async execute(command, { directory }) {
    const who = targetLabel(command.target);
    const id = userReference(command.target);
    if (id === undefined) return { outcome: 'failed', class: 'permanent', detail: 'revokeSessions needs a user object id or UPN' };
    try {
      const user = await directory.getUser(id);
      if (!user) return { outcome: 'failed', class: 'permanent', status: 404, detail: `user ${who} does not exist` };
      const guestNote = user.userType === 'Guest' ? ' (a guest: revocation does not reach sessions in their home tenant)' : '';
      if (command.mode === 'audit') return { outcome: 'audited', detail: `audit mode: would revoke the sign-in sessions of ${who}${guestNote}` };
      await directory.revokeSessions(user.id);
      return { outcome: 'succeeded', alreadyDone: false, detail: `revoked the sign-in sessions of ${who}; takes effect within minutes${guestNote}` };
    } catch (error) {
      return { outcome: 'failed', ...classifyFailure(error) };
    }
  },
};
