import type { ActionKind, PlannableActionKind } from '../actions/catalogue';
import { idempotencyKeys, targetKeyPart } from '../actions/idempotency';
import { deviceTarget, targetId, targetLabel, userTarget, type ActionTarget } from '../actions/target';
import type { AccountEntity, EntityData, HostEntity, Signal } from '../signals/signal';
import { approvalRequired, compileApprovals, lackOfVerdict, type CompiledApproval } from './approvals';
import { type Decision, type PlannedAction, type PolicyRef, type RuleResult, type SkippedAction, type SkipReason, type WaitingAction } from './decision';
import type { LoadedPolicy } from './load';
import { checkAccount, checkHost, indexProtection, type ProtectionIndex } from './protection';
import { effectiveMode } from './mode';
import type { ActionStep, CapGuardrail, Mode } from './schema';
import { indexRisk, riskScore, type RiskIndex } from './score';
import { compileRule, matchRule, type Candidate, type CompiledRule, type ScoreRange } from './rules';
import { bothLacks, heldForLack, lackOf, lackReasons, type Lack } from './unavailable';

/** A policy prepared for deciding: its lists indexed once, at load, not per signal. */
export interface CompiledPolicy extends LoadedPolicy {
  /** What each decision says of the policy that made it: one frozen object, not one per decision. */
  ref: Readonly<PolicyRef>;
  protection: ProtectionIndex;
  approvals: CompiledApproval[];
  rules: CompiledRule[];
  risk: RiskIndex;
  /** Groups the policy names (protected, approvals): enrichment checks membership of these only. */
  groupsOfInterest: string[];
  /** Which entity data some rule reads: the decision notes where that data is unknown. */
  entityData: { usesUserRisk: boolean; usesPrivilege: boolean; usesDeviceData: boolean };
  /** The caps that apply to each action kind, with their keys: looked up per action, so built once. */
  capsByKind: Map<string, Array<{ key: string; max: number; per: string; perMs: number }>>;
}

export function compilePolicy(loaded: LoadedPolicy, engineIdentities: readonly string[] = []): CompiledPolicy {
  const ids = [...new Set(engineIdentities.map((id) => id.toLowerCase()))];
  return {
    ...loaded,
    ref: Object.freeze({ digest: loaded.digest, origin: loaded.origin }),
    protection: indexProtection(loaded.policy.protected, ids),
    approvals: compileApprovals(loaded.policy.guardrails.approvals),
    rules: loaded.policy.rules.map(compileRule),
    entityData: {
      usesUserRisk: loaded.policy.rules.some((r) => r.when.userRisk),
      usesPrivilege: loaded.policy.rules.some((r) => r.when.privileged !== undefined),
      usesDeviceData: loaded.policy.rules.some((r) => r.when.deviceRisk || r.when.deviceTags),
    },
    risk: indexRisk(loaded.policy.risk),
    groupsOfInterest: [
      ...new Set([...loaded.policy.protected.groups, ...loaded.policy.guardrails.approvals.flatMap((a) => a.when.groups ?? [])].map((g) => g.toLowerCase())),
    ],
    capsByKind: loaded.policy.guardrails.caps.reduce((byKind, cap) => {
      const list = byKind.get(cap.action) ?? [];
      list.push({ key: capKey(cap), max: cap.max, per: cap.per.text, perMs: cap.per.ms });
      return byKind.set(cap.action, list);
    }, new Map<string, Array<{ key: string; max: number; per: string; perMs: number }>>()),
  };
}

export interface DecisionContext {
  /** From settings (RESPONDER_MODE). It can only make things stricter: `audit` here wins over the policy. */
  modeOverride?: Mode;
  /** How many actions each cap has already counted in its window, from the ledger; keyed by `capKey`. */
  capUsage?: ReadonlyMap<string, number>;
  /**
   * Which look at the signal this is (1 for the first), and whether it is the last: an action whose verdict reads data
   * unavailable for now waits for it (the engine looks again), except on the last look, where it is held for a human.
   * Absent: the first of several.
   */
  look?: { evaluation: number; last: boolean };
}

