import type { ActionKind } from './actions/catalogue';
import { commandFor, unqueueable, type ActionCommand } from './actions/command';
import { reportedCommand, reportOutcome, reportWaiting, waitingComment, type WaitedAction } from './actions/report';
import { classifyFailure } from './actions/failure';
import { deviceTarget, sameTarget, targetId, targetLabel, userTarget, type ActionTarget } from './actions/target';
import { overdue, type Analyst } from './actions/approval';
import { replayStep } from './actions/replay';
import { rollbackStep } from './actions/rollback';
import {
  canTransition,
  LedgerConflictError,
  LedgerTransitionError,
  targetKeys,
  type ActionLedger,
  type LedgerEntry,
  type LedgerPatch,
  type LedgerState,
} from './ledger/ledger';
import type { Logger } from './log';
import { capKey, decide, decideRequest, summarize, type CompiledPolicy, type RequestedStep } from './policy/decide';
import type { Decision, PlannedAction, SkippedAction, WaitingAction } from './policy/decision';
import { lackedData } from './policy/unavailable';
import type { Mode } from './policy/schema';
import type { ActionQueue } from './queue/queue';
import { InputError, RefusedError } from './errors';
import { spend, type BudgetAnswer, type BudgetRecord } from './coordination/budget';
import type { Turn } from './coordination/pacer';
import type { SharedState } from './coordination/sharedState';
import {
  nextLookAfterMs,
  REEVALUATE_AFTER_MS,
  waitingDigest,
  type IncidentReevaluation,
  type Reevaluation,
  type ReevaluationReason,
  type RiskReevaluation,
  type ReevaluationTimings,
} from './queue/reevaluation';
import { parseIncidentArmId, type IncidentArmIdParts } from './signals/identifiers';
import { incidentRefOf, NO_ENTITIES_NOTE, normalizeSentinelPayload } from './signals/sentinel';
import type { AccountEntity, Entity, HostEntity, IncidentRef, Signal } from './signals/signal';
import type { EnrichOptions } from './enrichment/enrich';
import type { SentinelIncidents } from './clients/sentinel';

/** How many times the engine reads an entry again when another writer moved it between its read and its write. */
const LEDGER_TRIES = 5;

/** What the engine uses to turn a signal into recorded, queued actions. */
export interface EngineDeps {
  policy: CompiledPolicy;
  ledger: ActionLedger;
  queue: ActionQueue;
  modeOverride: Mode;
  now: () => Date;
  log: Logger;
  /** The incident's entities when the payload has none, and comments on it. */
  incidents: () => Promise<SentinelIncidents>;
  /**
   * Fills in who each entity is (the directory's answer), user risk, privilege, groups and device data before deciding;
   * absent when enrichment is off. `preview` (a what-if plan) reads only what containment can spare.
   */
  enrich?: (signal: Signal, policy: CompiledPolicy, options?: EnrichOptions) => Promise<Signal>;
  /** Records every instance shares: the caps' budgets. */
  shared: SharedState;
  /** When to look at an incident again (default REEVALUATION_TIMINGS). */
  reevaluation?: ReevaluationTimings;
  /**
   * An action's turn at the budgets its writes need (Pacer.turnFor), and how long it waits to reach the worker: none
   * while they have room, else until a lead ahead of its turn. Absent, or undefined for an action, it is sent at once.
   */
  pacing?: (command: ActionCommand) => Promise<{ turn: Turn; waitMs: number } | undefined>;
}

/** What one submission did to the ledger, per action. */
export interface RecordedAction {
  key: string;
  kind: ActionKind;
  target: string;
  state: LedgerState;
  /** False when an earlier delivery of the same subject had already recorded it. */
  new: boolean;
}

export interface Submission {
  decision: Decision;
  recorded: RecordedAction[];
}

/** The queue could not take the commands: the caller should retry (HTTP 503), nothing was lost. */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError';
}

/**
 * The engine: Signal -> (listed entities, enrichment) -> Decision -> ledger -> ActionCommands on the queue; the
 * worker (shared/worker.ts) takes them from there. It owns the order of I/O around the pure policy module; it never
 * talks HTTP or Azure Functions (the adapters in functions/ do).
 */
export class ResponderEngine {
  constructor(private readonly deps: EngineDeps) {}

  get policy(): CompiledPolicy {
    return this.deps.policy;
  }

  /** The decision, with the ledger's view (caps spent, actions already recorded), and no side effect. */
  async plan(given: Signal, policy: CompiledPolicy = this.deps.policy): Promise<Decision> {
    const listed = await this.withListedEntities(given, this.deps.log);
    // A read-only route must not spend the API budgets containment needs: it reads only what they can spare.
    const signal = this.deps.enrich ? await this.deps.enrich(listed, policy, { preview: true }) : listed;
    const decision = decide(signal, policy, { modeOverride: this.deps.modeOverride, capUsage: await this.capUsage(policy) });
    const existing = await this.existingEntries(decision);
    return withLedgerView(decision, existing);
  }

