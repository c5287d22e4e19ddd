import { z } from 'zod';
import { ACTION_KINDS, ACTIONS, ISOLATION_TYPES, isActionKind, PLANNABLE_ACTIONS, type PlannableActionKind } from '../actions/catalogue';
import { DEVICE_RISK_LEVELS, SEVERITIES, SIGNAL_SOURCES, USER_RISK_LEVELS } from '../signals/signal';
import { parseDuration } from './duration';

/**
 * The policy document's schema: the single definition of what a policy may say. Objects are strict, so a typo
 * (`severty:`) is an error rather than a silently ignored condition. Enumerated values are matched without regard
 * to case and normalized to the vendors' spelling (`high` -> `High` for severities, `High` -> `high` for user risk).
 */

function oneOf<const T extends string>(values: readonly T[]) {
  return z.string().transform((value, ctx): T => {
    const match = values.find((v) => v.toLowerCase() === value.toLowerCase());
    if (match === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected one of ${values.join(', ')}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return match;
  });
}

/** A list, or a single value written without brackets. */
function listOf<S extends z.ZodType>(item: S) {
  return z.preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(item).min(1, 'must list at least one value'));
}

/** A map from an enumerated key (severity, risk level) to points; keys normalized like values. */
function pointsBy<const T extends string>(keys: readonly T[]) {
  return z.record(z.string(), points).transform((record, ctx) => {
    const out: Partial<Record<T, number>> = {};
    for (const [key, value] of Object.entries(record)) {
      const match = keys.find((k) => k.toLowerCase() === key.toLowerCase());
      if (match === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `unknown key: expected one of ${keys.join(', ')}` });
      else out[match] = value;
    }
    return out;
  });
}

const points = z.number().int('points are whole numbers').min(0, 'points cannot be negative').max(100, 'points are at most 100');
const text = z.string().trim().min(1, 'must not be empty');
const names = listOf(text);
const SCORE_OPERATORS = ['>=', '>', '<=', '<', '=='] as const;
export type ScoreOperator = (typeof SCORE_OPERATORS)[number];
const scoreCondition = z.string().transform((text, ctx) => {
  const [, op, value] = /^\s*(>=|>|<=|<|==)\s*(\d{1,3})\s*$/.exec(text) ?? [];
  const operator = SCORE_OPERATORS.find((known) => known === op);
  if (operator === undefined || value === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a comparison with a number, e.g. ">= 60"' });
    return z.NEVER;
  }
  return { op: operator, value: Number(value) };
});

/** Guardrails and caps may name rollbacks too (enableUser, …): an analyst asks for those, and a policy may hold them. */
const anyActionName = oneOf(ACTION_KINDS);
const isolateParams = z.strictObject({ isolationType: oneOf(ISOLATION_TYPES).optional() });

/** `disableUser` or `{ isolateDevice: { isolationType: Selective } }` */
const actionStep = z.unknown().transform((step, ctx) => {
  const [name, rawParams] = typeof step === 'string' ? [step, {}] : (onlyEntry(step) ?? [undefined, undefined]);
  if (name === undefined) {
    ctx.addIssue({ code: 'custom', message: 'an action is a name (disableUser) or { name: { param: value } } with one name' });
    return z.NEVER;
  }
  const kind = PLANNABLE_ACTIONS.find((k) => k.toLowerCase() === name.toLowerCase());
  if (kind === undefined) {
    const rollbackOnly = isActionKind(name) ? ' (it only undoes an action; no rule can plan it)' : '';
    ctx.addIssue({ code: 'custom', message: `unknown action ${JSON.stringify(name)}${rollbackOnly}: expected one of ${PLANNABLE_ACTIONS.join(', ')}` });
    return z.NEVER;
  }
  const schema = kind === 'isolateDevice' ? isolateParams : z.strictObject({});
  const parsed = schema.safeParse(rawParams ?? {});
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: [name, ...issue.path.map(String)], message: issue.message });
    return z.NEVER;
  }
  return { kind, params: { ...ACTIONS[kind].defaults, ...parsed.data } };
});

/** The one key of an object that has exactly one, with its value. */
function onlyEntry(value: unknown): [string, unknown] | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const entries = Object.entries(value);
  return entries.length === 1 ? entries[0] : undefined;
}

