import { FINAL_ACTION_STATES, type Devices, type Machine, type MachineAction } from '../clients/defender';
import type { ActionCommand } from './command';
import type { ActionExecutor, ExecutionOutcome } from './executor';
import { classifyFailure } from './failure';
import { targetLabel, type DeviceTarget } from './target';

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
 * 1. resolve the device exactly (Defender id, then Entra device id, then exact FQDN; ambiguity is an error);
 * 2. read its recent machine actions: anything pending (isolate or release, anyone's) means wait and follow up;
 *    isolated already means done; each POST carries `key#attempt` in its Comment, so a redelivery after a crash
 *    recognizes the engine's own action, and each attempt posts at most once;
 * 3. only then POST, and follow the action to a final status by running the command again later (no sleeping).
 */
export const isolateDevice: ActionExecutor = {
  kind: 'isolateDevice',
  // Resolve the device, read its machine actions, post: three. A follow-up only reads.
  apiCost: (command) => ({ defender: command.followUp ? 2 : 3 }),
  async execute(command, { devices }) {
    if (!devices) return noDefender();
    return guarded(async () => {
      const found = await resolveDevice(command.target as DeviceTarget, devices);
      if ('outcome' in found) return found;
      const machine = found;
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
  apiCost: (command) => ({ defender: command.followUp ? 2 : 3 }),
  async execute(command, { devices, snapshot }) {
    const isolation = snapshot as IsolationSnapshot | undefined;
    if (!devices) return noDefender();
    if (!isolation?.isolationActionId) {
      return {
        outcome: 'failed',
        class: 'permanent',
        detail: 'refused: only a device the engine itself isolated is released (no isolation action in the snapshot)',
      };
    }
    return guarded(async () => {
      const machine = await devices.getMachine(isolation.machineId);
      if (!machine) return { outcome: 'failed', class: 'permanent', status: 404, detail: `device ${isolation.machineId} is no longer in Defender` };
      const actions = isolationActions(await devices.listMachineActions(machine.id));
      const pending = actions.find((a) => !isFinal(a));
      if (pending) return following(pending, machine);
      const latest = actions[0];
      if (latest?.type !== 'Isolate' || latest.status !== 'Succeeded') {
        const ours = latest?.requestorComment?.includes(command.idempotencyKey);
        return {
          outcome: 'succeeded',
          alreadyDone: !ours,
          detail: `${machine.computerDnsName} is not isolated${latest ? ` (last: ${latest.type} ${latest.status})` : ''}`,
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

/** The device, or the outcome that explains why there is none to act on. */
async function resolveDevice(target: DeviceTarget, devices: Devices): Promise<Machine | ExecutionOutcome> {
  const label = targetLabel(target);
  let matches: Machine[];
  if (target.id) {
    const machine = await devices.getMachine(target.id);
    matches = machine ? [machine] : [];
  } else if (target.aadDeviceId) matches = await devices.findMachines({ aadDeviceId: target.aadDeviceId });
  else if (target.fqdn) matches = (await devices.findMachines({ computerDnsName: target.fqdn })).filter((m) => m.computerDnsName.toLowerCase() === target.fqdn);
  else return { outcome: 'failed', class: 'permanent', detail: `${label}: no Defender id, Entra device id or FQDN to find the device by` };
  if (matches.length === 0) return { outcome: 'failed', class: 'permanent', status: 404, detail: `${label} is not a Defender for Endpoint device` };
  if (matches.length > 1)
    return {
      outcome: 'failed',
      class: 'permanent',
      detail: `${label} matches ${matches.length} Defender devices (${matches.map((m) => m.id).join(', ')}): refusing to guess`,
    };
  return matches[0] as Machine;
}

function noDefender(): ExecutionOutcome {
  return { outcome: 'failed', class: 'permanent', detail: 'Defender for Endpoint is not configured in this cloud (DEFENDER_ENDPOINT)' };
}

/** Isolate and Unisolate actions only, newest first. */
function isolationActions(actions: MachineAction[]): MachineAction[] {
  return actions.filter((a) => a.type === 'Isolate' || a.type === 'Unisolate');
}

const isFinal = (action: MachineAction): boolean => (FINAL_ACTION_STATES as readonly string[]).includes(action.status);

function following(action: MachineAction, machine: Machine): ExecutionOutcome {
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
    if (failure.code === 'ActiveRequestAlreadyExists') {
      return {
        outcome: 'pending',
        followUpAfterMs: FOLLOW_UP_MS,
        detail: `Defender: an action is already in progress on ${targetLabel(command.target)}: following it`,
      };
    }
    return { outcome: 'failed', ...failure };
  }
}
