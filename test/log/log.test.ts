import { describe, expect, it } from 'vitest';
import { createLogger, scrubSecrets, withLogSink, logger, type LogSink } from '../../shared/log';

/** A tiny sink (pino's own testing habit): collect the lines, parse them. */
function sink() {
  const lines: string[] = [];
  return { lines, write: (line: string) => void lines.push(line), parsed: () => lines.map((l) => JSON.parse(l)) };
}

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';

describe('logging', () => {
  it('redacts credentials by field and scrubs them from free text', () => {
    const out = sink();
    const log = createLogger('info', out);
    log.info(
      { headers: { authorization: `Bearer ${JWT}` }, token: JWT, config: { connectionString: 'Endpoint=sb://x/;SharedAccessKey=abc' }, incidentId: 'inc-1' },
      `token was ${JWT}; conn Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=s3cr3t; header Bearer abc.def.ghi`,
    );
    log.error({ err: new Error(`upstream said AccountKey=hunter2 for ${JWT}`) }, 'failed');
    const text = out.lines.join('\n');
    for (const secret of [JWT, 's3cr3t', 'hunter2', 'abc.def.ghi', 'SharedAccessKey=abc']) expect(text).not.toContain(secret);
    const [first, second] = out.parsed();
    expect(first).toMatchObject({
      level: 'info',
      incidentId: 'inc-1',
      headers: { authorization: '[redacted]' },
      token: '[redacted]',
      config: { connectionString: '[redacted]' },
    });
    expect(first.msg).toBe('token was [redacted-jwt]; conn Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=[redacted]; header Bearer [redacted]');
    expect(second.err.message).toBe('upstream said AccountKey=[redacted] for [redacted-jwt]');
  });

  it('routes lines to the invocation context at their level, with correlation fields', () => {
    const got: Array<[string, string]> = [];
    const context: LogSink = {
      trace: (m) => void got.push(['trace', String(m)]),
      debug: (m) => void got.push(['debug', String(m)]),
      info: (m) => void got.push(['info', String(m)]),
      warn: (m) => void got.push(['warn', String(m)]),
      error: (m) => void got.push(['error', String(m)]),
    };
    process.env.LOG_LEVEL = 'info';
    withLogSink(context, () => {
      const log = logger().child({ invocationId: 'inv-1', actionId: 'act-1' });
      log.info('planned');
      log.warn('held');
      log.error('failed');
      log.debug('hidden at info');
    });
    expect(got.map(([level]) => level)).toEqual(['info', 'warn', 'error']);
    expect(JSON.parse(got[0]![1])).toMatchObject({ invocationId: 'inv-1', actionId: 'act-1', msg: 'planned', service: 'sentinel-responder' });
  });

  it('scrubs bare secrets', () => {
    expect(scrubSecrets('client_secret=abc123&x=1')).toBe('client_secret=[redacted]&x=1');
  });
});