export const capKey = (cap: CapGuardrail): string => `${cap.action}/${cap.per.text}`;

/**
 * The policy module's one entry point: a pure function from a signal (and the ledger's counts) to an explained
 * decision. Same inputs, same decision: no clock, no randomness, no I/O.
 *
 * Order of judgement for each (action, target) a matched rule wants — first hit wins:
 * duplicate (an earlier rule already judged it) -> protected -> needs-approval (including "the payload and the
 * directory disagree on who this is" and "cannot verify it is not protected") -> circuit-open (cap reached) -> planned.
 *
 * Data unavailable for now (enrichment met a spent budget, a 429, a 5xx) is neither a match nor a miss: an (action,
 * target) whose rule, guardrail or protection check reads it waits (`waiting`), and so does one a later rule wants
 * while an earlier rule that waits may yet claim it with other parameters or mode. What the other rules and targets
 * decide stands. On the last look (`context.look`), what still waits is held for a human instead.
 */
export function decide(signal: Signal, compiled: CompiledPolicy, context: DecisionContext = {}): Decision {
  const { policy } = compiled;
  const globalMode = effectiveMode(policy.mode, context.modeOverride);
  const score = riskScore(signal, policy.risk, compiled.risk);
  // Each entity's target and target key, once: rules and steps below carry them instead of rebuilding them.
  const accounts: Candidate<AccountEntity>[] = [];
  const hosts: Candidate<HostEntity>[] = [];
  for (const entity of signal.entities) {
    if (entity.kind === 'other') continue;
    const target = entity.kind === 'account' ? userTarget(entity) : deviceTarget(entity);
    const id = targetId(target);
    if (id === undefined) continue; // noted by the normalizer: nothing identifies it
    const keyPart = targetKeyPart(id);
    if (entity.kind === 'account') accounts.push({ entity, target, id, keyPart });
    else hosts.push({ entity, target, id, keyPart });
  }

  const keyOf = idempotencyKeys(signal);
  const rules: RuleResult[] = [];
  const actions: PlannedAction[] = [];
  const skipped: SkippedAction[] = [];
  /**
   * The verdicts on each (action, target), keyed by target id, then by kind (which fixes the target's type): one
   * definite verdict (later rules that want it again are recorded as duplicates of it), or the rules waiting to know
   * whether they want it. The id string already exists and has its hash cached, where a combined key would be built,
   * copied and hashed for every pair.
   */
  const judgedBy = new Map<string, Verdict[]>();
  const capCount = new Map<string, number>();
  const range: ScoreRange = { total: score.total, ifRead: once(() => scoreOnceRead(signal, compiled)) };

  for (const compiledRule of compiled.rules) {
    const { rule } = compiledRule;
    const mode: Mode = globalMode === 'audit' || rule.mode === 'audit' ? 'audit' : 'enforce';
    if (!rule.enabled) {
      rules.push({ ruleId: rule.id, matched: false, mode, explanation: ['disabled'] });
      continue;
    }
    const match = matchRule(compiledRule, signal, range, accounts, hosts);
    rules.push({ ruleId: rule.id, matched: match.matched, mode, ...(!match.matched && match.waiting && { waiting: true }), explanation: match.explanation });
    // Whether it may act on a target waits for data: so does each action it would take on it.
    const waitOn = (step: ActionStep, { candidate, lack }: { candidate: Candidate; lack: Lack }): void => {
      const earlier = verdictsOn(judgedBy, candidate.id, step.kind);
      if (earlier.some((v) => v.waiting === undefined)) return; // judged by an earlier rule: that stands, whatever this one wants
      addVerdict(judgedBy, candidate.id, {
        kind: step.kind,
        ruleId: rule.id,
        key: keyOf(step.kind, candidate.keyPart),
        waiting: { step, mode, target: candidate.target, lack },
      });
    };
    if (!match.matched) {
      if (match.waiting)
        for (const { step, targetType } of compiledRule.steps)
          for (const pending of targetType === 'user' ? match.waiting.accounts : match.waiting.hosts) waitOn(step, pending);
      continue;
    }
    const reason = `rule ${rule.id}: ${match.explanation.join(', ')}`;

    for (const { step, targetType } of compiledRule.steps) {
      const candidates: readonly Candidate[] = targetType === 'user' ? match.accounts : match.hosts;
      const pending = targetType === 'user' ? match.pending.accounts : match.pending.hosts;
      if (candidates.length === 0 && pending.length === 0) {
        skipped.push({ kind: step.kind, ruleId: rule.id, reason: 'no-target', detail: `the signal has no ${targetType} this rule may act on` });
        continue;
      }
      for (const { entity, target, id, keyPart } of candidates) {
        const earlier = verdictsOn(judgedBy, id, step.kind);
        const first = earlier.find((v) => v.waiting === undefined);
        if (first !== undefined) {
          skipped.push({
            kind: step.kind,
            target,
            idempotencyKey: first.key,
            params: step.params,
            ruleId: rule.id,
            mode,
            reason: 'duplicate',
            detail: `already ${first.verdict === 'planned' ? 'planned' : `judged ${first.verdict}`} by rule ${first.ruleId}`,
          });
          continue;
        }
        const key = keyOf(step.kind, keyPart);
        // An earlier rule that waits may yet claim it with other parameters or mode: which one acts waits for its data.
        const claim = earlier.find((v) => v.waiting !== undefined && (v.waiting.mode !== mode || !sameParams(v.waiting.step, step)));
        const judgement = claim?.waiting ? { wait: claim.waiting.lack } : judge(step, entity, signal, compiled, capCount, context);
        if (judgement && 'wait' in judgement) {
          addVerdict(judgedBy, id, { kind: step.kind, ruleId: rule.id, key, waiting: { step, mode, target, lack: judgement.wait } });
          continue;
        }
        // Earlier rules waiting for it would take the same action: whichever of them matches, this verdict is theirs.
        addVerdict(judgedBy, id, { kind: step.kind, ruleId: rule.id, verdict: judgement ? judgement.reason : 'planned', key });
        if (judgement) {
          skipped.push({
            kind: step.kind,
            target,
            idempotencyKey: key,
            params: step.params,
            ruleId: rule.id,
            mode,
            reason: judgement.reason,
            detail: judgement.detail,
          });
          continue;
        }
        actions.push({ idempotencyKey: key, kind: step.kind, target, params: step.params, ruleId: rule.id, mode, reason });
      }
      for (const waiting of pending) waitOn(step, waiting);
    }
  }

  const waiting = stillWaiting(judgedBy);
  const look = context.look ?? { evaluation: 1, last: false };
  // The last look: what still waits is held for a human with what it lacked, never dropped.
  if (look.last)
    for (const w of waiting)
      skipped.push({
        kind: w.kind,
        target: w.target,
        idempotencyKey: w.idempotencyKey,
        params: w.params,
        ruleId: w.ruleId,
        mode: w.mode,
        reason: 'needs-approval',
        detail: heldForLack(w.lack, look.evaluation),
      });
  const unknown = unknownData(accounts, hosts, compiled);
  return decisionOf(signal, compiled, {
    mode: globalMode,
    score,
    rules,
    actions,
    skipped,
    waiting: look.last ? [] : waiting.map(waitingAction),
    notes: unknown.length ? signal.notes.concat(unknown) : signal.notes.slice(),
  });
}

