import { ACTIONS } from '../actions/catalogue';
import { idempotencyKey } from '../actions/idempotency';
import { deviceTarget, targetKey, targetLabel, userTarget, type ActionTarget } from '../actions/target';
import type { AccountEntity, HostEntity, Signal } from '../signals/signal';
import { approvalRequired, compileApprovals, type CompiledApproval } from './approvals';
import type { Decision, PlannedAction, RuleResult, SkippedAction } from './decision';
import type { LoadedPolicy } from './load';
import { checkAccount, checkHost, indexProtection, type ProtectionIndex } from './protection';
import type { ActionStep, CapGuardrail, Mode, PolicyRule } from './schema';
import { indexRisk, riskScore, type RiskIndex } from './score';
import { lowerSignal, matchRule, ruleSets, type RuleSets } from './rules';

/** A policy prepared for deciding: its lists indexed once, at load, not per signal. */
export interface CompiledPolicy extends LoadedPolicy {
  protection: ProtectionIndex;
  approvals: CompiledApproval[];
  /** Rules with their name lists as lower-cased sets. */
  rules: Array<{ rule: PolicyRule; sets: RuleSets }>;
  risk: RiskIndex;
  /** Groups the policy names (protected, approvals): enrichment checks membership of these only. */
  groupsOfInterest: string[];
  /** The caps that apply to each action kind, with their keys: looked up per action, so built once. */
  capsByKind: Map<string, Array<{ key: string; max: number; per: string; perMs: number }>>;
}

