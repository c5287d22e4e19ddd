import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PAYLOAD_ALONE_NOTE, parseCommandLine, run } from '../../cli/responder';
import { DEFAULT_POLICY_PATH } from '../../shared/policy/load';
import { ALERT_PATH, SAMPLE_INCIDENT_PATH } from '../fixtures/incidents';

async function responder(...argv: string[]): Promise<{ code: number; out: string }> {
  return responderWith({}, ...argv);
}

async function responderWith(env: NodeJS.ProcessEnv, ...argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await run(argv, (t) => void lines.push(t), env);
  return { code, out: lines.join('\n') };
}

const tmp = mkdtempSync(path.join(tmpdir(), 'responder-cli-'));
const file = (name: string, text: string) => {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
};

describe('responder plan', async () => {
  it('explains the decision for the sample incident, saying first that it was made on the payload alone', async () => {
    const { code, out } = await responder('plan', SAMPLE_INCIDENT_PATH);
    expect(code).toBe(0);
    expect(out.split('\n')[0]).toBe(PAYLOAD_ALONE_NOTE);
    expect(PAYLOAD_ALONE_NOTE).toMatch(/^Decided on the payload alone, without the engine's directory and Defender lookups: .* --host <url>\.$/);
    expect(out).toContain('Credential theft followed by malware on WKS-042');
    expect(out).toContain('policy built-in default');
    expect(out).toContain('Risk score 80/100');
    expect(out).toContain('+40  severity High');
    expect(out).toContain('✓ credential-theft [audit]: source incident, severity High, tactic CredentialAccess, has account');
    expect(out).toContain('revokeSessions → adele.vance@contoso.com [audit: recorded, no write]');
    expect(out).toContain('isolateDevice → wks-042.contoso.com: needs-approval — server or critical device (device tags unknown)');
  });

  it('prints the decision as JSON, marked as not enriched, and works on alerts', async () => {
    const { code, out } = await responder('plan', ALERT_PATH, '--json');
    expect(code).toBe(0);
    const { enriched, note, decision } = JSON.parse(out);
    expect({ enriched, note }).toEqual({ enriched: false, note: PAYLOAD_ALONE_NOTE });
    expect(decision).toMatchObject({ source: 'alert', severity: 'High', mode: 'audit' });
  });

  it('reads an incident file saved with a byte order mark (Windows tools write one)', async () => {
    const withBom = file('bom.json', `\ufeff${readFileSync(SAMPLE_INCIDENT_PATH, 'utf8')}`);
    const { code, out } = await responder('plan', withBom, '--json');
    expect(code).toBe(0);
    expect(JSON.parse(out).decision.title).toBe('Credential theft followed by malware on WKS-042');
  });

  it('uses --policy', async () => {
    const policy = file('enforce.yaml', 'version: 1\nmode: enforce\nrules:\n  - { id: everyone, then: [disableUser] }\n');
    const { out } = await responder('plan', SAMPLE_INCIDENT_PATH, '--policy', policy, '--json');
    expect(JSON.parse(out).decision.actions).toEqual([expect.objectContaining({ kind: 'disableUser', mode: 'enforce' })]);
  });

  it('exits 1 with the precise problem for bad input, 2 for a bad command line', async () => {
    expect(await responder('plan', file('bad.json', '{"object": {"id": "x"}'))).toEqual({
      code: 1,
      out: expect.stringMatching(/^error: .*bad\.json: invalid JSON/),
    });
    expect((await responder('plan', file('schema.json', '{"SystemAlertId": "a", "Severity": "Huge"}'))).out).toBe(
      'error: Severity: expected one of Informational, Low, Medium, High, got "Huge"',
    );
    expect((await responder('plan', path.join(tmp, 'missing.json'))).out).toMatch(/missing\.json: cannot read: ENOENT/);
    expect((await responder('plan')).code).toBe(2);
    expect((await responder('plan', 'x', '--frobnicate')).out).toMatch(/^error: unknown option --frobnicate/);
    expect((await responder('deploy')).code).toBe(2);
  });

  it('refuses a --host that is not an engine URL, or plain http off this machine (a usage error)', async () => {
    for (const [host, problem] of [
      [undefined, "--host needs the engine's http(s) URL"],
      ['', "--host needs the engine's http(s) URL"],
      ['localhost:7071', '--host needs an http(s) URL, got localhost: in "localhost:7071"'],
      ['http://responder.contoso.com', '--host http://responder.contoso.com: plain http only to this machine'],
      ['https://responder.contoso.com/api/plan', "--host is the engine's base URL, without /api: https://responder.contoso.com"],
    ] as const) {
      const { code, out } = await responder('plan', SAMPLE_INCIDENT_PATH, ...(host === undefined ? ['--host'] : ['--host', host]));
      expect(code).toBe(2);
      expect(out).toContain(`error: ${problem}`);
      expect(out).toContain('responder plan <incident.json> --url <engine>');
    }
  });

  it('asks for a token before calling an engine elsewhere: RESPONDER_TOKEN, or RESPONDER_AUDIENCE for an Azure sign-in', async () => {
    const { code, out } = await responder('plan', SAMPLE_INCIDENT_PATH, '--url', 'https://responder.contoso.com');
    expect(code).toBe(1);
    expect(out).toMatch(
      /^error: no token for https:\/\/responder\.contoso\.com: RESPONDER_TOKEN is not set, and RESPONDER_AUDIENCE .* is not set to ask your Azure sign-in \(az login\) for one$/,
    );
  });
});

describe('responder plan --host, answered by something other than the engine', () => {
  let reply: (res: ServerResponse) => void = (res) => res.end();
  const server = createServer((req, res) => req.resume().on('end', () => reply(res)));
  const listening = new Promise<string>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('a page that is not a plan: exit 1, and a hint that --host is wrong', async () => {
    const host = await listening;
    reply = (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>welcome</html>');
    for (const form of [[], ['--json']]) {
      expect(await responderWith({ RESPONDER_TOKEN: 't' }, 'plan', SAMPLE_INCIDENT_PATH, '--host', host, ...form)).toEqual({
        code: 1,
        out: `error: ${host} answered 200 with text/html, not the engine's plan: is --host the engine's base URL?`,
      });
    }
  });

  it('a redirect: reported, not followed', async () => {
    const host = await listening;
    reply = (res) => res.writeHead(302, { location: 'https://login.example/' }).end();
    expect(await responderWith({ RESPONDER_TOKEN: 't' }, 'plan', SAMPLE_INCIDENT_PATH, '--host', host)).toEqual({
      code: 1,
      out: `error: ${host}/api/plan answered 302 Found (a redirect to https://login.example/, not followed)`,
    });
  });
});

describe('responder policy validate', async () => {
  it('summarizes a valid policy', async () => {
    const { code, out } = await responder('policy', 'validate', DEFAULT_POLICY_PATH);
    expect(code).toBe(0);
    expect(out).toMatch(/valid \(digest [0-9a-f]{12}\)/);
    expect(out).toContain('mode audit; 4 rule(s), 1 in audit mode; 2 approval guardrail(s); 4 cap(s)');
  });

  it('lists every problem with its line', async () => {
    const { code, out } = await responder(
      'policy',
      'validate',
      file(
        'broken.yaml',
        'version: 1\nmode: enforce\nrules:\n  - id: a\n    when: { severty: High }\n    then: [disableUser]\n  - { id: a, then: [isolateDevice] }\n',
      ),
    );
    expect(code).toBe(1);
    expect(out).toContain('line 5: rules[0].when: Unrecognized key: "severty"');
    expect(out).toContain('line 7: rules[1].id: duplicate rule id "a" (also rules[0])');
  });
});

describe('the command line', () => {
  const parsed = (...argv: string[]) => {
    const line = parseCommandLine(argv);
    return 'problem' in line
      ? line
      : { command: line.command, args: line.args, options: Object.fromEntries(line.options), typed: Object.fromEntries(line.typed) };
  };

  it('reads commands, sub-commands, arguments and options, by name, in any order', () => {
    expect(parsed('act', 'revokeSessions', '--reason', 'phished', 'adele.vance@contoso.com', '--json')).toEqual({
      command: 'act',
      args: ['revokeSessions', 'adele.vance@contoso.com'],
      options: { reason: 'phished', json: true },
      typed: { reason: '--reason', json: '--json' },
    });
    expect(parsed('actions', 'list', '--state=pending-approval', '--limit', '5', '--all')).toMatchObject({
      command: 'actions list',
      args: [],
      options: { state: 'pending-approval', limit: '5', all: true },
    });
    // --url is the option's name; --host, plan's first name for it, is the same option.
    expect(parsed('actions', 'show', 'k', '--host', 'https://responder.contoso.com')).toMatchObject({
      options: { url: 'https://responder.contoso.com' },
      typed: { url: '--host' },
    });
  });

  it.each([
    [['act', 'revokeSessions'], 'expected: responder act <kind> <target> --reason <why>, got 1 argument(s)'],
    [['act', 'revokeSessions', 'adele.vance@contoso.com', '--state', 'queued'], 'act does not take --state'],
    [['actions', 'show', 'k', '--reason', 'x'], 'actions show does not take --reason'],
    [['actions'], 'actions takes list, show, approve, deny, rollback; got ""'],
    [['actions', 'undo', 'k'], 'actions takes list, show, approve, deny, rollback; got "undo"'],
    [['act', 'a', 'b', '--reason'], '--reason needs a text'],
    [['act', 'a', 'b', '--reason', '--json'], '--reason needs a text'],
    [['act', 'a', 'b', '--reason', '  '], '--reason needs a text'],
    [['actions', 'list', '--json=yes'], '--json takes no value'],
    [['actions', 'list', '--colour'], 'unknown option --colour'],
    [['policy', 'validate', 'p.yaml', '--json'], 'policy validate does not take --json'],
    [['replay'], 'expected: responder replay <action key> --reason <why>, got 0 argument(s)'],
    [['replay', 'k', '--limit', '3'], 'replay does not take --limit'],
    // Who replays is the token's analyst: no option names anyone else.
    [['replay', 'k', '--reason', 'x', '--by', 'ceo@contoso.com'], 'unknown option --by'],
    [['deadletters', 'k'], 'expected: responder deadletters, got 1 argument(s)'],
    [['deadletters', '--reason', 'x'], 'deadletters does not take --reason'],
  ])('refuses %j: %s', (argv, problem) => {
    expect(parsed(...argv)).toEqual({ problem });
  });

  it('deadletters and replay ask an engine, never the ledger or the queue: with no --url and no local host here, a usage error', async () => {
    const nowhere = { token: { localTokenFile: path.join(tmp, 'no-local-token') } };
    // Storage and Service Bus settings in the environment are not a way around the engine's app roles.
    const env = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', ServiceBusConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=k;SharedAccessKey=x' };
    for (const argv of [['deadletters'], ['replay', `${'a'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}`, '--reason', 'x']]) {
      const lines: string[] = [];
      expect(await run(argv, (t) => void lines.push(t), env, nowhere), argv[0]).toBe(2);
      expect(lines[0]).toMatch(/^error: no engine to ask: pass --url <the engine's base URL>/);
    }
  });

  it('exits 2 with the problem and the usage, which names --url and its alias', async () => {
    const { code, out } = await responder('act', 'revokeSessions', 'adele.vance@contoso.com');
    expect(code).toBe(2);
    expect(out.split('\n')[0]).toBe('error: act needs --reason "<why>": the ledger and the incident record it, and the next analyst reads it');
    expect(out).toContain('responder act <kind> <target> --reason <why> [--incident <ARM id>] [--isolation Full|Selective] [--json]');
    expect(out).toContain('--url <base URL>, such as https://<app>.azurewebsites.net; --host is an alias.');
    expect((await responder('actions', 'approve', 'not-a-key', '--reason', 'ok')).out.split('\n')[0]).toBe(
      'error: "not-a-key" is not an action key: copy one from responder actions list (<40 hex>.<kind>.<target>)',
    );
    expect((await responder('actions', 'list', '--url', 'http://responder.contoso.com')).out.split('\n')[0]).toBe(
      'error: --url http://responder.contoso.com: plain http only to this machine (localhost, 127.0.0.1, [::1]); the token must not cross a network in clear, use https://',
    );
    const help = await responder('help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('Exit codes: 0 done; 1 refused, failed or invalid input');
  });
});
