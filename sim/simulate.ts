import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { devTokenOptions, mintDevToken } from '../platform/http/dev-tokens.js';
import { ROOT, readStackEnv } from '../scripts/stack.js';
import { messagesBetween, planFleet, silentAt, type SimDevice } from './model.js';
import { inBatches, loadCredentials, registerFleet, saveCredentials } from './register.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { planFleet as fleetOf } from './fleet.js';
import { planCrimes } from './crimes.js';

/**
 * The fleet simulator (contract §7): registers its tags, subjects and fittings through the HTTP
 * API, then publishes their telemetry over MQTT, each tag on its own connection as itself.
 * What is measured comes from the pure model in sim/; this file is timers and I/O.
 */

export interface SimOptions {
  devices: number;
  /** GPS fixes per device per minute while the wearer moves (a still tag sends one in five) */
  rate: number;
  /** API base URL, e.g. http://127.0.0.1:8080 */
  api: string;
  mqttUrl: string;
  /** PEM file of the CA that signed the broker's certificate, for an mqtts:// URL (MQTT_CA_FILE) */
  caFile?: string;
  seed: string | number;
  prefix: string;
  /** admin bearer token; minted from `jwtSecret` when absent */
  token?: string;
  jwtSecret?: string;
  /** hours of backlog a newly registered tag sends first, as store-and-forward bursts */
  historyH: number;
  /** JSON file keeping device MQTT passwords between runs (shown once at registration); null: memory only */
  credentialsFile: string | null;
  log?: (line: string) => void;
  summaryEveryMs?: number;
  tickMs?: number;
}

export interface Summary {
  devices: number;
  registered: { created: number; reused: number };
  messages: number;
  readings: { gps: number; alcohol: number; status: number; total: number };
  /** store-and-forward bursts sent (a silent or new tag's backlog), and the readings in them */
  bursts: number;
  burstReadings: number;
  errors: number;
  silentNow: number;
  elapsedS: number;
}

export interface Simulation {
  summary(): Summary;
  /** Stops publishing, waits for outstanding PUBACKs (bounded), closes the connections. Safe to call twice. */
  stop(): Promise<Summary>;
}

interface Tag {
  dev: SimDevice;
  client: MqttClient;
  /** everything measured up to here has been handed to MQTT */
  sentTo: number;
  busy: boolean;
}

