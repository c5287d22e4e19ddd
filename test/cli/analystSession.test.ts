import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_TOKEN_FILE } from '../../cli/localToken';
import { REPOSITORY_ROOT } from '../../cli/repositoryRoot';
import { run } from '../../cli/responder';
import { Sandbox } from '../../sandbox/server';
import { DEMO, DEMO_DEVICES } from '../../sandbox/tenant';
import { buildOnce } from '../support/build';
import { startLocalHost } from '../support/localHost';

/**
 * An analysts' session through the command line, against the local host as `npm start` runs it on the sandbox tenant,
 * here started by the test so that its authority mints a token for each of two analysts: four eyes end to end. One
 * host for the file; each test works on its own targets.
 */
const POLICY = `version: 1
mode: enforce
guardrails:
  approvals: [{ action: isolateDevice, when: { sources: [manual] }, reason: isolating needs a second analyst }]
rules: []
`;
const ANALYST_A = '0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const ANALYST_B = '0a0b0c0d-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

let sandbox: Sandbox;
let host: ChildProcess | undefined;
let base = '';
let cwd = '';
const tokens = { a: '', b: '', reader: '' };

beforeAll(async () => {
  await buildOnce();
  sandbox = await Sandbox.start();
  cwd = mkdtempSync(path.join(tmpdir(), 'responder-analysts-'));
  ({ child: host, base } = await startLocalHost({ ...sandbox.settings(), RESPONDER_POLICY: POLICY, RESPONDER_FOLLOW_UP_SECONDS: '0.2' }, 'ignore', cwd));
  const analyst = (roles: string[], oid: string, name: string) => sandbox.authority.token(roles, { oid, name, idtyp: 'user', scp: 'access_as_user' });
  tokens.a = await analyst(['Responder.Read', 'Responder.Act', 'Responder.Approve'], ANALYST_A, 'Analyst A');
  tokens.b = await analyst(['Responder.Read', 'Responder.Approve'], ANALYST_B, 'Analyst B');
  tokens.reader = await analyst(['Responder.Read'], '0a0b0c0d-cccc-4ccc-8ccc-cccccccccccc', 'Reader');
}, 120_000);
afterAll(async () => {
  host?.kill('SIGTERM');
  await sandbox?.close();
});

/** The command line in this process, as an analyst: `--url` the host, the token in RESPONDER_TOKEN. */
async function as(who: keyof typeof tokens, ...argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await run([...argv, '--url', base], (t) => void lines.push(t), { RESPONDER_TOKEN: tokens[who] });
  return { code, out: lines.join('\n') };
}

