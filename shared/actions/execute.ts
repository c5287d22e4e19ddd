import { memberGroups } from '../clients/graph';
import { checkDevice, checkUser, indexProtection, needsRecordsSharingName, type ProtectionIndex } from '../policy/protection';
import { ACTIONS } from './catalogue';
import type { ActionCommand } from './command';
import type { ApiCosts, Pacer } from '../coordination/pacer';
import { ConfigError } from '../errors';
import type { LedgerEntry } from '../ledger/ledger';
import type { Logger } from '../log';
import type { CompiledPolicy } from '../policy/decide';
import type { Mode } from '../policy/schema';
import type { ActionKind } from './catalogue';
import type { ActionExecutor, ExecutionContext, ExecutionOutcome, ResolvedTarget, TargetedContext } from './executor';
import { classifyFailure } from './failure';
import { permissionsText } from './permissions';
import { resolveDevice, resolveUser, withRecordsSharingName } from './resolveTarget';
import { rollbackRefusal } from './rollback';

/** A policy that protects no one: for executors exercised on their own (tests). */
const NOTHING_PROTECTED = indexProtection({ users: [], groups: [], devices: [], deviceTags: [] }, []);

/** What carrying out a command needs: the executors, the APIs, the policy in force now, and the API budgets. */
export interface ExecutionDeps {
  executors: Partial<Record<ActionKind, ActionExecutor>>;
  /** The API clients executors use, created on first need (cold start matters). */
  executionContext: () => Promise<ExecutionContext>;
  policy: CompiledPolicy;
  /** RESPONDER_MODE: audit here makes every execution a rehearsal. */
  modeOverride: Mode;
  /** API budgets: each execution's calls are reserved before it starts; absent, nothing is paced. */
  pacer?: Pacer;
  /** The ledger's entry for an action: for a rollback, the one it undoes (checked, and its `rollback` snapshot read). */
  entryOf(key: string): Promise<LedgerEntry | undefined>;
  /** Why another action of `original`'s kind still stands on its target (undoing `original` would undo it too), or undefined. */
  heldByAnother(original: LedgerEntry): Promise<string | undefined>;
}

/**
 * Carry out one command now, as the worker does for every delivery: in the mode the policy in force allows, with its
 * API calls reserved first (a spent budget answers `paced`: the worker defers it), on the target the directory
 * verifies. Never throws for an API's failure: it comes back classified.
 */
export async function executeCommand(deps: ExecutionDeps, command: ActionCommand, log: Logger): Promise<ExecutionOutcome> {
  const executor = deps.executors[command.kind];
  if (!executor) return { outcome: 'audited', detail: `no executor for ${command.kind} is installed yet: recorded in audit mode, no write API called` };
  const mode = modeNow(command, deps.policy, deps.modeOverride);
  const run = mode.audit && command.mode === 'enforce' ? { ...command, mode: 'audit' as const } : command;
  try {
    const original = run.source.rollbackOf === undefined ? undefined : await deps.entryOf(run.source.rollbackOf);
    // Judged where it runs, not only where it was asked for: a rollback that reached the ledger another way undoes only the engine's own.
    // A containment that began since it was asked for (while it waited for a retry, a deferral or a replay) stands.
    const refusal = rollbackRefusal(run, original) ?? (original && (await deps.heldByAnother(original)));
    if (refusal) return { outcome: 'failed', class: 'permanent', detail: `refused: ${refusal}` };
    const snapshot = original?.rollback;
    const context = { ...(await deps.executionContext()), ...(snapshot !== undefined && { snapshot }) };
    const outcome = deps.pacer
      ? await metered(deps.pacer, executor, run, context, deps.policy.protection, log)
      : await executeOnVerifiedTarget(executor, run, context, deps.policy.protection);
    return run === command || outcome.outcome !== 'audited' ? outcome : { ...outcome, detail: `${outcome.detail} (${mode.why})` };
  } catch (error) {
    // What reaches here is a client that could not be built, or a spent budget before the first call (EnginePaced).
    return error instanceof ConfigError ? { outcome: 'failed', class: 'permanent', detail: error.message } : { outcome: 'failed', ...classifyFailure(error) };
  }
}