export function compilePolicy(loaded: LoadedPolicy, engineIdentities: readonly string[] = []): CompiledPolicy {
  const ids = [...new Set(engineIdentities.map((id) => id.toLowerCase()))];
  return {
    ...loaded,
    protection: indexProtection(loaded.policy.protected, ids),
    approvals: compileApprovals(loaded.policy.guardrails.approvals),
    rules: loaded.policy.rules.map((rule) => ({ rule, sets: ruleSets(rule.when) })),
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
 * duplicate (an earlier rule already judged it) -> protected -> needs-approval (including "cannot verify it is not
 * protected") -> circuit-open (cap reached) -> planned.
 */
export function decide(signal: Signal, compiled: CompiledPolicy, context: DecisionContext = {}): Decision {
  const { policy } = compiled;
  const globalMode: Mode = context.modeOverride === 'audit' || policy.mode === 'audit' ? 'audit' : 'enforce';
  const lowered = lowerSignal(signal);
  const score = riskScore(signal, lowered, policy.risk, compiled.risk);
  // Each entity's target and target key, once: rules and steps below look them up instead of rebuilding them.
  const targets = new Map<AccountEntity | HostEntity, { target: ActionTarget; key: string }>();
  const accounts: AccountEntity[] = [];
  const hosts: HostEntity[] = [];
  for (const entity of signal.entities) {
    if (entity.kind === 'other') continue;
    const target = entity.kind === 'account' ? userTarget(entity) : deviceTarget(entity);
    const key = targetKey(target);
    if (key === undefined) continue; // noted by the normalizer: nothing identifies it
    targets.set(entity, { target, key });
    if (entity.kind === 'account') accounts.push(entity);
    else hosts.push(entity);
  }

  const rules: RuleResult[] = [];
  const actions: PlannedAction[] = [];
  const skipped: SkippedAction[] = [];
  /** One verdict per (action, target): later rules that want it again are recorded as duplicates of the first. */
  const judgedBy = new Map<string, { ruleId: string; verdict: string }>();
  const capCount = new Map<string, number>();

  for (const { rule, sets } of compiled.rules) {
    const mode: Mode = globalMode === 'audit' || rule.mode === 'audit' ? 'audit' : 'enforce';
    if (!rule.enabled) {
      rules.push({ ruleId: rule.id, matched: false, mode, explanation: ['disabled'] });
      continue;
    }
    const match = matchRule(rule, sets, signal, lowered, score.total, accounts, hosts);
    rules.push({ ruleId: rule.id, matched: match.matched, mode, explanation: match.explanation });
    if (!match.matched) continue;
    const reason = `rule ${rule.id}: ${match.explanation.join(', ')}`;

    for (const step of rule.then) {
      const candidates = ACTIONS[step.kind].target === 'user' ? match.accounts : match.hosts;
      if (candidates.length === 0) {
        skipped.push({ kind: step.kind, ruleId: rule.id, reason: 'no-target', detail: `the signal has no ${ACTIONS[step.kind].target} this rule may act on` });
        continue;
      }
      for (const entity of candidates) {
        const { target, key: tKey } = targets.get(entity) as { target: ActionTarget; key: string };
        const key = idempotencyKey(signal.subject, step.kind, tKey);
        const first = judgedBy.get(key);
        if (first !== undefined) {
          skipped.push({
            kind: step.kind,
            target,
            idempotencyKey: key,
            params: step.params,
            ruleId: rule.id,
            mode,
            reason: 'duplicate',
            detail: `already ${first.verdict} by rule ${first.ruleId}`,
          });
          continue;
        }
        const skip = judge(step, entity, signal, compiled, capCount, context);
        judgedBy.set(key, { ruleId: rule.id, verdict: skip ? `judged ${skip.reason}` : 'planned' });
        if (skip) {
          skipped.push({ kind: step.kind, target, idempotencyKey: key, params: step.params, ruleId: rule.id, mode, reason: skip.reason, detail: skip.detail });
          continue;
        }
        actions.push({ idempotencyKey: key, kind: step.kind, target, params: step.params, ruleId: rule.id, mode, reason });
      }
    }
  }

  const notes = [...signal.notes, ...unknownData(accounts, hosts, policy.rules)];
  const decision: Decision = {
    subject: signal.subject,
    source: signal.source,
    title: signal.title,
    severity: signal.severity,
    policy: { digest: compiled.digest, origin: compiled.origin },
    mode: globalMode,
    score,
    rules,
    actions,
    skipped,
    notes,
    summary: '',
  };
  decision.summary = summarize(decision);
  return decision;
}

function judge(
  step: ActionStep,
  entity: AccountEntity | HostEntity,
  signal: Signal,
  compiled: CompiledPolicy,
  capCount: Map<string, number>,
  context: DecisionContext,
): Pick<SkippedAction, 'reason' | 'detail'> | undefined {
  const verdict = entity.kind === 'account' ? checkAccount(entity, compiled.protection) : checkHost(entity, compiled.protection);
  if (verdict.status === 'protected') return { reason: 'protected', detail: verdict.why };
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

function unknownData(accounts: AccountEntity[], hosts: HostEntity[], rules: PolicyRule[]): string[] {
  const notes: string[] = [];
  const usesUserRisk = rules.some((r) => r.when.userRisk);
  const usesPrivilege = rules.some((r) => r.when.privileged !== undefined);
  const usesDeviceData = rules.some((r) => r.when.deviceRisk || r.when.deviceTags);
  const noRisk = accounts.filter((a) => a.userRisk === undefined).length;
  const noPrivilege = accounts.filter((a) => a.privileged === undefined).length;
  const noDeviceData = hosts.filter((h) => h.deviceRisk === undefined || h.tags === undefined).length;
  if (usesUserRisk && noRisk) notes.push(`user risk unknown for ${noRisk} of ${accounts.length} account(s): rules on userRisk cannot match them`);
  if (usesPrivilege && noPrivilege) notes.push(`privilege unknown for ${noPrivilege} of ${accounts.length} account(s): rules on privileged cannot match them`);
  if (usesDeviceData && noDeviceData)
    notes.push(`risk or tags unknown for ${noDeviceData} of ${hosts.length} device(s): rules on deviceRisk/deviceTags cannot match them`);
  return notes;
}

const SUMMARY_ACTIONS = 5;

/** One line for a human: score, rules, what is planned, what is held or refused. */
export function summarize(decision: Decision): string {
  const matched = decision.rules.filter((r) => r.matched).map((r) => r.ruleId);
  // The first few by name; a large incident's summary stays one readable line.
  const planned = decision.actions.slice(0, SUMMARY_ACTIONS).map((a) => `${a.kind} ${targetLabel(a.target)}${a.mode === 'audit' ? ' (audit)' : ''}`);
  if (decision.actions.length > SUMMARY_ACTIONS) planned.push(`and ${decision.actions.length - SUMMARY_ACTIONS} more`);
  const held = decision.skipped.filter((s) => s.reason === 'needs-approval').length;
  const refused = decision.skipped.filter((s) => s.reason === 'protected').length;
  const parts = [
    `score ${decision.score.total}`,
    matched.length ? `rules ${matched.join(', ')}` : 'no rule matched',
    planned.length ? `planned: ${planned.join('; ')}` : 'nothing planned',
  ];
  if (held) parts.push(`${held} held for approval`);
  if (refused) parts.push(`${refused} refused (protected)`);
  return parts.join(' | ');
}
