import { IDEMPOTENCY_KEY_PATTERN } from '../actions/idempotency';
import { ApiError } from '../clients/apiError';
import { inert, reportFinding } from '../actions/report';
import { MAX_RECORDED_ROLES } from '../actions/requirePimReapproval';
import { targetLabel } from '../actions/target';
import type { ActiveRole, Directory, RoleRequest } from '../clients/graph';
import type { LedgerEntry, LedgerState } from '../ledger/ledger';
import { cut, displayText, TEXT_LIMITS } from '../limits';
import { isGuid } from '../signals/identifiers';
import { PRIVILEGE_DRIFT_LABEL, type Signal } from '../signals/signal';
import { decided, type Finding, type SweepContext, type SweepDefinition, type SweepPage } from './sweep';

/**
 * privilegeDrift: users whose active roles requirePimReapproval removed (enforce mode, roles removed, not rolled back)
 * and who hold one of them again without a new approval: assigned directly as active (outside PIM activation), or
 * activated through a request no approver approved (the role's policy lets the user activate alone: the policy gap the
 * action reported). An activation an approver approved is what the action asked for, and is passed over. Each role
 * that came back is a sweep signal about the user (labelled privilegeDrift, keyed by user, role, scope and when the new
 * assignment started), decided once by the engine (recorded whatever the policy says; acted on only by a rule that
 * names the label) and told to the incident the removal came from.
 */
export const privilegeDrift: SweepDefinition = {
  setting: 'RESPONDER_SWEEP_PRIVILEGEDRIFT',
  // Hourly at minute 50: clear of riskyUsers (0, 30), stuckActions (7, 37) and the sweeps at minutes 20 and 45.
  schedule: '0 50 * * * *',
  async page(context, cursor) {
    const candidates = await candidatesAfter(context, cursor);
    const batch = candidates.slice(0, CANDIDATES_PER_PAGE);
    const last = batch.at(-1);
    const page: SweepPage = { findings: [], passedOver: [], ...(candidates.length > batch.length && last && { next: last.entry.key }) };
    if (batch.length === 0) return page;
    const directory = await context.directory();
    const drifts: Drift[] = [];
    for (const candidate of batch) {
      const seen = await inspect(context, directory, candidate);
      drifts.push(...seen.drifts);
      page.passedOver.push(...seen.passedOver);
    }
    const done = await decidedSubjects(context, drifts);
    // Read once a page, and only if a drift was decided before: a query by subject scans the table as one by state does.
    let waiting: Set<string> | undefined;
    for (const drift of drifts) {
      const subject = subjectOf(drift);
      const earlier = done.get(subject);
      // A finding has no incident to be looked at again: what waits for data is decided again by the next run.
      const waits =
        earlier !== undefined &&
        earlier !== THIS_RUN &&
        (waiting ??= new Set((await context.ledger.list({ state: 'waiting' })).map((entry) => entry.source.subject))).has(subject);
      if (earlier !== undefined && !waits) page.passedOver.push(`${describe(drift)}: decided at ${earlier}`);
      else {
        done.set(subject, THIS_RUN);
        page.findings.push(driftFinding(context, drift));
      }
    }
    // The run keeps only a count of these: an approved activation, say, is told here with its request and approval.
    for (const why of page.passedOver) context.log.info({ sweep: 'privilegeDrift' }, `passed over: ${why}`);
    return page;
  },
};

/** When a drift found twice in one page (two removals of the same role) was decided. */
const THIS_RUN = 'this run';

/** Candidates a page looks at: each is one Graph read, two when a removed role is back. */
const CANDIDATES_PER_PAGE = 20;

/** Request states in which an activation was given: one pending, denied or cancelled gave nothing. */
const GRANTED = new Set(['provisioned', 'granted']);
/** Requests by which a user activates an eligible role themselves (and the role's policy may ask an approver). */
const SELF_ACTIVATIONS = new Set(['selfactivate', 'selfextend', 'selfrenew']);
/**
 * States of a rollback that gave nothing back, for good or not yet (it waits for an approver or for data, as a rollback
 * the falsePositives sweep proposes does): the removal stands, and drift from it counts.
 */
