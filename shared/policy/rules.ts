import type { ActionTarget } from '../actions/target';
import { NAMED_ONLY_LABELS, type AccountEntity, type EntityData, type HostEntity, type Signal } from '../signals/signal';
import { ACTIONS, type TargetType } from '../actions/catalogue';
import type { ActionStep, PolicyRule, RuleConditions, ScoreOperator } from './schema';
import { NameIndex } from '../signals/names';
import { accountLabel } from './score';
import { bothLacks, lackedData, lackOf, type Lack } from './unavailable';

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

/** A candidate whose verdict waits for data unknown for now, and what it lacks. */
export interface Pending<E extends AccountEntity | HostEntity = AccountEntity | HostEntity> {
  candidate: Candidate<E>;
  lack: Lack;
}

/**
 * A rule's verdict on a signal: the conditions that held and the targets it may act on (and those that wait for data),
 * or the first condition that did not hold, or — when a condition cannot be told yet because data it reads is only
 * unavailable for now — every target it may act on once the data is read, each with what it waits for.
 */
export type RuleMatch =
  | {
      matched: true;
      explanation: string[];
      /** The entities the rule's actions may target: those that satisfy the rule's entity conditions. */
      accounts: readonly Candidate<AccountEntity>[];
      hosts: readonly Candidate<HostEntity>[];
      /** Entities whose entity conditions wait for data: neither targets nor ruled out. */
      pending: { accounts: readonly Pending<AccountEntity>[]; hosts: readonly Pending<HostEntity>[] };
    }
  | { matched: false; explanation: string[]; waiting?: { accounts: readonly Pending<AccountEntity>[]; hosts: readonly Pending<HostEntity>[] } };

/** The score as known, and, when some entity's risk is unavailable for now, the highest it could be once that is read. */
export interface ScoreRange {
  total: number;
  ifRead: () => { total: number; lack: Lack } | undefined;
}

/**
 * Does a rule apply to a signal, and to which of its entities? Signal conditions (source, severity, tactics, …) gate
 * the rule; entity conditions (userRisk, privileged, deviceRisk, deviceTags) choose the targets. Unknown entity data
 * never satisfies a condition: the engine does not act on what it does not know. Data unknown only for now (enrichment
 * met a spent budget, a 429, a 5xx) neither satisfies nor fails it: what depends on it waits.
 */