  /**
   * Decide, record, enqueue. Each planned action is first created in the ledger (insert-if-absent: concurrent
   * deliveries of one incident create it once), then sent, then marked queued. An entry left `planned` by a failed
   * send or a crash is sent again by the next delivery: the relay retries on 503, and the MessageId is the
   * idempotency key, so Service Bus drops a copy that did get through.
   */
  async submit(given: Signal, by: string, parentLog: Logger = this.deps.log, reevaluation?: Reevaluation): Promise<Submission> {
    const log = parentLog.child({
      incidentId: given.incident?.armId ?? given.subject,
      ...(given.incident?.number !== undefined && { incidentNumber: given.incident.number }),
    });
    const signal = await this.prepare(given, reevaluation, log);
    const look = lookAt(signal, reevaluation);
    const decided = decide(signal, this.deps.policy, { modeOverride: this.deps.modeOverride, capUsage: await this.capUsage(this.deps.policy), look });
    // A wait an earlier delivery already ended (held on its last look, say) stands as decided: nothing to look for.
    const undecided = withLedgerView(decided, await this.existingEntries({ actions: [], waiting: decided.waiting }));
    // The next look is scheduled before the wait is recorded: a crash between leaves a look with nothing to do, never a
    // waiting action no look will end.
    const decision = await this.scheduleLook(undecided, signal, look, log, reevaluation);
    const at = this.deps.now().toISOString();
    // Only a look for data ends waits: each waiting action has a look coming, which the relay's deliveries need not do.
    const waitedBefore = reevaluation?.reason === 'waitingForData' ? await this.deps.ledger.list({ subject: signal.subject, state: 'waiting' }) : [];
    const planned = await this.recordPlanned(decision.actions, signal, at, by);
    const skipped = await this.recordSkipped(decision.skipped, signal, at, by, undefined, log);
    const waiting = await this.recordWaiting(decision.waiting, signal, at, by, decision.lookAgainAt);
    const settled = [...planned.recorded, ...planned.toSend.map(({ entry }) => recordOf(entry, true)), ...skipped, ...waiting];
    const ended = await this.endWaits(waitedBefore, decision, signal, settled, at, log);
    const sent = await this.send(planned.toSend, at, log);
    const recorded = [...planned.recorded, ...skipped, ...waiting, ...ended, ...sent];
    const result = withLedgerView(decision, planned.existing);
    if (signal.incident && (decision.waiting.length > 0 || reevaluation?.reason === 'waitingForData'))
      await this.reportWaits(signal.incident.armId, result, look, waitedBefore, log);
    await this.recordDecision(signal, result, at, by, log);
    log.info(
      {
        score: decision.score.total,
        sent: planned.toSend.length,
        recorded: recorded.length,
        waiting: decision.waiting.length,
        policy: decision.policy.digest,
        by,
      },
      result.summary,
    );
    return { decision: result, recorded };
  }

  /**
   * Keep what was decided on the subject, actions or none: the missedIncidents sweep reads it to tell an incident the
   * engine never saw from one it left alone. Not kept, the incident is only submitted again by that sweep, which decides
   * the same: a failure here is logged, and the submission stands.
   */
  private async recordDecision(signal: Signal, decision: Decision, at: string, by: string, log: Logger): Promise<void> {
    const actions = decision.actions.length + decision.waiting.length;
    try {
      await this.deps.ledger.recordDecision({ subject: signal.subject, at, by, summary: decision.summary, actions, policy: decision.policy.digest });
    } catch (error) {
      log.warn({ err: error }, 'the decision was not recorded: the missedIncidents sweep may submit this incident again');
    }
  }

  /** The signal as the policy should see it: with the incident's entities listed if it came without, and enriched. */
  private async prepare(given: Signal, reevaluation: Reevaluation | undefined, log: Logger): Promise<Signal> {
    const listed = await this.withListedEntities(given, log);
    if (listed.incident && listed.entities.length === 0)
      await this.waitForEntities(listed, reevaluation?.reason === 'noEntities' ? reevaluation.attempt : 0, log);
    return this.deps.enrich ? this.deps.enrich(listed, this.deps.policy) : listed;
  }

  /**
   * A decision with actions waiting for data: look at the incident again (`waitingForData`), at the time the data says
   * it may be read or the schedule's next step, and say when in the decision. On the last look nothing waits: decide
   * held what would have.
   */
  private async scheduleLook(decision: Decision, signal: Signal, look: Look, log: Logger, reevaluation?: Reevaluation): Promise<Decision> {
    if (decision.waiting.length === 0 || look.last) return decision;
    const retryAfterMs = Math.max(0, ...decision.waiting.map((w) => w.retryAfterMs ?? 0));
    const delay = nextLookAfterMs('waitingForData', look.evaluation - 1, retryAfterMs, this.deps.reevaluation) as number;
    const at = new Date(this.deps.now().getTime() + delay);
    // The MessageId must be new for a new chain of looks, or Service Bus drops it as a duplicate of an earlier chain's
    // and what waits again is never looked at: a look carries its chain on, and a wait that begins again where an
    // earlier one ended as not needed names when that one ended. Deliveries of one incident still make one chain.
    const chain: string[] = [];
    if (reevaluation?.reason === 'waitingForData' && reevaluation.waitingFor !== undefined) chain.push(`after ${reevaluation.waitingFor}`);
    for (const action of decision.waiting) {
      const entry = await this.deps.ledger.get(action.idempotencyKey);
      if (entry?.state === 'not-needed') chain.push(`again ${entry.key} ${entry.updatedAt}`);
    }
    const waitingFor = waitingDigest([...decision.waiting.map((w) => `${w.ruleId} ${w.idempotencyKey}`), ...chain]);
    if (signal.incident) await this.scheduleReevaluation(signal.incident.armId, 'waitingForData', look.evaluation, at, log, waitingFor);
    else if (signal.risk) {
      const source = signal.source === 'sweep' ? 'sweep' : 'risk';
      const createdAt = this.deps.now().toISOString();
      const message = {
        type: 'reevaluateRisk',
        subject: signal.subject,
        source,
        record: signal.risk,
        reason: 'waitingForData',
        attempt: look.evaluation,
        waitingFor,
        createdAt,
      } as const;
      await this.scheduleLookMessage(message, at, log);
    }
    const lookAgainAt = at.toISOString();
    const what = signal.incident ? 'the incident' : 'the risk record';
    const note = `${decision.waiting.length} action(s) wait for data: ${what} is evaluated again at ${lookAgainAt} (look ${look.evaluation + 1} of ${look.of + 1}); what still waits after the last look is held for a human`;
    log.info({ at: lookAgainAt, attempt: look.evaluation, waiting: decision.waiting.length }, 'waiting for data: re-evaluation scheduled');
    const scheduled = { ...decision, lookAgainAt, notes: [...decision.notes, note] };
    return { ...scheduled, summary: summarize(scheduled) };
  }