/** Registers the fleet (idempotent), connects every tag and starts publishing. */
export async function runSimulation(o: SimOptions): Promise<Simulation> {
  const log = o.log ?? ((line: string) => console.log(line));
  if (!o.token && !o.jwtSecret) throw new Error('simulate: give --token or set JWT_SECRET to mint an admin token');
  const token = o.token ?? (await mintDevToken(o.jwtSecret!, 'simulator', 'admin', devTokenOptions(process.env)));
  const fleet = planFleet({ seed: o.seed, devices: o.devices, prefix: o.prefix });
  const creds = loadCredentials(o.credentialsFile);
  const startedAt = Date.now();
  const backlogFrom = startedAt - Math.round(o.historyH * 3_600_000);
  const counts: Summary = {
    devices: fleet.length,
    registered: { created: 0, reused: 0 },
    messages: 0,
    readings: { gps: 0, alcohol: 0, status: 0, total: 0 },
    bursts: 0,
    burstReadings: 0,
    errors: 0,
    silentNow: 0,
    elapsedS: 0,
  };

  // fitted a minute before the backlog starts, so every reading a tag sends belongs to its subject
  const reg = await registerFleet(o.api, token, fleet, backlogFrom - 60_000, creds);
  counts.registered = { created: reg.created.size, reused: fleet.length - reg.created.size };
  saveCredentials(o.credentialsFile, creds);

  const ca = o.caFile ? readFileSync(o.caFile) : undefined;
  const tags: Tag[] = [];
  try {
    await inBatches(fleet, 50, async (dev) => {
      const client = await mqtt.connectAsync(o.mqttUrl, {
        clientId: dev.id,
        username: dev.id,
        password: creds[dev.id],
        clean: true,
        reconnectPeriod: 2000,
        connectTimeout: 10_000,
        ...(ca ? { ca } : {}),
      });
      client.on('error', (err) => log(`simulate: ${dev.id}: mqtt ${err.message}`));
      tags.push({ dev, client, sentTo: reg.created.has(dev.id) ? backlogFrom : startedAt, busy: false });
    });
  } catch (err) {
    await Promise.all(tags.map((t) => t.client.endAsync(true)));
    throw new Error(`simulate: MQTT connection to ${o.mqttUrl} failed: ${(err as Error).message}`);
  }
  log(
    `simulate: ${fleet.length} tags (${counts.registered.created} new, ${counts.registered.reused} reused) on ${o.mqttUrl}, ` +
      `${o.rate} GPS fixes/min while moving` +
      (counts.registered.created && o.historyH ? `; the new tags first send ${o.historyH} h of backlog` : ''),
  );

  let stopped = false;
  let ticking: Promise<void> | null = null;
  const inflight = new Set<Promise<void>>();

  function send(tag: Tag, from: number, to: number): Promise<void> {
    const msgs = messagesBetween(tag.dev, from, to, o.rate);
    if (msgs.length === 0) return Promise.resolve();
    tag.busy = true;
    const sent = msgs.map(async (m) => {
      try {
        await tag.client.publishAsync(m.topic, m.payload, { qos: 1 });
        counts.messages++;
        counts.readings[m.stream] += m.count;
        counts.readings.total += m.count;
        if (m.burst) counts.burstReadings += m.count;
      } catch (err) {
        counts.errors++;
        log(`simulate: ${m.topic}: publish failed: ${(err as Error).message}`);
      }
    });
    const p = Promise.all(sent).then(() => {
      if (msgs[0]!.burst) counts.bursts++;
      tag.busy = false;
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    return p;
  }

  async function tick(): Promise<void> {
    const now = Date.now();
    let silent = 0;
    for (const tag of tags) {
      if (stopped) return;
      if (silentAt(tag.dev, now)) {
        silent++;
        continue; // it keeps measuring; the backlog goes out as a burst when it can send again
      }
      if (tag.busy || now <= tag.sentTo) continue;
      const from = tag.sentTo;
      tag.sentTo = now;
      void send(tag, from, now);
      // a long backlog takes a while to generate: let PUBACKs and timers through between tags
      if (now - from > 60_000) await new Promise((r) => setImmediate(r));
    }
    counts.silentNow = silent;
  }

  const tickTimer = setInterval(() => {
    if (ticking || stopped) return;
    ticking = tick().finally(() => (ticking = null));
  }, o.tickMs ?? 1000);
  let last = { ...counts.readings, bursts: 0 };
  const summaryTimer = setInterval(() => {
    const r = counts.readings;
    log(
      `simulate: ${Math.round((Date.now() - startedAt) / 1000)}s +${r.total - last.total} readings ` +
        `(gps +${r.gps - last.gps}, alcohol +${r.alcohol - last.alcohol}, status +${r.status - last.status}), ` +
        `${counts.bursts - last.bursts} bursts; ${counts.silentNow}/${tags.length} tags silent; ` +
        `total ${r.total} readings in ${counts.messages} messages, ${counts.bursts} bursts, ${counts.errors} errors`,
    );
    last = { ...r, bursts: counts.bursts };
  }, o.summaryEveryMs ?? 10_000);

  const summary = (): Summary => ({ ...counts, readings: { ...counts.readings }, elapsedS: Math.round((Date.now() - startedAt) / 1000) });
  let stopping: Promise<Summary> | null = null;
  return {
    summary,
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearInterval(tickTimer);
        clearInterval(summaryTimer);
        await ticking;
        await Promise.race([Promise.all([...inflight]), new Promise((r) => setTimeout(r, 10_000).unref())]);
        await Promise.all(tags.map((t) => t.client.endAsync(false).catch(() => undefined)));
        return summary();
      })();
      return stopping;
    },
  };
}

const USAGE = `usage: npm run simulate -- [options]

Registers simulated tags, subjects and fittings through the API, then publishes their
telemetry over MQTT around Nottingham: walking and driving tracks, GPS noise and gaps,
town-centre visits, drinking days, tampers, flat batteries and store-and-forward bursts.

  --devices N       tags, one subject each (default 50)
  --rate R          GPS fixes per device per minute while the wearer moves (default 4);
                    a still tag sends one in five. Alcohol: every 30 min (every 5 while
                    rising). Status: every 5 min, plus tamper and battery events.
  --api URL         tagwatch API (default http://127.0.0.1:$PORT, PORT default 8080)
  --mqtt URL        MQTT broker (default $MQTTS_URL, else $MQTT_URL): mqtts:// for TLS
  --ca FILE         CA certificate (PEM) the broker's TLS certificate is checked against
                    (default $MQTT_CA_FILE)
  --duration S      stop after S seconds (default: run until Ctrl-C)
  --seed X          PRNG seed: the same seed gives the same fleet and tracks (default 1)
  --token JWT       admin token (default: minted from $JWT_SECRET)
  --prefix P        ids {P}tag-0001 and {P}subj-0001 (default sim-)
  --history H       hours of backlog a newly registered tag sends first, as bursts (default 26)
  --credentials F   where device MQTT passwords are kept between runs
                    (default .stack/sim-credentials.json)
  --crimes N        do not publish: write a crime batch CSV of N crimes for the simulated
                    town (contract §8) and its ground truth (JSON), then exit. One in five
                    is committed by a simulated subject at its TRUE position; windows end
                    by 10 minutes ago and start at most --history hours back (24 at most).
                    Use the --devices, --seed, --prefix and --rate of the simulation.
  --out DIR         where --crimes writes (default .stack/crimes)

MQTTS_URL, MQTT_CA_FILE, MQTT_URL and JWT_SECRET are read from .stack/env when not in the
environment: against the local stack, tags publish over TLS.`;

