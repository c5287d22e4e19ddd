/**
 * The pipeline benchmark (run by `npm run bench` in its own process, which trusts the test CA): the local host as a
 * child process on the real pipeline — Service Bus through the AMQP emulator, the ledger on Azurite — against the
 * sandbox tenant over HTTPS.
 *  1. An outbreak at the APIs' real limits (bench/outbreak.ts).
 *  2. Latency at a rate the quotas carry (bench/latency.ts).
 * Time is compressed by TIME_SCALE, for the engine (RESPONDER_TIME_SCALE) and the sandbox's quotas alike. Exits
 * non-zero when a target is missed.
 */
import { runLatency } from './latency';
import { OUTBREAK, runOutbreak } from './outbreak';
import { printFigures, startWorld, stopWorld } from './harness';

/** A minute becomes 10 s: the floor of 1,000 isolations (9 minutes) becomes 90 s. */
const TIME_SCALE = 6;

async function main(): Promise<void> {
  const world = await startWorld();
  let missed = false;
  try {
    const outbreak = await runOutbreak(world, TIME_SCALE);
    printFigures(
      `outbreak: ${OUTBREAK} incidents at once, one risky user and one risky device each, enrichment on, Defender, ID Protection and Graph writes at their documented limits`,
      outbreak.lines,
      outbreak.figures,
    );
    const latency = await runLatency(world, TIME_SCALE, OUTBREAK);
    printFigures('latency: POST /api/incidents -> isolate call at Defender', latency.lines, latency.figures);
    missed = [...outbreak.figures, ...latency.figures].some((f) => !f.ok);
  } finally {
    await stopWorld(world);
  }
  if (missed) process.exitCode = 1;
}

main().then(
  // Client keep-alive sockets would hold the process open: the figures are printed, so leave.
  () => process.exit(),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
