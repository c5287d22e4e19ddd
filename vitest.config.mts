import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * TEST-ONLY TLS material for the HTTPS emulators, made fresh for each run with openssl and never committed: a
 * throwaway CA and a certificate for localhost / 127.0.0.1. NODE_EXTRA_CA_CERTS is read when a process starts, so it
 * is set here, before vitest forks its workers (which inherit this environment). test/support/tls.ts reads it back.
 */
function createTestTls(): { dir: string; caPath: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'responder-test-tls-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Sentinel Responder TEST-ONLY CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  );
  return { dir, caPath: path.join(dir, 'ca.pem') };
}

if (!process.env.RESPONDER_TEST_TLS_DIR) {
  const tls = createTestTls();
  process.env.RESPONDER_TEST_TLS_DIR = tls.dir;
  process.env.NODE_EXTRA_CA_CERTS = tls.caPath;
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 20_000,
  },
});
