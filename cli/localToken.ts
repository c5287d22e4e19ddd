import path from 'node:path';

/**
 * What the local host (`npm start`) and the command line share: the directory the host keeps its state in, relative to
 * where it was started, and the developer token it writes there. That token carries every app role, so it goes only to
 * the names below, which mean this machine.
 */
export const LOCAL_STATE_DIR = '.responder';
export const LOCAL_TOKEN_FILE = path.join(LOCAL_STATE_DIR, 'local-token');
export const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]']);
