import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Make the sandbox's TLS material in `dir` with openssl (never committed): a throwaway CA and a certificate for
 * localhost and 127.0.0.1, valid two days. Whoever starts the sandbox (the local host, the test run, the benchmark)
 * makes it, then starts the processes that call the sandbox with NODE_EXTRA_CA_CERTS (Node reads it only at start-up)
 * and RESPONDER_SANDBOX_TLS_DIR set. An ES module, so vitest.config.mts can import it.
 */
export function createSandboxTls(dir: string): { dir: string; caPath: string } {
  mkdirSync(dir, { recursive: true });
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
    '/CN=Sentinel Responder sandbox CA (throwaway, local only)',
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
