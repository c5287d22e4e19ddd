/**
 * What an engine's refusal of an analyst's command means, and what to do about it: a pure table from the answer's
 * status and error code (functions/actions.ts, shared/azure/httpFunction.ts) to a cause and a fix in plain words.
 */
import { ACTIONS, ISOLATION_TYPES, PLANNABLE_ACTIONS, ACTION_KINDS, isActionKind } from '../shared/actions/catalogue';
import { targetLabel } from '../shared/actions/target';
import { ROLES, type Role } from '../shared/auth/caller';
import { LEDGER_STATES, type LedgerEntry } from '../shared/ledger/ledger';
import { MAX_PAGE } from '../shared/analystRequests';
import type { TokenSource } from './engineToken';

export type AnalystCommand =
  'act' | 'actions list' | 'actions show' | 'actions approve' | 'actions deny' | 'actions rollback' | 'sweep' | 'sweeps' | 'deadletters' | 'replay';

/** The app role each command's route requires. */
export const COMMAND_ROLES: Record<AnalystCommand, Role> = {
  act: ROLES.act,
  'actions list': ROLES.read,
  'actions show': ROLES.read,
  'actions approve': ROLES.approve,
  'actions deny': ROLES.approve,
  'actions rollback': ROLES.act,
  sweep: ROLES.act,
  sweeps: ROLES.read,
  deadletters: ROLES.read,
  replay: ROLES.act,
};

/** The engine's error answer: `{ error: { code, message, target?, invocationId }, action? }` and its status. */
export interface Refusal {
  status: number;
  code?: string;
  message?: string;
  /** The request's field at fault, for 400. */
  target?: string;
  invocationId?: string;
  /** The action the refusal is about, when the engine sent it. */
  action?: LedgerEntry;
}

export interface RefusalContext {
  command: AnalystCommand;
  /** The engine's base URL, as shown. */
  engine: string;
  tokenSource: TokenSource;
  /** The scope an Azure sign-in was asked for. */
  scope?: string;
  /** The action key the command named. */
  key?: string;
}

export interface Explanation {
  cause: string;
  fix: string;
}

/** How a fix writes the reason a command needs: the analyst's own words. */
const REASON = '--reason "<why>"';

export function explainRefusal(refusal: Refusal, context: RefusalContext): Explanation {
  const byCode = refusal.code === undefined ? undefined : BY_CODE[refusal.code];
  if (byCode) return byCode(refusal, context);
  if (refusal.status === 401) return unauthorized(context);
  if (refusal.status === 403) return forbidden(context);
  if (refusal.status === 404) return noSuchRoute(context);
  if (refusal.status >= 500) {
    return {
      cause: `the engine failed (${refusal.status})`,
      fix: 'try again in a minute; if it persists, its operator reads its logs (GET /api/health says what it lacks)',
    };
  }
  return { cause: `the engine refused the request (${refusal.status})`, fix: 'no fix is known for this answer: read its message above' };
}

type Explain = (refusal: Refusal, context: RefusalContext) => Explanation;

