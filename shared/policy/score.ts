import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import type { ScoreFactor, RiskScore } from './decision';
import type { LoweredSignal } from './rules';
import type { Policy } from './schema';

/**
 * The explainable risk score: every point comes from a named factor in the policy's `risk` table. Entity risk
 * counts once, from the riskiest entity (two risky users do not make an incident twice as severe). Unknown entity
 * data earns nothing and is reported in the decision's notes instead.
 */
/** The risk table's name-keyed parts, lower-cased once per policy load. */
export interface RiskIndex {
  tactics: Map<string, number>;
  techniques: Map<string, number>;
  products: Map<string, number>;
}

export function indexRisk(risk: Policy['risk']): RiskIndex {
  const lower = (table: Record<string, number>) => new Map(Object.entries(table).map(([k, v]) => [k.toLowerCase(), v]));
  return { tactics: lower(risk.tactics), techniques: lower(risk.techniques), products: lower(risk.products) };
}

export function riskScore(signal: Signal, lowered: LoweredSignal, risk: Policy['risk'], index: RiskIndex): RiskScore {
  const factors: ScoreFactor[] = [];
  const add = (factor: ScoreFactor['factor'], value: string, points: number | undefined): void => {
    if (points) factors.push({ factor, value, points });
  };

  add('severity', signal.severity, risk.severity[signal.severity]);
  signal.tactics.forEach((tactic, i) => add('tactic', tactic, index.tactics.get(lowered.tactics[i] as string)));
  signal.techniques.forEach((technique, i) => {
    // T1078 in the table also scores the sub-technique T1078.004.
    const lower = lowered.techniques[i] as string;
    add('technique', technique, index.techniques.get(lower) ?? index.techniques.get(lower.split('.')[0] as string));
  });
  signal.products.forEach((product, i) => add('product', product, index.products.get(lowered.products[i] as string)));

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
