import type { ActionKind, ActionParams } from '../actions/catalogue';
import type { ActionTarget } from '../actions/target';
import type { EntityData, Severity, SignalSource } from '../signals/signal';
import type { Mode } from './schema';

/** One contribution to the risk score, shown as is in every decision. */
export interface ScoreFactor {
  factor: 'severity' | 'tactic' | 'technique' | 'product' | 'userRisk' | 'deviceRisk' | 'privileged';
  /** The value that earned the points: `High`, `CredentialAccess`, `high (jdoe@contoso.com)`. */
  value: string;
  points: number;
}

export interface RiskScore {
  /** 0-100: the sum of the factors, capped at 100. */
  total: number;
  factors: ScoreFactor[];
}

export interface RuleResult {
  ruleId: string;
  matched: boolean;
  mode: Mode;
  /** Whether it applies cannot be told yet: data it reads is unavailable for now, and its targets wait (`waiting`). */
  waiting?: boolean;
  /** The conditions that held (matched) or the first one that did not (not matched), or what it waits for. */
  explanation: string[];
}

export interface PlannedAction {
  idempotencyKey: string;
  kind: ActionKind;
  target: ActionTarget;
  params: ActionParams;
  ruleId: string;
  /** `audit`: recorded and followed through the pipeline, but no write API is ever called. */
  mode: Mode;
  reason: string;
}

export const SKIP_REASONS = ['protected', 'needs-approval', 'circuit-open', 'already-done', 'duplicate', 'no-target'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export interface SkippedAction {
  kind: ActionKind;
  /** Absent for `no-target`: the rule wanted the action but the signal had nothing it could apply to. */
  target?: ActionTarget;
  /** Present whenever there is a target: held actions are recorded under it and approved by it. */
  idempotencyKey?: string;
  params?: ActionParams;
  ruleId: string;
  mode?: Mode;
  reason: SkipReason;
  detail: string;
}

/**
 * An action a rule may want on a target, whose verdict waits for entity data enrichment could not read for now (a spent
 * budget, a 429, a 5xx): neither planned nor ruled out. The engine evaluates the incident again; on its last look what
 * still waits is held for a human (`skipped`, `needs-approval`), never dropped.
 */
export interface WaitingAction {
  kind: ActionKind;
  target: ActionTarget;
  /** Its key should it be planned: the ledger records the wait under it, and the action that ends it. */
  idempotencyKey: string;
  params: ActionParams;
  /** The first rule that may want it (a later one wanting it too waits with it). */
  ruleId: string;
  mode: Mode;
  /** The data the verdict reads and cannot have yet: the target's, or another entity's the rule reads (its score). */
  data: EntityData[];
  /** Whose data, and what its read met: `wks-042.contoso.com: paced by the engine: the defender budget … is spent`. */
  why: string;
  /** When the data may be readable again, where the failures said. */
  retryAfterMs?: number;
}

/** Which policy made a decision. */
export interface PolicyRef {
  digest: string;
  origin: string;
}

export interface Decision {
  subject: string;
  source: SignalSource;
  title: string;
  severity: Severity;
  /** Shared by every decision of one loaded policy, and frozen. */
  policy: Readonly<PolicyRef>;
  /** The global mode after every override (settings, policy): `audit` wins over `enforce`. */
  mode: Mode;
  score: RiskScore;
  rules: RuleResult[];
  actions: PlannedAction[];
  skipped: SkippedAction[];
  /** Actions whose verdict waits for data unavailable for now. */
  waiting: WaitingAction[];
  /** When the engine evaluates the signal again for what waits (set by the engine once it has scheduled that). */
  lookAgainAt?: string;
  /** Data that was missing or tolerated: unknown risk levels, entities without identifiers. */
  notes: string[];
  /** One line for a human or an incident comment. */
  summary: string;
}