  /**
   * Create each planned action's entry (insert-if-absent). A new one takes its place in every cap first (blocked when a
   * cap is spent); it, and one an earlier delivery left `planned`, are to be sent; any other was recorded before.
   */
  private async recordPlanned(actions: readonly PlannedAction[], signal: Signal, at: string, by: string, rollbackOf?: string): Promise<RecordedPlan> {
    const plan: RecordedPlan = { recorded: [], toSend: [], existing: new Map() };
    for (const action of actions) {
      const fields = newEntry(action, signal, 'planned', undefined, at, by, rollbackOf);
      const made = await this.deps.ledger.create(fields);
      // An action that waited for data is new to the caps and the queue once planned, as a created one is.
      const resumed = !made.created && UNDECIDED.includes(made.entry.state) && made.entry.state !== 'planned';
      const entry = resumed
        ? await this.moveUndecided(made.entry, 'planned', `the data it waited for was read: ${action.reason}`, at, verdictOf(fields))
        : made.entry;
      const created = made.created || (resumed && entry.state === 'planned');
      const overCap = created ? await this.reserveCaps(entry, at) : undefined;
      if (overCap) {
        const blocked = await this.deps.ledger.transition(entry.key, entry.etag, 'blocked', { by: 'engine', at, note: overCap }, { stateReason: overCap });
        plan.recorded.push(recordOf(blocked, true));
      } else if (created || entry.state === 'planned') {
        plan.toSend.push({ command: commandFor(entry, at), entry });
      } else {
        plan.existing.set(entry.key, entry);
        plan.recorded.push(recordOf(entry, false));
      }
    }
    return plan;
  }

  /**
   * Record the actions held for a human and those refused, so they can be seen, counted and approved. One that waited
   * for data takes this verdict, and its incident is told (the analyst who saw it wait looks there).
   */
  private async recordSkipped(
    skipped: readonly SkippedAction[],
    signal: Signal,
    at: string,
    by: string,
    rollbackOf?: string,
    log: Logger = this.deps.log,
  ): Promise<RecordedAction[]> {
    const recorded: RecordedAction[] = [];
    for (const skip of skipped) {
      const state = skipState(skip);
      if (!state || !skip.idempotencyKey || !skip.target) continue;
      const recordable = { ...skip, idempotencyKey: skip.idempotencyKey, target: skip.target };
      const why = `${skip.reason}: ${skip.detail}`;
      const fields = newEntry(recordable, signal, state, why, at, by, rollbackOf);
      const { created, entry } = await this.deps.ledger.create(fields);
      // An earlier delivery planned it but never got it onto the queue, deciding on less (say, before the directory
      // could be read), or it waited for data: nothing was sent, so this verdict is the one that stands.
      const moved = !created && UNDECIDED.includes(entry.state) ? await this.moveUndecided(entry, state, why, at, verdictOf(fields)) : entry;
      if (moved !== entry && moved.state === state && entry.state !== 'planned')
        await reportOutcome(this.deps.incidents, moved, state === 'blocked' ? 'blocked' : 'held', why, 0, log);
      recorded.push(recordOf(moved, created));
    }
    return recorded;
  }

  /**
   * Record each action that waits for data as `waiting`, under its key, with what it waits for and when it is looked at
   * again: what an analyst finds with GET /api/actions?incident=…. One recorded before waits again (a new history
   * event); one an earlier delivery decided keeps its verdict.
   */
  private async recordWaiting(waiting: readonly WaitingAction[], signal: Signal, at: string, by: string, lookAgainAt?: string): Promise<RecordedAction[]> {
    const recorded: RecordedAction[] = [];
    for (const action of waiting) {
      const why = `rule ${action.ruleId} may want it: waiting for ${lackedData(action)} (${action.why})${lookAgainAt ? `; evaluated again at ${lookAgainAt}` : ''}`;
      const fields = newEntry(action, signal, 'waiting', why, at, by);
      const { created, entry } = await this.deps.ledger.create(fields);
      const moved =
        !created && (entry.state === 'waiting' || entry.state === 'not-needed')
          ? await this.moveUndecided(entry, 'waiting', why, at, verdictOf(fields))
          : entry;
      recorded.push(recordOf(moved, created));
    }
    return recorded;
  }

  /**
   * On a look for data: each action that waited and that this decision gave no verdict under its key ends as
   * `waitEnding` says — not needed, or held for a human when the look could not judge its target.
   */
  private async endWaits(
    waited: readonly LedgerEntry[],
    decision: Decision,
    signal: Signal,
    settled: readonly RecordedAction[],
    at: string,
    log: Logger,
  ): Promise<RecordedAction[]> {
    const handled = new Set(settled.map((r) => r.key));
    const ended: RecordedAction[] = [];
    for (const entry of waited) {
      if (handled.has(entry.key)) continue;
      const end = waitEnding(entry, decision, signal);
      const moved = await this.moveUndecided(entry, end.state, end.why, at);
      if (moved !== entry && moved.state === 'pending-approval') await reportOutcome(this.deps.incidents, moved, 'held', end.why, 0, log);
      ended.push(recordOf(moved, false));
    }
    return ended;
  }

  /** The incident's comment on what waits for data and when it is looked at again, or, once nothing waits, what each became. */
  private async reportWaits(armId: string, decision: Decision, look: Look, waitedBefore: readonly LedgerEntry[], log: Logger): Promise<void> {
    const waited: WaitedAction[] = [];
    if (decision.waiting.length === 0)
      for (const before of waitedBefore) {
        const entry = (await this.deps.ledger.get(before.key)) ?? before;
        waited.push({ kind: entry.kind, target: entry.target, state: entry.state, ...(entry.stateReason && { why: entry.stateReason }) });
      }
    const comment = waitingComment(
      { evaluation: look.evaluation, of: look.of, ...(decision.lookAgainAt && { nextAt: decision.lookAgainAt }) },
      decision.waiting,
      waited,
    );
    await reportWaiting(this.deps.incidents, armId, comment, log);
  }