/** What an analyst asks for: one action on the signal's one entity. */
export interface ActionRequest {
  step: RequestedStep;
  reason: string;
}

/** The rule id an analyst's request is explained under: no rule of the policy planned it. */
export const REQUEST_RULE = 'analyst-request';

/**
 * An analyst's request, judged as automation's actions are and by the same function: not found -> protected ->
 * needs-approval (guardrails may name `source: manual`) -> circuit-open -> planned, in the policy's mode. Pure.
 */
export function decideRequest(signal: Signal, request: ActionRequest, compiled: CompiledPolicy, context: DecisionContext = {}): Decision {
  const mode = effectiveMode(compiled.policy.mode, context.modeOverride);
  const entity = signal.entities.find((e): e is AccountEntity | HostEntity => e.kind !== 'other');
  const { kind, params } = request.step;
  const actions: PlannedAction[] = [];
  const skipped: SkippedAction[] = [];
  const target = entity === undefined ? undefined : entity.kind === 'account' ? userTarget(entity) : deviceTarget(entity);
  const id = target === undefined ? undefined : targetId(target);
  if (entity === undefined || target === undefined || id === undefined) {
    skipped.push({ kind, ruleId: REQUEST_RULE, reason: 'no-target', detail: 'the request names no target the engine can identify' });
  } else {
    const key = idempotencyKeys(signal)(kind, targetKeyPart(id));
    const judgement = judge(request.step, entity, signal, compiled, new Map(), context);
    // An analyst's request is not looked at again: what it would wait for, a human decides.
    const skip = judgement && 'wait' in judgement ? { reason: 'needs-approval' as const, detail: heldForLack(judgement.wait, 1) } : judgement;
    if (skip) skipped.push({ kind, target, idempotencyKey: key, params, ruleId: REQUEST_RULE, mode, reason: skip.reason, detail: skip.detail });
    else actions.push({ idempotencyKey: key, kind, target, params, ruleId: REQUEST_RULE, mode, reason: request.reason });
  }
  return decisionOf(signal, compiled, {
    mode,
    score: riskScore(signal, compiled.policy.risk, compiled.risk),
    rules: [{ ruleId: REQUEST_RULE, matched: true, mode, explanation: [`requested: ${request.reason}`] }],
    actions,
    skipped,
    waiting: [],
    notes: signal.notes.slice(),
  });
}

