/**
 * The action catalogue: every kind of action the engine knows, what it targets, whether a rule may plan it, and
 * what undoes it. Executors (validate target, read state, execute, verify, roll back) attach to these kinds.
 */

export const PLANNABLE_ACTIONS = ['disableUser', 'revokeSessions', 'confirmCompromised', 'requirePimReapproval', 'isolateDevice'] as const;
/** Kinds that only a rollback of the engine's own action may request; no rule can plan them. */
export const ROLLBACK_ACTIONS = ['enableUser', 'unisolateDevice', 'restorePimAssignments'] as const;
export const ACTION_KINDS = [...PLANNABLE_ACTIONS, ...ROLLBACK_ACTIONS] as const;

export type PlannableActionKind = (typeof PLANNABLE_ACTIONS)[number];
export type ActionKind = (typeof ACTION_KINDS)[number];
export type TargetType = 'user' | 'device';

export const ISOLATION_TYPES = ['Full', 'Selective'] as const;
export type IsolationType = (typeof ISOLATION_TYPES)[number];

export interface ActionParams {
  /** isolateDevice only. Defender's own default is Full; Selective keeps Outlook, Teams and Skype working. */
  isolationType?: IsolationType;
}

export interface ActionSpec {
  target: TargetType;
  /** A plain-words description for decisions, comments and the CLI. */
  verb: string;
  /** The kind that undoes it, when it can be undone. */
  rollback?: ActionKind;
  /** Parameters the action takes, with their defaults. */
  defaults: ActionParams;
}

export const ACTIONS: Record<ActionKind, ActionSpec> = {
  disableUser: { target: 'user', verb: 'disable the account', rollback: 'enableUser', defaults: {} },
  // Sessions cannot be "un-revoked"; the user signs in again.
  revokeSessions: { target: 'user', verb: 'revoke sign-in sessions', defaults: {} },
  // Dismissing risk is a judgement for an analyst, not an automatic undo.
  confirmCompromised: { target: 'user', verb: 'confirm compromised in ID Protection', defaults: {} },
  requirePimReapproval: {
    target: 'user',
    verb: 'end active privileged roles so that getting them back needs a PIM approval',
    rollback: 'restorePimAssignments',
    defaults: {},
  },
  isolateDevice: { target: 'device', verb: 'isolate the device', rollback: 'unisolateDevice', defaults: { isolationType: 'Full' } },
  enableUser: { target: 'user', verb: 're-enable the account', defaults: {} },
  unisolateDevice: { target: 'device', verb: 'release the device from isolation', defaults: {} },
  restorePimAssignments: { target: 'user', verb: 'restore the privileged role assignments', defaults: {} },
};

export const isActionKind = (value: string): value is ActionKind => Object.hasOwn(ACTIONS, value);
export const isPlannable = (value: string): value is PlannableActionKind => (PLANNABLE_ACTIONS as readonly string[]).includes(value);
export const isRollbackKind = (value: string): value is (typeof ROLLBACK_ACTIONS)[number] => (ROLLBACK_ACTIONS as readonly string[]).includes(value);