  /**
   * Send the commands in one batch, then mark each entry queued. A command the queue's schema would refuse would be
   * dead-lettered as poison on arrival: it ends `failed` here instead, with its reason, and the rest are sent. (Signals
   * bound what they read, so this is a second line, not the first.) A command whose write's budget is pressed is
   * scheduled for its turn instead (`pacing`), and its entry says so.
   */
  private async send(toSend: readonly Sendable[], at: string, log: Logger): Promise<RecordedAction[]> {
    const recorded: RecordedAction[] = [];
    const sendable: Sendable[] = [];
    for (const { command, entry } of toSend) {
      const refusal = unqueueable(command);
      if (refusal === undefined) {
        sendable.push({ command, entry });
        continue;
      }
      const why = `cannot be queued: ${refusal}`;
      recorded.push(recordOf(await this.deps.ledger.transition(entry.key, entry.etag, 'failed', { by: 'engine', at, note: why }, { stateReason: why }), true));
      log.error({ actionId: entry.key }, why);
      await reportOutcome(this.deps.incidents, reportedCommand(command), 'failed', why, 0, log);
    }
    if (sendable.length === 0) return recorded;
    const timed = await Promise.all(sendable.map((s) => this.timed(s)));
    try {
      const atOnce = timed.filter((s) => s.at === undefined).map((s) => s.command);
      if (atOnce.length > 0) await this.deps.queue.send(atOnce);
      for (const { command, at: due } of timed) if (due) await this.deps.queue.schedule(command, due);
    } catch (error) {
      log.error({ err: error, actions: sendable.length }, 'enqueue failed: answering 503 so the caller retries');
      throw new QueueUnavailableError(`the action queue did not accept ${sendable.length} action(s): retry the request`);
    }
    for (const { entry, command, at: due } of timed) {
      const waits = due && command.turn ? { note: `waits its turn for the ${command.turn.api} budget: due ${due.toISOString()}` } : {};
      recorded.push(recordOf(await this.markQueued(entry, at, waits), true));
    }
    return recorded;
  }

  /** The command as it goes to the queue, and when if not at once: a pressed budget's turn (`pacing`). */
  private async timed({ command, entry }: Sendable): Promise<Sendable & { at?: Date }> {
    const paced = await this.deps.pacing?.(command);
    if (!paced) return { command, entry };
    const turned = { ...command, turn: paced.turn };
    return paced.waitMs > 0 ? { command: turned, entry, at: new Date(this.deps.now().getTime() + paced.waitMs) } : { command: turned, entry };
  }

  /**
   * An analyst's request for one action (POST /api/actions): the target resolved in the directory like an incident's
   * (and bound to the directory's identity), judged by the same policy with `source: manual`, recorded and sent like
   * automation's actions. One already planned, held, queued or running on the target is not asked twice: RefusedError
   * 409 with it. Returns the decision and the action's entry as it now stands.
   */
  async request(request: ManualRequest, log: Logger = this.deps.log): Promise<{ decision: Decision; entry: LedgerEntry | undefined }> {
    const { kind } = request.step;
    const given: Signal = {
      source: 'manual',
      subject: 'request',
      title: request.reason,
      severity: 'Medium',
      ...(request.incident && { incident: request.incident }),
      tactics: [],
      techniques: [],
      products: [],
      labels: [],
      entities: [request.entity],
      notes: [],
    };
    const enriched = this.deps.enrich ? await this.deps.enrich(given, this.deps.policy) : given;
    const entity = boundToDirectory(enriched.entities[0] ?? request.entity);
    const target = entity.kind === 'account' ? userTarget(entity) : deviceTarget(entity);
    const id = targetId(target);
    const earlier = id === undefined ? [] : await this.earlierOn(target, kind);
    // A held one past the policy's approvalTtl can no longer run (it expires when next read): it does not count.
    const ttl = this.deps.policy.policy.guardrails.approvalTtl.ms;
    const active = earlier.find((entry) => ACTIVE_STATES.includes(entry.state) && overdue(entry, this.deps.now(), ttl) === undefined);
    if (active) {
      // Recorded but never queued (its send failed, or the process died first): send it now, as a retried incident would.
      if (active.state === 'planned')
        await this.send([{ command: commandFor(active, this.deps.now().toISOString()), entry: active }], this.deps.now().toISOString(), log);
      const now = (await this.deps.ledger.get(active.key)) ?? active;
      throw new RefusedError(409, 'AlreadyActive', `${kind} on ${targetLabel(now.target)} is already ${now.state} (${now.key})`, now);
    }
    // The nth request for this action on this target: two analysts asking at once compute the same key, and the ledger
    // creates it once.
    const { rollbackOf } = request;
    const requests = earlier.filter((entry) => entry.source.type === 'manual' && entry.source.rollbackOf === rollbackOf).length;
    const subject = rollbackOf ? `rollback:${rollbackOf}:${requests + 1}` : `request:${kind}:${id ?? 'unknown'}:${requests + 1}`;
    const signal: Signal = { ...enriched, entities: [entity], subject };
    const decided = decideRequest(signal, { step: request.step, reason: request.reason }, this.deps.policy, {
      modeOverride: this.deps.modeOverride,
      capUsage: await this.capUsage(this.deps.policy),
    });
    const decision = request.hold === undefined ? decided : heldForAnalyst(decided, request.hold);
    const at = this.deps.now().toISOString();
    const by = request.by.objectId;
    const planned = await this.recordPlanned(decision.actions, signal, at, by, rollbackOf);
    const raced = planned.existing.values().next().value;
    if (raced) throw new RefusedError(409, 'AlreadyActive', `${kind} on ${targetLabel(raced.target)} was just requested by someone else (${raced.key})`, raced);
    await this.recordSkipped(decision.skipped, signal, at, by, rollbackOf);
    const key = decision.actions[0]?.idempotencyKey ?? decision.skipped[0]?.idempotencyKey;
    // A rollback is named on the original before it is sent (the worker may end the original rolled-back at once);
    // only one that will run or waits for an approval: a refused rollback is not the original's rollback.
    const recorded = key === undefined ? undefined : await this.deps.ledger.get(key);
    if (rollbackOf && recorded && ACTIVE_STATES.includes(recorded.state))
      await this.linkRollback(rollbackOf, recorded.key, `rollback ${recorded.key} requested by ${request.by.name}: ${request.reason}`);
    await this.send(planned.toSend, at, log);
    const entry = key === undefined ? undefined : await this.deps.ledger.get(key);
    log.warn({ actionId: key, by, state: entry?.state }, `requested ${kind} on ${targetLabel(target)}: ${decision.summary}`);
    return { decision, entry };
  }