const BY_CODE: Record<string, Explain> = {
  BadRequest: badRequest,
  Unauthorized: (_r, context) => unauthorized(context),
  Forbidden: (_r, context) => forbidden(context),
  FourEyes: (r, context) => ({
    cause: 'four eyes: you requested this action, so you cannot approve it',
    fix: `you requested this action; another analyst with ${ROLES.approve} must approve it (responder actions approve ${keyOf(r, context)} ${REASON}); you may deny it yourself to withdraw it`,
  }),
  Protected: () => ({
    cause: "the target is protected by the policy (a protected user, group, device or tag, or the engine's own identity); the refusal is recorded as blocked",
    fix: "the engine never acts on a protected principal: act by hand if you must, or have the policy's owner change its protected list",
  }),
  TargetNotFound: (_r, context) => ({
    cause: 'the engine found no such target in the directory or in Defender',
    fix: `check the spelling: a user by UPN (name@domain) or Entra object id, a device by its full DNS name, Defender id or Entra device id${context.command === 'actions rollback' ? '; the target may have been deleted since' : ''}`,
  }),
  NotFound: (r, context) =>
    // The engine's own 404 for a key says "no action …"; a route it does not have answers otherwise, or with no body.
    r.message?.startsWith('no action ')
      ? {
          cause: `the ledger has no action ${keyOf(r, context)}`,
          fix: 'copy the key from responder actions list (keys look like <40 hex>.<kind>.<target>); is --url the engine that recorded it?',
        }
      : noSuchRoute(context),
  AlreadyActive: (r, context) => {
    const key = r.action?.key ?? 'the action named above';
    const what = context.command === 'actions rollback' ? 'a rollback of this action' : 'the same action on this target';
    return {
      cause: `${what} is already ${r.action?.state ?? 'under way'}${r.action ? ` (${key})` : ''}`,
      fix: `nothing new is needed: follow it with responder actions show ${key}${r.action?.state === 'pending-approval' ? `, and have another analyst approve it` : ''}`,
    };
  },
  NotPendingApproval: (r, context) => ({
    cause: `only a pending-approval action can be approved or denied, and this one is ${r.action?.state ?? 'not'}`,
    fix: `nothing to decide: see what happened with responder actions show ${keyOf(r, context)}`,
  }),
  Expired: (r, context) => ({
    cause: "it waited longer than the policy's approvalTtl for a decision and expired: nothing was done",
    fix: r.action
      ? `if it is still needed, request it again: ${requestCommand(r.action)}`
      : `if it is still needed, request it again (responder actions show ${keyOf(r, context)} says what it was)`,
  }),
  Irreversible: (r) => ({ cause: `${r.action?.kind ?? 'this kind of action'} cannot be undone`, fix: irreversibleFix(r.action) }),
  HeldByAnother: (r) => ({
    cause: `another ${r.action?.kind ?? 'containment'} of the same kind still stands on this target: undoing this one would undo that one too`,
    fix: `roll back the other one first (its key is in the message: ${r.message ?? ''}), or undo it by hand if both should end`,
  }),
  NothingToUndo: () => ({
    cause: 'the engine changed nothing it can undo: it ran in audit mode, or what it would undo was already so before it acted',
    fix: "there is nothing of the engine's to roll back; if the target must change, change it by hand (Entra admin center, Defender portal)",
  }),
  NotSucceeded: (r, context) => {
    const key = keyOf(r, context);
    const state = r.action?.state;
    return {
      cause: `only a succeeded action can be rolled back, and this one is ${state ?? 'not'}`,
      fix:
        state === 'pending-approval'
          ? `it has not run: deny it instead (responder actions deny ${key} ${REASON})`
          : state === 'queued' || state === 'running' || state === 'planned'
            ? `wait until it succeeds, then roll it back: responder actions show ${key} follows it`
            : `it changed nothing to undo: responder actions show ${key} says what happened`,
    };
  },
  NotReplayable: (r, context) => {
    const key = keyOf(r, context);
    const state = r.action?.state;
    return {
      cause: `only a failed or dead-lettered action can be replayed, and this one is ${state ?? 'not'}`,
      fix:
        state === 'pending-approval'
          ? `it has not run: an analyst approves or denies it (responder actions approve ${key} ${REASON})`
          : state === 'planned' || state === 'queued' || state === 'running'
            ? `it is on its way: follow it with responder actions show ${key}`
            : state === 'failed' || state === 'dead-lettered'
              ? `it was replayed as often as it can be: request it anew (responder actions show ${key} says what it was)`
              : `there is nothing to send again: responder actions show ${key} says what happened`,
    };
  },
  AlreadyRolledBack: (r, context) => ({
    cause: 'it was rolled back already',
    fix: `see the rollback: responder actions show ${r.action?.rolledBackBy ?? keyOf(r, context)}`,
  }),
  CircuitOpen: (_r, context) =>
    context.command === 'replay'
      ? {
          cause: 'a cap of the policy (guardrails.caps) is reached for this kind of action, and a replay takes its place in it; the action stays as it was',
          fix: "wait for the cap's window to pass and replay it again, or have the policy's owner raise the cap",
        }
      : {
          cause: 'a cap of the policy (guardrails.caps) is reached for this kind of action; the refusal is recorded as blocked',
          fix: "wait for the cap's window to pass and ask again, or have the policy's owner raise the cap",
        },
  PayloadTooLarge: () => ({ cause: 'the request is larger than the engine takes (RESPONDER_MAX_BODY_BYTES)', fix: 'shorten --reason' }),
  NotConfigured: () => ({
    cause: "the engine's settings or policy are unusable, so it refuses to act",
    fix: 'its operator fixes the app settings: GET /api/health lists the problems',
  }),
  QueueUnavailable: () => ({
    cause: 'the engine could not hand the action to its queue; nothing ran',
    fix: 'run the same command again in a moment: the action is recorded once, and sent when the queue takes it',
  }),
  AuthUnavailable: () => ({
    cause: "the engine cannot check tokens right now (it could not read its authority's signing keys)",
    fix: 'try again in a minute; if it persists, its operator checks AZURE_AUTHORITY_HOST and the network',
  }),
  MisdirectedRequest: () => ({
    cause: 'the local host answers only requests addressed to this machine by name',
    fix: 'use --url http://localhost:<port> (or 127.0.0.1)',
  }),
  InternalError: (r) => ({
    cause: 'the engine failed on a bug, not on your request',
    fix: `report it with the invocation id ${r.invocationId ?? 'in the message'}; the same command may work again`,
  }),
};