/** The key in the first line of `requested: <key> (…)` or `rollback requested: <key> (…)`. */
function requestedKey(out: string): string {
  const key = /^(?:rollback )?requested: (\S+) \(/.exec(out)?.[1];
  expect(key, out).toBeDefined();
  return key as string;
}

/** The action as `actions show --json` gives it, once it reaches `state` (the worker runs it meanwhile). */
async function reaches(key: string, state: string): Promise<Record<string, any>> {
  for (const deadline = Date.now() + 15_000; ; await new Promise((resolve) => setTimeout(resolve, 100))) {
    const { code, out } = await as('a', 'actions', 'show', key, '--json');
    expect(code, out).toBe(0);
    const { action } = JSON.parse(out);
    if (action.state === state || Date.now() > deadline) {
      expect(action.state).toBe(state);
      return action;
    }
  }
}

describe('an analyst session through the command line, against the local host', () => {
  it('act, then list and show; the local token is used automatically, as npm start leaves it', async () => {
    const requested = await as('a', 'act', 'revokeSessions', 'adele.vance@contoso.com', '--reason', 'user reported a phishing link');
    expect(requested.code, requested.out).toBe(0);
    const key = requestedKey(requested.out);
    expect(key).toMatch(new RegExp(`^[0-9a-f]{40}\\.revokeSessions\\.${DEMO.adele}$`));
    expect(requested.out.split('\n')[2]).toBe(`  follow it: responder actions show ${key}`);
    await reaches(key, 'succeeded');
    expect(sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(1);

    const listed = await as('a', 'actions', 'list', '--kind', 'revokeSessions');
    expect(listed.out).toMatch(new RegExp(`^${key}  revokeSessions  adele\\.vance@contoso\\.com  succeeded  \\d+s ago  user reported a phishing link$`));

    const shown = await as('a', 'actions', 'show', key);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain(`  source    manual, requested by ${ANALYST_A}`);
    expect(shown.out).toMatch(/\nHistory\n {2}\S+ {2}planned {11}by 0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa\n/);
    expect(shown.out).toMatch(/ {2}\S+ {2}succeeded {9}by worker {2}/);
    expect(shown.out).toMatch(/\nAttempts\n {2}#\d+ {2}\S+ {2}succeeded /);

    // Run as a user runs it, from the directory the host's token is in, with no token in the environment.
    mkdirSync(path.join(cwd, path.dirname(LOCAL_TOKEN_FILE)), { recursive: true });
    writeFileSync(path.join(cwd, LOCAL_TOKEN_FILE), tokens.a);
    const env = { ...process.env };
    delete env.RESPONDER_TOKEN;
    const cli = execFileSync(
      process.execPath,
      [path.join(REPOSITORY_ROOT, 'dist/cli/responder.js'), 'actions', 'list', '--state', 'succeeded', '--url', base],
      {
        cwd,
        env,
        encoding: 'utf8',
      },
    );
    expect(cli).toContain(`${key}  revokeSessions`);
  });

  it('held by a guardrail: the requester cannot approve it (four eyes, with the fix); another analyst does, and it runs once', async () => {
    const requested = await as('a', 'act', 'isolateDevice', 'wks-042.contoso.com', '--isolation', 'Selective', '--reason', 'beaconing to a known C2');
    expect(requested.code, requested.out).toBe(0);
    const key = requestedKey(requested.out);
    expect(requested.out.split('\n')[0]).toBe(`requested: ${key} (pending-approval: needs-approval: isolating needs a second analyst (source manual))`);
    expect(requested.out).toContain(`another analyst approves it: responder actions approve ${key} --reason "<why>"`);
    expect((await as('b', 'actions', 'list', '--state', 'pending-approval')).out).toContain(`${key}  isolateDevice  wks-042.contoso.com  pending-approval`);

    const self = await as('a', 'actions', 'approve', key, '--reason', 'looks right to me');
    expect(self.code).toBe(1);
    expect(self.out.split('\n')).toEqual([
      'error: four eyes: you requested this action, so you cannot approve it (403 FourEyes: Analyst A requested this action: another analyst must approve it)',
      `fix: you requested this action; another analyst with Responder.Approve must approve it (responder actions approve ${key} --reason "<why>"); you may deny it yourself to withdraw it`,
      expect.stringMatching(new RegExp(`^action: ${key}  isolateDevice  wks-042\\.contoso\\.com  pending-approval  `)),
    ]);

    const approved = await as('b', 'actions', 'approve', key, '--reason', 'confirmed with the device owner');
    expect(approved.code, approved.out).toBe(0);
    expect(approved.out.split('\n')[0]).toMatch(/^approved: (queued|running|succeeded)$/);
    await reaches(key, 'succeeded');
    expect(sandbox.tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
    expect(sandbox.tenant.count('POST', /\/isolate$/)).toBe(1);
    const shown = await as('b', 'actions', 'show', key);
    expect(shown.out).toMatch(new RegExp(`\\n {2}decided {3}approved by Analyst B \\(${ANALYST_B}\\) at \\S+: confirmed with the device owner\\n`));
    expect(shown.out).toContain(`  what      isolateDevice (isolationType=Selective) on wks-042.contoso.com: isolate the device`);
  });

  it('deny: the held action ends denied, nothing runs, and approving it afterwards is refused with the fix', async () => {
    const key = requestedKey((await as('a', 'act', 'isolateDevice', 'websrv1.contoso.com', '--reason', 'odd traffic')).out);
    const denied = await as('b', 'actions', 'deny', key, '--reason', 'a scheduled scan');
    expect(denied.code, denied.out).toBe(0);
    expect(denied.out.split('\n')).toEqual(['denied', expect.stringMatching(new RegExp(`^ {2}${key}  isolateDevice  websrv1\\.contoso\\.com  denied  `))]);
    expect(sandbox.tenant.machines.get(DEMO_DEVICES.websrv1)?.isolated).not.toBe(true);

    const late = await as('b', 'actions', 'approve', key, '--reason', 'changed my mind');
    expect(late.code).toBe(1);
    expect(late.out.split('\n').slice(0, 2)).toEqual([
      `error: only a pending-approval action can be approved or denied, and this one is denied (409 NotPendingApproval: action ${key} is denied: only a pending-approval action can be approved)`,
      `fix: nothing to decide: see what happened with responder actions show ${key}`,
    ]);
  });

  it('rollback of a disableUser: a new action that re-enables the account, linked both ways; a second rollback is refused', async () => {
    const original = requestedKey((await as('a', 'act', 'disableUser', 'jsmith@contoso.com', '--reason', 'password spray succeeded')).out);
    await reaches(original, 'succeeded');
    expect(sandbox.tenant.users.get(DEMO.jsmith)?.accountEnabled).toBe(false);

    const rolledBack = await as('a', 'actions', 'rollback', original, '--reason', 'the user confirmed the sign-ins');
    expect(rolledBack.code, rolledBack.out).toBe(0);
    const rollback = requestedKey(rolledBack.out);
    expect(rollback).toMatch(new RegExp(`^[0-9a-f]{40}\\.enableUser\\.${DEMO.jsmith}$`));
    expect(rolledBack.out.split('\n')[0]).toMatch(new RegExp(`^rollback requested: ${rollback} \\((queued|running|succeeded)\\)$`));
    await reaches(rollback, 'succeeded');
    await reaches(original, 'rolled-back');
    expect(sandbox.tenant.users.get(DEMO.jsmith)?.accountEnabled).toBe(true);
    expect((await as('a', 'actions', 'show', original)).out).toContain(`  undone by ${rollback}`);
    expect((await as('a', 'actions', 'show', rollback)).out).toContain(`  undoes    ${original}`);

    const again = await as('a', 'actions', 'rollback', original, '--reason', 'again');
    expect(again.code).toBe(1);
    expect(again.out.split('\n')[1]).toBe(`fix: see the rollback: responder actions show ${rollback}`);
  });

  it('a failed action: a reader sees it with deadletters but cannot replay it; an analyst who acts replays it, in their name', async () => {
    sandbox.faults.add({
      method: 'POST',
      path: /revokeSignInSessions$/,
      count: 1,
      status: 400,
      body: { error: { code: 'Request_BadRequest', message: 'refused' } },
    });
    const key = requestedKey((await as('a', 'act', 'revokeSessions', 'megan.bowen@contoso.com', '--reason', 'a token replayed from abroad')).out);
    await reaches(key, 'failed');

    const listed = await as('reader', 'deadletters');
    expect(listed.code, listed.out).toBe(0);
    expect(listed.out.split('\n')).toEqual(
      expect.arrayContaining([
        '0 dead-lettered message(s)',
        expect.stringMatching(/^1 action\(s\) failed or dead-lettered \(replay one with: responder replay <action key> --reason "<why>"\)$/),
        expect.stringMatching(new RegExp(`^ {2}${key}  revokeSessions on megan\\.bowen@contoso\\.com: failed: .*400`)),
      ]),
    );
    const refused = await as('reader', 'replay', key, '--reason', 'try again');
    expect(refused.code).toBe(1);
    expect(refused.out.split('\n')[0]).toMatch(/^error: your token lacks the app role Responder\.Act, which replay needs \(403 Forbidden: /);

    const replayed = await as('a', 'replay', key, '--reason', 'Graph answers again');
    expect(replayed.code, replayed.out).toBe(0);
    expect(replayed.out).toMatch(new RegExp(`^${key}  revokeSessions on megan\\.bowen@contoso\\.com: (queued|running|succeeded) \\(sent again\\)$`));
    const action = await reaches(key, 'succeeded');
    expect(action.history).toContainEqual(
      expect.objectContaining({ state: 'planned', by: ANALYST_A, note: 'replay 1 requested by Analyst A: Graph answers again' }),
    );
    expect(sandbox.tenant.users.get(DEMO.megan)?.sessionRevocations).toBe(1);

    const again = await as('a', 'replay', key, '--reason', 'once more');
    expect(again.code).toBe(1);
    expect(again.out.split('\n')[1]).toBe(`fix: there is nothing to send again: responder actions show ${key} says what happened`);
    expect((await as('reader', 'deadletters', '--json')).out).not.toContain(key);
  });

  it('a token without the role the command needs: the cause and who can give it; --json lists every page for scripts', async () => {
    const refused = await as('reader', 'act', 'revokeSessions', 'megan.bowen@contoso.com', '--reason', 'x');
    expect(refused.code).toBe(1);
    expect(refused.out.split('\n')).toEqual([
      expect.stringMatching(
        /^error: your token lacks the app role Responder\.Act, which act needs \(403 Forbidden: the caller lacks the app role Responder\.Act/,
      ),
      expect.stringMatching(/^fix: ask an administrator of the engine's app registration to assign you Responder\.Act /),
    ]);

    const all = await as('reader', 'actions', 'list', '--limit', '1', '--all', '--json');
    expect(all.code, all.out).toBe(0);
    const { actions, next } = JSON.parse(all.out);
    expect(next).toBeUndefined();
    expect(actions.length).toBeGreaterThanOrEqual(2);
    expect(new Set(actions.map((a: { key: string }) => a.key)).size).toBe(actions.length);
    const first = JSON.parse((await as('reader', 'actions', 'list', '--limit', '1', '--json')).out);
    expect(first.actions).toEqual([actions[0]]);
    expect(first.next).toMatch(/^\/api\/actions\?limit=1&after=/);
  });
});