  /**
   * Undo a succeeded action (POST /api/actions/{key}/rollback): a new action of the undoing kind, on the same target,
   * asked for and judged like any analyst's request (a policy may hold rollbacks), linked both ways — its
   * source.rollbackOf names the original, and the original's rolledBackBy and history name it. The original becomes
   * `rolled-back` once the rollback succeeds (the worker). With `hold`, it waits for an analyst even where the policy
   * would run it at once: a sweep's proposal.
   */
  async rollback(
    key: string,
    by: Analyst,
    reason: string,
    log: Logger = this.deps.log,
    { hold }: { hold?: string } = {},
  ): Promise<{ decision: Decision; entry: LedgerEntry | undefined }> {
    const original = await this.deps.ledger.get(key);
    if (!original) throw new RefusedError(404, 'NotFound', `no action ${key} in the ledger`);
    const step = rollbackStep(original);
    if (step.step === 'refuse') throw new RefusedError(409, step.code, step.why, original);
    const held = await heldByAnother(this.deps.ledger, original);
    if (held) throw held;
    return this.request(
      {
        step: { kind: step.kind, params: {} },
        entity: entityOf(original.target),
        reason,
        ...(original.source.incidentArmId && { incident: incidentRefOf(original.source.incidentArmId) }),
        by,
        rollbackOf: original.key,
        ...(hold !== undefined && { hold }),
      },
      log,
    );
  }

  /** Name the rollback on the original (a history event, and rolledBackBy), unless it has moved on meanwhile. */
  private async linkRollback(key: string, rollbackKey: string, note: string): Promise<void> {
    for (let tries = 0; tries < LEDGER_TRIES; tries++) {
      const original = await this.deps.ledger.get(key);
      if (original?.state !== 'succeeded') return;
      try {
        await this.deps.ledger.transition(
          key,
          original.etag,
          'succeeded',
          { by: 'engine', at: this.deps.now().toISOString(), note },
          { rolledBackBy: rollbackKey },
        );
        return;
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
      }
    }
  }

  /** Actions of `kind` the ledger holds on any identifier of `target`. */
  private async earlierOn(target: ActionTarget, kind: ActionKind): Promise<LedgerEntry[]> {
    const found = new Map<string, LedgerEntry>();
    for (const identifier of targetKeys(target)) for (const entry of await this.deps.ledger.list({ target: identifier, kind })) found.set(entry.key, entry);
    return [...found.values()];
  }

  /**
   * Send a failed or dead-lettered action again, on an analyst's word (replayStep says when): attempts count afresh,
   * and the command carries a replay number so its MessageId is new (the broker would drop a reused one). The entry
   * goes back to `planned` first and to `queued` once the queue has the command, as a new action does: if the send
   * fails, the entry waits `planned` and replaying again sends the same replay. A replay takes its place in the caps
   * (429 CircuitOpen past one, the action left as it was). A rollback is not sent again while another containment holds
   * its target, as when a held one is approved. Returns the entry as it now stands.
   */
  async replay(key: string, analyst: Analyst, reason: string, log: Logger = this.deps.log): Promise<LedgerEntry> {
    const { ledger, queue, now } = this.deps;
    let reserved = false;
    for (let tries = 0; tries < LEDGER_TRIES; tries++) {
      const found = await ledger.get(key);
      if (!found) throw new RefusedError(404, 'NotFound', `no action ${key} in the ledger`);
      const step = replayStep(found);
      if (step.step === 'refuse') throw new RefusedError(409, step.code, step.why, found);
      const held = await rollbackHeldByAnother(ledger, found);
      if (held) throw held;
      const at = now().toISOString();
      // Sent for execution again, it takes its place in the caps as a new action does: the caps count by when an action
      // was created, so actions that failed in earlier windows would otherwise all be sent again in one.
      if (step.step === 'replan' && !reserved) {
        const overCap = await this.reserveCaps(found, at);
        if (overCap) throw new RefusedError(429, 'CircuitOpen', overCap, found);
        reserved = true;
      }
      const note = `replay ${step.replay} ${step.step === 'replan' ? 'requested' : 'sent again'} by ${analyst.name}: ${reason}`;
      let entry: LedgerEntry;
      try {
        entry =
          step.step === 'replan' ? await ledger.transition(key, found.etag, 'planned', { by: analyst.objectId, at, note }, { replays: step.replay }) : found;
      } catch (error) {
        // Another analyst replayed it meanwhile: read it again, and send their replay if the queue has not taken it. A
        // place reserved in the caps stays spent then: the caps err towards acting less.
        if (error instanceof LedgerConflictError) continue;
        throw error;
      }
      try {
        await queue.send([{ ...commandFor(entry, at), replay: step.replay }]);
      } catch (error) {
        log.error({ err: error, actionId: key }, 'replay: the queue did not take the command');
        throw new QueueUnavailableError(`the action queue did not accept the replay of ${key}: replay it again`);
      }
      log.warn({ actionId: key, by: analyst.objectId, replay: step.replay }, `replayed ${entry.kind} on ${targetLabel(entry.target)}`);
      return step.step === 'replan' ? this.markQueued(entry, at) : this.markQueued(entry, at, { by: analyst.objectId, note });
    }
    throw new Error(`could not replay ${key}: it kept changing`);
  }