export function matchRule(
  compiled: CompiledRule,
  signal: Signal,
  score: ScoreRange,
  accounts: readonly Candidate<AccountEntity>[],
  hosts: readonly Candidate<HostEntity>[],
): RuleMatch {
  const when = compiled.rule.when;
  const held: string[] = [];
  // What the rule's own verdict waits for; a condition that fails on what is known still fails it.
  let lack: Lack | undefined;

  const unnamed = namedOnlyLabelUnnamed(compiled, signal);
  if (unnamed !== undefined) return fail(`a ${unnamed} finding is acted on only by a rule that names its label`);
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
    const { op, value } = when.score;
    const ifRead = score.ifRead();
    const verdict = scoreVerdict(op, value, score.total, ifRead?.total ?? score.total);
    if (verdict === false)
      return fail(`score ${score.total} is not ${op} ${value}${ifRead ? ` (nor could it be once its data is read: ${ifRead.total} at most)` : ''}`);
    if (verdict === true) held.push(`score ${score.total} ${op} ${value}`);
    else if (ifRead) {
      lack = bothLacks(lack, ifRead.lack);
      held.push(`score ${score.total}, up to ${ifRead.total} once ${lackedData(ifRead.lack)} is read: ${op} ${value} cannot be told yet`);
    }
  }

  const eligibleAccounts = compiled.accountWants === undefined ? everyone(accounts) : filterAccounts(accounts, when, compiled.accountWants, held);
  if (eligibleAccounts.why !== undefined) return fail(eligibleAccounts.why);
  const eligibleHosts = compiled.hostWants === undefined ? everyone(hosts) : filterHosts(hosts, compiled, compiled.hostWants, held);
  if (eligibleHosts.why !== undefined) return fail(eligibleHosts.why);
  // None eligible but some waiting: whether the rule applies at all waits for them.
  if (compiled.accountWants !== undefined && eligibleAccounts.candidates.length === 0) lack = bothLacks(lack, lackOfAll(eligibleAccounts.pending));
  if (compiled.hostWants !== undefined && eligibleHosts.candidates.length === 0) lack = bothLacks(lack, lackOfAll(eligibleHosts.pending));
  if (when.entity) {
    let has = '';
    for (const kind of when.entity) {
      if ((kind === 'account' ? eligibleAccounts.candidates.length : eligibleHosts.candidates.length) > 0) has = has ? `${has} and ${kind}` : kind;
    }
    const waits = when.entity.some((kind) => (kind === 'account' ? eligibleAccounts.pending.length : eligibleHosts.pending.length) > 0);
    if (!has && !waits) return fail(`no ${when.entity.join(' or ')} entity it could act on`);
    if (has) held.push(`has ${has}`);
  }
  if (lack !== undefined) {
    // Every target the rule may act on once it can be told, each waiting for the rule's data and its own.
    const waitingOn = <E extends AccountEntity | HostEntity>(met: Met<E>): Pending<E>[] => [
      ...met.candidates.map((candidate) => ({ candidate, lack: lack as Lack })),
      ...met.pending.map((p) => ({ candidate: p.candidate, lack: bothLacks(lack, p.lack) })),
    ];
    return {
      matched: false,
      explanation: [...held, `waiting for ${lackedData(lack)}`],
      waiting: { accounts: waitingOn(eligibleAccounts), hosts: waitingOn(eligibleHosts) },
    };
  }
  return {
    matched: true,
    explanation: held,
    accounts: eligibleAccounts.candidates,
    hosts: eligibleHosts.candidates,
    pending: { accounts: eligibleAccounts.pending, hosts: eligibleHosts.pending },
  };
}

/** The first named-only label (NAMED_ONLY_LABELS) a sweep's signal carries that the rule does not name, if any. */
function namedOnlyLabelUnnamed(compiled: CompiledRule, signal: Signal): string | undefined {
  if (signal.source !== 'sweep') return undefined;
  const named = compiled.lists.find((list) => list.name === 'labels')?.wanted;
  return signal.labels.find((label) => NAMED_ONLY_LABELS.has(label.toLowerCase()) && named?.get(label, false) === undefined);
}

function fail(why: string): RuleMatch {
  return { matched: false, explanation: [why] };
}

/** The candidates that meet a rule's entity conditions and those that wait for data, or why none does nor may. */
type Met<E extends AccountEntity | HostEntity> = { candidates: readonly Candidate<E>[]; pending: readonly Pending<E>[]; why?: string };

const NONE_PENDING: readonly Pending<never>[] = Object.freeze([]);

function everyone<E extends AccountEntity | HostEntity>(candidates: readonly Candidate<E>[]): Met<E> {
  return { candidates, pending: NONE_PENDING };
}

/** One condition on one entity's data: met, not met, or not known yet (what it lacks). */
type Condition = boolean | Lack;

/** The condition on `data`, given whether the known value meets it (undefined: unknown); unknown for good never does. */
function condition(entity: AccountEntity | HostEntity, data: EntityData, known: boolean | undefined): Condition {
  return known ?? lackOf(entity, data) ?? false;
}

/** Both conditions: one that fails fails both, whatever the other waits for. */
function both(a: Condition, b: Condition): Condition {
  if (a === false || b === false) return false;
  if (a === true) return b;
  return b === true ? a : bothLacks(a, b);
}

function lackOfAll(pending: readonly Pending[]): Lack {
  let lack: Lack | undefined;
  for (const p of pending) lack = bothLacks(lack, p.lack);
  return lack as Lack;
}

