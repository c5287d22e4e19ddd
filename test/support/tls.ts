import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * TEST-ONLY TLS material, generated with openssl when the test run starts (never committed): a throwaway CA and a
 * server certificate for localhost / 127.0.0.1, so emulators can serve HTTPS and the real SDKs and fetch trust them
 * through NODE_EXTRA_CA_CERTS (read at process start; vitest.config.mts sets it before the workers start).
 */
export interface TestTls {
  dir: string;
  caPath: string;
  keyPath: string;
  certPath: string;
}

export function createTestTls(): TestTls {
  const dir = mkdtempSync(path.join(tmpdir(), 'responder-test-tls-'));
  const file = (name: string) => path.join(dir, name);
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
  writeFileSync(file('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
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
  return { dir, caPath: file('ca.pem'), keyPath: file('server.key'), certPath: file('server.pem') };
}

/** The material the test runner generated for this run (paths passed through the environment). */
export function testTls(): TestTls {
  const dir = process.env.RESPONDER_TEST_TLS_DIR;
  if (!dir || !existsSync(dir)) throw new Error('RESPONDER_TEST_TLS_DIR is not set: run the tests through vitest (vitest.config.mts generates it)');
  return { dir, caPath: path.join(dir, 'ca.pem'), keyPath: path.join(dir, 'server.key'), certPath: path.join(dir, 'server.pem') };
}
