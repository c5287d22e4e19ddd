import type { ActionKind, ActionParams } from '../actions/catalogue';
import type { ActionTarget } from '../actions/target';
import type { Severity, SignalSource } from '../signals/signal';
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
  /** The conditions that held (matched) or the first one that did not (not matched). */
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
  /** Data that was missing or tolerated: unknown risk levels, entities without identifiers. */
  notes: string[];
  /** One line for a human or an incident comment. */
  summary: string;
}