/** Accounts meeting the account conditions, and those waiting for data; or why none does nor may. */
function filterAccounts(accounts: readonly Candidate<AccountEntity>[], when: RuleConditions, wanted: string, held: string[]): Met<AccountEntity> {
  const eligible: Candidate<AccountEntity>[] = [];
  const pending: Pending<AccountEntity>[] = [];
  let unknown = 0;
  let firstUnknown: AccountEntity | undefined;
  for (const candidate of accounts) {
    const a = candidate.entity;
    const risk = when.userRisk ? condition(a, 'userRisk', a.userRisk === undefined ? undefined : when.userRisk.includes(a.userRisk)) : true;
    const privilege =
      when.privileged === undefined ? true : condition(a, 'privileged', a.privileged === undefined ? undefined : a.privileged === when.privileged);
    const met = both(risk, privilege);
    if (met === true) eligible.push(candidate);
    else if (met !== false) pending.push({ candidate, lack: met });
    else if ((when.userRisk && a.userRisk === undefined) || (when.privileged !== undefined && a.privileged === undefined)) {
      unknown++;
      firstUnknown ??= a;
    }
  }
  if (eligible.length === 0 && pending.length === 0) {
    // Name the account when there is one; count them when there are many (a 200-entity incident).
    const why =
      firstUnknown === undefined
        ? ''
        : unknown === 1
          ? ` (${accountLabel(firstUnknown)}: risk or privilege unknown)`
          : ` (${unknown} accounts with unknown risk or privilege)`;
    return { candidates: eligible, pending, why: `no account with ${wanted}${why}` };
  }
  held.push(mayHave(eligible.length, pending.length, 'account', wanted));
  return { candidates: eligible, pending };
}

/** Devices meeting the device conditions, and those waiting for data; or why none does nor may. */
function filterHosts(hosts: readonly Candidate<HostEntity>[], compiled: CompiledRule, wanted: string, held: string[]): Met<HostEntity> {
  const { rule, deviceTags } = compiled;
  const when = rule.when;
  const eligible: Candidate<HostEntity>[] = [];
  const pending: Pending<HostEntity>[] = [];
  let unknown = 0;
  for (const candidate of hosts) {
    const h = candidate.entity;
    const risk = when.deviceRisk ? condition(h, 'deviceRisk', h.deviceRisk === undefined ? undefined : when.deviceRisk.includes(h.deviceRisk)) : true;
    const tags = deviceTags ? condition(h, 'deviceTags', h.tags === undefined ? undefined : deviceTags.firstOf(h.tags) !== undefined) : true;
    const met = both(risk, tags);
    if (met === true) eligible.push(candidate);
    else if (met !== false) pending.push({ candidate, lack: met });
    else if ((when.deviceRisk && h.deviceRisk === undefined) || (when.deviceTags && h.tags === undefined)) unknown++;
  }
  if (eligible.length === 0 && pending.length === 0)
    return { candidates: eligible, pending, why: `no device with ${wanted}${unknown ? ` (${unknown} device(s) with unknown risk or tags)` : ''}` };
  held.push(mayHave(eligible.length, pending.length, 'device', wanted));
  return { candidates: eligible, pending };
}

/** `2 device(s) with deviceRisk High, 1 more may have it once its data is read`. */
function mayHave(eligible: number, pending: number, kind: string, wanted: string): string {
  if (eligible === 0) return `${pending} ${kind}(s) may have ${wanted} once their data is read`;
  return `${eligible} ${kind}(s) with ${wanted}${pending ? `, ${pending} more may have it once their data is read` : ''}`;
}

/** Whether every score from `low` to `high` meets the condition (true), none does (false), or it depends ('maybe'). */
function scoreVerdict(op: ScoreOperator, value: number, low: number, high: number): boolean | 'maybe' {
  if (op === '==') return value < low || value > high ? false : low === high ? true : 'maybe';
  const atLow = compare(low, op, value);
  return atLow === compare(high, op, value) ? atLow : 'maybe';
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
