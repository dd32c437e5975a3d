import { evaluateDevicesGeofence, type GeofenceDeps } from '../geofence/evaluate.job.js';
import { evaluateDeviceAlcohol } from '../alcohol/evaluate.job.js';
import type { AlcoholParams } from '../alcohol/params.js';
import { evaluateDevicesHealth } from '../health/health.job.js';
import type { DirtyDevices } from '../signals/queues.js';
import type { Stream } from '../signals/streams.js';

export type EvaluationDeps = GeofenceDeps & { alcoholParams: AlcoholParams };

export interface BatchResult {
  fixes: number;
  alerts: number;
  /** devices whose evaluation failed: nothing after the step that failed ran for them */
  failed: Map<string, Error>;
}

/**
 * Evaluates a batch of devices with the marks taken for them: geofence (devices with new fixes,
 * or all in a sweep) and health (devices with any mark, or all in a sweep) in one transaction
 * each for the whole batch, alcohol per device with new alcohol readings. When a batch transaction fails, its devices are evaluated one by
 * one, so a device that cannot be evaluated fails alone and the others go through.
 */
export async function evaluateDeviceBatch(
  deps: EvaluationDeps,
  devices: readonly string[],
  marks: DirtyDevices,
  sweep: boolean,
  now: number,
): Promise<BatchResult> {
  const out: BatchResult = { fixes: 0, alerts: 0, failed: new Map() };
  const markOf = (d: string): Partial<Record<Stream, number>> => marks.get(d) ?? {};
  const gps = devices.filter((d) => sweep || markOf(d).gps !== undefined).map((deviceId) => ({ deviceId, dirtyFrom: markOf(deviceId).gps ?? null }));
  const geofence = await alone(gps, (b) => evaluateDevicesGeofence(deps, b), (b) => b.deviceId, out.failed);
  for (const r of geofence.flatMap((g) => [...g.devices.values()])) {
    out.fixes += r.fixes;
    out.alerts += r.raised.length;
  }
  for (const g of geofence) for (const [d, err] of g.failed) out.failed.set(d, err);
  for (const d of devices) {
    if (out.failed.has(d) || (!sweep && markOf(d).alcohol === undefined)) continue;
    try {
      out.alerts += (await evaluateDeviceAlcohol({ ...deps, params: deps.alcoholParams }, d, markOf(d).alcohol ?? null, now)).length;
    } catch (err) {
      out.failed.set(d, err as Error);
    }
  }
  // a device without marks had them taken by another job, which sees to its health
  const healthy = devices.filter((d) => !out.failed.has(d) && (sweep || Object.keys(markOf(d)).length > 0)).map((deviceId) => ({ deviceId, dirty: markOf(deviceId) }));
  const health = await alone(healthy, (b) => evaluateDevicesHealth(deps, b, now), (b) => b.deviceId, out.failed);
  for (const h of health) for (const raised of h.values()) out.alerts += raised.length;
  return out;
}

/** Runs `fn` on the whole batch; if that throws, on each item alone, recording the items that fail. */
async function alone<T, R>(batch: T[], fn: (b: T[]) => Promise<R>, id: (t: T) => string, failed: Map<string, Error>): Promise<R[]> {
  if (batch.length === 0) return [];
  try {
    return [await fn(batch)];
  } catch (err) {
    if (batch.length === 1) {
      failed.set(id(batch[0]!), err as Error);
      return [];
    }
  }
  const out: R[] = [];
  for (const item of batch) {
    try {
      out.push(await fn([item]));
    } catch (err) {
      failed.set(id(item), err as Error);
    }
  }
  return out;
}