const ROLLBACK_GAVE_NOTHING: ReadonlySet<LedgerState> = new Set([
  'failed',
  'dead-lettered',
  'blocked',
  'denied',
  'expired',
  'not-needed',
  'planned',
  'pending-approval',
  'waiting',
]);
/** A directory scope as Graph writes it: `/`, `/administrativeUnits/{id}`, `/{object id}`. */
const DIRECTORY_SCOPE = /^\/(?:[A-Za-z0-9-]{1,64}(?:\/[A-Za-z0-9-]{1,64}){0,3})?$/;

interface RemovedRole {
  roleDefinitionId: string;
  directoryScopeId: string;
}

/** A requirePimReapproval that removed roles, with whom they were removed from and when. */
interface Candidate {
  entry: LedgerEntry;
  principalId: string;
  removed: RemovedRole[];
  removedAt: string;
}

/** A removed role held again without a new approval. */
interface Drift {
  candidate: Candidate;
  role: RemovedRole;
  /** When the new assignment started (ISO 8601, as the engine writes it). */
  since: string;
  how: 'direct assignment' | 'activation without approval' | 'activation approved before the removal';
  detail: string;
}

/** Succeeded enforce-mode removals, oldest first, after the one `cursor` names (the last a page handled). */
async function candidatesAfter(context: SweepContext, cursor: string | undefined): Promise<Candidate[]> {
  const entries = await context.ledger.list({ kind: 'requirePimReapproval', state: 'succeeded' });
  // The cursor comes back from the shared records: one that is not a key starts from the top.
  const after = cursor !== undefined && IDEMPOTENCY_KEY_PATTERN.test(cursor) ? await context.ledger.get(cursor) : undefined;
  const candidates: Candidate[] = [];
  for (const entry of entries.sort(byCreation)) {
    if (after && byCreation(entry, after) <= 0) continue;
    const candidate = candidateOf(entry);
    if (candidate) candidates.push(candidate);
  }
  return candidates;
}

const byCreation = (a: LedgerEntry, b: LedgerEntry): number => a.createdAt.localeCompare(b.createdAt) || a.key.localeCompare(b.key);

/** The entry as a candidate, if it removed roles in enforce mode; its snapshot is read as untrusted data. */
function candidateOf(entry: LedgerEntry): Candidate | undefined {
  const snapshot = entry.rollback as { principalId?: unknown; removed?: unknown } | undefined;
  if (entry.mode !== 'enforce' || typeof snapshot?.principalId !== 'string' || !isGuid(snapshot.principalId)) return undefined;
  if (!Array.isArray(snapshot.removed) || snapshot.removed.length === 0 || snapshot.removed.length > MAX_RECORDED_ROLES) return undefined;
  const removed: RemovedRole[] = [];
  for (const role of snapshot.removed as Array<Record<string, unknown>>) {
    const { roleDefinitionId, directoryScopeId } = role ?? {};
    if (typeof roleDefinitionId !== 'string' || !isGuid(roleDefinitionId)) continue;
    if (typeof directoryScopeId !== 'string' || !DIRECTORY_SCOPE.test(directoryScopeId)) continue;
    removed.push({ roleDefinitionId: roleDefinitionId.toLowerCase(), directoryScopeId });
  }
  if (removed.length === 0) return undefined;
  const removedAt = entry.history.find((event) => event.state === 'succeeded')?.at ?? entry.updatedAt;
  return { entry, principalId: snapshot.principalId.toLowerCase(), removed, removedAt };
}