function unauthorized(context: RefusalContext): Explanation {
  const cause = `no or expired token: the engine at ${context.engine} did not accept the one sent (from ${context.tokenSource})`;
  switch (context.tokenSource) {
    case 'RESPONDER_TOKEN':
      return { cause, fix: "put a fresh access token for the engine's audience in RESPONDER_TOKEN (they last about an hour), or unset it to use az login" };
    case 'local host':
      return { cause, fix: 'start the local host again (npm start) from this directory: its token lasts 12 h and only the host that wrote it accepts it' };
    case 'Azure sign-in':
      return {
        cause,
        fix: `sign in again (az login, in the engine's tenant), and check that RESPONDER_AUDIENCE is the engine's own app ID URI (${context.scope ?? 'its scope'} was asked for)`,
      };
  }
}

function forbidden(context: RefusalContext): Explanation {
  const role = COMMAND_ROLES[context.command];
  return {
    cause: `your token lacks the app role ${role}, which ${context.command} needs`,
    fix: `ask an administrator of the engine's app registration to assign you ${role} (Entra admin center, Enterprise applications, the engine's app, Users and groups), then get a new token (az login again)`,
  };
}

function noSuchRoute(context: RefusalContext): Explanation {
  return {
    cause: `${context.engine} has no route for ${context.command}`,
    fix: "check that --url is the engine's base URL (https://<app>.azurewebsites.net, without /api), and that it runs a version with the analysts' API",
  };
}

function badRequest(refusal: Refusal, context: RefusalContext): Explanation {
  const field = refusal.target ?? '';
  const cause = `the engine cannot take ${field ? `the request's ${field}` : 'the request'}`;
  const list = context.command === 'actions list';
  const fixes: Record<string, string> = {
    kind: list
      ? `--kind is one of ${ACTION_KINDS.join(', ')}`
      : `ask for one of ${PLANNABLE_ACTIONS.join(', ')}; to undo an action, roll it back: responder actions rollback <key> ${REASON}`,
    target: list
      ? '--target takes any identifier: a UPN, an object id, an FQDN, a Defender id'
      : `${userKinds()} take a UPN (name@domain) or an Entra object id; isolateDevice takes a device's full DNS name, Defender id (40 hex) or Entra device id`,
    reason: `give ${REASON}: it is recorded in the ledger and on the incident`,
    incident: `--incident takes the incident's ARM id: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<workspace>/providers/Microsoft.SecurityInsights/Incidents/<id>`,
    params: '--isolation is for isolateDevice only',
    'params.isolationType': `--isolation is ${ISOLATION_TYPES.join(' or ')}`,
    key: 'copy the key from responder actions list (keys look like <40 hex>.<kind>.<target>)',
    state: `--state is one of ${LEDGER_STATES.join(', ')}`,
    since: '--since takes an ISO 8601 date-time, such as 2025-01-31T08:00:00Z',
    limit: `--limit takes a whole number from 1 to ${MAX_PAGE}`,
    after: 'list again from the first page (the page it continued from is gone)',
  };
  return { cause, fix: fixes[field] ?? "change what the engine's message names" };
}

function userKinds(): string {
  return PLANNABLE_ACTIONS.filter((kind) => ACTIONS[kind].target === 'user').join(', ');
}

function irreversibleFix(action: LedgerEntry | undefined): string {
  if (action?.kind === 'revokeSessions') return 'nothing to roll back: revoked sessions stay revoked, and the user signs in again';
  if (action?.kind === 'confirmCompromised')
    return "dismiss the user's risk in Entra ID Protection (Risky users, Dismiss user risk) if the confirmation was wrong";
  return 'nothing to roll back through the engine: undo it by hand if needed';
}

function keyOf(refusal: Refusal, context: RefusalContext): string {
  return refusal.action?.key ?? context.key ?? '<key>';
}

/** The command that asks for `action` again. */
function requestCommand(action: LedgerEntry): string {
  const kind = isActionKind(action.kind) ? action.kind : '<kind>';
  const target = typeof action.target === 'object' && action.target !== null ? targetLabel(action.target) : '<target>';
  const isolation = action.params?.isolationType ? ` --isolation ${action.params.isolationType}` : '';
  return `responder act ${kind} ${target}${isolation} ${REASON}`;
}
