import { memberGroups } from '../clients/graph';
import { checkDevice, checkUser, indexProtection, needsRecordsSharingName, type ProtectionIndex } from '../policy/protection';
import { ACTIONS } from './catalogue';
import type { ActionCommand } from './command';
import type { ActionExecutor, ExecutionContext, ExecutionOutcome, ResolvedTarget } from './executor';
import { classifyFailure } from './failure';
import { resolveDevice, resolveUser, withRecordsSharingName } from './resolveTarget';

/** A policy that protects no one: for executors exercised on their own (tests). */
const NOTHING_PROTECTED = indexProtection({ users: [], groups: [], devices: [], deviceTags: [] }, []);

/**
 * How every action is carried out: the directory decides who the target is.
 * 1. Resolve the target by its strongest identifier (a user's object id, else UPN; a device's Defender id, else Entra
 *    device id, else exact FQDN; a stale Defender record to its live one).
 * 2. Check protection against what Graph or Defender answered (UPN, on-premises names and SID, device name, tags,
 *    protected groups) as well as against the payload's claims: a protected target is refused (`blocked`); a payload
 *    that names someone else than the directory, or a directory that cannot tell which record it is, holds the action
 *    for a human with both values in the reason.
 * 3. Only then run the executor, on the directory's identity.
 * The worker runs this after every delivery, at execution time, whatever was checked when the action was decided.
 */
export async function executeOnVerifiedTarget(
  executor: ActionExecutor,
  command: ActionCommand,
  context: ExecutionContext,
  protection: ProtectionIndex = NOTHING_PROTECTED,
): Promise<ExecutionOutcome> {
  try {
    const resolved = await resolve(command, context, protection);
    if (resolved.status === 'refused') return resolved.outcome;
    const refusal = await protectionRefusal(command, resolved.target, context, protection);
    if (refusal) return refusal;
    return await executor.execute(command, { ...context, target: resolved.target });
  } catch (error) {
    return { outcome: 'failed', ...classifyFailure(error) };
  }
}

type Resolved = { status: 'resolved'; target: ResolvedTarget } | { status: 'refused'; outcome: ExecutionOutcome };

async function resolve(command: ActionCommand, { directory, devices }: ExecutionContext, protection: ProtectionIndex): Promise<Resolved> {
  const { target } = command;
  const refused = (outcome: ExecutionOutcome): Resolved => ({ status: 'refused', outcome });
  if (ACTIONS[command.kind].target !== target.type)
    return refused({ outcome: 'failed', class: 'permanent', detail: `${command.kind} does not act on a ${target.type}` });
  if (target.type === 'user') {
    const user = await resolveUser(target, directory);
    if (user.status === 'found') return { status: 'resolved', target: { type: 'user', verified: user.verified, user: user.record } };
    return refused(
      user.status === 'missing' ? { outcome: 'failed', class: 'permanent', status: 404, detail: user.why } : { outcome: 'held', detail: user.why },
    );
  }
  if (!devices) return refused({ outcome: 'failed', class: 'permanent', detail: 'Defender for Endpoint is not configured in this cloud (DEFENDER_ENDPOINT)' });
  const device = await resolveDevice(target, devices);
  if (device.status === 'found') {
    const verified = needsRecordsSharingName(protection, device.verified.computerDnsName)
      ? await withRecordsSharingName(device.verified, devices)
      : device.verified;
    return { status: 'resolved', target: { type: 'device', verified, machine: device.record } };
  }
  return refused(
    device.status === 'missing' ? { outcome: 'failed', class: 'permanent', status: 404, detail: device.why } : { outcome: 'held', detail: device.why },
  );
}

/** Why the engine must not act on this target now (blocked, or held for a human), or undefined when it may. */
async function protectionRefusal(
  command: ActionCommand,
  resolved: ResolvedTarget,
  { directory }: ExecutionContext,
  protection: ProtectionIndex,
): Promise<ExecutionOutcome | undefined> {
  let verdict;
  if (resolved.type === 'user' && command.target.type === 'user') {
    // Membership of protected groups, read now: someone added to Tier 0 since the decision is protected now.
    const groups = protection.groupIds.size > 0 ? await memberGroups(directory, resolved.verified.id, [...protection.groupIds]) : [];
    verdict = checkUser(command.target, resolved.verified, groups, protection);
  } else if (resolved.type === 'device' && command.target.type === 'device') {
    verdict = checkDevice(command.target, resolved.verified, resolved.verified.tags, protection);
  } else {
    return { outcome: 'failed', class: 'permanent', detail: `${command.kind} does not act on a ${command.target.type}` };
  }
  switch (verdict.status) {
    case 'clear':
      return undefined;
    case 'protected':
      return { outcome: 'failed', class: 'blocked', detail: `refused: ${verdict.why}` };
    case 'conflict':
      return { outcome: 'held', detail: `held for a human: ${verdict.why}` };
    case 'unverified':
      return { outcome: 'held', detail: `held for a human: cannot verify it is not protected: ${verdict.why}` };
  }
}
