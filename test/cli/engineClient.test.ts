import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerJson, callEngine, EngineRequestError, engineBaseUrl, engineLabel, printable, type EngineCall } from '../../cli/engineClient';
import { freePort } from '../support/net';

const base = (text: string): URL => {
  const parsed = engineBaseUrl(text);
  if (!parsed.valid) throw new Error(parsed.problem);
  return parsed.url;
};

describe('engineBaseUrl (--url)', () => {
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
    ['', /^--url needs the engine's http\(s\) URL/],
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
    ['https://responder.contoso.com/api/actions/abc/approve', /without \/api: https:\/\/responder\.contoso\.com$/],
  ])('refuses %j', (text, problem) => {
    const parsed = engineBaseUrl(text);
    expect(!parsed.valid && parsed.problem).toMatch(problem);
  });

  it('names the option as it was typed: --host is kept as an alias of --url', () => {
    const parsed = engineBaseUrl('http://responder.contoso.com', '--host');
    expect(!parsed.valid && parsed.problem).toMatch(/^--host http:\/\/responder\.contoso\.com: plain http only to this machine/);
  });
});

describe('callEngine', () => {
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

  const plan = (body: unknown, options: Omit<EngineCall, 'method' | 'path' | 'body'>) =>
    callEngine(engine, { method: 'POST', path: '/api/plan', body, ...options });

  it('posts the body as JSON to <base>/api/plan, with the token and the form asked for', async () => {
    answer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('the explanation\n'));
    const got = await plan({ incident: { SystemAlertId: 'a' }, policy: 'version: 1' }, { token: 't0k3n', accept: 'text/plain' });
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

  it('gets a path with its query, without a body or a content type, asking for JSON', async () => {
    answer((_req, res) => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('{"actions":[]}'));
    const got = await callEngine(engine, { method: 'GET', path: '/api/actions?state=pending-approval&limit=5', token: 't0k3n' });
    expect(answerJson(got)).toEqual({ actions: [] });
    expect(seen).toEqual([
      expect.objectContaining({
        method: 'GET',
        url: '/prefix/api/actions?state=pending-approval&limit=5',
        body: '',
        headers: expect.objectContaining({ accept: 'application/json' }),
      }),
    ]);
    expect(seen[0]?.headers).not.toHaveProperty('content-type');
    await expect(callEngine(engine, { method: 'GET', path: 'https://elsewhere.example/api/actions', token: 't' })).rejects.toThrow(/not an engine route/);
  });

  it('reads JSON only from an answer that says it is JSON', () => {
    const answer = (contentType: string, body: string) => answerJson({ status: 200, statusText: 'OK', contentType, body });
    expect(answer('application/problem+json', '{"a":1}')).toEqual({ a: 1 });
    expect(answer('text/html', '{"a":1}')).toBeUndefined();
    expect(answer('application/json', '<html>')).toBeUndefined();
  });

  it('does not follow a redirect: the token goes only where --url says', async () => {
    answer((_req, res) => res.writeHead(307, { location: 'https://elsewhere.example/api/plan' }).end());
    const got = await plan({}, { token: 't', accept: 'application/json' });
    expect(got).toMatchObject({ status: 307, location: 'https://elsewhere.example/api/plan' });
    expect(seen).toHaveLength(1);
  });

  it('refuses an answer larger than the limit, declared or as it arrives', async () => {
    answer((_req, res) => res.writeHead(200, { 'content-length': '4096' }).end('x'.repeat(4096)));
    await expect(plan({}, { token: 't', accept: 'text/plain', limitBytes: 1024 })).rejects.toThrow(
      /^the answer from http:\/\/127\.0\.0\.1:\d+\/prefix\/api\/plan exceeds 1024 bytes: not an answer of the engine's$/,
    );
    answer((_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < 4; i++) res.write('x'.repeat(1024));
      res.end();
    });
    await expect(plan({}, { token: 't', accept: 'text/plain', limitBytes: 1024 })).rejects.toThrow(EngineRequestError);
  });

  it('gives up after the deadline, before the answer or in the middle of its body', async () => {
    answer(() => undefined);
    await expect(plan({}, { token: 't', accept: 'text/plain', timeoutMs: 200 })).rejects.toThrow(
      /^http:\/\/127\.0\.0\.1:\d+\/prefix\/api\/plan did not answer within 0\.2 s$/,
    );
    answer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).write('the beginning of'));
    await expect(plan({}, { token: 't', accept: 'text/plain', timeoutMs: 200 })).rejects.toThrow(/did not answer within 0\.2 s/);
  });

  it('says when nothing listens, and for this machine, what to start', async () => {
    const nothing = base(`http://127.0.0.1:${await freePort()}`);
    await expect(callEngine(nothing, { method: 'POST', path: '/api/plan', body: {}, token: 't', accept: 'text/plain' })).rejects.toThrow(
      /^cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/plan: connect ECONNREFUSED .* \(is the local host running\? npm start\)$/,
    );
  });
});

describe("what the CLI prints of another machine's answer", () => {
  it('shows control characters instead of letting them drive the terminal', () => {
    expect(printable('ok\n\tline\u001b]0;owned\u0007\u009b2J')).toBe('ok\n\tline\\u001b]0;owned\\u0007\\u009b2J');
  });
});
