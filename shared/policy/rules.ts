import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import type { PolicyRule, RuleConditions, ScoreOperator } from './schema';
import { accountLabel } from './score';

/** A rule's name lists, lower-cased into sets once per policy load: matching is then one lookup per value. */
export interface RuleSets {
  tactics?: Set<string>;
  techniques?: Set<string>;
  products?: Set<string>;
  labels?: Set<string>;
}

export function ruleSets(when: RuleConditions): RuleSets {
  const set = (names: string[] | undefined) => names && new Set(names.map((n) => n.toLowerCase()));
  return { tactics: set(when.tactics), techniques: set(when.techniques), products: set(when.products), labels: set(when.labels) };
}

/** The signal's name lists, lower-cased once per decision (not once per rule). */
export interface LoweredSignal {
  tactics: string[];
  techniques: string[];
  products: string[];
  labels: string[];
}

export function lowerSignal(signal: Signal): LoweredSignal {
  const lower = (names: string[]) => names.map((n) => n.toLowerCase());
  return { tactics: lower(signal.tactics), techniques: lower(signal.techniques), products: lower(signal.products), labels: lower(signal.labels) };
}

export interface RuleMatch {
  matched: boolean;
  explanation: string[];
  /** The entities the rule's actions may target: those that satisfy the rule's entity conditions. */
  accounts: AccountEntity[];
  hosts: HostEntity[];
}

/**
 * Does a rule apply to a signal, and to which of its entities? Signal conditions (source, severity, tactics, …) gate
 * the rule; entity conditions (userRisk, privileged, deviceRisk, deviceTags) choose the targets. Unknown entity data
 * never satisfies a condition: the engine does not act on what it does not know.
 */
export function matchRule(
  rule: PolicyRule,
  sets: RuleSets,
  signal: Signal,
  lowered: LoweredSignal,
  score: number,
  accounts: AccountEntity[],
  hosts: HostEntity[],
): RuleMatch {
  const when = rule.when;
  const held: string[] = [];
  const fail = (why: string): RuleMatch => ({ matched: false, explanation: [why], accounts: [], hosts: [] });

  if (when.source && !when.source.includes(signal.source)) return fail(`source is ${signal.source}, not ${when.source.join(' or ')}`);
  if (when.source) held.push(`source ${signal.source}`);
  if (when.severity && !when.severity.includes(signal.severity)) return fail(`severity is ${signal.severity}, not ${when.severity.join(' or ')}`);
  if (when.severity) held.push(`severity ${signal.severity}`);
  for (const name of ['tactics', 'techniques', 'products', 'labels'] as const) {
    const wanted = sets[name];
    if (!wanted) continue;
    const present = lowered[name];
    let hit = -1;
    for (let i = 0; i < present.length && hit < 0; i++) {
      const value = present[i] as string;
      // `T1078` in a policy covers the sub-techniques `T1078.004` a signal may name.
      if (wanted.has(value) || (name === 'techniques' && wanted.has(value.split('.')[0] as string))) hit = i;
    }
    if (hit < 0) return fail(`${name}: none of ${when[name]?.join(', ')} (has ${signal[name].length ? signal[name].join(', ') : 'none'})`);
    held.push(`${name.replace(/s$/, '')} ${signal[name][hit]}`);
  }
  if (when.score) {
    if (!compare(score, when.score.op, when.score.value)) return fail(`score ${score} is not ${when.score.op} ${when.score.value}`);
    held.push(`score ${score} ${when.score.op} ${when.score.value}`);
  }

  const eligibleAccounts = filterAccounts(accounts, when, held);
  const eligibleHosts = filterHosts(hosts, when, held);
  if (typeof eligibleAccounts === 'string') return fail(eligibleAccounts);
  if (typeof eligibleHosts === 'string') return fail(eligibleHosts);
  if (when.entity) {
    const has = when.entity.filter((k) => (k === 'account' ? eligibleAccounts.length : eligibleHosts.length) > 0);
    if (has.length === 0) return fail(`no ${when.entity.join(' or ')} entity it could act on`);
    held.push(`has ${has.join(' and ')}`);
  }
  return { matched: true, explanation: held, accounts: eligibleAccounts, hosts: eligibleHosts };
}

/** Accounts meeting the account conditions; a string explains why none does. */
function filterAccounts(accounts: AccountEntity[], when: RuleConditions, held: string[]): AccountEntity[] | string {
  if (!when.userRisk && when.privileged === undefined) return accounts;
  const eligible: AccountEntity[] = [];
  let unknown = 0;
  let firstUnknown: AccountEntity | undefined;
  for (const a of accounts) {
    if ((when.userRisk && a.userRisk === undefined) || (when.privileged !== undefined && a.privileged === undefined)) {
      unknown++;
      firstUnknown ??= a;
    }
    if (
      (!when.userRisk || (a.userRisk !== undefined && when.userRisk.includes(a.userRisk))) &&
      (when.privileged === undefined || a.privileged === when.privileged)
    )
      eligible.push(a);
  }
  const wanted = [when.userRisk && `userRisk ${when.userRisk.join('/')}`, when.privileged !== undefined && `privileged ${when.privileged}`]
    .filter(Boolean)
    .join(', ');
  if (eligible.length === 0) {
    // Name the account when there is one; count them when there are many (a 200-entity incident).
    const why =
      firstUnknown === undefined
        ? ''
        : unknown === 1
          ? ` (${accountLabel(firstUnknown)}: risk or privilege unknown)`
          : ` (${unknown} accounts with unknown risk or privilege)`;
    return `no account with ${wanted}${why}`;
  }
  held.push(`${eligible.length} account(s) with ${wanted}`);
  return eligible;
}

function filterHosts(hosts: HostEntity[], when: RuleConditions, held: string[]): HostEntity[] | string {
  if (!when.deviceRisk && !when.deviceTags) return hosts;
  const eligible = hosts.filter(
    (h) =>
      (!when.deviceRisk || (h.deviceRisk !== undefined && when.deviceRisk.includes(h.deviceRisk))) &&
      (!when.deviceTags || (h.tags !== undefined && h.tags.some((t) => when.deviceTags?.some((w) => sameText(w, t))))),
  );
  const wanted = [when.deviceRisk && `deviceRisk ${when.deviceRisk.join('/')}`, when.deviceTags && `a tag of ${when.deviceTags.join('/')}`]
    .filter(Boolean)
    .join(', ');
  const unknown = hosts.filter((h) => (when.deviceRisk && h.deviceRisk === undefined) || (when.deviceTags && h.tags === undefined)).length;
  if (eligible.length === 0) return `no device with ${wanted}${unknown ? ` (${unknown} device(s) with unknown risk or tags)` : ''}`;
  held.push(`${eligible.length} device(s) with ${wanted}`);
  return eligible;
}

function sameText(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}

function compare(score: number, op: ScoreOperator, value: number): boolean {
  switch (op) {
    case '>=':
      return score >= value;
    case '>':
      return score > value;
    case '<=':
      return score <= value;
    case '<':
      return score < value;
    case '==':
      return score === value;
  }
}