/** A decision on `signal` under `compiled`, with what was judged, and its one-line summary. */
function decisionOf(
  signal: Signal,
  compiled: CompiledPolicy,
  judged: Pick<Decision, 'mode' | 'score' | 'rules' | 'actions' | 'skipped' | 'waiting' | 'notes'>,
): Decision {
  const decision: Decision = {
    subject: signal.subject,
    source: signal.source,
    title: signal.title,
    severity: signal.severity,
    policy: compiled.ref,
    ...judged,
    summary: '',
  };
  decision.summary = summarize(decision);
  return decision;
}

/**
 * A judgement of an (action, target): definite (`verdict`: later rules' wanting it again are recorded as duplicates of
 * it), or a rule's that waits for data to know whether it wants it (`waiting`).
 */
interface Verdict {
  kind: PlannableActionKind;
  ruleId: string;
  verdict?: SkipReason | 'planned';
  key: string;
  waiting?: { step: ActionStep; mode: Mode; target: ActionTarget; lack: Lack };
}

/** The verdicts on one kind of action on a target, in the order the rules gave them. */
function verdictsOn(judgedBy: Map<string, Verdict[]>, id: string, kind: PlannableActionKind): Verdict[] {
  return judgedBy.get(id)?.filter((v) => v.kind === kind) ?? [];
}

/** Record a verdict; a definite one replaces the waiting ones on the same action (it is theirs too, or claims it first). */
function addVerdict(judgedBy: Map<string, Verdict[]>, id: string, verdict: Verdict): void {
  const judged = judgedBy.get(id);
  if (judged === undefined) judgedBy.set(id, [verdict]);
  else if (verdict.waiting !== undefined) judged.push(verdict);
  else judgedBy.set(id, [...judged.filter((v) => v.kind !== verdict.kind), verdict]);
}

function sameParams(a: ActionStep, b: ActionStep): boolean {
  return a.params.isolationType === b.params.isolationType;
}

/** A waiting action as the first rule that may want it would take it, waiting for what every such rule lacks. */
type StillWaiting = Omit<WaitingAction, 'data' | 'why' | 'retryAfterMs'> & { lack: Lack };

