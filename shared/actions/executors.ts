import type { ActionKind } from './catalogue';
import { confirmCompromised } from './confirmCompromised';
import { disableUser, enableUser } from './disableUser';
import type { ActionExecutor } from './executor';
import { isolateDevice, unisolateDevice } from './isolateDevice';
import { revokeSessions } from './revokeSessions';

/** Every executor by action kind. A kind without one (PIM, for now) is recorded in audit mode by the worker. */
export const EXECUTORS: Partial<Record<ActionKind, ActionExecutor>> = Object.fromEntries(
  [disableUser, enableUser, revokeSessions, confirmCompromised, isolateDevice, unisolateDevice].map((e) => [e.kind, e]),
);
