import type { Analyst } from '../actions/approval';
import { ACTIONS, type ActionKind } from '../actions/catalogue';
import { reportOutcome } from '../actions/report';
import { rollbackStep } from '../actions/rollback';
import { targetLabel } from '../actions/target';
import { ApiError } from '../clients/apiError';
import type { IncidentStatus } from '../clients/sentinel';
import { RefusedError } from '../errors';
import type { LedgerEntry } from '../ledger/ledger';
import { displayText } from '../limits';
import { parseIncidentArmId, type IncidentArmIdParts } from '../signals/identifiers';
import type { Finding, SweepContext, SweepDefinition, SweepPage } from './sweep';

/**
 * falsePositives: containments that still stand on someone an analyst has since cleared. For each succeeded action the
 * engine can undo, taken for an incident that was later closed as FalsePositive or BenignPositive, its rollback is
 * proposed: recorded `pending-approval` whatever the policy says (a sweep's reading of a classification is no
 * analyst's word), and the incident is told how to approve it. An action whose rollback was ever asked for (pending,
 * done, denied, refused) is left alone: the analyst's word stands. Each incident is read once a run, a page of
 * INCIDENTS_PER_PAGE at a time, in order of ARM id, so a run that runs out of time goes on where it stopped.
 */
export const falsePositives: SweepDefinition = {
  setting: 'RESPONDER_SWEEP_FALSEPOSITIVES',
  // Hourly, at a minute no other sweep takes: an account wrongly disabled waits an hour at most for its proposal.
  schedule: '0 20 * * * *',
  async page(context, cursor) {
    // Read once a run: its pages take incidents apart, so what one page proposes changes nothing a later page reads.
    const after = [...(await context.once('standing', () => standingByIncident(context)))]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .filter(([armId]) => cursor === undefined || armId > cursor);
    const handled = after.slice(0, INCIDENTS_PER_PAGE);
    const page: SweepPage = { findings: [], passedOver: [], ...(after.length > handled.length && { next: handled.at(-1)?.[0] }) };
    if (handled.length === 0) return page;
    const sentinel = await context.incidents();
    for (const [, { incident, containments, proposals }] of handled) {
      const standing = `${containments.length} containment(s) stand`;
      let status: IncidentStatus;
      try {
        status = await sentinel.incidentStatus(incident);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        page.passedOver.push(`incident ${incident.incidentName}: no longer in Sentinel (404): ${standing}`);
        continue;
      }
      if (!closedAsFalseAlarm(status)) {
        const now = isClosed(status) ? `closed as ${status.classification ?? 'unclassified'}` : `${status.status}, not closed`;
        // Reopened or reclassified since its rollbacks were proposed: what they stood on is gone, and they are withdrawn.
        for (const held of proposals) page.findings.push(withdrawal(context, held, now));
        if (containments.length > 0) page.passedOver.push(`incident ${incident.incidentName}: ${now}: ${standing}`);
        continue;
      }
      for (const original of containments) page.findings.push(proposal(context, original, status));
    }
    return page;
  },
};

/** Incidents a page reads from ARM, one read each: a page takes seconds, and its place is kept after it. */
export const INCIDENTS_PER_PAGE = 25;

/** How an analyst closes an incident whose containment hit someone who did nothing wrong. */
const FALSE_ALARMS = ['falsepositive', 'benignpositive'];

/** How much of the analyst's closing comment a proposal quotes. */
const QUOTED_COMMENT = 300;

/** Why every proposal waits for an analyst, whatever the policy would do with a rollback. */
const HOLD = 'proposed by the falsePositives sweep: nothing is undone until an analyst approves it';

interface StandingOnIncident {
  incident: IncidentArmIdParts;
  containments: LedgerEntry[];
  /** Rollbacks this sweep proposed for the incident that still wait for an analyst. */
  proposals: LedgerEntry[];
}

/**
 * The containments a rollback could undo, by incident (ARM id, lower case): succeeded within the look-back, taken for
 * an incident, changing something the engine can undo (not audit mode, not an account someone else had disabled), and
 * with no rollback ever asked for.
 */
async function standingByIncident(context: SweepContext): Promise<Map<string, StandingOnIncident>> {
  const since = new Date(context.now().getTime() - context.timings.falsePositiveLookBackMs).toISOString();
  const undoable = (await context.ledger.list({ state: 'succeeded', since })).filter(
    (entry) => entry.rolledBackBy === undefined && rollbackStep(entry).step === 'undo',
  );
  const asked = await rollbacksAsked(context, undoable, since);
  const byIncident = new Map<string, StandingOnIncident>();
  const on = (entry: LedgerEntry): StandingOnIncident | undefined => {
    const armId = entry.source.incidentArmId;
    const incident = armId === undefined ? undefined : parseIncidentArmId(armId);
    if (armId === undefined || incident === undefined) return undefined;
    const found = byIncident.get(armId.toLowerCase()) ?? { incident, containments: [], proposals: [] };
    byIncident.set(armId.toLowerCase(), found);
    return found;
  };
  for (const entry of undoable) if (!asked.has(entry.key)) on(entry)?.containments.push(entry);
  const held = await context.ledger.list({ state: 'pending-approval', since });
  // Its hold's reason marks what this sweep proposed (an analyst who runs it is its requester, as for their own requests).
  for (const entry of held) if (entry.source.rollbackOf !== undefined && entry.stateReason?.endsWith(HOLD)) on(entry)?.proposals.push(entry);
  return byIncident;
}

