import type { ActionKind } from './catalogue';
import { confirmCompromised } from './confirmCompromised';
import { disableUser, enableUser } from './disableUser';
import type { ActionExecutor } from './executor';
import { isolateDevice, unisolateDevice } from './isolateDevice';
import { requirePimReapproval, restorePimAssignments } from './requirePimReapproval';
import { revokeSessions } from './revokeSessions';

/** Every executor by action kind. */
export const EXECUTORS: Partial<Record<ActionKind, ActionExecutor>> = Object.fromEntries(
  [disableUser, enableUser, revokeSessions, confirmCompromised, isolateDevice, unisolateDevice, requirePimReapproval, restorePimAssignments].map((e) => [
    e.kind,
    e,
  ]),
);
