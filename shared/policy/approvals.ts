import type { ActionKind } from '../actions/catalogue';
import type { AccountEntity, HostEntity, SignalSource } from '../signals/signal';
import { NameIndex } from '../signals/names';
import { checkAccount, checkHost, indexProtection } from './protection';
import type { ApprovalGuardrail } from './schema';

/**
 * Which planned actions a human must approve. An approval guardrail applies when every one of its conditions holds
 * for the target; a condition the data cannot decide (privilege unknown, tags unknown) counts as holding, so
 * uncertainty leads to a human, never to an unreviewed action. Conditions about the other kind of target
 * (`privileged` for a device) do not hold.
 */
export function approvalRequired(
  approvals: readonly CompiledApproval[],
  kind: ActionKind,
  entity: AccountEntity | HostEntity,
  source: SignalSource,
): string | undefined {
  for (const approval of approvals) {
    if (approval.action !== '*' && approval.action !== kind) continue;
    const why = conditionsHold(approval, entity, source);
    if (why !== undefined) return approval.reason ? `${approval.reason} (${why})` : why;
  }
  return undefined;
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

/** The reason the approval applies, or undefined when it does not. */
function conditionsHold(approval: CompiledApproval, entity: AccountEntity | HostEntity, source: SignalSource): string | undefined {
  const when = approval.when;
  let reasons = '';
  if (when.sources) {
    if (!when.sources.includes(source)) return undefined;
    reasons = also(reasons, `source ${source}`);
  }
  if (entity.kind === 'account') {
    if (when.deviceTags || when.devices) return undefined;
    if (when.privileged !== undefined) {
      if (entity.privileged === undefined) reasons = also(reasons, 'privilege unknown');
      else if (entity.privileged !== when.privileged) return undefined;
      else reasons = also(reasons, entity.privileged ? 'privileged user' : 'unprivileged user');
    }
    if ((when.users || when.groups) && approval.listed) {
      const verdict = checkAccount(entity, approval.listed);
      if (verdict.status === 'clear') return undefined;
      reasons = also(reasons, verdict.why.replace('protected', 'needing approval'));
    }
  } else {
    if (when.privileged !== undefined || when.users || when.groups) return undefined;
    if (approval.deviceTags) {
      const tag = entity.tags && approval.deviceTags.firstOf(entity.tags);
      if (entity.tags === undefined) reasons = also(reasons, 'device tags unknown');
      else if (tag === undefined) return undefined;
      else reasons = also(reasons, `device tagged ${tag}`);
    }
    if (when.devices && approval.listed) {
      const verdict = checkHost(entity, approval.listed);
      if (verdict.status === 'clear') return undefined;
      reasons = also(reasons, verdict.why.replace('protected', 'needing approval'));
    }
  }
  return reasons || `every ${approval.action === '*' ? 'action' : approval.action} needs approval`;
}

/** `reasons, reason`: built by concatenation, as every planned action of a kind with an approval guardrail asks. */
function also(reasons: string, reason: string): string {
  return reasons ? `${reasons}, ${reason}` : reason;
}
