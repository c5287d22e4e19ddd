import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerToken, EngineRequestError, engineBaseUrl, engineLabel, postPlan, printable } from '../../cli/engineClient';
import { ConfigError } from '../../shared/errors';
import { freePort } from '../support/net';

const base = (text: string): URL => {
  const parsed = engineBaseUrl(text);
  if (!parsed.valid) throw new Error(parsed.problem);
  return parsed.url;
};

describe('engineBaseUrl (--host)', () => {
  it.each([
    ['http://localhost:7071', 'http://localhost:7071'],
    ['http://127.0.0.1:7071/', 'http://127.0.0.1:7071'],
    ['http://[::1]:7071', 'http://[::1]:7071'],
    ['HTTP://LOCALHOST:7071', 'http://localhost:7071'],
    ['https://responder.azurewebsites.net', 'https://responder.azurewebsites.net'],
    ['https://gateway.contoso.com/responder/', 'https://gateway.contoso.com/responder'],
  ])('takes %s as %s', (text, label) => {
    expect(engineLabel(base(text))).toBe(label);
  });

  it.each([
    ['', /needs the engine's http\(s\) URL/],
    ['localhost:7071', /needs an http\(s\) URL, got localhost:/],
    ['ftp://responder.contoso.com', /needs an http\(s\) URL, got ftp:/],
    ['http://responder.contoso.com', /plain http only to this machine/],
    ['http://10.0.0.5:7071', /plain http only to this machine/],
    ['http://localhost.contoso.com:7071', /plain http only to this machine/],
    ['https://me:secret@responder.contoso.com', /must not carry credentials: put the token in RESPONDER_TOKEN/],
    ['https://responder.contoso.com/?code=abc', /without a query or fragment/],
    ['https://responder.contoso.com/#plan', /without a query or fragment/],
    ['https://responder.contoso.com/api', /without \/api: https:\/\/responder\.contoso\.com$/],
    ['http://localhost:7071/api/plan/', /without \/api: http:\/\/localhost:7071$/],
  ])('refuses %j', (text, problem) => {
    const parsed = engineBaseUrl(text);
    expect(!parsed.valid && parsed.problem).toMatch(problem);
  });
});

describe('bearerToken', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'responder-token-'));
  const tokenFile = path.join(dir, 'local-token');
  writeFileSync(tokenFile, 'local.developer.token\n');

  it('takes RESPONDER_TOKEN first, for any engine', () => {
    expect(bearerToken(base('http://localhost:7071'), { RESPONDER_TOKEN: ' given.token ' }, tokenFile)).toBe('given.token');
    expect(bearerToken(base('https://responder.contoso.com'), { RESPONDER_TOKEN: 'given.token' }, tokenFile)).toBe('given.token');
  });

  it("reads the local host's token for this machine only", () => {
    expect(bearerToken(base('http://127.0.0.1:7071'), {}, tokenFile)).toBe('local.developer.token');
    expect(() => bearerToken(base('https://responder.contoso.com'), {}, tokenFile)).toThrow(ConfigError);
    expect(() => bearerToken(base('https://responder.contoso.com'), {}, tokenFile)).toThrow(
      /no token for https:\/\/responder\.contoso\.com: set RESPONDER_TOKEN/,
    );
  });

  it('says where the local token was looked for when there is none', () => {
    const missing = path.join(dir, 'nowhere');
    expect(() => bearerToken(base('http://localhost:7071'), {}, missing)).toThrow(
      `no token for http://localhost:7071: no ${missing} here (npm start writes it`,
    );
  });
});

describe('postPlan', () => {
  type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;
  let handler: Handler = (_req, res) => res.end();
  const seen: Array<{ method?: string; url?: string; headers: IncomingMessage['headers']; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  let engine: URL;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    engine = base(`http://127.0.0.1:${(server.address() as AddressInfo).port}/prefix`);
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });
  const answer = (fn: Handler) => {
    handler = fn;
    seen.length = 0;
  };

  it('posts the body as JSON to <base>/api/plan, with the token and the form asked for', async () => {
    answer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('the explanation\n'));
    const got = await postPlan(engine, { incident: { SystemAlertId: 'a' }, policy: 'version: 1' }, { token: 't0k3n', accept: 'text/plain' });
    expect(got).toEqual({ status: 200, statusText: 'OK', contentType: 'text/plain; charset=utf-8', body: 'the explanation\n' });
    expect(seen).toEqual([
      expect.objectContaining({
        method: 'POST',
        url: '/prefix/api/plan',
        headers: expect.objectContaining({ authorization: 'Bearer t0k3n', accept: 'text/plain', 'content-type': 'application/json' }),
        body: '{"incident":{"SystemAlertId":"a"},"policy":"version: 1"}',
      }),
    ]);
  });

  it('does not follow a redirect: the token goes only where --host says', async () => {
    answer((_req, res) => res.writeHead(307, { location: 'https://elsewhere.example/api/plan' }).end());
    const got = await postPlan(engine, {}, { token: 't', accept: 'application/json' });
    expect(got).toMatchObject({ status: 307, location: 'https://elsewhere.example/api/plan' });
    expect(seen).toHaveLength(1);
  });

  it('refuses an answer larger than the limit, declared or as it arrives', async () => {
    answer((_req, res) => res.writeHead(200, { 'content-length': '4096' }).end('x'.repeat(4096)));
    await expect(postPlan(engine, {}, { token: 't', accept: 'text/plain', limitBytes: 1024 })).rejects.toThrow(
      /^the answer from http:\/\/127\.0\.0\.1:\d+\/prefix\/api\/plan exceeds 1024 bytes: not the engine's plan$/,
    );
    answer((_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < 4; i++) res.write('x'.repeat(1024));
      res.end();
    });
    await expect(postPlan(engine, {}, { token: 't', accept: 'text/plain', limitBytes: 1024 })).rejects.toThrow(EngineRequestError);
  });

  it('gives up after the deadline, before the answer or in the middle of its body', async () => {
    answer(() => undefined);
    await expect(postPlan(engine, {}, { token: 't', accept: 'text/plain', timeoutMs: 200 })).rejects.toThrow(
      /^http:\/\/127\.0\.0\.1:\d+\/prefix\/api\/plan did not answer within 0\.2 s$/,
    );
    answer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).write('the beginning of'));
    await expect(postPlan(engine, {}, { token: 't', accept: 'text/plain', timeoutMs: 200 })).rejects.toThrow(/did not answer within 0\.2 s/);
  });

  it('says when nothing listens, and for this machine, what to start', async () => {
    const nothing = base(`http://127.0.0.1:${await freePort()}`);
    await expect(postPlan(nothing, {}, { token: 't', accept: 'text/plain' })).rejects.toThrow(
      /^cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/plan: connect ECONNREFUSED .* \(is the local host running\? npm start\)$/,
    );
  });
});

describe("what the CLI prints of another machine's answer", () => {
  it('shows control characters instead of letting them drive the terminal', () => {
    expect(printable('ok\n\tline\u001b]0;owned\u0007\u009b2J')).toBe('ok\n\tline\\u001b]0;owned\\u0007\\u009b2J');
  });
});