const ruleConditions = z.strictObject({
  source: listOf(oneOf(SIGNAL_SOURCES)).optional(),
  severity: listOf(oneOf(SEVERITIES)).optional(),
  tactics: names.optional(),
  techniques: names.optional(),
  products: names.optional(),
  labels: names.optional(),
  entity: listOf(oneOf(['account', 'host'] as const)).optional(),
  score: scoreCondition.optional(),
  userRisk: listOf(oneOf(USER_RISK_LEVELS)).optional(),
  privileged: z.boolean().optional(),
  deviceRisk: listOf(oneOf(DEVICE_RISK_LEVELS)).optional(),
  deviceTags: names.optional(),
});

const mode = oneOf(['audit', 'enforce'] as const);

const rule = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/i, 'rule ids are letters, digits and "-" (at most 63), e.g. "compromised-identity"'),
  description: z.string().optional(),
  enabled: z.boolean().default(true),
  mode: mode.optional(),
  when: ruleConditions.default({}),
  then: z.array(actionStep).min(1, 'a rule must plan at least one action'),
});

const approval = z.strictObject({
  action: z.union([z.literal('*'), anyActionName]),
  when: z
    .strictObject({
      privileged: z.boolean().optional(),
      deviceTags: names.optional(),
      users: names.optional(),
      groups: names.optional(),
      devices: names.optional(),
      sources: listOf(oneOf(SIGNAL_SOURCES)).optional(),
    })
    .default({}),
  reason: z.string().optional(),
});

/** An ISO 8601 duration, kept as written and in milliseconds. */
const duration = z.string().transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected an ISO 8601 duration such as PT15M, PT1H or P1D, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return { text: value, ms };
});

const cap = z.strictObject({
  action: anyActionName,
  max: z.number().int().min(0, 'max cannot be negative'),
  per: duration,
});

/** How long a held action waits for an analyst before it expires, unless the policy says otherwise. */
export const DEFAULT_APPROVAL_TTL = { text: 'PT24H', ms: 24 * 3_600_000 };

export const policySchema = z
  .strictObject({
    version: z.literal(1, { error: 'only version 1 exists' }),
    mode,
    protected: z
      .strictObject({
        users: z.array(text).default([]),
        groups: z.array(text).default([]),
        devices: z.array(text).default([]),
        deviceTags: z.array(text).default([]),
      })
      .default({ users: [], groups: [], devices: [], deviceTags: [] }),
    guardrails: z
      .strictObject({ approvals: z.array(approval).default([]), caps: z.array(cap).default([]), approvalTtl: duration.default(DEFAULT_APPROVAL_TTL) })
      .default({ approvals: [], caps: [], approvalTtl: DEFAULT_APPROVAL_TTL }),
    risk: z
      .strictObject({
        severity: pointsBy(SEVERITIES).default({}),
        userRisk: pointsBy(USER_RISK_LEVELS).default({}),
        deviceRisk: pointsBy(DEVICE_RISK_LEVELS).default({}),
        privileged: points.default(0),
        tactics: z.record(z.string(), points).default({}),
        techniques: z.record(z.string(), points).default({}),
        products: z.record(z.string(), points).default({}),
      })
      .default({ severity: {}, userRisk: {}, deviceRisk: {}, privileged: 0, tactics: {}, techniques: {}, products: {} }),
    rules: z.array(rule).default([]),
  })
  .superRefine((policy, ctx) => {
    const seen = new Map<string, number>();
    policy.rules.forEach((r, i) => {
      const first = seen.get(r.id.toLowerCase());
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule id "${r.id}" (also rules[${first}])` });
      else seen.set(r.id.toLowerCase(), i);
    });
  });

export type Policy = z.output<typeof policySchema>;
export type PolicyRule = Policy['rules'][number];
export type RuleConditions = PolicyRule['when'];
export type ApprovalGuardrail = Policy['guardrails']['approvals'][number];
export type CapGuardrail = Policy['guardrails']['caps'][number];
export type Mode = 'audit' | 'enforce';
export type ActionStep = { kind: PlannableActionKind; params: PolicyRule['then'][number]['params'] };
