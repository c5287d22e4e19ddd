import type { ActionTarget } from '../actions/target';
import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import { ACTIONS, type TargetType } from '../actions/catalogue';
import type { ActionStep, PolicyRule, RuleConditions, ScoreOperator } from './schema';
import { NameIndex } from '../signals/names';
import { accountLabel } from './score';

const NAME_LISTS = ['tactics', 'techniques', 'products', 'labels'] as const;
type NameList = (typeof NAME_LISTS)[number];

/**
 * A rule prepared once per policy load, so that judging a signal is lookups and comparisons: its name lists
 * indexed, and the fixed words of its explanations (the lists it names, joined) already written.
 */
export interface CompiledRule {
  rule: PolicyRule;
  /** The rule's actions, each with the type of target it acts on. */
  steps: Array<{ step: ActionStep; targetType: TargetType }>;
  lists: Array<{ name: NameList; singular: string; wanted: NameIndex<true>; text: string }>;
  /** `userRisk high/medium, privileged true`: what the rule asks of an account; undefined when it asks nothing. */
  accountWants?: string;
  /** `deviceRisk High, a tag of server`: what the rule asks of a device; undefined when it asks nothing. */
  hostWants?: string;
  /** The rule's `deviceTags`, indexed. */
  deviceTags?: NameIndex<true>;
}

export function compileRule(rule: PolicyRule): CompiledRule {
  const when = rule.when;
  const lists: CompiledRule['lists'] = [];
  for (const name of NAME_LISTS) {
    const names = when[name];
    if (names) lists.push({ name, singular: name.slice(0, -1), wanted: NameIndex.of(names), text: names.join(', ') });
  }
  const compiled: CompiledRule = { rule, steps: rule.then.map((step) => ({ step, targetType: ACTIONS[step.kind].target })), lists };
  const accountWants = [when.userRisk && `userRisk ${when.userRisk.join('/')}`, when.privileged !== undefined && `privileged ${when.privileged}`].filter(
    Boolean,
  );
  const hostWants = [when.deviceRisk && `deviceRisk ${when.deviceRisk.join('/')}`, when.deviceTags && `a tag of ${when.deviceTags.join('/')}`].filter(Boolean);
  if (accountWants.length) compiled.accountWants = accountWants.join(', ');
  if (hostWants.length) compiled.hostWants = hostWants.join(', ');
  if (when.deviceTags) compiled.deviceTags = NameIndex.of(when.deviceTags);
  return compiled;
}

/** An entity an action could target, with its target and target id worked out once per decision. */
export interface Candidate<E extends AccountEntity | HostEntity = AccountEntity | HostEntity> {
  entity: E;
  target: ActionTarget;
  /** `targetId(target)`: equal ids, same target. */
  id: string;
  /** `targetKeyPart(id)`: the target's part of its idempotency keys. */
  keyPart: string;
}

/** A rule's verdict on a signal: the conditions that held and the targets it may act on, or the first that did not hold. */
export type RuleMatch =
  | {
      matched: true;
      explanation: string[];
      /** The entities the rule's actions may target: those that satisfy the rule's entity conditions. */
      accounts: readonly Candidate<AccountEntity>[];
      hosts: readonly Candidate<HostEntity>[];
    }
  | { matched: false; explanation: string[] };

/**
 * Does a rule apply to a signal, and to which of its entities? Signal conditions (source, severity, tactics, …) gate
 * the rule; entity conditions (userRisk, privileged, deviceRisk, deviceTags) choose the targets. Unknown entity data
 * never satisfies a condition: the engine does not act on what it does not know.
 */
