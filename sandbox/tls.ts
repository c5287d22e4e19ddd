import { existsSync } from 'node:fs';
import path from 'node:path';

/** The sandbox's TLS material (made by createSandboxTls in tlsMaterial.mts): a throwaway CA and a server certificate. */
export interface SandboxTls {
  dir: string;
  caPath: string;
  keyPath: string;
  certPath: string;
}

/** The material this process was started with (RESPONDER_SANDBOX_TLS_DIR). */
export function sandboxTls(): SandboxTls {
  const dir = process.env.RESPONDER_SANDBOX_TLS_DIR;
  if (!dir || !existsSync(dir)) {
    throw new Error('RESPONDER_SANDBOX_TLS_DIR is not set: start the sandbox through npm start, npm test or npm run bench, which make its TLS material');
  }
  return { dir, caPath: path.join(dir, 'ca.pem'), keyPath: path.join(dir, 'server.key'), certPath: path.join(dir, 'server.pem') };
}
