import { FINAL_ACTION_STATES, type MachineAction } from '../clients/defender';
import type { VerifiedDevice } from '../signals/signal';
import type { ActionCommand } from './command';
import type { ActionExecutor, ExecutionOutcome, ResolvedTarget } from './executor';
import { classifyFailure } from './failure';
import { targetLabel } from './target';

/** How soon to look again at a pending machine action: Defender usually completes isolation within a minute. */
export const FOLLOW_UP_MS = 30_000;

/** What isolateDevice records so that its rollback knows the device and that the engine isolated it. */
export interface IsolationSnapshot {
  machineId: string;
  /** The machine action the engine posted; absent when the device was already isolated by someone else. */
  isolationActionId?: string;
}

/**
 * isolateDevice (reference/defender.md). Defender's isolate is not idempotent: a second POST while one is pending
 * answers 400 ActiveRequestAlreadyExists, or worse, stays Pending and completes after a later release. So:
 * 1. the worker has resolved the device to its live Defender record and checked it (shared/actions/execute.ts);
 * 2. read its recent machine actions: anything pending (isolate or release, anyone's) means wait and follow up;
 *    isolated already means done; each POST carries `key#attempt` in its Comment (see `comment` below);
 * 3. only then POST, and follow the action to a final status by running the command again later (no sleeping).
 */
export const isolateDevice: ActionExecutor = {
  kind: 'isolateDevice',
  // The post; reads are paced as they are made, batched (shared/actions/execute.ts). A follow-up only reads.
  apiCost: (command) => (command.followUp ? {} : { 'defender-isolate': 1 }),
  async execute(command, { devices, target }) {
    if (!devices) return noDefender();
    const machine = deviceOf(target);
    if (!machine) return notADevice(command);
    return guarded(async () => {
      const actions = isolationActions(await devices.listMachineActions(machine.id));
      const ours = actions.find((a) => a.type === 'Isolate' && a.requestorComment?.includes(command.idempotencyKey));
      const pending = actions.find((a) => !isFinal(a));
      if (pending) return following(pending, machine);

      const latest = actions[0];
      if (latest?.type === 'Isolate' && latest.status === 'Succeeded') {
        const snapshot: IsolationSnapshot = { machineId: machine.id, ...(ours && latest.id === ours.id && { isolationActionId: ours.id }) };
        return ours?.id === latest.id
          ? {
              outcome: 'succeeded',
              alreadyDone: false,
              rollback: snapshot,
              detail: `isolated ${machine.computerDnsName} (machine action ${ours.id} Succeeded)`,
            }
          : {
              outcome: 'succeeded',
              alreadyDone: true,
              rollback: snapshot,
              detail: `${machine.computerDnsName} was already isolated (by ${latest.requestor ?? 'someone else'})`,
            };
      }
      if (ours && ours.id === latest?.id && ours.requestorComment?.includes(attemptTag(command))) {
        // This attempt's isolation ended Failed, TimeOut or Cancelled: report it; the next attempt posts anew.
        return { outcome: 'failed', class: 'transient', detail: `Defender reported machine action ${ours.id} ${ours.status}` };
      }
      if (command.mode === 'audit')
        return { outcome: 'audited', detail: `audit mode: would isolate ${machine.computerDnsName} (${command.params.isolationType ?? 'Full'})` };
      const posted = await devices.isolate(machine.id, comment(command), command.params.isolationType ?? 'Full');
      return {
        outcome: 'pending',
        followUpAfterMs: FOLLOW_UP_MS,
        detail: `isolation of ${machine.computerDnsName} requested (machine action ${posted.id} ${posted.status})`,
      };
    }, command);
  },
};

/**
 * unisolateDevice: the rollback of isolateDevice only — the snapshot must name an isolation the engine made. Never
 * released while an isolation is pending (the pending one would complete after the release and re-isolate).
 */
