/**
 * Average minimum capacity of a scalable target over a week, from the
 * scheduled actions that change its `MinCapacity`, such as warm windows.
 */

/** A scheduled action of `AWS::ApplicationAutoScaling::ScalableTarget`, as the template writes it. */
export interface ScheduledAction {
  readonly ScheduledActionName?: string;
  readonly Schedule?: string;
  readonly ScalableTargetAction?: { readonly MinCapacity?: number; readonly MaxCapacity?: number };
}

/** The weekly average of a minimum capacity, and the schedules it could not read. */
export interface AverageCapacity {
  readonly average: number;
  /** Schedules other than weekly cron expressions, which the average leaves out. */
  readonly unread: readonly string[];
}

const MINUTES_PER_WEEK = 7 * 24 * 60;
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/**
 * Expands one field of a cron expression into its values: `*`, a number,
 * a name, a range `a-b`, a step `a/n` or `*\/n`, and lists of these.
 * Returns undefined for anything else, such as `L`, `W` or `#`.
 */
function expandField(field: string, min: number, max: number, names: readonly string[] = [], offset = 0): number[] | undefined {
  const valueOf = (text: string): number | undefined => {
    const named = names.indexOf(text.toUpperCase());
    if (named >= 0) return named + offset;
    return /^\d+$/.test(text) ? Number(text) : undefined;
  };
  const values = new Set<number>();
  for (const part of field.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) return undefined;
    let from: number | undefined;
    let to: number | undefined;
    if (range === '*') {
      from = min;
      to = max;
    } else if (range.includes('-')) {
      const [a, b] = range.split('-');
      from = valueOf(a);
      to = valueOf(b);
    } else {
      from = valueOf(range);
      to = stepText === undefined ? from : max;
    }
    if (from === undefined || to === undefined || from < min || to > max || from > to) return undefined;
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return [...values].sort((a, b) => a - b);
}

/**
 * Returns the minutes of the week (0 is Sunday 00:00) at which a cron
 * expression of Application Auto Scaling fires. It reads expressions that
 * repeat every week: minutes, hours and days of the week, with `*` or `?`
 * for the day of the month and `*` for the month and the year. Days of the
 * week are 1 (SUN) to 7 (SAT) or their names. Returns undefined for other
 * schedules.
 * Source: https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html
 */
export function weeklyFiringMinutes(schedule: string): number[] | undefined {
  const match = /^cron\((.*)\)$/.exec(schedule.trim());
  if (!match) return undefined;
  const fields = match[1].trim().split(/\s+/);
  if (fields.length !== 6) return undefined;
  const [minutes, hours, dayOfMonth, month, dayOfWeek, year] = fields;
  if (!['*', '?'].includes(dayOfMonth) || month !== '*' || year !== '*') return undefined;
  const minuteValues = expandField(minutes, 0, 59);
  const hourValues = expandField(hours, 0, 23);
  // Cron days of the week run from 1 (SUN) to 7 (SAT); `?` and `*` mean every day.
  const dayValues = dayOfWeek === '?' || dayOfWeek === '*' ? [1, 2, 3, 4, 5, 6, 7] : expandField(dayOfWeek, 1, 7, DAY_NAMES, 1);
  if (!minuteValues || !hourValues || !dayValues) return undefined;
  const firing: number[] = [];
  for (const day of dayValues) {
    for (const hour of hourValues) {
      for (const minute of minuteValues) firing.push((day - 1) * 1440 + hour * 60 + minute);
    }
  }
  return firing.sort((a, b) => a - b);
}

/**
 * Returns the minimum capacity averaged over a week. Each scheduled action
 * that sets `MinCapacity` applies from the time it fires until the next one
 * fires, and the week repeats, so the template's `MinCapacity` applies only
 * when no action sets one. Every schedule is read in one time zone, which
 * leaves the weekly average unchanged, except around daylight saving changes.
 */
export function averageMinCapacity(minCapacity: number, actions: readonly ScheduledAction[]): AverageCapacity {
  const events: Array<{ minute: number; capacity: number }> = [];
  const unread: string[] = [];
  for (const action of actions) {
    const capacity = action.ScalableTargetAction?.MinCapacity;
    if (capacity === undefined) continue;
    const minutes = action.Schedule === undefined ? undefined : weeklyFiringMinutes(action.Schedule);
    if (minutes === undefined) {
      unread.push(action.Schedule ?? `${action.ScheduledActionName ?? 'an action'} without a schedule`);
      continue;
    }
    for (const minute of minutes) events.push({ minute, capacity });
  }
  if (events.length === 0) return { average: minCapacity, unread };
  events.sort((a, b) => a.minute - b.minute);
  let weighted = 0;
  events.forEach((event, i) => {
    const next = i + 1 < events.length ? events[i + 1].minute : events[0].minute + MINUTES_PER_WEEK;
    weighted += event.capacity * (next - event.minute);
  });
  return { average: weighted / MINUTES_PER_WEEK, unread };
}
