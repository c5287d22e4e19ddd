import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * TEST-ONLY TLS material, generated with openssl by vitest.config.mts when the test run starts (never committed): a
 * throwaway CA and a server certificate for localhost / 127.0.0.1, so emulators can serve HTTPS and the real SDKs
 * and fetch trust them through NODE_EXTRA_CA_CERTS (read at process start, so set before the workers start).
 */
export interface TestTls {
  dir: string;
  caPath: string;
  keyPath: string;
  certPath: string;
}

/** The material the test runner generated for this run (paths passed through the environment). */
export function testTls(): TestTls {
  const dir = process.env.RESPONDER_TEST_TLS_DIR;
  if (!dir || !existsSync(dir)) throw new Error('RESPONDER_TEST_TLS_DIR is not set: run the tests through vitest (vitest.config.mts generates it)');
  return { dir, caPath: path.join(dir, 'ca.pem'), keyPath: path.join(dir, 'server.key'), certPath: path.join(dir, 'server.pem') };
}
