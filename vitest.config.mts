import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';
import { createSandboxTls } from './sandbox/tlsMaterial.mts';

// The sandbox's TLS material, made fresh for each run. NODE_EXTRA_CA_CERTS is read when a process starts, so it is
// set here, before vitest forks its workers (which inherit this environment).
if (!process.env.RESPONDER_SANDBOX_TLS_DIR) {
  const tls = createSandboxTls(mkdtempSync(path.join(tmpdir(), 'responder-test-tls-')));
  process.env.RESPONDER_SANDBOX_TLS_DIR = tls.dir;
  process.env.NODE_EXTRA_CA_CERTS = tls.caPath;
}

// This run's own directory: test/support/build.ts builds dist/ once per run, whichever test file needs it first.
process.env.RESPONDER_TEST_RUN_DIR = mkdtempSync(path.join(tmpdir(), 'responder-test-run-'));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 20_000,
  },
});