/** The (action, target) pairs no definite verdict was given, each once, in the order the rules reached them. */
function stillWaiting(judgedBy: Map<string, Verdict[]>): StillWaiting[] {
  const out: StillWaiting[] = [];
  for (const verdicts of judgedBy.values()) {
    const byKind = new Map<string, StillWaiting>();
    for (const { kind, ruleId, key, waiting } of verdicts) {
      if (waiting === undefined) continue;
      const first = byKind.get(kind);
      if (first) first.lack = bothLacks(first.lack, waiting.lack);
      else byKind.set(kind, { kind, target: waiting.target, idempotencyKey: key, params: waiting.step.params, ruleId, mode: waiting.mode, lack: waiting.lack });
    }
    out.push(...byKind.values());
  }
  return out;
}

function waitingAction({ lack, ...action }: StillWaiting): WaitingAction {
  return { ...action, data: lack.data, why: lackReasons(lack), ...(lack.retryAfterMs !== undefined && { retryAfterMs: lack.retryAfterMs }) };
}

/** `read`, run once, on first need. */
function once<T>(read: () => T): () => T {
  let done: { value: T } | undefined;
  return () => (done ??= { value: read() }).value;
}

/**
 * The highest the score could be once the risk data unavailable for now is read (each such datum at its riskiest), and
 * what that lacks; undefined when no data the score reads is unavailable for now.
 */
function scoreOnceRead(signal: Signal, compiled: CompiledPolicy): { total: number; lack: Lack } | undefined {
  const { risk } = compiled.policy;
  const riskiestUser = riskiest(risk.userRisk);
  const riskiestDevice = riskiest(risk.deviceRisk);
  let lack: Lack | undefined;
  const entities = signal.entities.map((entity) => {
    if (entity.kind === 'other' || entity.unavailable === undefined) return entity;
    const filled = { ...entity };
    const fill = (data: EntityData, value: unknown): void => {
      const missing = value === undefined ? undefined : lackOf(entity, data);
      if (missing === undefined) return;
      lack = bothLacks(lack, missing);
      Object.assign(filled, { [data]: value });
    };
    if (entity.kind === 'account') {
      fill('userRisk', riskiestUser);
      fill('privileged', risk.privileged > 0 ? true : undefined);
    } else fill('deviceRisk', riskiestDevice);
    return filled;
  });
  return lack && { total: riskScore({ ...signal, entities }, risk, compiled.risk).total, lack };
}

/** The level a risk table gives the most points, if it gives any. */
function riskiest<L extends string>(table: Partial<Record<L, number>>): L | undefined {
  let best: L | undefined;
  for (const [level, points] of Object.entries(table) as Array<[L, number]>)
    if (points > 0 && (best === undefined || points > (table[best] ?? 0))) best = level;
  return best;
}

/** One action to judge: a rule's step, or what an analyst asked for (a rollback included). */
export type RequestedStep = { kind: ActionKind; params: ActionStep['params'] };

/** An action's verdict: skipped and why, waiting for data unavailable for now, or (undefined) planned. */
type Judgement = Pick<SkippedAction, 'reason' | 'detail'> | { wait: Lack } | undefined;

function judge(
  step: RequestedStep,
  entity: AccountEntity | HostEntity,
  signal: Signal,
  compiled: CompiledPolicy,
  capCount: Map<string, number>,
  context: DecisionContext,
): Judgement {
  // Not in the directory (or not in Defender): there is no one to act on, and no cap is spent on it.
  if (entity.notFound !== undefined) return { reason: 'no-target', detail: entity.notFound };
  const verdict = entity.kind === 'account' ? checkAccount(entity, compiled.protection) : checkHost(entity, compiled.protection);
  if (verdict.status === 'protected') return { reason: 'protected', detail: verdict.why };
  if (entity.notRead !== undefined) return { reason: 'needs-approval', detail: entity.notRead };
  if (entity.malformed !== undefined) return { reason: 'needs-approval', detail: `an identifier the payload gave could not be read: ${entity.malformed}` };
  if (verdict.status === 'conflict' || verdict.status === 'unverified') {
    // The directory's record would tell, and could not be read for now: wait for it rather than ask a human.
    const lack = lackOfVerdict(entity, verdict);
    if (lack) return { wait: lack };
    return { reason: 'needs-approval', detail: verdict.status === 'conflict' ? verdict.why : `cannot verify it is not protected: ${verdict.why}` };
  }

  const approval = approvalRequired(compiled.approvals, step.kind, entity, signal.source);
  if (approval !== undefined) return 'hold' in approval ? { reason: 'needs-approval', detail: approval.hold } : { wait: approval.wait };

  const caps = compiled.capsByKind.get(step.kind);
  if (caps === undefined) return undefined;
  for (const cap of caps) {
    const used = (context.capUsage?.get(cap.key) ?? 0) + (capCount.get(cap.key) ?? 0);
    if (used >= cap.max) return { reason: 'circuit-open', detail: `cap reached: ${cap.max} ${step.kind} per ${cap.per} (${used} already counted)` };
  }
  // Counted only once the action is really planned, so skipped actions never consume the budget.
  for (const cap of caps) capCount.set(cap.key, (capCount.get(cap.key) ?? 0) + 1);
  return undefined;
}