export const unisolateDevice: ActionExecutor = {
  kind: 'unisolateDevice',
  apiCost: (command) => (command.followUp ? {} : { 'defender-unisolate': 1 }),
  async execute(command, { devices, snapshot, target }) {
    const isolation = snapshot as IsolationSnapshot | undefined;
    if (!devices) return noDefender();
    if (!isolation?.isolationActionId) {
      return {
        outcome: 'failed',
        class: 'permanent',
        detail: 'refused: only a device the engine itself isolated is released (no isolation action in the snapshot)',
      };
    }
    const machine = deviceOf(target);
    if (!machine) return notADevice(command);
    if (machine.id !== isolation.machineId && machine.mergedFrom !== isolation.machineId)
      return {
        outcome: 'failed',
        class: 'permanent',
        detail: `refused: the isolation was of ${isolation.machineId}, the device's live record is ${machine.id}`,
      };
    return guarded(async () => {
      const actions = isolationActions(await devices.listMachineActions(machine.id));
      const pending = actions.find((a) => !isFinal(a));
      if (pending) return following(pending, machine);
      const latest = actions[0];
      if (latest?.type === 'Unisolate' && latest.status !== 'Succeeded' && latest.requestorComment?.includes(attemptTag(command))) {
        // This attempt's release ended Failed, TimeOut or Cancelled: the device is still isolated; the next attempt posts anew.
        return { outcome: 'failed', class: 'transient', detail: `Defender reported machine action ${latest.id} ${latest.status}` };
      }
      // Whether the device is isolated is what the latest action that took effect says, not the latest one asked for.
      const inForce = actions.find((a) => a.status === 'Succeeded');
      if (inForce?.type !== 'Isolate') {
        const ours = inForce?.requestorComment?.includes(command.idempotencyKey) ?? false;
        return {
          outcome: 'succeeded',
          alreadyDone: !ours,
          detail: `${machine.computerDnsName} is not isolated${latest ? ` (last: ${latest.type} ${latest.status})` : ''}`,
        };
      }
      if (inForce.id !== isolation.isolationActionId) {
        return {
          outcome: 'failed',
          class: 'blocked',
          detail: `refused: the isolation in force on ${machine.computerDnsName} is ${inForce.id} (by ${inForce.requestor ?? 'someone else'}), not the engine's ${isolation.isolationActionId}: release it by hand if it should end`,
        };
      }
      if (command.mode === 'audit') return { outcome: 'audited', detail: `audit mode: would release ${machine.computerDnsName} from isolation` };
      const posted = await devices.unisolate(machine.id, comment(command));
      return {
        outcome: 'pending',
        followUpAfterMs: FOLLOW_UP_MS,
        detail: `release of ${machine.computerDnsName} requested (machine action ${posted.id} ${posted.status})`,
      };
    }, command);
  },
};

/** The device the worker resolved, as Defender describes it: its id and name are what the executor acts on and reports. */
function deviceOf(target: ResolvedTarget): VerifiedDevice | undefined {
  return target.type === 'device' ? target.verified : undefined;
}

function notADevice(command: ActionCommand): ExecutionOutcome {
  return { outcome: 'failed', class: 'permanent', detail: `${command.kind} acts on devices` };
}

function noDefender(): ExecutionOutcome {
  return { outcome: 'failed', class: 'permanent', detail: 'Defender for Endpoint is not configured in this cloud (DEFENDER_ENDPOINT)' };
}

/** Isolate and Unisolate actions only, newest first. */
function isolationActions(actions: MachineAction[]): MachineAction[] {
  return actions.filter((a) => a.type === 'Isolate' || a.type === 'Unisolate');
}

const isFinal = (action: MachineAction): boolean => (FINAL_ACTION_STATES as readonly string[]).includes(action.status);

function following(action: MachineAction, machine: VerifiedDevice): ExecutionOutcome {
  return {
    outcome: 'pending',
    followUpAfterMs: FOLLOW_UP_MS,
    detail: `${action.type} of ${machine.computerDnsName} is ${action.status} (machine action ${action.id}): following it`,
  };
}

/**
 * The Comment every machine action carries: who, why, and `key#attempt`. The key lets a redelivery recognize the
 * engine's own action after a crash; the attempt lets a retry tell its own failed post from an earlier attempt's, so
 * each attempt posts at most once.
 */
function comment(command: ActionCommand): string {
  return `Sentinel Responder ${attemptTag(command)}: ${command.reason}`.slice(0, 1000);
}

/** `key#attempt`, or `key#r<replay>.<attempt>` once an analyst replayed the action: each try of each replay is told apart. */
const attemptTag = (command: ActionCommand): string => `${command.idempotencyKey}#${command.replay ? `r${command.replay}.` : ''}${command.attempt}`;

/** Map failures; ActiveRequestAlreadyExists means someone's action is in progress: read and follow it. */
async function guarded(run: () => Promise<ExecutionOutcome>, command: ActionCommand): Promise<ExecutionOutcome> {
  try {
    return await run();
  } catch (error) {
    const failure = classifyFailure(error);
    if (failure.class !== 'paced' && failure.code === 'ActiveRequestAlreadyExists') {
      return {
        outcome: 'pending',
        followUpAfterMs: FOLLOW_UP_MS,
        detail: `Defender: an action is already in progress on ${targetLabel(command.target)}: following it`,
      };
    }
    return { outcome: 'failed', ...failure };
  }
}
