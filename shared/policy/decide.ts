import type { ActionKind, PlannableActionKind } from '../actions/catalogue';
import { idempotencyKeys, targetKeyPart } from '../actions/idempotency';
import { deviceTarget, targetId, targetLabel, userTarget } from '../actions/target';
import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import { approvalRequired, compileApprovals, type CompiledApproval } from './approvals';
import { type Decision, type PlannedAction, type PolicyRef, type RuleResult, type SkippedAction, type SkipReason } from './decision';
import type { LoadedPolicy } from './load';
import { checkAccount, checkHost, indexProtection, type ProtectionIndex } from './protection';
import type { ActionStep, CapGuardrail, Mode } from './schema';
import { indexRisk, riskScore, type RiskIndex } from './score';
import { compileRule, matchRule, type Candidate, type CompiledRule } from './rules';

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
}

export const capKey = (cap: CapGuardrail): string => `${cap.action}/${cap.per.text}`;

/**
 * The policy module's one entry point: a pure function from a signal (and the ledger's counts) to an explained
 * decision. Same inputs, same decision: no clock, no randomness, no I/O.
 *
 * Order of judgement for each (action, target) a matched rule wants — first hit wins:
 * duplicate (an earlier rule already judged it) -> protected -> needs-approval (including "the payload and the
 * directory disagree on who this is" and "cannot verify it is not protected") -> circuit-open (cap reached) -> planned.
 */
export function decide(signal: Signal, compiled: CompiledPolicy, context: DecisionContext = {}): Decision {
  const { policy } = compiled;
  const globalMode: Mode = context.modeOverride === 'audit' || policy.mode === 'audit' ? 'audit' : 'enforce';
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
   * One verdict per (action, target): later rules that want it again are recorded as duplicates of the first. Keyed
   * by target id, then by kind (which fixes the target's type): the id string already exists and has its hash cached,
   * where a combined key would be built, copied and hashed for every pair.
   */
  const judgedBy = new Map<string, Verdict[]>();
  const capCount = new Map<string, number>();

  for (const compiledRule of compiled.rules) {
    const { rule } = compiledRule;
    const mode: Mode = globalMode === 'audit' || rule.mode === 'audit' ? 'audit' : 'enforce';
    if (!rule.enabled) {
      rules.push({ ruleId: rule.id, matched: false, mode, explanation: ['disabled'] });
      continue;
    }
    const match = matchRule(compiledRule, signal, score.total, accounts, hosts);
    rules.push({ ruleId: rule.id, matched: match.matched, mode, explanation: match.explanation });
    if (!match.matched) continue;
    const reason = `rule ${rule.id}: ${match.explanation.join(', ')}`;

    for (const { step, targetType } of compiledRule.steps) {
      const candidates: readonly Candidate[] = targetType === 'user' ? match.accounts : match.hosts;
      if (candidates.length === 0) {
        skipped.push({ kind: step.kind, ruleId: rule.id, reason: 'no-target', detail: `the signal has no ${targetType} this rule may act on` });
        continue;
      }
      for (const { entity, target, id, keyPart } of candidates) {
        const judged = judgedBy.get(id);
        const first = judged === undefined ? undefined : verdictOn(judged, step.kind);
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
        const skip = judge(step, entity, signal, compiled, capCount, context);
        const verdict: Verdict = { kind: step.kind, ruleId: rule.id, verdict: skip ? skip.reason : 'planned', key };
        if (judged === undefined) judgedBy.set(id, [verdict]);
        else judged.push(verdict);
        if (skip) {
          skipped.push({ kind: step.kind, target, idempotencyKey: key, params: step.params, ruleId: rule.id, mode, reason: skip.reason, detail: skip.detail });
          continue;
        }
        actions.push({ idempotencyKey: key, kind: step.kind, target, params: step.params, ruleId: rule.id, mode, reason });
      }
    }
  }

  const unknown = unknownData(accounts, hosts, compiled);
  return decisionOf(signal, compiled, {
    mode: globalMode,
    score,
    rules,
    actions,
    skipped,
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
  const mode: Mode = context.modeOverride === 'audit' || compiled.policy.mode === 'audit' ? 'audit' : 'enforce';
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
    const skip = judge(request.step, entity, signal, compiled, new Map(), context);
    if (skip) skipped.push({ kind, target, idempotencyKey: key, params, ruleId: REQUEST_RULE, mode, reason: skip.reason, detail: skip.detail });
    else actions.push({ idempotencyKey: key, kind, target, params, ruleId: REQUEST_RULE, mode, reason: request.reason });
  }
  return decisionOf(signal, compiled, {
    mode,
    score: riskScore(signal, compiled.policy.risk, compiled.risk),
    rules: [{ ruleId: REQUEST_RULE, matched: true, mode, explanation: [`requested: ${request.reason}`] }],
    actions,
    skipped,
    notes: signal.notes.slice(),
  });
}

/** A decision on `signal` under `compiled`, with what was judged, and its one-line summary. */
function decisionOf(signal: Signal, compiled: CompiledPolicy, judged: Pick<Decision, 'mode' | 'score' | 'rules' | 'actions' | 'skipped' | 'notes'>): Decision {
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

/** The first judgement of an (action, target), which later rules' wanting it again are recorded as duplicates of. */
interface Verdict {
  kind: PlannableActionKind;
  ruleId: string;
  verdict: SkipReason | 'planned';
  key: string;
}

/** The verdict on one kind of action among a target's (a loop: no closure per candidate action). */
function verdictOn(judged: Verdict[], kind: PlannableActionKind): Verdict | undefined {
  for (const verdict of judged) if (verdict.kind === kind) return verdict;
  return undefined;
}

/** One action to judge: a rule's step, or what an analyst asked for (a rollback included). */
export type RequestedStep = { kind: ActionKind; params: ActionStep['params'] };

function judge(
  step: RequestedStep,
  entity: AccountEntity | HostEntity,
  signal: Signal,
  compiled: CompiledPolicy,
  capCount: Map<string, number>,
  context: DecisionContext,
): Pick<SkippedAction, 'reason' | 'detail'> | undefined {
  // Not in the directory (or not in Defender): there is no one to act on, and no cap is spent on it.
  if (entity.notFound !== undefined) return { reason: 'no-target', detail: entity.notFound };
  const verdict = entity.kind === 'account' ? checkAccount(entity, compiled.protection) : checkHost(entity, compiled.protection);
  if (verdict.status === 'protected') return { reason: 'protected', detail: verdict.why };
  if (entity.notRead !== undefined) return { reason: 'needs-approval', detail: entity.notRead };
  if (entity.malformed !== undefined) return { reason: 'needs-approval', detail: `an identifier the payload gave could not be read: ${entity.malformed}` };
  if (verdict.status === 'conflict') return { reason: 'needs-approval', detail: verdict.why };
  if (verdict.status === 'unverified') return { reason: 'needs-approval', detail: `cannot verify it is not protected: ${verdict.why}` };

  const approval = approvalRequired(compiled.approvals, step.kind, entity, signal.source);
  if (approval !== undefined) return { reason: 'needs-approval', detail: approval };

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
  for (const { entity } of accounts) {
    if (entity.userRisk === undefined) noRisk++;
    if (entity.privileged === undefined) noPrivilege++;
  }
  for (const { entity } of hosts) if (entity.deviceRisk === undefined || entity.tags === undefined) noDeviceData++;
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
  return summary;
}
