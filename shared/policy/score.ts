import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import type { ScoreFactor, RiskScore } from './decision';
import { techniqueOf } from '../signals/identifiers';
import type { LoweredSignal } from './rules';
import type { Policy } from './schema';

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

/**
 * The explainable risk score: every point comes from a named factor in the policy's `risk` table. Entity risk
 * counts once, from the riskiest entity (two risky users do not make an incident twice as severe). Unknown entity
 * data earns nothing and is reported in the decision's notes instead.
 */
export function riskScore(signal: Signal, lowered: LoweredSignal, risk: Policy['risk'], index: RiskIndex): RiskScore {
  const factors: ScoreFactor[] = [];
  let total = 0;
  const add = (factor: ScoreFactor['factor'], value: string, points: number | undefined): void => {
    if (!points) return;
    factors.push({ factor, value, points });
    total += points;
  };

  add('severity', signal.severity, risk.severity[signal.severity]);
  for (let i = 0; i < signal.tactics.length; i++) add('tactic', signal.tactics[i] as string, index.tactics.get(lowered.tactics[i] as string));
  for (let i = 0; i < signal.techniques.length; i++) {
    // T1078 in the table also scores the sub-technique T1078.004.
    const lower = lowered.techniques[i] as string;
    add('technique', signal.techniques[i] as string, index.techniques.get(lower) ?? index.techniques.get(techniqueOf(lower)));
  }
  for (let i = 0; i < signal.products.length; i++) add('product', signal.products[i] as string, index.products.get(lowered.products[i] as string));

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
  if (riskiestUser?.userRisk) add('userRisk', `${riskiestUser.userRisk} (${accountLabel(riskiestUser)})`, userPoints);
  if (riskiestHost?.deviceRisk)
    add('deviceRisk', `${riskiestHost.deviceRisk} (${riskiestHost.fqdn ?? riskiestHost.hostName ?? riskiestHost.mdatpDeviceId})`, hostPoints);
  if (admin) add('privileged', accountLabel(admin), risk.privileged);

  return { total: Math.min(100, total), factors };
}

export function accountLabel(account: AccountEntity): string {
  return account.upn ?? account.displayName ?? account.aadUserId ?? '(unknown account)';
}
