import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import type { ScoreFactor, RiskScore } from './decision';
import type { Policy } from './schema';

/**
 * The explainable risk score: every point comes from a named factor in the policy's `risk` table. Entity risk
 * counts once, from the riskiest entity (two risky users do not make an incident twice as severe). Unknown entity
 * data earns nothing and is reported in the decision's notes instead.
 */
export function riskScore(signal: Signal, risk: Policy['risk']): RiskScore {
  const factors: ScoreFactor[] = [];
  const add = (factor: ScoreFactor['factor'], value: string, points: number | undefined): void => {
    if (points) factors.push({ factor, value, points });
  };

  add('severity', signal.severity, risk.severity[signal.severity]);
  for (const tactic of signal.tactics) add('tactic', tactic, lookup(risk.tactics, tactic));
  for (const technique of signal.techniques)
    add('technique', technique, lookup(risk.techniques, technique) ?? lookup(risk.techniques, technique.split('.')[0] ?? ''));
  for (const product of signal.products) add('product', product, lookup(risk.products, product));

  const accounts = signal.entities.filter((e): e is AccountEntity => e.kind === 'account');
  const hosts = signal.entities.filter((e): e is HostEntity => e.kind === 'host');
  const riskiestUser = maxBy(accounts, (a) => (a.userRisk ? (risk.userRisk[a.userRisk] ?? 0) : 0));
  if (riskiestUser?.userRisk) add('userRisk', `${riskiestUser.userRisk} (${accountLabel(riskiestUser)})`, risk.userRisk[riskiestUser.userRisk]);
  const riskiestHost = maxBy(hosts, (h) => (h.deviceRisk ? (risk.deviceRisk[h.deviceRisk] ?? 0) : 0));
  if (riskiestHost?.deviceRisk)
    add(
      'deviceRisk',
      `${riskiestHost.deviceRisk} (${riskiestHost.fqdn ?? riskiestHost.hostName ?? riskiestHost.mdatpDeviceId})`,
      risk.deviceRisk[riskiestHost.deviceRisk],
    );
  const admin = accounts.find((a) => a.privileged === true);
  if (admin) add('privileged', accountLabel(admin), risk.privileged);

  const total = Math.min(
    100,
    factors.reduce((sum, f) => sum + f.points, 0),
  );
  return { total, factors };
}

/** Policy tables are keyed as humans type them; match tactic, technique and product names without regard to case. */
function lookup(table: Record<string, number>, name: string): number | undefined {
  if (Object.hasOwn(table, name)) return table[name];
  const lower = name.toLowerCase();
  for (const key of Object.keys(table)) if (key.toLowerCase() === lower) return table[key];
  return undefined;
}

function maxBy<T>(items: T[], score: (item: T) => number): T | undefined {
  let best: T | undefined;
  let bestScore = 0;
  for (const item of items) {
    const s = score(item);
    if (s > bestScore) {
      best = item;
      bestScore = s;
    }
  }
  return best;
}

export function accountLabel(account: AccountEntity): string {
  return account.upn ?? account.displayName ?? account.aadUserId ?? '(unknown account)';
}
