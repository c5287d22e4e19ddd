import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLocalSettings } from '../../cli/localSettings';

describe('local.settings.json', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'responder-settings-'));
  const write = (text: string) => {
    const file = path.join(dir, `settings-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, text);
    return file;
  };

  it('fills what the environment does not set, from a file saved with a byte order mark', () => {
    const env: NodeJS.ProcessEnv = { RESPONDER_MODE: 'audit' };
    loadLocalSettings(env, write('\ufeff{ "IsEncrypted": false, "Values": { "RESPONDER_MODE": "enforce", "LOG_LEVEL": "debug" } }'));
    expect(env).toEqual({ RESPONDER_MODE: 'audit', LOG_LEVEL: 'debug' });
  });

  it('names the file when it is not JSON, and does nothing when there is none', () => {
    const broken = write('{ "Values": ');
    expect(() => loadLocalSettings({}, broken)).toThrow(`${broken}: invalid JSON`);
    const env: NodeJS.ProcessEnv = {};
    loadLocalSettings(env, path.join(dir, 'absent.json'));
    expect(env).toEqual({});
  });
});