export function matchRule(
  compiled: CompiledRule,
  signal: Signal,
  score: number,
  accounts: readonly Candidate<AccountEntity>[],
  hosts: readonly Candidate<HostEntity>[],
): RuleMatch {
  const when = compiled.rule.when;
  const held: string[] = [];

  if (when.source) {
    if (!when.source.includes(signal.source)) return fail(`source is ${signal.source}, not ${when.source.join(' or ')}`);
    held.push(`source ${signal.source}`);
  }
  if (when.severity) {
    if (!when.severity.includes(signal.severity)) return fail(`severity is ${signal.severity}, not ${when.severity.join(' or ')}`);
    held.push(`severity ${signal.severity}`);
  }
  for (const { name, singular, wanted, text } of compiled.lists) {
    const present = signal[name];
    let hit: string | undefined;
    for (const value of present) {
      if (wanted.get(value, name === 'techniques')) {
        hit = value;
        break;
      }
    }
    if (hit === undefined) return fail(`${name}: none of ${text} (has ${present.length ? present.join(', ') : 'none'})`);
    held.push(`${singular} ${hit}`);
  }
  if (when.score) {
    if (!compare(score, when.score.op, when.score.value)) return fail(`score ${score} is not ${when.score.op} ${when.score.value}`);
    held.push(`score ${score} ${when.score.op} ${when.score.value}`);
  }

  const eligibleAccounts = compiled.accountWants === undefined ? found(accounts) : filterAccounts(accounts, when, compiled.accountWants, held);
  if (!eligibleAccounts.found) return fail(eligibleAccounts.why);
  const eligibleHosts = compiled.hostWants === undefined ? found(hosts) : filterHosts(hosts, compiled, compiled.hostWants, held);
  if (!eligibleHosts.found) return fail(eligibleHosts.why);
  if (when.entity) {
    let has = '';
    for (const kind of when.entity) {
      if ((kind === 'account' ? eligibleAccounts.candidates.length : eligibleHosts.candidates.length) > 0) has = has ? `${has} and ${kind}` : kind;
    }
    if (!has) return fail(`no ${when.entity.join(' or ')} entity it could act on`);
    held.push(`has ${has}`);
  }
  return { matched: true, explanation: held, accounts: eligibleAccounts.candidates, hosts: eligibleHosts.candidates };
}

function fail(why: string): RuleMatch {
  return { matched: false, explanation: [why] };
}

/** The candidates that meet a rule's entity conditions, or why none does. */
type Eligible<E extends AccountEntity | HostEntity> = { found: true; candidates: readonly Candidate<E>[] } | { found: false; why: string };

function found<E extends AccountEntity | HostEntity>(candidates: readonly Candidate<E>[]): Eligible<E> {
  return { found: true, candidates };
}

/** Accounts meeting the account conditions, or why none does. */
function filterAccounts(accounts: readonly Candidate<AccountEntity>[], when: RuleConditions, wanted: string, held: string[]): Eligible<AccountEntity> {
  const eligible: Candidate<AccountEntity>[] = [];
  let unknown = 0;
  let firstUnknown: AccountEntity | undefined;
  for (const candidate of accounts) {
    const a = candidate.entity;
    if ((when.userRisk && a.userRisk === undefined) || (when.privileged !== undefined && a.privileged === undefined)) {
      unknown++;
      firstUnknown ??= a;
    }
    if (
      (!when.userRisk || (a.userRisk !== undefined && when.userRisk.includes(a.userRisk))) &&
      (when.privileged === undefined || a.privileged === when.privileged)
    )
      eligible.push(candidate);
  }
  if (eligible.length === 0) {
    // Name the account when there is one; count them when there are many (a 200-entity incident).
    const why =
      firstUnknown === undefined
        ? ''
        : unknown === 1
          ? ` (${accountLabel(firstUnknown)}: risk or privilege unknown)`
          : ` (${unknown} accounts with unknown risk or privilege)`;
    return { found: false, why: `no account with ${wanted}${why}` };
  }
  held.push(`${eligible.length} account(s) with ${wanted}`);
  return found(eligible);
}

/** Devices meeting the device conditions, or why none does. */
function filterHosts(hosts: readonly Candidate<HostEntity>[], compiled: CompiledRule, wanted: string, held: string[]): Eligible<HostEntity> {
  const { rule, deviceTags } = compiled;
  const when = rule.when;
  const eligible: Candidate<HostEntity>[] = [];
  let unknown = 0;
  for (const candidate of hosts) {
    const h = candidate.entity;
    if ((when.deviceRisk && h.deviceRisk === undefined) || (when.deviceTags && h.tags === undefined)) unknown++;
    if (
      (!when.deviceRisk || (h.deviceRisk !== undefined && when.deviceRisk.includes(h.deviceRisk))) &&
      (!deviceTags || (h.tags !== undefined && deviceTags.firstOf(h.tags) !== undefined))
    )
      eligible.push(candidate);
  }
  if (eligible.length === 0) return { found: false, why: `no device with ${wanted}${unknown ? ` (${unknown} device(s) with unknown risk or tags)` : ''}` };
  held.push(`${eligible.length} device(s) with ${wanted}`);
  return found(eligible);
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