  /**
   * Send a stuck action's command again (the stuckActions sweep), under its own MessageId: a copy still in the queue is
   * dropped as a duplicate, and a second delivery finds the action claimed or done. A planned or queued entry records
   * it in its history; a running one is taken over by the delivery, as a lapsed lease is.
   */
  async resend(entry: LedgerEntry, why: string, by: string, log: Logger = this.deps.log): Promise<LedgerEntry> {
    const at = this.deps.now().toISOString();
    try {
      await this.deps.queue.send([commandFor(entry, at)]);
    } catch (error) {
      log.error({ err: error, actionId: entry.key }, 'resend: the queue did not take the command');
      throw new QueueUnavailableError(`the action queue did not accept ${entry.key} again: the next sweep tries again`);
    }
    log.warn({ actionId: entry.key, state: entry.state, by }, `sent ${entry.kind} on ${targetLabel(entry.target)} again: ${why}`);
    if (entry.state === 'running') return entry;
    try {
      return await this.deps.ledger.transition(entry.key, entry.etag, 'queued', { by, at, note: `sent again: ${why}` });
    } catch (error) {
      // It moved on meanwhile (a delivery came after all): the copy sent is dropped or finds it claimed.
      if (error instanceof LedgerConflictError || error instanceof LedgerTransitionError) return (await this.deps.ledger.get(entry.key)) ?? entry;
      throw error;
    }
  }

  /**
   * Trigger payloads may carry no entities (Sentinel fills them in later, or the relay omits them): list them through
   * ARM before deciding. If that fails, decide on what arrived and say so.
   */
  private async withListedEntities(signal: Signal, log: Logger): Promise<Signal> {
    if (!signal.incident || signal.entities.length > 0) return signal;
    try {
      const listed = normalizeSentinelPayload(await (await this.deps.incidents()).incidentWithEntities(incidentParts(signal.incident)));
      const note = `the payload carried no entities: ${listed.entities.length} listed through ARM`;
      return {
        ...signal,
        entities: listed.entities,
        notes: [...signal.notes.filter((n) => n !== NO_ENTITIES_NOTE), note, ...listed.notes.filter((n) => n !== NO_ENTITIES_NOTE)],
      };
    } catch (error) {
      log.warn({ err: error }, 'could not list the incident entities through ARM');
      return {
        ...signal,
        notes: [...signal.notes, `listing the incident's entities through ARM failed (${classifyFailure(error).detail}): deciding on the payload alone`],
      };
    }
  }

  /** No entities yet: look again in a few minutes rather than decide on nothing, a bounded number of times. */
  private async waitForEntities(signal: Signal, done: number, log: Logger): Promise<void> {
    const delay = nextLookAfterMs('noEntities', done, 0, this.deps.reevaluation);
    const armId = signal.incident?.armId;
    if (armId === undefined) return;
    if (delay === undefined) {
      signal.notes.push(`still no entities after ${done} re-evaluations: giving up; the incident's next update will be evaluated`);
      return;
    }
    const at = new Date(this.deps.now().getTime() + delay);
    await this.scheduleReevaluation(armId, 'noEntities', done + 1, at, log);
    signal.notes.push(`no entities yet: the incident will be evaluated again at ${at.toISOString()}`);
    log.info({ at: at.toISOString(), attempt: done + 1 }, 'no entities yet: re-evaluation scheduled');
  }

  /** Put the incident's re-evaluation on the queue for `at`; a queue that will not take it answers 503 (the caller retries). */
  private async scheduleReevaluation(armId: string, reason: ReevaluationReason, attempt: number, at: Date, log: Logger, waitingFor?: string): Promise<void> {
    // Without a reason a message means noEntities (those queued before there were reasons): it keeps its MessageId.
    const message = {
      type: 'reevaluateIncident' as const,
      incidentArmId: armId,
      ...(reason !== 'noEntities' && { reason }),
      attempt,
      createdAt: this.deps.now().toISOString(),
    };
    await this.scheduleLookMessage({ ...message, ...(waitingFor !== undefined && { waitingFor }) }, at, log);
  }

  private async scheduleLookMessage(message: IncidentReevaluation | RiskReevaluation, at: Date, log: Logger): Promise<void> {
    try {
      await this.deps.queue.schedule(message, at);
    } catch (error) {
      log.error({ err: error }, 'could not schedule the re-evaluation: answering 503 so the caller retries');
      throw new QueueUnavailableError('the action queue did not accept the re-evaluation: retry the request');
    }
  }

  /**
   * Move an entry nothing has acted on — planned but never sent, waiting for data, not needed — to `state` with the
   * verdict's fields, unless a concurrent delivery moves it on first (then it is theirs).
   */
  private async moveUndecided(first: LedgerEntry, state: LedgerState, why: string, at: string, verdict: LedgerPatch = {}): Promise<LedgerEntry> {
    let entry = first;
    for (let tries = 0; tries < LEDGER_TRIES && UNDECIDED.includes(entry.state) && canTransition(entry.state, state); tries++) {
      try {
        // An analyst's approval stands: the next delivery sends it instead.
        if (entry.decidedBy?.verdict === 'approved') return entry;
        // A planned entry keeps its reason; one that waited takes the verdict's rule, parameters, mode and reason.
        const patch = entry.state === 'planned' ? {} : verdict;
        return await this.deps.ledger.transition(entry.key, entry.etag, state, { by: 'engine', at, note: why }, { ...patch, stateReason: why });
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
        entry = (await this.deps.ledger.get(entry.key)) ?? entry;
      }
    }
    return entry;
  }

  /** `queued`, by the engine unless `event` names who sent it and why. */
  private async markQueued(entry: LedgerEntry, at: string, event: { by?: string; note?: string } = {}): Promise<LedgerEntry> {
    try {
      return await this.deps.ledger.transition(entry.key, entry.etag, 'queued', { by: 'engine', at, ...event });
    } catch (error) {
      // A concurrent delivery of the incident, or the worker itself, moved it on: it is on its way either way.
      if (error instanceof LedgerConflictError || error instanceof LedgerTransitionError) return (await this.deps.ledger.get(entry.key)) ?? entry;
      throw error;
    }
  }

  /**
   * The decision counted caps from the ledger as this instance saw it; another instance may have spent the same budget
   * meanwhile. Each new action therefore takes its place in every cap's shared budget (one atomic swap per cap), and an
   * action that finds a budget spent is blocked: ten instances cannot each spend the whole cap. Returns why, if so.
   */
  private async reserveCaps(entry: LedgerEntry, at: string): Promise<string | undefined> {
    const now = Date.parse(at);
    for (const cap of this.deps.policy.capsByKind.get(entry.kind) ?? []) {
      const budget = [{ max: cap.max, windowMs: cap.perMs }];
      const answer = await this.deps.shared.update<BudgetRecord, BudgetAnswer>(`cap:${cap.key}`, (record) => spend(record, budget, now));
      if (!answer.granted) return `circuit open: cap reached: ${cap.max} ${entry.kind} per ${cap.per}, counted across every instance`;
    }
    return undefined;
  }

