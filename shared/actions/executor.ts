import type { ApiCosts } from '../coordination/pacer';
import type { Devices, Machine } from '../clients/defender';
import type { Directory, DirectoryUser } from '../clients/graph';
import type { VerifiedDevice, VerifiedUser } from '../signals/signal';
import type { SentinelIncidents } from '../clients/sentinel';
import type { ActionKind } from './catalogue';
import type { ActionCommand } from './command';
import type { ClassifiedFailure } from './failure';

/** What an executor works with: the APIs behind their ports, and for a rollback the snapshot it undoes. */
export interface ExecutionContext {
  directory: Directory;
  /** Undefined where Defender for Endpoint is not offered (Azure China): device actions then fail permanently. */
  devices: Devices | undefined;
  /** Comments and labels on the incident an action came from. */
  incidents: SentinelIncidents;
  /** For rollback kinds: the `rollback` the original action recorded in the ledger. */
  snapshot?: unknown;
}

/**
 * The target as the directory answered for it: resolved and checked (protection, identity) before any executor runs,
 * so an executor acts on the directory's identity, never on a payload's claim (shared/actions/execute.ts).
 */
export type ResolvedTarget = { type: 'user'; verified: VerifiedUser; user: DirectoryUser } | { type: 'device'; verified: VerifiedDevice; machine: Machine };

/**
 * What an executor runs with: the APIs, its resolved target, and `reserve` for paced calls it learns it must make only
 * once it has read (a role removal per role): reserved before the first write, they defer the action whole if the
 * budget is spent.
 */
export type TargetedContext = ExecutionContext & { target: ResolvedTarget; reserve(costs: ApiCosts): Promise<void> };

/** What an executor reports; the worker turns it into a ledger transition. */
export type ExecutionOutcome =
  | {
      outcome: 'succeeded';
      detail: string;
      /** The target was already in the wanted state: nothing was written. */
      alreadyDone: boolean;
      /** What a rollback needs, kept in the ledger. */
      rollback?: unknown;
    }
  /** Audit mode: the target was read and validated; no write API was called. */
  | { outcome: 'audited'; detail: string }
  /**
   * Not for the engine to decide: the payload and the directory disagree on who the target is, or the directory cannot
   * tell which record it is. Nothing was written; the action waits for a human (`pending-approval`).
   */
  | { outcome: 'held'; detail: string }
  /**
   * The API is still working on it (a Defender machine action is Pending). Run the same command again after
   * `followUpAfterMs`: executors read the current state first, so the follow-up observes, never repeats.
   */
  | { outcome: 'pending'; detail: string; followUpAfterMs: number }
  | ({ outcome: 'failed' } & ClassifiedFailure);

/**
 * One module per action kind, each with the same shape: validate the target, read its current state first (a
 * redelivered message must not repeat a side effect, and a rollback must not undo what someone else did), execute
 * (unless auditing), verify, and return what a rollback needs.
 */
export interface ActionExecutor {
  kind: ActionKind;
  /**
   * The paced writes one execution of this executor makes, at most, and any paced read it makes outside the batched
   * Defender reads (ID Protection's): the worker reserves them all before it starts, so a spent budget defers the action
   * before its first call instead of stranding it between a read and its write. Defender reads are paced on the shared
   * budget as they are made (shared/clients/batchedDevices.ts). A call beyond them is logged as an error, and fails
   * the executor tests.
   */
  apiCost(command: ActionCommand): ApiCosts;
  execute(command: ActionCommand, context: TargetedContext): Promise<ExecutionOutcome>;
}
