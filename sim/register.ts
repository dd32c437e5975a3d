import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SimDevice } from './model.js';
import { TOWN_CENTRE } from './track.js';
import { tagwatchClient } from '../client/index.js';

/**
 * The simulator's side of the registry API (contract §2, §6), and the file where it keeps the
 * tags' MQTT passwords between runs. I/O, unlike the rest of sim/.
 */

type ApiResult = { status: number; body: Record<string, unknown> };

/** One call through the typed client (client/), as status and body (a problem on failure). */
async function call(api: string, p: Promise<{ data?: unknown; error?: unknown; response: Response }>): Promise<ApiResult> {
  let r: Awaited<typeof p>;
  try {
    r = await p;
  } catch (err) {
    const cause = (err as Error).cause as Error | undefined;
    throw new Error(`simulate: cannot reach the API at ${api} (${cause?.message ?? (err as Error).message})`);
  }
  return { status: r.response.status, body: ((r.data ?? r.error ?? {}) as Record<string, unknown>) };
}

/** 201 created or 409 already there (a re-run reuses it); anything else stops the simulator. */
function createdOrExists(r: ApiResult, what: string): 'created' | 'exists' {
  if (r.status === 201) return 'created';
  if (r.status === 409) return 'exists';
  throw new Error(`${what}: HTTP ${r.status} ${String(r.body.detail ?? r.body.title ?? '')}`);
}

export async function inBatches<T>(items: T[], size: number, f: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(f));
}

export function loadCredentials(file: string | null): Record<string, string> {
  if (!file || !existsSync(file)) return {};
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
}

export function saveCredentials(file: string | null, creds: Record<string, string>): void {
  if (!file) return;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(creds, null, 1) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * Registers each tag (admin API), its subject and the fitting from `fittedFrom` (epoch ms).
 * A 409 on a re-run means it is already there and is reused. Passwords of new tags go into
 * `creds`; returns the ids of the tags registered now.
 */
export async function registerFleet(
  api: string,
  token: string,
  fleet: SimDevice[],
  fittedFrom: number,
  creds: Record<string, string>,
): Promise<{ created: Set<string> }> {
  const created = new Set<string>();
  const client = tagwatchClient(api, token);
  await inBatches(fleet, 8, async (dev) => {
    const d = await call(api, client.POST('/v1/devices', { body: { id: dev.id, kind: dev.kind } }));
    if (createdOrExists(d, `register device ${dev.id}`) === 'created') {
      creds[dev.id] = String(d.body.mqtt_password);
      created.add(dev.id);
    }
    createdOrExists(await call(api, client.POST('/v1/subjects', { body: dev.subject })), `register subject ${dev.subject.id}`);
    const a = await call(
      api,
      client.POST('/v1/subjects/{id}/assignments', {
        params: { path: { id: dev.subject.id } },
        body: { device_id: dev.id, start: new Date(fittedFrom).toISOString() },
      }),
    );
    createdOrExists(a, `fit ${dev.id} to ${dev.subject.id}`);
    // every fifth GPS-tagged subject is excluded from the town centre their tracks visit
    if (created.has(dev.id) && dev.kind !== 'alcohol' && fleet.indexOf(dev) % 5 === 0) {
      const z = await call(
        api,
        client.POST('/v1/subjects/{id}/zones', {
          params: { path: { id: dev.subject.id } },
          body: {
            type: 'Feature',
            geometry: { type: 'Point', coordinates: [TOWN_CENTRE.lon, TOWN_CENTRE.lat] },
            properties: { kind: 'exclusion', name: TOWN_CENTRE.name, radius_m: TOWN_CENTRE.radius_m, grace_s: 60 },
          },
        }),
      );
      if (z.status !== 201) throw new Error(`zone for ${dev.subject.id}: HTTP ${z.status} ${String(z.body.detail ?? '')}`);
    }
  });
  return { created };
}
