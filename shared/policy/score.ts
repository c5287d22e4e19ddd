import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import type { ScoreFactor, RiskScore } from './decision';
import { NameIndex } from '../signals/names';
import type { Policy } from './schema';

/** The risk table's name-keyed parts, indexed once per policy load. */
export interface RiskIndex {
  tactics: NameIndex<number>;
  techniques: NameIndex<number>;
  products: NameIndex<number>;
}

export function indexRisk(risk: Policy['risk']): RiskIndex {
  const index = (table: Record<string, number>) => new NameIndex(Object.entries(table));
  return { tactics: index(risk.tactics), techniques: index(risk.techniques), products: index(risk.products) };
}

/**
 * The explainable risk score: every point comes from a named factor in the policy's `risk` table. Entity risk
 * counts once, from the riskiest entity (two risky users do not make an incident twice as severe). Unknown entity
 * data earns nothing and is reported in the decision's notes instead.
 */
export function riskScore(signal: Signal, risk: Policy['risk'], index: RiskIndex): RiskScore {
  const factors: ScoreFactor[] = [];
  const severityPoints = risk.severity[signal.severity];
  if (severityPoints) factors.push({ factor: 'severity', value: signal.severity, points: severityPoints });
  scoreNames(factors, 'tactic', signal.tactics, index.tactics);
  scoreNames(factors, 'technique', signal.techniques, index.techniques);
  scoreNames(factors, 'product', signal.products, index.products);

  // One pass over the entities: the riskiest user, the riskiest device, the first privileged account.
  let riskiestUser: AccountEntity | undefined;
  let userPoints = 0;
  let riskiestHost: HostEntity | undefined;
  let hostPoints = 0;
  let admin: AccountEntity | undefined;
  for (const entity of signal.entities) {
    if (entity.kind === 'account') {
      const points = entity.userRisk ? (risk.userRisk[entity.userRisk] ?? 0) : 0;
      if (points > userPoints) {
        riskiestUser = entity;
        userPoints = points;
      }
      if (entity.privileged === true) admin ??= entity;
    } else if (entity.kind === 'host') {
      const points = entity.deviceRisk ? (risk.deviceRisk[entity.deviceRisk] ?? 0) : 0;
      if (points > hostPoints) {
        riskiestHost = entity;
        hostPoints = points;
      }
    }
  }
  if (riskiestUser) factors.push({ factor: 'userRisk', value: `${riskiestUser.userRisk} (${accountLabel(riskiestUser)})`, points: userPoints });
  if (riskiestHost) factors.push({ factor: 'deviceRisk', value: `${riskiestHost.deviceRisk} (${hostLabel(riskiestHost)})`, points: hostPoints });
  if (admin && risk.privileged) factors.push({ factor: 'privileged', value: accountLabel(admin), points: risk.privileged });

  let total = 0;
  for (const f of factors) total += f.points;
  return { total: Math.min(100, total), factors };
}

/** A factor for each name the risk table scores: T1078 in the table also scores the sub-technique T1078.004. */
function scoreNames(factors: ScoreFactor[], factor: ScoreFactor['factor'], names: string[], table: NameIndex<number>): void {
  for (const name of names) {
    const points = table.get(name, factor === 'technique');
    if (points) factors.push({ factor, value: name, points });
  }
}

export function accountLabel(account: AccountEntity): string {
  return account.verified?.upn ?? account.upn ?? account.displayName ?? account.aadUserId ?? '(unknown account)';
}

export function hostLabel(host: HostEntity): string {
  return host.fqdn ?? host.hostName ?? host.mdatpDeviceId ?? host.aadDeviceId ?? '(unknown device)';
}

export function entityLabel(entity: AccountEntity | HostEntity): string {
  return entity.kind === 'account' ? accountLabel(entity) : hostLabel(entity);
}
