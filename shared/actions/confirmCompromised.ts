import type { ActionExecutor } from './executor';
import { classifyFailure } from './failure';
import { targetLabel, userReference } from './target';

/**
 * confirmCompromised: POST identityProtection/riskyUsers/confirmCompromised (ID Protection P2). Reads the risky-user
 * record first: already confirmed is done. The call takes object ids only, so a UPN target is resolved first.
 * ID Protection allows one request per second per tenant: pacing belongs to the pipeline, a 429 here is transient.
 */
export const confirmCompromised: ActionExecutor = {
  kind: 'confirmCompromised',
  apiCost: () => ({ idprotection: 1 }),
  async execute(command, { directory }) {
    const who = targetLabel(command.target);
    const ref = userReference(command.target);
    if (ref === undefined) return { outcome: 'failed', class: 'permanent', detail: 'confirmCompromised needs a user object id or UPN' };
    try {
      const id = command.target.type === 'user' && command.target.id ? command.target.id : (await directory.getUser(ref))?.id;
      if (id === undefined) return { outcome: 'failed', class: 'permanent', status: 404, detail: `user ${who} does not exist` };
      const risky = await directory.getRiskyUser(id);
      if (risky?.riskState === 'confirmedCompromised') return { outcome: 'succeeded', alreadyDone: true, detail: `${who} was already confirmed compromised` };
      if (command.mode === 'audit')
        return {
          outcome: 'audited',
          detail: `audit mode: would confirm ${who} compromised (risk ${risky?.riskLevel ?? 'none'}, ${risky?.riskState ?? 'no record'})`,
        };
      await directory.confirmCompromised([id]);
      return { outcome: 'succeeded', alreadyDone: false, detail: `confirmed ${who} compromised in ID Protection (user risk now high)` };
    } catch (error) {
      return { outcome: 'failed', ...classifyFailure(error) };
    }
  },
};