/**
 * The execution with the writes its executor declares reserved before its first call, all at once, so a spent budget
 * defers it before anything is read. Defender reads are not reserved: BatchedDevices answers many executions with one
 * call, which no one execution's reservation could pay for; made within the reservation, they wait their turn on the
 * shared budget as its calls would. An executor that calls beyond its declaration is logged as an error (the executor
 * tests fail on it); unused units go back.
 */
async function metered(
  pacer: Pacer,
  executor: ActionExecutor,
  command: ActionCommand,
  context: ExecutionContext,
  protection: ProtectionIndex,
  log: Logger,
): Promise<ExecutionOutcome> {
  const reservation = await pacer.reserve(executor.apiCost(command), undefined, command.turn);
  try {
    const verified = await pacer.within(reservation, () => verifyTarget(command, context, protection));
    if (verified.status === 'refused') return verified.outcome;
    const reserve = async (more: ApiCosts) => void (await pacer.reserve(more, reservation));
    return await pacer.within(reservation, () => runExecutor(executor, command, { ...context, target: verified.target, reserve }));
  } finally {
    for (const { api, declared, made } of reservation.overdrawn())
      log.error(
        { overdrawn: true, kind: command.kind, api, declared, made },
        `${command.kind} made ${made} ${api} call(s) and declared ${declared}: its apiCost undercounts`,
      );
    await pacer.settle(reservation);
  }
}

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
  const verified = await verifyTarget(command, context, protection);
  if (verified.status === 'refused') return verified.outcome;
  return runExecutor(executor, command, { ...context, target: verified.target, reserve: async () => undefined });
}

/** Steps 1 and 2: the target as the directory answers for it, or the outcome that refuses or holds the action. */
async function verifyTarget(command: ActionCommand, context: ExecutionContext, protection: ProtectionIndex): Promise<Resolved> {
  try {
    const resolved = await resolve(command, context, protection);
    if (resolved.status === 'refused') return resolved;
    const refusal = await protectionRefusal(command, resolved.target, context, protection);
    return refusal ? { status: 'refused', outcome: refusal } : resolved;
  } catch (error) {
    return { status: 'refused', outcome: namingPermissions(command, { outcome: 'failed', ...classifyFailure(error) }) };
  }
}

async function runExecutor(executor: ActionExecutor, command: ActionCommand, context: TargetedContext): Promise<ExecutionOutcome> {
  try {
    return namingPermissions(command, await executor.execute(command, context));
  } catch (error) {
    return namingPermissions(command, { outcome: 'failed', ...classifyFailure(error) });
  }
}

/**
 * A 403 is also how Graph answers a missing application permission, without naming it (Defender names it): the
 * ledger says what the action calls in its mode, so that a deployment that granted reads only (audit) and an engine
 * switched to enforce without its writes is told apart from a refused target at a glance.
 */
function namingPermissions(command: ActionCommand, outcome: ExecutionOutcome): ExecutionOutcome {
  if (outcome.outcome !== 'failed' || outcome.class === 'paced' || outcome.status !== 403) return outcome;
  return {
    ...outcome,
    detail: `${outcome.detail} — if a permission is missing: ${command.kind} in ${command.mode} mode calls ${permissionsText(command.kind, command.mode)}`,
  };
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

/**
 * The mode an execution runs in now. Audit wins, whoever says it: the command (as decided), RESPONDER_MODE, or the policy
 * in force now, globally or for the command's rule (disabled or removed since counts as audit). So a retry, a deferral
 * or a replay of an action decided in enforce mode rehearses once the engine is switched to audit.
 */
function modeNow(command: ActionCommand, policy: CompiledPolicy, override: Mode): { audit: boolean; why: string } {
  if (command.mode === 'audit') return { audit: true, why: 'decided in audit mode' };
  if (override === 'audit') return { audit: true, why: 'RESPONDER_MODE=audit' };
  if (policy.policy.mode === 'audit') return { audit: true, why: 'the policy in force is in audit mode' };
  const ruleId = command.source.ruleId;
  if (ruleId === undefined) return { audit: false, why: '' };
  const rule = policy.policy.rules.find((r) => r.id === ruleId);
  if (!rule) return { audit: true, why: `rule ${ruleId} is no longer in the policy` };
  if (!rule.enabled) return { audit: true, why: `rule ${ruleId} is disabled now` };
  if (rule.mode === 'audit') return { audit: true, why: `rule ${ruleId} is in audit mode now` };
  return { audit: false, why: '' };
}