  private async capUsage(policy: CompiledPolicy): Promise<Map<string, number>> {
    const usage = new Map<string, number>();
    const now = this.deps.now().getTime();
    for (const cap of policy.policy.guardrails.caps) {
      usage.set(capKey(cap), await this.deps.ledger.countSince(cap.action, new Date(now - cap.per.ms).toISOString()));
    }
    return usage;
  }

  private async existingEntries(decision: Pick<Decision, 'actions' | 'waiting'>): Promise<Map<string, LedgerEntry>> {
    const existing = new Map<string, LedgerEntry>();
    for (const action of [...decision.actions, ...decision.waiting]) {
      const entry = await this.deps.ledger.get(action.idempotencyKey);
      // Planned but never sent, waiting or not needed: nothing has been decided for it yet.
      if (entry && !UNDECIDED.includes(entry.state)) existing.set(entry.key, entry);
    }
    return existing;
  }
}

/** A command to send, and the entry it carries out. */
interface Sendable {
  command: ActionCommand;
  entry: LedgerEntry;
}

/** What recording a decision's planned actions gave: what to send, what was recorded, and what earlier deliveries did. */
interface RecordedPlan {
  recorded: RecordedAction[];
  toSend: Sendable[];
  existing: Map<string, LedgerEntry>;
}

/** States of an entry nothing has acted on: a decision may still give it its verdict (never sent, waited, not needed). */
const UNDECIDED: readonly LedgerState[] = ['planned', 'waiting', 'not-needed'];

/** Which look at an incident a submission is (1: the relay's), how many looks for data follow the first, and whether it is the last. */
interface Look {
  evaluation: number;
  of: number;
  last: boolean;
}

/**
 * Which look at the signal this is. One that cannot be repeated (no incident to read again from ARM) is the last at
 * once: what would wait for data is held for a human.
 */
function lookAt(signal: Signal, reevaluation: Reevaluation | undefined): Look {
  const done = reevaluation?.reason === 'waitingForData' ? reevaluation.attempt : 0;
  const of = REEVALUATE_AFTER_MS.waitingForData.length;
  // A signal with nothing to read again (an analyst's request) has one look: what waits is held for a human at once.
  return { evaluation: done + 1, of, last: (signal.incident === undefined && signal.risk === undefined) || done >= of };
}

/** The fields of a decision's verdict an entry that waited for data takes with it. */
function verdictOf(entry: ReturnType<typeof newEntry>): LedgerPatch {
  return { reason: entry.reason, params: entry.params, mode: entry.mode, source: entry.source };
}

/**
 * How an action that waited ends when a look gives its key no verdict. Decided under another key (the look read its
 * target's directory id, which keys it now): not needed, that one is it. Its target judged on the data read, and no rule
 * wanting it: not needed. Its target no longer among the incident's entities (the look could not judge it): held for a
 * human, as an action whose data never came is.
 */
function waitEnding(entry: LedgerEntry, decision: Decision, signal: Signal): { state: LedgerState; why: string } {
  const same = [...decision.actions, ...decision.waiting, ...decision.skipped].find(
    (other) =>
      other.kind === entry.kind &&
      other.idempotencyKey !== undefined &&
      other.idempotencyKey !== entry.key &&
      other.target !== undefined &&
      sameTarget(other.target, entry.target),
  );
  if (same) return { state: 'not-needed', why: `the same action, keyed by the directory's id once it was read: ${same.idempotencyKey}` };
  const judged = signal.entities.some(
    (entity) => entity.kind !== 'other' && sameTarget(entity.kind === 'account' ? userTarget(entity) : deviceTarget(entity), entry.target),
  );
  if (judged) return { state: 'not-needed', why: notNeeded(entry, decision) };
  return {
    state: 'pending-approval',
    why: `held for a human: ${targetLabel(entry.target)} is no longer among the incident's entities as ARM lists them, so its data could not be read again`,
  };
}

/** Why an action that waited is not needed, from the decision that read its data. */
function notNeeded(entry: LedgerEntry, decision: Decision): string {
  const skip = decision.skipped.find((s) => s.idempotencyKey === entry.key);
  if (skip) return `the data it waited for was read: ${skip.reason}: ${skip.detail}`;
  const ruleId = entry.source.ruleId;
  const rule = decision.rules.find((r) => r.ruleId === ruleId);
  if (!rule) return `rule ${ruleId ?? '(none)'} is no longer in the policy`;
  if (rule.matched) return `the data it waited for was read: rule ${rule.ruleId} applies, but not to ${targetLabel(entry.target)}`;
  return `the data it waited for was read: rule ${rule.ruleId} does not apply (${rule.explanation.join(', ')})`;
}

/** Held actions wait for a human; refusals and open circuits are recorded so that they can be seen and counted. */
function skipState(skip: SkippedAction): LedgerState | undefined {
  switch (skip.reason) {
    case 'needs-approval':
      return 'pending-approval';
    case 'protected':
    case 'circuit-open':
      return 'blocked';
    default:
      return undefined;
  }
}

/** Move actions an earlier delivery already decided from `actions` and `waiting` to `skipped: already-done`. */
function withLedgerView(decision: Decision, existing: Map<string, LedgerEntry>): Decision {
  if (existing.size === 0) return decision;
  const actions: PlannedAction[] = [];
  const waiting: WaitingAction[] = [];
  const skipped: SkippedAction[] = [...decision.skipped];
  for (const action of [...decision.actions, ...decision.waiting]) {
    const entry = existing.get(action.idempotencyKey);
    if (!entry) {
      if ('data' in action) waiting.push(action);
      else actions.push(action);
    } else
      skipped.push({
        kind: action.kind,
        target: action.target,
        idempotencyKey: action.idempotencyKey,
        params: action.params,
        ruleId: action.ruleId,
        mode: action.mode,
        reason: 'already-done',
        detail: `recorded ${entry.state}${entry.mode === 'audit' ? ' in audit mode' : ''} at ${entry.updatedAt}`,
      });
  }
  const result = { ...decision, actions, skipped, waiting };
  result.summary = summarize(result);
  return result;
}

