import type { CompiledPolicy } from '../policy/decide';
import { normalizeRiskRecords } from '../signals/risk';
import type { UserRiskLevel } from '../signals/signal';
import { decided, type SweepDefinition, type SweepPage } from './sweep';

/**
 * riskyUsers: users ID Protection still rates at risk or confirmed compromised, at the levels the policy's rules act on
 * (high if none says), as the RiskyUsers stream would have brought them: each keyed by the user and when their risk
 * last changed, so a change the events already brought is found decided. It catches what the event stream missed.
 * Every 30 minutes by default: twice inside ID Protection's own refresh of a user's risk, at one request a second a
 * page of 500 users.
 */
export const riskyUsers: SweepDefinition = {
  setting: 'RESPONDER_SWEEP_RISKYUSERS',
  schedule: '0 */30 * * * *',
  async page(context, cursor) {
    const directory = await context.directory();
    const { users, next } = await directory.riskyUsersPage(levelsActedOn(context.policy), cursor);
    const page: SweepPage = { findings: [], passedOver: [], ...(next !== undefined && { next }) };
    for (const record of normalizeRiskRecords({ records: users.map((properties) => ({ category: 'RiskyUsers', properties })) })) {
      if (record.status === 'signal') page.findings.push(decided(context, { ...record.signal, source: 'sweep' }));
      else page.passedOver.push(record.status === 'ignored' ? record.reason : `${record.field}: ${record.problem}`);
    }
    return page;
  },
};

/** The user risk levels the policy's rules act on (rules a sweep's signals can match); high when none says. */
export function levelsActedOn(policy: CompiledPolicy): UserRiskLevel[] {
  const levels = new Set<UserRiskLevel>();
  for (const rule of policy.policy.rules) {
    if (!rule.enabled || (rule.when.source && !rule.when.source.includes('sweep'))) continue;
    for (const level of rule.when.userRisk ?? []) levels.add(level);
  }
  return levels.size > 0 ? [...levels] : ['high'];
}
