import { app, type InvocationContext, type Timer } from '@azure/functions';
import { logger, withLogSink, type Logger } from '../log';
import { parseSchedule } from './ncrontab';
import { registry } from './registry';

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
    withLogSink(context, () => spec.handle(timer, logger().child({ invocationId: context.invocationId, function: spec.name })));
  registry.timers.push({ name: spec.name, schedule: spec.schedule, runOnStartup: spec.runOnStartup ?? false, handler });
  app.timer(spec.name, { schedule: spec.schedule, runOnStartup: spec.runOnStartup ?? false, handler });
  return handler;
}