/** What became of one removal: the roles back without a new approval, and what was passed over and why. */
async function inspect(context: SweepContext, directory: Directory, candidate: Candidate): Promise<{ drifts: Drift[]; passedOver: string[] }> {
  const { entry, principalId } = candidate;
  const who = `${userLabel(candidate)} (action ${entry.key})`;
  if (entry.target.type !== 'user' || (entry.target.id !== undefined && entry.target.id.toLowerCase() !== principalId))
    return { drifts: [], passedOver: [`${who}: its snapshot names another user than its target; not judged`] };
  const givenBack = async (rolledBackBy: string | undefined): Promise<{ drifts: Drift[]; passedOver: string[] } | undefined> => {
    const rollback = rolledBackBy === undefined ? undefined : await context.ledger.get(rolledBackBy);
    if (rolledBackBy === undefined || (rollback && ROLLBACK_GAVE_NOTHING.has(rollback.state))) return undefined;
    return { drifts: [], passedOver: [`${who}: rollback ${rolledBackBy} is ${rollback?.state ?? 'asked for'}: roles given back are the engine's own`] };
  };
  const passed = await givenBack(entry.rolledBackBy);
  if (passed) return passed;
  const listed = await directory.listActiveRoles(principalId);
  // Asked again after the roles were read: a rollback that had not run by then gave none of them.
  const movedOn = await givenBack((await context.ledger.get(entry.key))?.rolledBackBy);
  if (movedOn) return movedOn;
  const back = listed.filter((active) => typeof active === 'object' && active !== null && candidate.removed.some((role) => sameRole(role, active)));
  const drifts: Drift[] = [];
  const passedOver: string[] = [];
  let history: RequestHistory | undefined;
  for (const active of back) {
    const role = candidate.removed.find((removed) => sameRole(removed, active)) as RemovedRole;
    const started = typeof active.startDateTime === 'string' ? Date.parse(active.startDateTime) : Number.NaN;
    const what = `${who}: ${role.roleDefinitionId} at ${role.directoryScopeId}`;
    if (Number.isNaN(started)) passedOver.push(`${what} is active again, with no start time Graph gave: not judged`);
    else if (active.memberType === 'Group') passedOver.push(`${what} is held through a group: PIM for Groups governs that membership`);
    else if (active.assignmentType !== 'Activated')
      drifts.push({
        candidate,
        role,
        since: new Date(started).toISOString(),
        how: 'direct assignment',
        detail: `assigned as active (${displayText(String(active.assignmentType), 40)}), not activated through PIM`,
      });
    else {
      // Only activations need the request history: read once per user, and only when a removed role came back.
      history ??= await requestHistory(directory, principalId);
      const removedAt = Date.parse(candidate.removedAt);
      const request = activationRequest(active, role, history.requests, removedAt);
      const since = new Date(started).toISOString();
      const approved = typeof request?.approvalId === 'string' && request.approvalId.trim() !== '';
      if (history.refused !== undefined) passedOver.push(`${what} was activated at ${since}; ${history.refused}: a human should look`);
      else if (request === undefined)
        passedOver.push(
          `${what} was activated at ${since} through a request not found in ${history.complete ? 'its PIM history' : 'the part of its PIM history read'}: a human should look`,
        );
      else if (approved && !(Date.parse(String(request.createdDateTime)) >= removedAt))
        // Approved before the removal (an activation scheduled to start later, say): not the new approval the removal asked for.
        drifts.push({
          candidate,
          role,
          since,
          how: 'activation approved before the removal',
          detail: `PIM request ${displayText(String(request.id), 80)} was approved (approval ${displayText(String(request.approvalId), 80)}) before the removal, not since`,
        });
      else if (approved)
        passedOver.push(
          `${what} was activated at ${since} with an approval: request ${displayText(String(request.id), 80)}, approval ${displayText(String(request.approvalId), 80)}`,
        );
      else
        drifts.push({
          candidate,
          role,
          since,
          how: 'activation without approval',
          detail: `PIM request ${displayText(String(request.id), 80)} activated it with no approval: the role's policy lets the user activate it alone`,
        });
    }
  }
  return { drifts, passedOver };
}

interface RequestHistory {
  requests: RoleRequest[];
  complete: boolean;
  /** Why Graph would not list the requests: their application permission is disputed (docs/permissions.md). */
  refused?: string;
}

/** The user's PIM requests; a refusal (403) leaves activations unjudged instead of failing every run after it. */
async function requestHistory(directory: Directory, principalId: string): Promise<RequestHistory> {
  try {
    return await directory.listRoleRequests(principalId);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
    return { requests: [], complete: false, refused: `Graph refused to list its PIM requests (403 ${displayText(error.code ?? '', 80)})` };
  }
}

/**
 * The request that gave an activation: the one whose schedule it was made from (Graph: the request's targetScheduleId
 * is the instance's roleAssignmentScheduleId), else, when Graph names no schedule, the latest activation of the role
 * since the removal; only a granted one (a request waiting for its approver already carries an approvalId, and gave
 * nothing).
 */
