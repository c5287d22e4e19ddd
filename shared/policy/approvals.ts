import type { ActionKind } from '../actions/catalogue';
import type { AccountEntity, HostEntity, SignalSource } from '../signals/signal';
import { NameIndex } from '../signals/names';
import { checkAccount, checkHost, indexProtection, type ProtectionVerdict } from './protection';
import type { ApprovalGuardrail } from './schema';
import { bothLacks, lackOf, type Lack } from './unavailable';

/** A guardrail's word on an action: held for a human, and why; or waiting for data that may yet say it does not apply. */
export type ApprovalVerdict = { hold: string } | { wait: Lack; why: string } | undefined;

/**
 * Which planned actions a human must approve. An approval guardrail applies when every one of its conditions holds
 * for the target; a condition the data cannot decide (privilege unknown, tags unknown) counts as holding, so
 * uncertainty leads to a human, never to an unreviewed action. When the data is only unavailable for now, the action
 * waits for it instead (unless another guardrail holds it whatever the data says). Conditions about the other kind of
 * target (`privileged` for a device) do not hold.
 */
export function approvalRequired(
  approvals: readonly CompiledApproval[],
  kind: ActionKind,
  entity: AccountEntity | HostEntity,
  source: SignalSource,
): ApprovalVerdict {
  let waiting: ApprovalVerdict;
  for (const approval of approvals) {
    if (approval.action !== '*' && approval.action !== kind) continue;
    const held = conditionsHold(approval, entity, source);
    if (held === undefined) continue;
    const why = approval.reason ? `${approval.reason} (${held.why})` : held.why;
    if (held.lack === undefined) return { hold: why };
    waiting ??= { wait: held.lack, why };
  }
  return waiting;
}

/** An approval guardrail with its name lists indexed once per policy load. */
export interface CompiledApproval extends ApprovalGuardrail {
  listed: ReturnType<typeof indexProtection> | undefined;
  deviceTags: NameIndex<true> | undefined;
}

export function compileApprovals(approvals: readonly ApprovalGuardrail[]): CompiledApproval[] {
  return approvals.map((a) => ({
    ...a,
    listed:
      a.when.users || a.when.groups || a.when.devices
        ? indexProtection({ users: a.when.users ?? [], groups: a.when.groups ?? [], devices: a.when.devices ?? [], deviceTags: [] }, [])
        : undefined,
    deviceTags: a.when.deviceTags && NameIndex.of(a.when.deviceTags),
  }));
}

/**
 * The reason the approval applies, or undefined when it does not; with what it lacks when it applies only because data
 * unknown for now counts as holding (data unknown for good, or a condition that holds on what is known, needs no lack).
 */
function conditionsHold(approval: CompiledApproval, entity: AccountEntity | HostEntity, source: SignalSource): { why: string; lack?: Lack } | undefined {
  const when = approval.when;
  let reasons = '';
  const unknown: { lack?: Lack; forGood: boolean } = { forGood: false };
  if (when.sources) {
    if (!when.sources.includes(source)) return undefined;
    reasons = also(reasons, `source ${source}`);
  }
  if (entity.kind === 'account') {
    if (when.deviceTags || when.devices) return undefined;
    if (when.privileged !== undefined) {
      if (entity.privileged === undefined) {
        reasons = also(reasons, 'privilege unknown');
        unknownFor(unknown, lackOf(entity, 'privileged'));
      } else if (entity.privileged !== when.privileged) return undefined;
      else reasons = also(reasons, entity.privileged ? 'privileged user' : 'unprivileged user');
    }
    if ((when.users || when.groups) && approval.listed) {
      const verdict = checkAccount(entity, approval.listed);
      if (verdict.status === 'clear') return undefined;
      reasons = also(reasons, verdict.why.replace('protected', 'needing approval'));
      if (verdict.status !== 'protected') unknownFor(unknown, lackOfVerdict(entity, verdict));
    }
  } else {
    if (when.privileged !== undefined || when.users || when.groups) return undefined;
    if (approval.deviceTags) {
      const tag = entity.tags && approval.deviceTags.firstOf(entity.tags);
      if (entity.tags === undefined) {
        reasons = also(reasons, 'device tags unknown');
        unknownFor(unknown, lackOf(entity, 'deviceTags'));
      } else if (tag === undefined) return undefined;
      else reasons = also(reasons, `device tagged ${tag}`);
    }
    if (when.devices && approval.listed) {
      const verdict = checkHost(entity, approval.listed);
      if (verdict.status === 'clear') return undefined;
      reasons = also(reasons, verdict.why.replace('protected', 'needing approval'));
      if (verdict.status !== 'protected') unknownFor(unknown, lackOfVerdict(entity, verdict));
    }
  }
  const why = reasons || `every ${approval.action === '*' ? 'action' : approval.action} needs approval`;
  return unknown.lack && !unknown.forGood ? { why, lack: unknown.lack } : { why };
}

/** A condition held on unknown data: for now (`lack`), or for good. */
function unknownFor(unknown: { lack?: Lack; forGood: boolean }, lack: Lack | undefined): void {
  if (lack === undefined) unknown.forGood = true;
  else unknown.lack = bothLacks(unknown.lack, lack);
}

/** What a protection verdict that could not tell lacks, when that is only unavailable for now. */
export function lackOfVerdict(entity: AccountEntity | HostEntity, verdict: ProtectionVerdict): Lack | undefined {
  return verdict.status !== 'clear' && verdict.lacks !== undefined ? lackOf(entity, verdict.lacks) : undefined;
}

/** `reasons, reason`: built by concatenation, as every planned action of a kind with an approval guardrail asks. */
function also(reasons: string, reason: string): string {
  return reasons ? `${reasons}, ${reason}` : reason;
}
