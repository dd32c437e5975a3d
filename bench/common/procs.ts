import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PublisherReport, PublishJob } from './publisher.js';

/** Child processes of the bench: the real ingest (`tsx app/main.ts ingest`) and the simulated devices. */

const PUBLISHER = fileURLToPath(new URL('./publisher.ts', import.meta.url));

/** Settles as `p` does, or rejects with `message()` after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface Publisher {
  pid: number;
  /** every connection up (and, unpaced, every payload built) */
  ready: Promise<void>;
  /** starts publishing; resolves when the broker has acknowledged every message */
  go(): Promise<PublisherDone>;
  stop(): Promise<void>;
}

type PublisherDone = Extract<PublisherReport, { type: 'done' }>;

/** A promise with its settle functions; marked handled, so only its awaiters see a rejection. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export function startPublisher(root: string, job: PublishJob): Publisher {
  const child = fork(PUBLISHER, [], { cwd: root, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = deferred<void>();
  const done = deferred<PublisherDone>();
  const fail = (e: Error) => {
    ready.reject(e);
    done.reject(e);
  };
  child.on('message', (m: PublisherReport) => {
    if (m.type === 'ready') ready.resolve();
    else if (m.type === 'done') done.resolve(m);
    else fail(new Error(`publisher: ${m.message}`));
  });
  // after `done` this is a no-op: a settled promise stays settled
  child.on('exit', (code, signal) => fail(new Error(`publisher exited (code ${code}, signal ${signal}) before finishing`)));
  child.send({ type: 'job', job });
  return {
    pid: child.pid!,
    ready: ready.promise,
    go() {
      child.send({ type: 'go' });
      return done.promise;
    },
    stop: () => stopChild(child),
  };
}

export interface IngestChild {
  pid: number;
  child: ChildProcess;
  /** the last lines the child wrote, for error messages */
  tail(): string;
  stop(): Promise<void>;
}

/**
 * Starts `node --import tsx app/main.ts ingest` as bin/tagwatch does, but directly (no shell or tsx CLI wrapper, so `pid` is the
 * process doing the work: its /proc stats and `--cpu-prof` are ingest's own). Resolves once
 * it logs "tagwatch started" (migrations done, every MQTT connection subscribed).
 */
export async function startIngestChild(root: string, env: NodeJS.ProcessEnv, nodeArgs: string[], timeoutMs: number): Promise<IngestChild> {
  // The heap limit bin/tagwatch gives an ingest process (TAGWATCH_HEAP_MB, default 160 MB).
  const heap = `--max-old-space-size=${env.TAGWATCH_HEAP_MB ?? 160}`;
  const child = spawn(process.execPath, [heap, ...nodeArgs, '--import', 'tsx', 'app/main.ts', 'ingest'], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Last resort if the bench dies without its cleanup: never leave ingest running.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.removeListener('exit', killOnExit));
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(l);
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  const tail = () => lines.slice(-15).join('\n');
  child.stderr!.on('data', keep);
  const started = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      keep(chunk);
      if (chunk.toString('utf8').includes('"tagwatch started"')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`ingest exited (code ${code}, signal ${signal}) during start-up:\n${tail()}`)));
  });
  try {
    await withTimeout(started, timeoutMs, () => `ingest did not start within ${timeoutMs / 1000} s:\n${tail()}`);
  } catch (err) {
    await stopChild(child, 2000);
    throw err;
  }
  return { pid: child.pid!, child, tail, stop: () => stopChild(child) };
}