async function main(argv: string[]): Promise<void> {
  let v: Record<string, string | undefined>;
  try {
    const names = ['devices', 'rate', 'api', 'mqtt', 'ca', 'duration', 'seed', 'token', 'prefix', 'history', 'credentials', 'crimes', 'out'];
    v = parseArgs({ args: argv, options: Object.fromEntries(names.map((k) => [k, { type: 'string' as const }])), strict: true }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new Error(`simulate: ${(err as Error).message} (see --help)`);
  }
  const stackEnv = readStackEnv();
  const num = (name: string, dflt: number, min: number): number => {
    const n = v[name] === undefined ? dflt : Number(v[name]);
    if (!Number.isFinite(n) || n < min) throw new Error(`simulate: --${name} must be a number ≥ ${min}`);
    return n;
  };
  const prefix = v.prefix ?? 'sim-';
  if (!/^[A-Za-z0-9_-]{0,40}$/.test(prefix)) throw new Error('simulate: --prefix must be up to 40 characters of [A-Za-z0-9_-]');
  if (v.crimes !== undefined) {
    const now = Math.floor(Date.now() / 60_000) * 60_000;
    const fleet = fleetOf({ seed: v.seed ?? 1, devices: Math.floor(num('devices', 50, 1)), prefix });
    const hours = Math.min(24, num('history', 26, 1));
    const plan = planCrimes(fleet, { seed: v.seed ?? 1, count: Math.floor(num('crimes', 0, 1)), from: now - hours * 3_600_000 + 3_600_000, to: now - 600_000, rate: num('rate', 4, 0.01) });
    const dir = v.out ?? join(ROOT, '.stack', 'crimes');
    mkdirSync(dir, { recursive: true });
    const csvPath = join(dir, `${plan.batchId}.csv`);
    writeFileSync(csvPath, plan.csv);
    writeFileSync(join(dir, `${plan.batchId}.truth.json`), JSON.stringify(plan.truth, null, 1));
    const committed = plan.truth.filter((t) => t.committed_by).length;
    console.log(`simulate: ${plan.truth.length} crimes (${committed} committed by simulated subjects) in ${csvPath}; ground truth beside it`);
    console.log(`simulate: upload with: curl -X POST -H "authorization: Bearer $TOKEN" -H 'content-type: text/csv' --data-binary @${csvPath} http://127.0.0.1:8080/v1/crime-batches`);
    return;
  }
  // devices speak TLS: the stack's TLS listener unless a URL is given
  const mqttUrl = v.mqtt ?? process.env.MQTTS_URL ?? process.env.MQTT_URL ?? stackEnv?.MQTTS_URL ?? stackEnv?.MQTT_URL;
  const caFile = v.ca ?? process.env.MQTT_CA_FILE ?? stackEnv?.MQTT_CA_FILE;
  if (!mqttUrl) throw new Error('simulate: give --mqtt or set MQTT_URL (npm run stack:up writes it to .stack/env)');
  const duration = v.duration === undefined ? null : num('duration', 0, 1);
  const sim = await runSimulation({
    devices: Math.floor(num('devices', 50, 1)),
    rate: num('rate', 4, 0.01),
    api: v.api ?? `http://127.0.0.1:${process.env.PORT || 8080}`,
    mqttUrl,
    caFile: mqttUrl.startsWith('mqtts:') ? caFile : undefined,
    seed: v.seed ?? 1,
    prefix,
    token: v.token,
    jwtSecret: process.env.JWT_SECRET || stackEnv?.JWT_SECRET,
    historyH: num('history', 26, 0),
    credentialsFile: v.credentials ?? join(ROOT, '.stack', 'sim-credentials.json'),
  });
  let signalled = false;
  const finish = async () => {
    const s = await sim.stop();
    console.log(
      `simulate: stopped after ${s.elapsedS}s: ${s.readings.total} readings (gps ${s.readings.gps}, alcohol ${s.readings.alcohol}, ` +
        `status ${s.readings.status}) in ${s.messages} messages, ${s.bursts} bursts (${s.burstReadings} readings), ${s.errors} errors`,
    );
    process.exit(s.errors > 0 ? 1 : 0);
  };
  const onSignal = () => {
    if (signalled) process.exit(130);
    signalled = true;
    void finish();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (duration !== null) setTimeout(() => void finish(), duration * 1000);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
  } else {
    main(argv).catch((err: Error) => {
      console.error(err.message);
      process.exit(1);
    });
  }
}
