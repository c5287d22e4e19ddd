import { describe, expect, it } from 'vitest';
import { explainRefusal, type Refusal, type RefusalContext } from '../../cli/engineRefusal';
import type { LedgerEntry } from '../../shared/ledger/ledger';

const KEY = `${'a'.repeat(40)}.isolateDevice.${'b'.repeat(40)}`;
const ROLLBACK_KEY = `${'c'.repeat(40)}.enableUser.6e7b768e-07e2-4810-8459-485f84f8f204`;

const action = (fields: Partial<LedgerEntry>): LedgerEntry =>
  ({
    key: KEY,
    kind: 'isolateDevice',
    target: { type: 'device', id: 'b'.repeat(40), fqdn: 'websrv1.contoso.com' },
    params: { isolationType: 'Selective' },
    state: 'pending-approval',
    history: [],
    attempts: [],
    source: { type: 'manual', subject: 'request' },
    ...fields,
  }) as LedgerEntry;

const context = (fields: Partial<RefusalContext> = {}): RefusalContext => ({
  command: 'actions approve',
  engine: 'https://responder.contoso.com',
  tokenSource: 'Azure sign-in',
  scope: 'api://contoso-responder/.default',
  key: KEY,
  ...fields,
});

describe('explainRefusal: the cause and the fix of each refusal', () => {
  it.each<[string, Refusal, Partial<RefusalContext>, RegExp, RegExp]>([
    [
      'four eyes',
      { status: 403, code: 'FourEyes', action: action({}) },
      {},
      /^four eyes: you requested this action, so you cannot approve it$/,
      new RegExp(
        `^you requested this action; another analyst with Responder\\.Approve must approve it \\(responder actions approve ${KEY} --reason "<why>"\\); you may deny it yourself to withdraw it$`,
      ),
    ],
    [
      'an approval that expired',
      { status: 409, code: 'Expired', action: action({ state: 'expired' }) },
      {},
      /approvalTtl .* expired: nothing was done/,
      /request it again: responder act isolateDevice websrv1\.contoso\.com --isolation Selective --reason "<why>"$/,
    ],
    [
      'a decision on an action no longer held',
      { status: 409, code: 'NotPendingApproval', action: action({ state: 'succeeded' }) },
      {},
      /this one is succeeded$/,
      new RegExp(`responder actions show ${KEY}$`),
    ],
    [
      'revoked sessions',
      { status: 409, code: 'Irreversible', action: action({ kind: 'revokeSessions' }) },
      { command: 'actions rollback' },
      /^revokeSessions cannot be undone$/,
      /revoked sessions stay revoked, and the user signs in again/,
    ],
    [
      'a confirmed compromise',
      { status: 409, code: 'Irreversible', action: action({ kind: 'confirmCompromised' }) },
      { command: 'actions rollback' },
      /^confirmCompromised cannot be undone$/,
      /Dismiss user risk/,
    ],
    ['what the engine did not change', { status: 409, code: 'NothingToUndo' }, { command: 'actions rollback' }, /audit mode, or .* already so/, /by hand/],
    [
      'a held action asked to be undone',
      { status: 409, code: 'NotSucceeded', action: action({}) },
      { command: 'actions rollback' },
      /this one is pending-approval/,
      new RegExp(`deny it instead \\(responder actions deny ${KEY}`),
    ],
    [
      'a running action asked to be undone',
      { status: 409, code: 'NotSucceeded', action: action({ state: 'running' }) },
      { command: 'actions rollback' },
      /this one is running/,
      /wait until it succeeds/,
    ],
    [
      'a second rollback',
      { status: 409, code: 'AlreadyRolledBack', action: action({ state: 'rolled-back', rolledBackBy: ROLLBACK_KEY }) },
      { command: 'actions rollback' },
      /rolled back already/,
      new RegExp(`responder actions show ${ROLLBACK_KEY}$`),
    ],
    [
      'a replay of what succeeded',
      { status: 409, code: 'NotReplayable', action: action({ state: 'succeeded' }) },
      { command: 'replay' },
      /^only a failed or dead-lettered action can be replayed, and this one is succeeded$/,
      new RegExp(`^there is nothing to send again: responder actions show ${KEY} says what happened$`),
    ],
    [
      'a replay of what is under way',
      { status: 409, code: 'NotReplayable', action: action({ state: 'queued' }) },
      { command: 'replay' },
      /this one is queued$/,
      new RegExp(`^it is on its way: follow it with responder actions show ${KEY}$`),
    ],
    [
      'a replay of a held action',
      { status: 409, code: 'NotReplayable', action: action({}) },
      { command: 'replay' },
      /this one is pending-approval$/,
      new RegExp(`an analyst approves or denies it \\(responder actions approve ${KEY} --reason "<why>"\\)$`),
    ],
    [
      'the same request twice',
      { status: 409, code: 'AlreadyActive', action: action({}) },
      { command: 'act', key: undefined },
      new RegExp(`same action on this target is already pending-approval \\(${KEY}\\)`),
      /have another analyst approve it/,
    ],
    [
      'a protected target',
      { status: 403, code: 'Protected', action: action({ state: 'blocked' }) },
      { command: 'act' },
      /protected by the policy.*recorded as blocked/,
      /never acts on a protected principal/,
    ],
    ['a cap reached', { status: 429, code: 'CircuitOpen' }, { command: 'act' }, /guardrails\.caps/, /wait for the cap's window/],
    ['an unknown target', { status: 404, code: 'TargetNotFound' }, { command: 'act' }, /no such target/, /UPN \(name@domain\)/],
    [
      'an unknown key',
      { status: 404, code: 'NotFound', message: `no action ${KEY} in the ledger` },
      { command: 'actions show' },
      new RegExp(`ledger has no action ${KEY}`),
      /responder actions list/,
    ],
    [
      'a route the host does not have',
      { status: 404, code: 'NotFound', message: 'no function serves /api/actions/x' },
      { command: 'actions show' },
      /has no route for actions show/,
      /analysts' API/,
    ],
    ['no such route', { status: 404 }, { command: 'actions list', key: undefined }, /has no route for actions list/, /base URL .* without \/api/],
    [
      'an unknown kind',
      { status: 400, code: 'BadRequest', target: 'kind' },
      { command: 'act' },
      /request's kind/,
      /one of disableUser, revokeSessions, .*isolateDevice; to undo an action, roll it back/,
    ],
    [
      'an unknown kind to list',
      { status: 400, code: 'BadRequest', target: 'kind' },
      { command: 'actions list' },
      /request's kind/,
      /--kind is one of .*enableUser/,
    ],
    [
      'a target of the wrong type',
      { status: 400, code: 'BadRequest', target: 'target' },
      { command: 'act' },
      /request's target/,
      /isolateDevice takes a device's full DNS name/,
    ],
    [
      'an isolation type',
      { status: 400, code: 'BadRequest', target: 'params.isolationType' },
      { command: 'act' },
      /params\.isolationType/,
      /^--isolation is Full or Selective$/,
    ],
    ['an incident', { status: 400, code: 'BadRequest', target: 'incident' }, { command: 'act' }, /incident/, /Microsoft\.SecurityInsights\/Incidents\/<id>/],
    ['a date', { status: 400, code: 'BadRequest', target: 'since' }, { command: 'actions list' }, /since/, /ISO 8601/],
    ['a queue that did not take it', { status: 503, code: 'QueueUnavailable' }, { command: 'act' }, /nothing ran/, /same command again/],
    ['a bug', { status: 500, code: 'InternalError', invocationId: 'inv-1' }, {}, /a bug/, /invocation id inv-1/],
    ['an answer nobody knows', { status: 418, code: 'Teapot' }, {}, /refused the request \(418\)/, /read its message/],
  ])('%s', (_name, refusal, fields, cause, fix) => {
    const explained = explainRefusal(refusal, context(fields));
    expect(explained.cause).toMatch(cause);
    expect(explained.fix).toMatch(fix);
  });

  it('401: no or expired token, and how to get another from where this one came', () => {
    const unauthorized = (tokenSource: RefusalContext['tokenSource']) => explainRefusal({ status: 401, code: 'Unauthorized' }, context({ tokenSource }));
    expect(unauthorized('RESPONDER_TOKEN').cause).toBe(
      'no or expired token: the engine at https://responder.contoso.com did not accept the one sent (from RESPONDER_TOKEN)',
    );
    expect(unauthorized('RESPONDER_TOKEN').fix).toMatch(/fresh access token .* in RESPONDER_TOKEN/);
    expect(unauthorized('local host').fix).toMatch(/^start the local host again \(npm start\)/);
    expect(unauthorized('Azure sign-in').fix).toMatch(/az login.*RESPONDER_AUDIENCE.*api:\/\/contoso-responder\/\.default/);
    // Without the engine's JSON (App Service Authentication answers 401 with no body): the same.
    expect(explainRefusal({ status: 401 }, context({ tokenSource: 'local host' }))).toEqual(unauthorized('local host'));
  });

  it("403 without a code of the engine's own: the app role the command needs, and who can give it", () => {
    for (const [command, role] of [
      ['act', 'Responder.Act'],
      ['actions list', 'Responder.Read'],
      ['actions show', 'Responder.Read'],
      ['actions approve', 'Responder.Approve'],
      ['actions deny', 'Responder.Approve'],
      ['actions rollback', 'Responder.Act'],
      ['deadletters', 'Responder.Read'],
      ['replay', 'Responder.Act'],
    ] as const) {
      const explained = explainRefusal(
        { status: 403, code: 'Forbidden', message: `the caller lacks the app role ${role} (has no roles)` },
        context({ command }),
      );
      expect(explained.cause).toBe(`your token lacks the app role ${role}, which ${command} needs`);
      expect(explained.fix).toMatch(new RegExp(`^ask an administrator of the engine's app registration to assign you ${role} .*az login again`));
    }
  });
});