function activationRequest(active: ActiveRole, role: RemovedRole, requests: readonly RoleRequest[], removedAt: number): RoleRequest | undefined {
  const granted = requests.filter(
    (r) => typeof r?.action === 'string' && SELF_ACTIVATIONS.has(r.action.toLowerCase()) && GRANTED.has(String(r.status).toLowerCase()) && sameRole(role, r),
  );
  const schedule = active.roleAssignmentScheduleId;
  // A named schedule is matched alone: another approved request says nothing of this activation (requests flooded in can
  // push its own out of the pages read).
  if (typeof schedule === 'string' && schedule !== '') return granted.find((r) => r.targetScheduleId === schedule);
  const since = granted.filter((r) => typeof r.createdDateTime === 'string' && Date.parse(r.createdDateTime) >= removedAt);
  return since.sort((a, b) => Date.parse(b.createdDateTime as string) - Date.parse(a.createdDateTime as string))[0];
}

const sameRole = (role: RemovedRole, other: { roleDefinitionId?: unknown; directoryScopeId?: unknown }): boolean =>
  typeof other.roleDefinitionId === 'string' &&
  other.roleDefinitionId.toLowerCase() === role.roleDefinitionId &&
  (other.directoryScopeId ?? '/') === role.directoryScopeId;

/** The drift's subject: the user, the role and its scope, and when the new assignment started. */
const subjectOf = ({ candidate, role, since }: Drift): string =>
  `privilegeDrift:${candidate.principalId}:${role.roleDefinitionId}:${role.directoryScopeId}:${since}`;

const describe = ({ candidate, role, how, since }: Drift): string =>
  `${userLabel(candidate)} holds ${role.roleDefinitionId} at ${role.directoryScopeId} again (${how}) since ${since}`;

/** The user as the removal named them (its UPN, checked against the directory when it ran), else the object id. */
const userLabel = ({ entry }: Candidate): string => displayText(targetLabel(entry.target), TEXT_LIMITS.upn);

/** Which of the drifts' subjects the engine already decided, and when: a second run or finding decides nothing again. */
async function decidedSubjects(context: SweepContext, drifts: readonly Drift[]): Promise<Map<string, string>> {
  const done = new Map<string, string>();
  if (drifts.length === 0) return done;
  const earliest = drifts.map((d) => d.since).sort()[0] as string;
  for (const record of await context.ledger.listDecisions(earliest)) done.set(record.subject, record.at);
  return done;
}

/** The drift as a signal about the user, named by the directory's object id alone: enrichment says who it is. */
function driftSignal(drift: Drift): Signal {
  const { candidate, how, detail } = drift;
  return {
    source: 'sweep',
    subject: subjectOf(drift),
    title: cut(`Privilege drift: ${describe(drift)}`, TEXT_LIMITS.title),
    severity: 'High',
    // MITRE ATT&CK T1098.003, Account Manipulation: Additional Cloud Roles.
    tactics: ['PrivilegeEscalation'],
    techniques: ['T1098.003'],
    products: [],
    labels: [PRIVILEGE_DRIFT_LABEL],
    entities: [{ kind: 'account', aadUserId: candidate.principalId }],
    notes: [`${how}: ${detail}`, `removed by requirePimReapproval ${candidate.entry.key} at ${candidate.removedAt}`],
  };
}

/** Decided as any sweep signal; once decided for real, told to the incident the removal came from. */
function driftFinding(context: SweepContext, drift: Drift): Finding {
  const signal = driftSignal(drift);
  const decision = decided(context, signal);
  return {
    subject: signal.subject,
    act: async (dryRun) => {
      const { summary, planned } = await decision.act(dryRun);
      if (!dryRun)
        await reportFinding(context.incidents, drift.candidate.entry.source.incidentArmId, signal.subject, driftComment(drift, summary), context.log);
      return { summary: `${describe(drift)}: ${summary}`, planned };
    },
  };
}

/** The incident comment: which role came back, how and when, and what the policy decided; outside values inert. */
function driftComment(drift: Drift, decision: string): string {
  const { candidate, role, how, detail, since } = drift;
  return [
    `Sentinel Responder — PRIVILEGE DRIFT: ${inert(userLabel(candidate), 400)} holds role ${role.roleDefinitionId} again`,
    `How: ${how}: ${inert(detail, 600)}`,
    `When: since ${since}, after action ${candidate.entry.key} removed it at ${candidate.removedAt} (scope ${inert(role.directoryScopeId, 200)})`,
    `Policy decided: ${inert(decision, 1500)}`,
    `Only a rule naming the label acts on such findings: when: { source: sweep, labels: [${PRIVILEGE_DRIFT_LABEL}] }`,
  ].join('\n');
}
