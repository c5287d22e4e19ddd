import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_TOKEN_FILE } from '../../cli/localToken';
import { REPOSITORY_ROOT } from '../../cli/repositoryRoot';
import { PAYLOAD_ALONE_NOTE, run } from '../../cli/responder';
import { SandboxAuthority } from '../../sandbox/authority';
import { SAMPLE_INCIDENT_PATH } from '../fixtures/incidents';
import { startLocalHost } from '../support/localHost';
import { buildOnce } from '../support/build';

/**
 * `responder plan --host` against the local host as `npm start` runs it: the sandbox tenant, the demo policy enforced,
 * and the developer token written where it was started. One host for the file.
 */
async function responder(env: NodeJS.ProcessEnv, ...argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await run(argv, (t) => void lines.push(t), env);
  return { code, out: lines.join('\n') };
}

/** The actions under "Will do" in an explanation, one line each (without the line that details each). */
function willDo(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf('Will do');
  expect(start).toBeGreaterThanOrEqual(0);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end === -1 ? undefined : end).filter((line) => !line.startsWith('    '));
}

const ENRICHED_ACTIONS = [
  '  disableUser → adele.vance@contoso.com',
  '  revokeSessions → adele.vance@contoso.com',
  '  confirmCompromised → adele.vance@contoso.com',
  '  isolateDevice (isolationType=Selective) → wks-042.contoso.com',
];

describe('responder plan --host, against the local host (npm start)', () => {
  let host: ChildProcess | undefined;
  let base = '';
  let cwd = '';
  let token = '';

  beforeAll(async () => {
    await buildOnce();
    cwd = mkdtempSync(path.join(tmpdir(), 'responder-plan-host-'));
    // The sandbox's TLS material vitest made is trusted already: the host need not start itself again to trust its own.
    ({ child: host, base } = await startLocalHost({ RESPONDER_TENANT: 'sandbox', RESPONDER_SANDBOX_CA_TRUSTED: '1' }, 'ignore', cwd));
    token = readFileSync(path.join(cwd, LOCAL_TOKEN_FILE), 'utf8');
  }, 120_000);
  afterAll(() => void host?.kill('SIGTERM'));

  it("prints the engine's enriched decision, run as a user runs it: score 100 and four actions where the payload alone gives 80 and one", async () => {
    const env = { ...process.env };
    delete env.RESPONDER_TOKEN;
    // From the directory npm start runs in, with the token it wrote there.
    const engine = execFileSync(process.execPath, [path.join(REPOSITORY_ROOT, 'dist/cli/responder.js'), 'plan', SAMPLE_INCIDENT_PATH, '--host', base], {
      cwd,
      env,
      encoding: 'utf8',
    });
    expect(engine.split('\n')[0]).toBe(`Decided by ${base}, enriched as the engine does: what it could not look up is in the notes.`);
    expect(engine).toContain('Risk score 100/100');
    expect(engine).toContain('+35  userRisk high (adele.vance@contoso.com)');
    expect(willDo(engine)).toEqual(ENRICHED_ACTIONS);

    const offline = await responder({}, 'plan', SAMPLE_INCIDENT_PATH);
    expect(offline.out.split('\n')[0]).toBe(PAYLOAD_ALONE_NOTE);
    expect(offline.out).toContain('Risk score 80/100');
    expect(willDo(offline.out)).toEqual(['  revokeSessions → adele.vance@contoso.com [audit: recorded, no write]']);
  });

  it('--json: the decision /api/plan gives, with where it was made', async () => {
    const { code, out } = await responder({ RESPONDER_TOKEN: token }, 'plan', SAMPLE_INCIDENT_PATH, '--host', base, '--json');
    expect(code).toBe(0);
    const answer = JSON.parse(out);
    expect(answer).toMatchObject({ decidedBy: base, note: `Decided by ${base}, enriched as the engine does: what it could not look up is in the notes.` });
    expect(answer.enriched).toBeUndefined();
    expect(answer.decision.score.total).toBe(100);
    expect(answer.decision.actions.map((a: { kind: string }) => a.kind)).toEqual(['disableUser', 'revokeSessions', 'confirmCompromised', 'isolateDevice']);

    const offline = JSON.parse((await responder({}, 'plan', SAMPLE_INCIDENT_PATH, '--json')).out);
    expect(offline.enriched).toBe(false);
    expect(offline.decision.score.total).toBe(80);
    expect(offline.decision.actions.map((a: { kind: string }) => a.kind)).toEqual(['revokeSessions']);
  });

  it('sends --policy as a draft: on the same policy, the only difference is what the engine looked up', async () => {
    const policy = path.join(cwd, 'risky-users.yaml');
    writeFileSync(policy, 'version: 1\nmode: enforce\nrules:\n  - { id: risky-users, when: { entity: account, userRisk: [high] }, then: [disableUser] }\n');
    const engine = JSON.parse((await responder({ RESPONDER_TOKEN: token }, 'plan', SAMPLE_INCIDENT_PATH, '--host', base, '--policy', policy, '--json')).out);
    const offline = JSON.parse((await responder({}, 'plan', SAMPLE_INCIDENT_PATH, '--policy', policy, '--json')).out);
    expect(engine.decision.rules.map((r: { ruleId: string }) => r.ruleId)).toEqual(['risky-users']);
    expect(offline.decision.rules.map((r: { ruleId: string }) => r.ruleId)).toEqual(['risky-users']);
    expect(engine.decision.actions).toEqual([expect.objectContaining({ kind: 'disableUser', ruleId: 'risky-users', mode: 'enforce' })]);
    expect(offline.decision.actions).toEqual([]);
  });

  it("prints the engine's refusal with its status, and exits 1", async () => {
    // Well formed, with the right role, but from an authority this engine does not trust.
    const stranger = await (await SandboxAuthority.create('https://127.0.0.1:9')).token(['Responder.Read']);
    const refused = await responder({ RESPONDER_TOKEN: stranger }, 'plan', SAMPLE_INCIDENT_PATH, '--host', base);
    expect(refused.code).toBe(1);
    const [status, ...problem] = refused.out.split('\n');
    expect(status).toBe(`error: ${base}/api/plan answered 401 Unauthorized`);
    expect(JSON.parse(problem.join('\n')).error).toMatchObject({ code: 'Unauthorized' });

    const draft = path.join(cwd, 'broken.yaml');
    writeFileSync(draft, 'version: 1\nrules:\n  - { id: a, then: [frobnicate] }\n');
    const invalid = await responder({ RESPONDER_TOKEN: token }, 'plan', SAMPLE_INCIDENT_PATH, '--host', base, '--policy', draft);
    expect(invalid.code).toBe(1);
    expect(invalid.out).toMatch(new RegExp(`^error: ${base}/api/plan answered 400 Bad Request\\n`));
    expect(invalid.out).toContain('frobnicate');
  });
});