/**
 * The keys of actions some rollback names, in whatever state it is. A refused one (blocked: its target is protected now)
 * leaves the original without `rolledBackBy`; proposed again, it would be refused again at every run.
 */
async function rollbacksAsked(context: SweepContext, originals: readonly LedgerEntry[], since: string): Promise<Set<string>> {
  const kinds = new Set(originals.map((entry) => ACTIONS[entry.kind].rollback).filter((kind): kind is ActionKind => kind !== undefined));
  const asked = new Set<string>();
  for (const kind of kinds)
    for (const rollback of await context.ledger.list({ kind, since })) if (rollback.source.rollbackOf !== undefined) asked.add(rollback.source.rollbackOf);
  return asked;
}

const isClosed = (status: IncidentStatus): boolean => status.status.toLowerCase() === 'closed';

function closedAsFalseAlarm(status: IncidentStatus): boolean {
  return isClosed(status) && FALSE_ALARMS.includes(status.classification?.toLowerCase() ?? '');
}

/** How the analyst closed it, their comment quoted (bounded: it is free text, and it ends up in an incident comment). */
function closedAs(status: IncidentStatus): string {
  const reason = status.classificationReason ? ` (${status.classificationReason})` : '';
  const comment = status.classificationComment ? `: "${displayText(status.classificationComment, QUOTED_COMMENT)}"` : '';
  return `the incident was closed as ${status.classification}${reason}${comment}`;
}

/** Propose the rollback of `original` (a dry run: say it would), and tell its incident how to decide on it. */
function proposal(context: SweepContext, original: LedgerEntry, status: IncidentStatus): Finding {
  const what = `rollback of ${original.kind} on ${targetLabel(original.target)} (${original.key})`;
  const why = closedAs(status);
  return {
    subject: original.key,
    act: async (dryRun) => {
      if (dryRun) return { summary: `would propose ${what}: ${why}`, planned: 1 };
      let entry: LedgerEntry | undefined;
      try {
        ({ entry } = await context.engine.rollback(original.key, proposer(context.by), `undo ${original.kind} ${original.key}: ${why}`, context.log, {
          hold: HOLD,
        }));
      } catch (error) {
        // Moved on since the page was read, held by another containment, or another rollback is under way: as an analyst is told.
        if (error instanceof RefusedError) return { summary: `${what} not proposed: ${error.message}`, planned: 0 };
        throw error;
      }
      if (entry === undefined) return { summary: `${what} not proposed: the engine could not identify its target`, planned: 0 };
      // Held, or refused by protection or a cap (blocked): the incident hears either, as of any action.
      const held = entry.state === 'pending-approval';
      await reportOutcome(context.incidents, entry, held ? 'held' : 'blocked', entry.stateReason ?? HOLD, 0, context.log);
      if (!held) return { summary: `${what} refused: ${entry.stateReason ?? entry.state}`, planned: 0 };
      return { summary: `proposed ${what}: ${entry.key}, pending-approval`, planned: 1 };
    },
  };
}

/**
 * Withdraw a rollback this sweep proposed, its incident no longer closed as a false alarm (a dry run: say it would):
 * denied in the proposer's name, so an analyst cannot approve what now stands on nothing, and the incident is told.
 */
function withdrawal(context: SweepContext, held: LedgerEntry, now: string): Finding {
  const what = `proposed ${held.kind} on ${targetLabel(held.target)} (${held.key})`;
  const why = `withdrawn: the incident is ${now} since it was proposed`;
  return {
    subject: held.key,
    act: async (dryRun) => {
      if (dryRun) return { summary: `would withdraw ${what}: ${why}`, planned: 0 };
      try {
        await context.analysts.deny(held.key, proposer(context.by), why, context.log);
      } catch (error) {
        // Decided or expired meanwhile: an analyst's word, or the clock's, stands.
        if (error instanceof RefusedError) return { summary: `${what} not withdrawn: ${error.message}`, planned: 0 };
        throw error;
      }
      return { summary: `${why}: ${what}`, planned: 0 };
    },
  };
}

/** Who proposes: the sweep on its schedule, or the analyst who ran it (who then may not approve it: four eyes). */
function proposer(by: string): Analyst {
  return { objectId: by, name: by.startsWith('sweep:') ? 'the falsePositives sweep' : `the falsePositives sweep run by ${by}` };
}
