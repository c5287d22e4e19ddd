import type { ActionExecutor } from './executor';
import { classifyFailure } from './failure';

/**
 * confirmCompromised: POST identityProtection/riskyUsers/confirmCompromised (ID Protection P2). Reads the risky-user
 * record first: already confirmed is done. The call takes object ids: the directory's, as the worker resolved it.
 * ID Protection allows one request per second per tenant: pacing belongs to the pipeline, a 429 here is transient.
 */
export const confirmCompromised: ActionExecutor = {
  kind: 'confirmCompromised',
  // Read the user's risk, then confirm: two.
  apiCost: () => ({ idprotection: 2 }),
  async execute(command, { directory, target }) {
    if (target.type !== 'user') return { outcome: 'failed', class: 'permanent', detail: 'confirmCompromised acts on users' };
    const { id, upn: who } = target.verified;
    try {
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
