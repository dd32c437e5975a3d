import pg from 'pg';
import { ConfigError, loadConfig } from '../platform/config.js';
import { migrate, storageMode } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { closeRuntime, createRuntime, type Part } from '../platform/runtime.js';
import { onShutdown } from '../platform/shutdown.js';
import { connectBrokerAdmin } from '../registry/dynsec.js';

const USAGE = 'usage: tagwatch <all|api|ingest|worker|migrate>';

/** The CLI: `tagwatch all` (npm start) runs every part in one process; each part also runs alone. */
async function main(argv: string[]): Promise<void> {
  const mode = argv[0] ?? 'all';
  if (!['all', 'api', 'ingest', 'worker', 'migrate'].includes(mode)) {
    console.error(USAGE);
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(78);
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL);

  // Migrations run before any part starts: the schema is always the one this build expects.
  const client = new pg.Client({ connectionString: config.DATABASE_URL });
  await client.connect();
  try {
    await migrate(client, logger);
    logger.info({ storage: await storageMode(client) }, 'schema up to date');
  } finally {
    await client.end();
  }
  if (mode === 'migrate') return;

  // With broker administration configured, the ingest client and its role exist before ingest connects.
  if (config.MQTT_ADMIN_USERNAME && config.MQTT_ADMIN_PASSWORD && config.MQTT_USERNAME && config.MQTT_PASSWORD && mode !== 'api') {
    const admin = await connectBrokerAdmin(config.MQTT_URL, config.MQTT_ADMIN_USERNAME, config.MQTT_ADMIN_PASSWORD);
    await admin.ensureServiceClient(config.MQTT_USERNAME, config.MQTT_PASSWORD);
    await admin.close();
  }
  const rt = await createRuntime(config, logger, createMetrics());
  const parts: Part[] = [];
  onShutdown(logger, async () => {
    // intake first (HTTP, MQTT), then running jobs, then connections
    for (const name of ['api', 'ingest', 'worker']) {
      const p = parts.find((x) => x.name === name);
      if (p) await p.stop().catch((err: Error) => logger.warn({ err: err.message, part: name }, 'stop failed'));
    }
    await closeRuntime(rt);
  });
  // each part is imported only when this process runs it (an ingest process stays small)
  if (mode === 'all' || mode === 'worker') parts.push(await (await import('./worker.part.js')).startWorker(rt));
  if (mode === 'all' || mode === 'ingest') parts.push(await (await import('./ingest.part.js')).startIngest(rt));
  if (mode === 'all' || mode === 'api') parts.push(await (await import('./api.part.js')).startApi(rt, () => parts));
  logger.info({ mode, storage: rt.storage, port: mode === 'all' || mode === 'api' ? config.PORT : undefined }, 'tagwatch started');
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`tagwatch: ${err.message}`);
  if (process.env.LOG_LEVEL === "debug") console.error(err.stack);
  process.exit(1);
});