function unknownData(accounts: Candidate<AccountEntity>[], hosts: Candidate<HostEntity>[], compiled: CompiledPolicy): string[] {
  const notes: string[] = [];
  const { usesUserRisk, usesPrivilege, usesDeviceData } = compiled.entityData;
  if (!usesUserRisk && !usesPrivilege && !usesDeviceData) return notes;
  let noRisk = 0;
  let noPrivilege = 0;
  let noDeviceData = 0;
  // Data unavailable only for now is not counted: what reads it waits for it (the decision's `waiting`).
  const forGood = (entity: AccountEntity | HostEntity, value: unknown, data: EntityData) => value === undefined && lackOf(entity, data) === undefined;
  for (const { entity } of accounts) {
    if (forGood(entity, entity.userRisk, 'userRisk')) noRisk++;
    if (forGood(entity, entity.privileged, 'privileged')) noPrivilege++;
  }
  for (const { entity } of hosts) if (forGood(entity, entity.deviceRisk, 'deviceRisk') || forGood(entity, entity.tags, 'deviceTags')) noDeviceData++;
  if (usesUserRisk && noRisk) notes.push(`user risk unknown for ${noRisk} of ${accounts.length} account(s): rules on userRisk cannot match them`);
  if (usesPrivilege && noPrivilege) notes.push(`privilege unknown for ${noPrivilege} of ${accounts.length} account(s): rules on privileged cannot match them`);
  if (usesDeviceData && noDeviceData)
    notes.push(`risk or tags unknown for ${noDeviceData} of ${hosts.length} device(s): rules on deviceRisk/deviceTags cannot match them`);
  return notes;
}

const SUMMARY_ACTIONS = 5;

/** One line for a human: score, rules, what is planned, what is held or refused. Built in one pass: every decision writes it. */
export function summarize(decision: Decision): string {
  let rules = '';
  for (const r of decision.rules) if (r.matched) rules = rules ? `${rules}, ${r.ruleId}` : `rules ${r.ruleId}`;
  // The first few by name; a large incident's summary stays one readable line.
  let planned = '';
  const shown = Math.min(decision.actions.length, SUMMARY_ACTIONS);
  for (let i = 0; i < shown; i++) {
    const a = decision.actions[i] as PlannedAction;
    planned += `${i ? '; ' : 'planned: '}${a.kind} ${targetLabel(a.target)}${a.mode === 'audit' ? ' (audit)' : ''}`;
  }
  if (decision.actions.length > SUMMARY_ACTIONS) planned += `; and ${decision.actions.length - SUMMARY_ACTIONS} more`;
  let held = 0;
  let refused = 0;
  for (const s of decision.skipped) {
    if (s.reason === 'needs-approval') held++;
    else if (s.reason === 'protected') refused++;
  }
  let summary = `score ${decision.score.total} | ${rules || 'no rule matched'} | ${planned || 'nothing planned'}`;
  if (held) summary += ` | ${held} held for approval`;
  if (refused) summary += ` | ${refused} refused (protected)`;
  if (decision.waiting.length)
    summary += ` | ${decision.waiting.length} waiting for data${decision.lookAgainAt ? ` (evaluated again at ${decision.lookAgainAt})` : ''}`;
  return summary;
}
