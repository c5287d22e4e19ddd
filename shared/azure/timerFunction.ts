import { app, type InvocationContext, type Timer } from '@azure/functions';
import { logger, withLogSink, type Logger } from '../log';
import { parseSchedule } from './ncrontab';
import { functionsHostPresent, registry } from './registry';

export interface TimerFunctionSpec {
  name: string;
  /** NCRONTAB, six fields, UTC (`0 0/5 * * * *`: every five minutes). Checked at registration. */
  schedule: string;
  runOnStartup?: boolean;
  handle(timer: Timer, log: Logger): Promise<void>;
}

/**
 * Register a timer-triggered function (remediation sweeps). The schedule is parsed here, so a typo fails at start-up
 * rather than silently never firing; the local host runs the same schedule.
 */
export function defineTimerFunction(spec: TimerFunctionSpec): (timer: Timer, context: InvocationContext) => Promise<void> {
  parseSchedule(spec.schedule);
  const handler = (timer: Timer, context: InvocationContext): Promise<void> =>
    withLogSink(context, async () => {
      const log = logger().child({ invocationId: context.invocationId, function: spec.name });
      try {
        await spec.handle(timer, log);
      } catch (error) {
        // Said here, with the error in full, before the host records the run as failed: a timer has no caller to tell.
        log.error({ err: error }, `timer ${spec.name} failed`);
        throw error;
      }
    });
  registry.timers.push({ name: spec.name, schedule: spec.schedule, runOnStartup: spec.runOnStartup ?? false, handler });
  if (functionsHostPresent()) app.timer(spec.name, { schedule: spec.schedule, runOnStartup: spec.runOnStartup ?? false, handler });
  return handler;
}
