import pg from 'pg';
import { brokerUrls, ConfigError, loadConfig } from '../platform/config.js';
import { auditLogWeaknesses, canCreateInSchema, migrate, pendingMigrations, storageMode } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { closeRuntime, createRuntime, type Part } from '../platform/runtime.js';
import { onShutdown } from '../platform/shutdown.js';
import { connectBrokerAdmins } from '../registry/dynsec.js';
import { authOptions, createTokenVerifier } from '../platform/http/auth.js';
import { startMetricsServer } from '../platform/http/metrics-server.js';
import { readBrokerCa } from '../registry/ca.js';

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

  // Migrations run before any part starts, as the schema owner (MIGRATION_DATABASE_URL) or, in
  // single-role mode, as DATABASE_URL. A runtime role without a migration URL only checks that
  // the schema is the one this build expects (the deployment migrates first).
  const client = new pg.Client({ connectionString: config.MIGRATION_DATABASE_URL ?? config.DATABASE_URL });
  await client.connect();
  try {
    if (config.MIGRATION_DATABASE_URL || mode === 'migrate' || (await canCreateInSchema(client))) {
      await migrate(client, logger);
    } else {
      const pending = await pendingMigrations(client);
      if (pending.length) throw new Error(`${pending.length} migration(s) not applied (first: ${pending[0]}): run \`tagwatch migrate\` with MIGRATION_DATABASE_URL`);
    }
    logger.info({ storage: await storageMode(client) }, 'schema up to date');
  } finally {
    await client.end();
  }
  if (mode !== 'migrate') await warnIfAuditWritable(config.DATABASE_URL, logger);
  if (mode === 'migrate') return;

  // With broker administration configured, the ingest client and its role exist before ingest connects.
  if (config.MQTT_ADMIN_USERNAME && config.MQTT_ADMIN_PASSWORD && config.MQTT_USERNAME && config.MQTT_PASSWORD && mode !== 'api') {
    const admin = await connectBrokerAdmins(brokerUrls(config.MQTT_URL), config.MQTT_ADMIN_USERNAME, config.MQTT_ADMIN_PASSWORD, { ca: readBrokerCa(config.MQTT_CA_FILE) });
    await admin.ensureServiceClient(config.MQTT_USERNAME, config.MQTT_PASSWORD);
    await admin.close();
  }
  const rt = await createRuntime(config, logger, createMetrics());
  const parts: Part[] = [];
  onShutdown(logger, async () => {
    // intake first (HTTP, MQTT), then running jobs, then connections
    for (const name of ['api', 'ingest', 'worker', 'metrics']) {
      const p = parts.find((x) => x.name === name);
      if (p) await p.stop().catch((err: Error) => logger.warn({ err: err.message, part: name }, 'stop failed'));
    }
    await closeRuntime(rt);
  });
  // each part is imported only when this process runs it (an ingest process stays small)
  if (mode === 'all' || mode === 'worker') parts.push(await (await import('./worker.part.js')).startWorker(rt));
  if (mode === 'all' || mode === 'ingest') parts.push(await (await import('./ingest.part.js')).startIngest(rt));
  if (mode === 'all' || mode === 'api') parts.push(await (await import('./api.part.js')).startApi(rt, () => parts));
  // an ingest or worker process alone has no API: its own metrics on METRICS_PORT
  let metricsPort: number | undefined;
  if ((mode === 'ingest' || mode === 'worker') && config.METRICS_PORT !== undefined) {
    const server = await startMetricsServer({ port: config.METRICS_PORT, host: config.HOST, metrics: rt.metrics, verifyToken: createTokenVerifier(authOptions(config)), logger });
    metricsPort = server.port;
    parts.push({ name: 'metrics', stop: () => server.close() });
  }
  logger.info({ mode, storage: rt.storage, port: mode === 'all' || mode === 'api' ? config.PORT : undefined, metrics_port: metricsPort }, 'tagwatch started');
}

/** Logs a warning when the service's own role could rewrite the audit log (single-role mode). */
async function warnIfAuditWritable(url: string, logger: ReturnType<typeof createLogger>): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const weak = await auditLogWeaknesses(c);
    if (weak.length) logger.warn({ rights: weak }, 'single-role mode: the service role can change the audit log (set MIGRATION_DATABASE_URL and a runtime role)');
  } finally {
    await c.end();
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`tagwatch: ${err.message}`);
  if (process.env.LOG_LEVEL === "debug") console.error(err.stack);
  process.exit(1);
});