/** heldByAnother for an action already in the ledger: a rollback, with the action it undoes read back; otherwise undefined. */
export async function rollbackHeldByAnother(ledger: Pick<ActionLedger, 'get' | 'list'>, entry: LedgerEntry): Promise<RefusedError | undefined> {
  const original = entry.source.rollbackOf === undefined ? undefined : await ledger.get(entry.source.rollbackOf);
  return original && heldByAnother(ledger, original);
}

/**
 * Why `original` cannot be undone while another containment of its kind stands on its target (undoing it would undo
 * that one too), or undefined. Asked when a rollback is requested, again when a held one is approved or a failed one
 * replayed, and where it runs: a containment may begin while it waits.
 */
export async function heldByAnother(ledger: Pick<ActionLedger, 'list'>, original: LedgerEntry): Promise<RefusedError | undefined> {
  const found = new Map<string, LedgerEntry>();
  for (const identifier of targetKeys(original.target))
    for (const entry of await ledger.list({ target: identifier, kind: original.kind })) found.set(entry.key, entry);
  const standing = [...found.values()].filter((entry) => entry.key !== original.key && entry.state === 'succeeded');
  if (standing.length === 0) return undefined;
  const others = standing.map((entry) => `${entry.key} (${entry.source.incidentArmId ?? entry.source.subject})`).join(', ');
  return new RefusedError(
    409,
    'HeldByAnother',
    `another ${original.kind} still stands on ${targetLabel(original.target)}: ${others}; roll that back first, or undo it by hand`,
    original,
  );
}

/** The decision with each action it plans held for an analyst instead, for `why`; what it refused stays refused. */
function heldForAnalyst(decision: Decision, why: string): Decision {
  if (decision.actions.length === 0) return decision;
  const held: SkippedAction[] = decision.actions.map(({ idempotencyKey, kind, target, params, ruleId, mode }) => ({
    kind,
    target,
    idempotencyKey,
    params,
    ruleId,
    mode,
    reason: 'needs-approval',
    detail: why,
  }));
  const result = { ...decision, actions: [], skipped: [...decision.skipped, ...held] };
  return { ...result, summary: summarize(result) };
}

type Recordable = {
  idempotencyKey: string;
  kind: ActionKind;
  target: ActionTarget;
  params?: PlannedAction['params'];
  ruleId: string;
  mode?: Mode;
  reason?: string;
};

function newEntry(action: Recordable, signal: Signal, state: LedgerState, stateReason: string | undefined, at: string, by: string, rollbackOf?: string) {
  return {
    key: action.idempotencyKey,
    kind: action.kind,
    target: action.target,
    params: action.params ?? {},
    mode: action.mode ?? 'audit',
    // An analyst's request keeps its reason whatever happens to it (its title is that reason); automation's held and
    // refused actions are explained by the verdict.
    reason: state === 'planned' ? (action.reason ?? '') : signal.source === 'manual' ? signal.title : (stateReason ?? ''),
    source: {
      type: signal.source,
      subject: signal.subject,
      // No rule of the policy planned an analyst's request: at execution, only the policy's own mode applies to it.
      ...(signal.source !== 'manual' && { ruleId: action.ruleId }),
      ...(signal.incident && { incidentArmId: signal.incident.armId }),
      ...(signal.source === 'manual' && { requestedBy: by }),
      ...(rollbackOf && { rollbackOf }),
    },
    state,
    ...(stateReason && { stateReason }),
    createdAt: at,
    by,
  };
}

function recordOf(entry: LedgerEntry, isNew: boolean): RecordedAction {
  return { key: entry.key, kind: entry.kind, target: targetLabel(entry.target), state: entry.state, new: isNew };
}

/** The incident's ARM id taken apart; signals validate it where they are read, so failing here is a bug. */
function incidentParts(incident: IncidentRef): IncidentArmIdParts {
  const parts = parseIncidentArmId(incident.armId);
  if (!parts) throw new Error(`not an incident ARM id: ${incident.armId}`);
  return parts;
}

/** What an analyst asks for: one action, on the entity the request names, why, and by whom. */
export interface ManualRequest {
  step: RequestedStep;
  entity: AccountEntity | HostEntity;
  reason: string;
  incident?: IncidentRef;
  by: Analyst;
  /** For a rollback: the key of the action it undoes. */
  rollbackOf?: string;
  /** Held for an analyst whatever the policy says, and why: what a sweep proposes is never run on its own word. */
  hold?: string;
}

/** States in which an action is still to happen: a second request for it is refused. */
const ACTIVE_STATES: readonly LedgerState[] = ['planned', 'pending-approval', 'queued', 'running'];

/** The entity named by the directory's identity when enrichment verified it: the action then acts on that record. */
function boundToDirectory(entity: Entity): AccountEntity | HostEntity {
  if (entity.kind === 'account') return entity.verified ? { ...entity, aadUserId: entity.verified.id, upn: entity.verified.upn } : entity;
  if (entity.kind === 'host') return entity.verified ? { ...entity, mdatpDeviceId: entity.verified.id, fqdn: entity.verified.computerDnsName } : entity;
  throw new InputError('target', 'expected a user or a device');
}

/** The entity a recorded target stands for: what enrichment resolves again before a rollback is judged. */
function entityOf(target: ActionTarget): AccountEntity | HostEntity {
  if (target.type === 'user') return { kind: 'account', ...(target.id && { aadUserId: target.id }), ...(target.upn && { upn: target.upn }) };
  return {
    kind: 'host',
    ...(target.id && { mdatpDeviceId: target.id }),
    ...(target.aadDeviceId && { aadDeviceId: target.aadDeviceId }),
    ...(target.fqdn && { fqdn: target.fqdn }),
    ...(target.hostName && { hostName: target.hostName }),
  };
}
